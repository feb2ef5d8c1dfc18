//! kube-sim for the people who type kubectl and helm, each rule judged by the real kubectl 1.32,
//! the Helm v4 SDK, curl or kube-rs's event Recorder (never by kube-sim's own code):
//! protobuf request bodies, one event store behind two APIs, fieldValidation, per-resource field
//! selectors, CRD patterns refused at registration.

mod common;

use common::*;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ListParams};
use kube::runtime::events::{Event as RecEvent, EventType, Recorder, Reporter};
use kube_sim::{KubeSim, SimOptions};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Output;

// ---------------------------------------------------------------------------------------------
// Helpers

/// kubectl against a kubeconfig, with its own discovery cache.
struct Kubectl {
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
}

impl Kubectl {
    fn new(kubeconfig: &Path) -> Self {
        Kubectl {
            kubeconfig: kubeconfig.to_path_buf(),
            cache: tempfile::tempdir().expect("tempdir"),
        }
    }
    async fn run(&self, args: &[&str]) -> Output {
        tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .await
            .expect("kubectl (v1.32) must be on PATH")
    }
    async fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args).await;
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "kubectl {args:?} failed: {o}{e}");
        (o, e)
    }
    async fn json(&self, args: &[&str]) -> Value {
        let (o, _) = self.ok(args).await;
        serde_json::from_str(&o).unwrap_or_else(|e| panic!("kubectl {args:?}: not JSON ({e}): {o}"))
    }
    /// Runs a command that must fail; returns its stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// The kube-sim binary started as a user would, logging every request (method, path,
/// Content-Type) at debug level to a file.
struct Standalone {
    child: std::process::Child,
    kubeconfig: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Standalone {
    fn start() -> Self {
        use std::io::BufRead as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        let log = dir.path().join("kube-sim.log");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kube-sim"))
            .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
            .arg(&kubeconfig)
            .env("RUST_LOG", "kube_sim=debug")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start the kube-sim binary");
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("kube-sim prints its URL");
        assert!(first.starts_with("http://127.0.0.1:"), "{first}");
        Standalone {
            child,
            kubeconfig,
            log,
            _dir: dir,
        }
    }

    /// (method, path, content type) of every request logged so far.
    fn requests(&self) -> Vec<(String, String, String)> {
        let text = std::fs::read_to_string(&self.log).expect("read the kube-sim log");
        text.lines()
            .filter(|l| l.contains(" request "))
            .map(|l| {
                let field = |k: &str| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix(&format!("{k}=")))
                        .unwrap_or_default()
                        .to_string()
                };
                (field("method"), field("path"), field("content_type"))
            })
            .collect()
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write fixture");
    p.to_string_lossy().into_owned()
}

/// Drop nulls and then empty objects, recursively: Go prints a zero `metav1.Time` as null and
/// empty structs as `{}`, which say nothing about what was stored.
fn prune_empty(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for x in m.values_mut() {
                prune_empty(x);
            }
            m.retain(|_, x| !(x.is_null() || x.as_object().is_some_and(|o| o.is_empty())));
        }
        Value::Array(a) => a.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

/// The stored object minus what the server adds (uid, resourceVersion, creationTimestamp,
/// generation, a Namespace's phase), comparable with `--dry-run=client -o json`.
fn as_sent(mut stored: Value) -> Value {
    if let Some(m) = stored["metadata"].as_object_mut() {
        for k in ["uid", "resourceVersion", "creationTimestamp", "generation"] {
            m.remove(k);
        }
    }
    if stored["kind"] == "Namespace" && stored["status"] == json!({"phase": "Active"}) {
        stored.as_object_mut().expect("object").remove("status");
    }
    prune_empty(&mut stored);
    stored
}

fn golden(mut v: Value) -> Value {
    prune_empty(&mut v);
    v
}

// ---------------------------------------------------------------------------------------------
// 1. Protobuf request bodies

