//! kube-sim throughput on loopback: creates and status patches per second with 1 and 10 watchers.
//!
//! Run: `cargo bench -p kube-sim --bench throughput` (optionally `-- N CONCURRENCY`).
//! `KUBE_SIM_BENCH_WRITES=N` sets N too (for runs under `valgrind --tool=callgrind`, where a small N
//! keeps the run short) and `KUBE_SIM_BENCH_WATCHERS=1` runs only the one-watcher scenario.
//! The load generator is a plain hyper client with pre-serialized bodies so the figure measures the
//! server; watchers are raw watch streams that count event lines until every write has arrived.
//! The last scenario (or `KUBE_SIM_BENCH_TOKEN=1`) authenticates every request with a bearer token
//! of a user outside `system:masters`, so RBAC is evaluated on each call (20 unrelated
//! ClusterRoleBindings are stored besides the one that grants the calls).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kube_sim::{KubeSim, SimOptions, TokenUser};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.bench.example}
spec:
  group: bench.example
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [request]
            properties:
              request: {type: string, format: byte}
              duration: {type: string}
          status:
            type: object
            properties:
              certificate: {type: string, format: byte}
              conditions:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [type]
                items:
                  type: object
                  required: [type, status]
                  properties:
                    type: {type: string}
                    status: {type: string}
                    reason: {type: string}
                    message: {type: string}
                    lastTransitionTime: {type: string, format: date-time}
"#;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

const TOKEN: &str = "bench-token";

async fn send(
    client: &HttpClient,
    method: &str,
    uri: &str,
    ct: &str,
    body: Bytes,
    token: bool,
) -> u16 {
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", ct);
    if token {
        req = req.header("authorization", format!("Bearer {TOKEN}"));
    }
    let req = req.body(Full::new(body)).expect("valid request");
    match client.request(req).await {
        Ok(resp) => {
            let code = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            code
        }
        Err(_) => 0,
    }
}