/// The kubectl commands of the issue (plus role/binding variants with every flag that fills a
/// field), each of which kubectl sends as protobuf.
const CREATES: &[(&[&str], &str)] = &[
    (
        &["create", "namespace", "istio-system"],
        "namespace/istio-system",
    ),
    (
        &[
            "create",
            "configmap",
            "c1",
            "--from-literal=a=b",
            "--from-literal=x=",
            "-n",
            "default",
        ],
        "configmap/c1",
    ),
    (
        &["create", "serviceaccount", "sa1", "-n", "default"],
        "serviceaccount/sa1",
    ),
    (
        &[
            "create",
            "secret",
            "generic",
            "s1",
            "--from-literal=k=v",
            "--type=example.com/t",
            "-n",
            "default",
        ],
        "secret/s1",
    ),
    (
        &[
            "create",
            "secret",
            "tls",
            "t1",
            "--cert=CERT",
            "--key=KEY",
            "-n",
            "default",
        ],
        "secret/t1",
    ),
    (
        &[
            "create",
            "role",
            "r1",
            "--verb=get,list",
            "--resource=pods,configmaps",
            "--resource-name=a",
            "-n",
            "default",
        ],
        "role/r1",
    ),
    (
        &[
            "create",
            "rolebinding",
            "rb1",
            "--role=r1",
            "--user=u1",
            "--group=g1",
            "--serviceaccount=default:sa1",
            "-n",
            "default",
        ],
        "rolebinding/rb1",
    ),
    (
        &[
            "create",
            "clusterrole",
            "cr1",
            "--verb=get",
            "--resource=secrets",
            "--verb=list",
        ],
        "clusterrole/cr1",
    ),
    (
        &[
            "create",
            "clusterrole",
            "cr2",
            "--aggregation-rule=example.com/aggregate=true",
        ],
        "clusterrole/cr2",
    ),
    (
        &[
            "create",
            "clusterrole",
            "cr3",
            "--verb=get",
            "--non-resource-url=/healthz",
        ],
        "clusterrole/cr3",
    ),
    (
        &[
            "create",
            "clusterrolebinding",
            "crb1",
            "--clusterrole=cr1",
            "--serviceaccount=default:sa1",
            "--user=u2",
        ],
        "clusterrolebinding/crb1",
    ),
];

/// Golden test: what kube-sim stores from kubectl's protobuf bodies equals what kubectl built
/// (`--dry-run=client -o json`); and every one of these creates really was protobuf (the
/// standalone binary's request log, which is also how the README's Content-Type list was made).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_sends_builtins_as_protobuf_and_kube_sim_stores_what_kubectl_built() {
    let sim = Standalone::start();
    let k = Kubectl::new(&sim.kubeconfig);
    let dir = tempfile::tempdir().expect("tempdir");
    // A real key pair for `create secret tls` (kubectl parses both), made by openssl.
    let (cert, key) = (
        dir.path().join("tls.crt").to_string_lossy().into_owned(),
        dir.path().join("tls.key").to_string_lossy().into_owned(),
    );
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-subj",
            "/CN=kube-sim-test",
            "-days",
            "1",
            "-keyout",
            &key,
            "-out",
            &cert,
        ])
        .output()
        .expect("openssl must be on PATH");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    for (args, obj) in CREATES {
        let args: Vec<&str> = args
            .iter()
            .map(|a| match *a {
                "--cert=CERT" => Box::leak(format!("--cert={cert}").into_boxed_str()) as &str,
                "--key=KEY" => Box::leak(format!("--key={key}").into_boxed_str()) as &str,
                a => a,
            })
            .collect();
        let mut dry = args.clone();
        dry.extend(["--dry-run=client", "-o", "json"]);
        let want = golden(k.json(&dry).await);
        let mut real = args.clone();
        real.extend(["-o", "json"]);
        let answered = k.json(&real).await;
        let mut get = vec!["get", obj, "-o", "json"];
        if args.contains(&"-n") {
            get.extend(["-n", "default"]);
        }
        let stored = k.json(&get).await;
        assert_eq!(
            as_sent(stored.clone()),
            want,
            "{obj}: stored differs from what kubectl built"
        );
        // kubectl prints its typed copy of the answer (a nil list as null): compare without nulls.
        assert_eq!(
            golden(answered),
            golden(stored),
            "{obj}: the create answer is the stored object"
        );
    }
    let posts: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|(m, _, _)| m == "POST")
        .collect();
    println!("requests with a body, as kube-sim logged them:");
    for (m, p, ct) in &posts {
        println!("  {m} {p} {ct}");
    }
    assert_eq!(posts.len(), CREATES.len(), "{posts:?}");
    assert!(
        posts
            .iter()
            .all(|(_, _, ct)| ct == "application/vnd.kubernetes.protobuf"),
        "every kubectl create of a built-in is protobuf: {posts:?}"
    );
}

/// Helm's default release storage (Secrets through client-go's typed client, protobuf) on a
/// standalone kube-sim: install, upgrade, uninstall with the Helm v4 SDK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_sdk_install_upgrade_uninstall_with_default_secret_storage() {
    let sim = Standalone::start();
    let python = std::env::var_os("FIREFLY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"));
    assert!(
        python.exists(),
        "no Python with the Helm SDK at {}: run scripts/test (it creates .venv from tests/requirements.txt) or set FIREFLY_TEST_PYTHON",
        python.display()
    );
    let out = tokio::process::Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/helm_secret_storage.py"
        ))
        .arg(&sim.kubeconfig)
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("run helm_secret_storage.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("ok helm_secret_storage"),
        "Helm SDK against kube-sim failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret_writes: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|(m, p, _)| (m == "POST" || m == "PUT") && p.contains("/secrets"))
        .collect();
    println!("Helm's release storage writes: {secret_writes:?}");
    assert!(
        secret_writes
            .iter()
            .any(|(m, _, ct)| m == "POST" && ct == "application/vnd.kubernetes.protobuf"),
        "Helm stores releases as protobuf Secrets: {secret_writes:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. One event store

/// The controller writes events.k8s.io/v1 Events through kube-rs's Recorder (create, then a
/// merge patch for the series); `kubectl describe` and `kubectl get events` read core v1 Events
/// with `involvedObject.*` field selectors. Both are views of one store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorder_events_show_in_kubectl_describe_and_get_events() {
    let sim = KubeSim::start(SimOptions::default()).await.expect("start");
    sim.install_crds_yaml(&project_crds()).await.expect("CRDs");
    let client = sim.client().await.expect("client");
    let crs = cr_api(client.clone(), "default");
    let cr = crs
        .create(&Default::default(), &dynamic(cr_body("req-1")))
        .await
        .expect("create the CertificateRequest");
    let other = crs
        .create(&Default::default(), &dynamic(cr_body("req-2")))
        .await
        .expect("create the second CertificateRequest");
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "firefly".into(),
            instance: Some("firefly-0".into()),
        },
    );
    let reference = |o: &kube::api::DynamicObject| ObjectReference {
        api_version: Some("cert-manager.io/v1".into()),
        kind: Some("CertificateRequest".into()),
        name: o.metadata.name.clone(),
        namespace: o.metadata.namespace.clone(),
        uid: o.metadata.uid.clone(),
        ..Default::default()
    };
    let failed = RecEvent {
        type_: EventType::Warning,
        reason: "PolicyViolation".into(),
        note: Some("the request names a SPIFFE ID outside the trust domain".into()),
        action: "Sign".into(),
        secondary: None,
    };
    recorder
        .publish(&failed, &reference(&cr))
        .await
        .expect("publish");
    // The same event again: the Recorder merge-patches the series of the same Event object.
    recorder
        .publish(&failed, &reference(&cr))
        .await
        .expect("publish again");
    let ok = RecEvent {
        type_: EventType::Normal,
        reason: "Issued".into(),
        note: Some("certificate issued".into()),
        action: "Sign".into(),
        secondary: None,
    };
    recorder
        .publish(&ok, &reference(&other))
        .await
        .expect("publish for req-2");

    let k = Kubectl::new(sim.kubeconfig_path());
    let (describe, _) = k
        .ok(&["describe", "certificaterequest", "req-1", "-n", "default"])
        .await;
    let events = describe
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Events section: {describe}"));
    assert!(
        events.contains("Warning")
            && events.contains("PolicyViolation")
            && events.contains("firefly")
            && events.contains("the request names a SPIFFE ID outside the trust domain"),
        "describe must show the Recorder's event:\n{describe}"
    );
    assert!(
        !events.contains("Issued"),
        "describe must select by involvedObject (req-2's event leaked):\n{describe}"
    );

    let core = k
        .json(&["get", "events", "-n", "default", "-o", "json"])
        .await;
    let items = core["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "one object per Recorder series: {core:#}");
    let pv = items
        .iter()
        .find(|e| e["reason"] == "PolicyViolation")
        .expect("core v1 view of the Recorder's event");
    assert_eq!(pv["apiVersion"], "v1");
    assert_eq!(pv["involvedObject"]["name"], "req-1");
    assert_eq!(pv["involvedObject"]["uid"], json!(cr.metadata.uid));
    assert_eq!(
        pv["message"],
        "the request names a SPIFFE ID outside the trust domain"
    );
    assert_eq!(pv["reportingComponent"], "firefly");
    assert_eq!(pv["series"]["count"], 2, "{pv:#}");
    assert!(
        pv.get("note").is_none() && pv.get("regarding").is_none(),
        "{pv:#}"
    );

    // The same objects under events.k8s.io/v1, selected by regarding.*.
    let ev = k
        .json(&[
            "get",
            "events.v1.events.k8s.io",
            "-n",
            "default",
            "--field-selector",
            "regarding.name=req-2,regarding.kind=CertificateRequest",
            "-o",
            "json",
        ])
        .await;
    let ev_items = ev["items"].as_array().expect("items");
    assert_eq!(ev_items.len(), 1, "{ev:#}");
    assert_eq!(ev_items[0]["apiVersion"], "events.k8s.io/v1");
    assert_eq!(ev_items[0]["note"], "certificate issued");
    assert_eq!(ev_items[0]["regarding"]["name"], "req-2");
    assert_eq!(ev_items[0]["reportingController"], "firefly");
    assert!(ev_items[0].get("message").is_none(), "{ev:#}");
}

/// A core v1 Event written by kubectl appears under events.k8s.io/v1 converted (list, get and
/// watch), and `involvedObject.*` is refused there as a field label, `regarding.*` on core.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_events_are_served_converted_under_events_k8s_io() {
    use futures::{StreamExt as _, TryStreamExt as _};
    use k8s_openapi::api::events::v1::Event as EventsV1;
    let sim = KubeSim::start(SimOptions::default()).await.expect("start");
    let client = sim.client().await.expect("client");
    let api: Api<EventsV1> = Api::namespaced(client, "default");
    let mut watch = api
        .watch(&kube::api::WatchParams::default(), "0")
        .await
        .expect("watch")
        .boxed();
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Kubectl::new(sim.kubeconfig_path());
    let file = write(
        dir.path(),
        "ev.yaml",
        "apiVersion: v1\nkind: Event\nmetadata: {name: e1, namespace: default}\ninvolvedObject: {kind: Pod, name: p1, namespace: default}\nreason: Pulled\nmessage: pulled the image\ntype: Normal\nsource: {component: kubelet, host: n1}\ncount: 3\nfirstTimestamp: \"2026-01-01T00:00:00Z\"\nlastTimestamp: \"2026-01-01T00:01:00Z\"\n",
    );
    k.ok(&["create", "-f", &file]).await;
    let got = api.get("e1").await.expect("get through events.k8s.io/v1");
    assert_eq!(got.note.as_deref(), Some("pulled the image"));
    assert_eq!(
        got.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("p1")
    );
    assert_eq!(got.deprecated_count, Some(3));
    assert_eq!(
        got.deprecated_source
            .as_ref()
            .and_then(|s| s.component.as_deref()),
        Some("kubelet")
    );
    assert!(got.deprecated_first_timestamp.is_some() && got.deprecated_last_timestamp.is_some());
    let listed = api
        .list(&ListParams::default().fields("regarding.name=p1,source=kubelet"))
        .await
        .expect("list with regarding.*");
    assert_eq!(listed.items.len(), 1);
    let none = api
        .list(&ListParams::default().fields("regarding.name=p2"))
        .await
        .expect("list");
    assert!(none.items.is_empty());
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), watch.try_next())
        .await
        .expect("a watch event within 10 s")
        .expect("watch stream")
        .expect("an event");
    match first {
        kube::api::WatchEvent::Added(e) => assert_eq!(e.note.as_deref(), Some("pulled the image")),
        other => panic!("expected ADDED, got {other:?}"),
    }
    let e = k
        .fails(&[
            "get",
            "events.v1.events.k8s.io",
            "--field-selector",
            "involvedObject.name=p1",
        ])
        .await;
    assert!(
        e.contains("field label not supported: involvedObject.name"),
        "{e}"
    );
    let e = k
        .fails(&["get", "events", "--field-selector", "regarding.name=p1"])
        .await;
    assert!(
        e.contains("field label not supported: regarding.name"),
        "{e}"
    );
    // `kubectl get events` (core) finds it too, selected by involvedObject.*.
    let (out, _) = k
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=Pod,involvedObject.name=p1",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(out.trim(), "event/e1");
}