/// Run `n` requests with `conc` in flight; returns (elapsed, failures).
async fn run_load(
    client: &HttpClient,
    n: usize,
    conc: usize,
    token: bool,
    make: impl Fn(usize) -> (String, String, &'static str, Bytes) + Send + Sync + 'static,
) -> (Duration, u64) {
    let make = Arc::new(make);
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (client, make, next, failures) =
            (client.clone(), make.clone(), next.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    break;
                }
                let (method, uri, ct, body) = make(i);
                let code = send(&client, &method, &uri, ct, body, token).await;
                if !(200..300).contains(&code) {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (start.elapsed(), failures.load(Ordering::Relaxed))
}

/// Open a raw watch and count event lines into `counter`.
async fn watcher(client: HttpClient, uri: String, counter: Arc<AtomicU64>, token: bool) {
    let mut req = http::Request::builder().uri(uri);
    if token {
        req = req.header("authorization", format!("Bearer {TOKEN}"));
    }
    let req = req.body(Full::new(Bytes::new())).expect("valid request");
    let Ok(resp) = client.request(req).await else {
        return;
    };
    let mut body = resp.into_body();
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(d) = frame.data_ref() {
            let lines = d.iter().filter(|b| **b == b'\n').count() as u64;
            counter.fetch_add(lines, Ordering::Relaxed);
        }
    }
}

async fn scenario(watchers: usize, n: usize, conc: usize, token: bool) -> (f64, f64, f64) {
    let mut opts = SimOptions::default();
    opts.bookmark_interval = Duration::from_secs(3600);
    if token {
        opts.token_users = vec![TokenUser::new(TOKEN, "bench", &["bench-writers"])];
    }
    let sim = KubeSim::start(opts).await.expect("kube-sim starts");
    sim.install_crds_yaml(CRD)
        .await
        .expect("bench CRD installs");
    if token {
        let rbac = "rbac.authorization.k8s.io/v1";
        for i in 0..20 {
            sim.put_object(serde_json::json!({"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": {"name": format!("other-{i}")}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "other"}, "subjects": [{"kind": "Group", "name": format!("group-{i}")}]}))
                .expect("binding stored");
        }
        sim.put_object(serde_json::json!({"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": "widgets"}, "rules": [
            {"apiGroups": ["bench.example"], "resources": ["widgets"], "verbs": ["create", "watch"]},
            {"apiGroups": ["bench.example"], "resources": ["widgets/status"], "verbs": ["patch"]}]}))
            .expect("role stored");
        sim.put_object(serde_json::json!({"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": {"name": "widgets"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "widgets"}, "subjects": [{"kind": "Group", "name": "bench-writers"}]}))
            .expect("binding stored");
    }
    let base = sim.base_url();
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(conc)
        .build_http();
    let coll = format!("{base}/apis/bench.example/v1/namespaces/default/widgets");
    let rv = sim.resource_version();
    let counters: Vec<Arc<AtomicU64>> =
        (0..watchers).map(|_| Arc::new(AtomicU64::new(0))).collect();
    for c in &counters {
        tokio::spawn(watcher(
            client.clone(),
            format!("{coll}?watch=true&resourceVersion={rv}&allowWatchBookmarks=false"),
            c.clone(),
            token,
        ));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let coll_c = coll.clone();
    let (create_t, create_fail) = run_load(&client, n, conc, token, move |i| {
        let body = format!(r#"{{"apiVersion":"bench.example/v1","kind":"Widget","metadata":{{"name":"w{i}","labels":{{"app":"bench"}}}},"spec":{{"request":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K","duration":"1h0m0s"}}}}"#);
        ("POST".into(), coll_c.clone(), "application/json", Bytes::from(body))
    })
    .await;
    let creates_per_s = n as f64 / create_t.as_secs_f64();

    let coll_p = coll.clone();
    let (patch_t, patch_fail) = run_load(&client, n, conc, token, move |i| {
        let body = r#"{"status":{"certificate":"Y2VydGlmaWNhdGU=","conditions":[{"type":"Ready","status":"True","reason":"Issued","message":"ok","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
        ("PATCH".into(), format!("{coll_p}/w{i}/status"), "application/merge-patch+json", Bytes::from_static(body.as_bytes()))
    })
    .await;
    let patches_per_s = n as f64 / patch_t.as_secs_f64();

    // Every watcher must receive every write (2n events) for the figure to count.
    let start = Instant::now();
    let want = 2 * n as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while counters.iter().any(|c| c.load(Ordering::Relaxed) < want) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivered: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let drain = start.elapsed();
    let all_delivered = delivered.iter().all(|d| *d >= want);
    let total = create_t + patch_t + drain;
    let end_to_end = (2 * n) as f64 / total.as_secs_f64();
    println!(
        "watchers={watchers:>2} token={token} n={n} conc={conc}: creates {creates_per_s:>9.0}/s  status patches {patches_per_s:>9.0}/s  all events delivered={all_delivered} (drain after last write {:.1} ms; writes→delivered {end_to_end:.0}/s)  failures={}",
        drain.as_secs_f64() * 1e3,
        create_fail + patch_fail
    );
    if !all_delivered {
        println!("  delivered per watcher: {delivered:?} of {want}");
    }
    (creates_per_s, patches_per_s, end_to_end)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let env_n = std::env::var("KUBE_SIM_BENCH_WRITES")
        .ok()
        .and_then(|v| v.parse().ok());
    let n = args.first().copied().or(env_n).unwrap_or(20_000);
    let only: Option<usize> = std::env::var("KUBE_SIM_BENCH_WATCHERS")
        .ok()
        .and_then(|v| v.parse().ok());
    let conc = args.get(1).copied().unwrap_or(64);
    let token_only = std::env::var("KUBE_SIM_BENCH_TOKEN").is_ok_and(|v| v == "1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        if let Some(w) = only {
            scenario(w, n, conc, token_only).await;
            return;
        }
        let one = scenario(1, n, conc, false).await;
        let ten = scenario(10, n, conc, false).await;
        let rbac = scenario(1, n, conc, true).await;
        let goal = 20_000.0;
        println!("goal: >= {goal:.0} writes/s with one watcher");
        println!("ratio creates/goal (1 watcher): {:.2}", one.0 / goal);
        println!("ratio status patches/goal (1 watcher): {:.2}", one.1 / goal);
        println!(
            "ratio end-to-end writes/goal (1 watcher): {:.2}",
            one.2 / goal
        );
        println!(
            "10 watchers vs 1: creates {:.2}x, status patches {:.2}x",
            ten.0 / one.0,
            ten.1 / one.1
        );
        println!(
            "with a token (RBAC evaluated), 1 watcher: creates/goal {:.2}, status patches/goal {:.2}; vs without a token {:.2}x, {:.2}x",
            rbac.0 / goal,
            rbac.1 / goal,
            rbac.0 / one.0,
            rbac.1 / one.1
        );
    });
}