// ---------------------------------------------------------------------------------------------
// 3. Field validation

const CM_UNKNOWN: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: NAME\n  namespace: default\n  bogus: 1\ndata: {a: b}\nextra: 1\n";

/// kubectl's `--validate=strict|warn|ignore` become `fieldValidation=Strict|Warn|Ignore`:
/// refused, stored with warnings, stored silently; on built-ins and custom resources, for
/// create, replace (update) and merge patches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_validate_modes_refuse_warn_or_ignore_unknown_fields() {
    let sim = KubeSim::start(SimOptions::default()).await.expect("start");
    sim.install_crds_yaml(&project_crds()).await.expect("CRDs");
    let k = Kubectl::new(sim.kubeconfig_path());
    let dir = tempfile::tempdir().expect("tempdir");
    let f = |name: &str| {
        write(
            dir.path(),
            &format!("{name}.yaml"),
            &CM_UNKNOWN.replace("NAME", name),
        )
    };

    let e = k.fails(&["create", "-f", &f("strict")]).await;
    assert!(
        e.contains("strict decoding error")
            && e.contains(r#"unknown field "extra""#)
            && e.contains(r#"unknown field "metadata.bogus""#),
        "{e}"
    );
    assert!(
        !k.run(&["get", "cm", "strict"]).await.status.success(),
        "a refused create stores nothing"
    );

    let (_, warned) = k
        .ok(&["create", "--validate=warn", "-f", &f("warned")])
        .await;
    assert!(
        warned.contains(r#"Warning: unknown field "extra""#),
        "{warned}"
    );
    let stored = k.json(&["get", "cm", "warned", "-o", "json"]).await;
    assert!(
        stored.get("extra").is_none() && stored["metadata"].get("bogus").is_none(),
        "{stored:#}"
    );
    assert_eq!(stored["data"]["a"], "b");

    let (_, quiet) = k
        .ok(&["create", "--validate=ignore", "-f", &f("ignored")])
        .await;
    assert!(!quiet.contains("Warning"), "Ignore must not warn: {quiet}");

    // Update (replace) and merge patch are validated too.
    let e = k.fails(&["replace", "-f", &f("warned")]).await;
    assert!(e.contains(r#"unknown field "extra""#), "{e}");
    // kubectl patch has no --validate flag and sends no fieldValidation: absent means Warn.
    let (_, w) = k
        .ok(&[
            "patch",
            "cm",
            "warned",
            "--type=merge",
            "-p",
            r#"{"data":{"c":"d"},"nope":1}"#,
        ])
        .await;
    assert!(w.contains(r#"Warning: unknown field "nope""#), "{w}");
    let patched = k.json(&["get", "cm", "warned", "-o", "json"]).await;
    assert!(
        patched.get("nope").is_none() && patched["data"]["c"] == "d",
        "{patched:#}"
    );

    // A custom resource: unknown spec field refused under Strict, warned under Warn.
    let cr = write(
        dir.path(),
        "cr.yaml",
        "apiVersion: cert-manager.io/v1\nkind: CertificateRequest\nmetadata: {name: r1, namespace: default}\nspec:\n  request: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K\n  issuerRef: {name: firefly, kind: Issuer, group: firefly.venafi.com}\n  colour: red\n",
    );
    let e = k.fails(&["create", "-f", &cr]).await;
    assert!(e.contains(r#"unknown field "spec.colour""#), "{e}");
    let (_, w) = k.ok(&["create", "--validate=warn", "-f", &cr]).await;
    assert!(w.contains(r#"Warning: unknown field "spec.colour""#), "{w}");
}

/// curl sends what kubectl cannot (kubectl's own parser drops duplicate keys): duplicate JSON
/// fields warned with no `fieldValidation` (absent = Warn), refused under Strict, silent under
/// Ignore, also in a merge patch; an unknown `fieldValidation` value is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_fields_are_warned_by_default_refused_when_strict_and_ignored_on_request() {
    let sim = KubeSim::start(SimOptions::default()).await.expect("start");
    let base = sim.base_url();
    let curl = |method: &str, url: String, ct: &str, body: &str| {
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "-i",
                "-X",
                method,
                "-H",
                &format!("Content-Type: {ct}"),
                "--data-binary",
                body,
                &url,
            ])
            .output()
            .expect("curl must be on PATH");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coll = format!("{base}/api/v1/namespaces/default/configmaps");
    let dup = |n: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{n}"}},"data":{{"a":"1","a":"2"}}}}"#
        )
    };

    let r = curl("POST", coll.clone(), "application/json", &dup("d1"));
    assert!(r.starts_with("HTTP/1.1 201"), "{r}");
    assert!(
        // HTTP header names are case-insensitive (hyper sends them in lower case).
        r.to_lowercase()
            .contains(r#"warning: 299 - "duplicate field \"data.a\"""#),
        "absent = Warn: {r}"
    );
    assert!(
        r.contains(r#""data":{"a":"2"}"#),
        "the last duplicate wins: {r}"
    );

    let r = curl(
        "POST",
        format!("{coll}?fieldValidation=Strict"),
        "application/json",
        &dup("d2"),
    );
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(
        r.contains(r#"strict decoding error: duplicate field \"data.a\""#),
        "{r}"
    );

    let r = curl(
        "POST",
        format!("{coll}?fieldValidation=Ignore"),
        "application/json",
        &dup("d3"),
    );
    assert!(
        r.starts_with("HTTP/1.1 201") && !r.to_lowercase().contains("warning:"),
        "{r}"
    );

    let r = curl(
        "PATCH",
        format!("{coll}/d1"),
        "application/merge-patch+json",
        r#"{"data":{"b":"1","b":"2"}}"#,
    );
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains(r#"duplicate field \"data.b\""#),
        "{r}"
    );
    let r = curl(
        "PATCH",
        format!("{coll}/d1?fieldValidation=Strict"),
        "application/strategic-merge-patch+json",
        r#"{"data":{"b":"1","b":"2"}}"#,
    );
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");

    let r = curl(
        "POST",
        format!("{coll}?fieldValidation=Loose"),
        "application/json",
        &dup("d4"),
    );
    assert!(
        r.starts_with("HTTP/1.1 400") && r.contains("Unsupported value"),
        "{r}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Field selectors

/// Only the field labels the real server supports per resource; 400 "field label not
/// supported" otherwise; a CRD's selectableFields extend its resource's labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_selectors_are_limited_to_what_each_resource_supports() {
    let sim = KubeSim::start(SimOptions::default()).await.expect("start");
    sim.install_crds_yaml(&project_crds()).await.expect("CRDs");
    let k = Kubectl::new(sim.kubeconfig_path());
    let dir = tempfile::tempdir().expect("tempdir");
    let objs = write(
        dir.path(),
        "objs.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: plain, namespace: default}\ntype: Opaque\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: other, namespace: default}\ntype: example.com/x\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p1, namespace: default}\nspec: {nodeName: n1, containers: [{name: c, image: i}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p2, namespace: default}\nspec: {nodeName: n2, containers: [{name: c, image: i}]}\n---\napiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: firefly-leader, namespace: default}\nspec: {holderIdentity: a}\n",
    );
    k.ok(&["create", "-f", &objs]).await;
    let names = |out: String| -> Vec<String> { out.lines().map(str::to_string).collect() };

    let (o, _) = k
        .ok(&[
            "get",
            "secrets",
            "--field-selector",
            "type=Opaque",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(names(o), ["secret/plain"]);
    let (o, _) = k
        .ok(&[
            "get",
            "pods",
            "--field-selector",
            "spec.nodeName=n2",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(names(o), ["pod/p2"]);
    let (o, _) = k
        .ok(&[
            "get",
            "pods",
            "--field-selector",
            "status.phase!=Running,metadata.name=p1",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(names(o), ["pod/p1"]);
    let (o, _) = k
        .ok(&[
            "get",
            "ns",
            "--field-selector",
            "status.phase=Active",
            "-o",
            "name",
        ])
        .await;
    assert!(names(o).contains(&"namespace/kube-system".to_string()));
    let (o, _) = k
        .ok(&[
            "get",
            "leases",
            "--field-selector",
            "metadata.name=firefly-leader",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(names(o), ["lease.coordination.k8s.io/firefly-leader"]);

    for (res, label) in [
        ("configmaps", "data.a"),
        ("secrets", "data.k"),
        ("pods", "spec.containers"),
        ("namespaces", "metadata.namespace"),
        ("leases", "spec.holderIdentity"),
        ("certificaterequests", "spec.request"),
    ] {
        let e = k
            .fails(&["get", res, "--field-selector", &format!("{label}=x")])
            .await;
        assert!(
            e.contains(&format!("field label not supported: {label}")),
            "{res}: {e}"
        );
    }

    // What the product uses: metadata.name on CertificateRequests (kube-rs watcher) and Leases.
    let client = sim.client().await.expect("client");
    let crs = cr_api(client.clone(), "default");
    crs.create(&Default::default(), &dynamic(cr_body("c1")))
        .await
        .expect("create");
    let l = crs
        .list(&ListParams::default().fields("metadata.name=c1,metadata.namespace=default"))
        .await
        .expect("metadata.* on a custom resource");
    assert_eq!(l.items.len(), 1);
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(client, "default");
    assert_eq!(
        leases
            .list(&ListParams::default().fields("metadata.name=firefly-leader"))
            .await
            .expect("leases by name")
            .items
            .len(),
        1
    );

    // A CRD's selectableFields.
    let crd = write(
        dir.path(),
        "crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {plural: widgets, singular: widget, kind: Widget}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    selectableFields: [{jsonPath: .spec.color}]\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            properties:\n              color: {type: string}\n              size: {type: integer}\n",
    );
    k.ok(&["create", "-f", &crd]).await;
    let ws = write(
        dir.path(),
        "ws.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: default}\nspec: {color: red, size: 1}\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2, namespace: default}\nspec: {color: blue, size: 2}\n",
    );
    k.ok(&["create", "-f", &ws]).await;
    let (o, _) = k
        .ok(&[
            "get",
            "widgets",
            "--field-selector",
            "spec.color=blue",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(names(o), ["widget.example.com/w2"]);
    let e = k
        .fails(&["get", "widgets", "--field-selector", "spec.size=1"])
        .await;
    assert!(e.contains("field label not supported: spec.size"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// 5. CRD patterns

/// A CRD whose `pattern` kube-sim's regex engine cannot compile is refused at registration with
/// the pattern and its path named, instead of being served without the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_with_an_uncompilable_pattern_is_refused_naming_it() {
    let sim = KubeSim::start(SimOptions::default()).await.expect("start");
    let k = Kubectl::new(sim.kubeconfig_path());
    let dir = tempfile::tempdir().expect("tempdir");
    let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: gadgets.example.com}\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {plural: gadgets, singular: gadget, kind: Gadget}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            properties:\n              id: {type: string, pattern: '^(?!admin)[a-z]+$'}\n";
    let f = write(dir.path(), "crd.yaml", crd);
    let e = k.fails(&["create", "-f", &f]).await;
    assert!(
        e.contains(
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[id].pattern"
        ) && e.contains("^(?!admin)[a-z]+$")
            && e.contains("must be a valid regular expression"),
        "{e}"
    );
    let e = k.fails(&["get", "gadgets"]).await;
    assert!(e.contains("the server doesn't have a resource type"), "{e}");
    let err = sim
        .install_crds_yaml(crd)
        .await
        .expect_err("the harness refuses it too");
    assert!(format!("{err:#}").contains("^(?!admin)[a-z]+$"), "{err:#}");
}
