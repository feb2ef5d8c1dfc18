//! `firefly run -c config.yaml` as a process: against kube-sim (through its kubeconfig) and the
//! mock TLSPC, it serves the admin endpoints, issues, logs JSON lines naming the request, and on
//! SIGTERM finishes, releases its lease and exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use support::controller::*;

const WORKLOAD: &str = "spiffe://cluster.local/ns/sandbox/sa/httpbin";

/// The controller process with its stderr (JSON log lines) collected.
struct Process {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// The thread collecting `lines`; it ends at the end of stderr.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Process {
    /// Every stderr line, once the process has exited: the collecting thread is joined (it ends
    /// when the process's stderr does), so no line is still on its way.
    fn stderr_to_the_end(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the stderr reader");
        }
        self.lines.lock().unwrap().join("\n")
    }

    fn logs(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
    fn find(&self, message: &str) -> Option<Value> {
        self.logs()
            .into_iter()
            .find(|l| l["fields"]["message"] == message)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(config_path: &std::path::Path) -> Process {
    spawn_with_hostname(config_path, Some("firefly-test-pod"))
}

/// `firefly run -c config_path` with `HOSTNAME` set to `hostname`, or not exported at all.
fn spawn_with_hostname(config_path: &std::path::Path, hostname: Option<&str>) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_firefly"));
    command.arg("run").arg("-c").arg(config_path);
    match hostname {
        Some(name) => command.env("HOSTNAME", name),
        None => command.env_remove("HOSTNAME"),
    };
    let mut child = command
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("firefly run starts");
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Process {
        child,
        lines,
        reader: Some(reader),
    }
}

/// The in-process environment provides kube-sim and the mock (with `opts`); its own controller
/// is stopped so that the `firefly run` process started here is the only one answering.
async fn env_and_process(opts: Options) -> (Env, Process) {
    let mut env = Env::start_with(opts.clone()).await;
    env.stop_controller().await;
    let key_file = env.dir.path().join("svc-acct.key");
    let mut config = config_yaml(env.mock.base_url(), env.mock.client_id(), &key_file, &opts);
    config = config.replace("level: info", "level: firefly=debug,info");
    config = config.replace(
        "controller:\n",
        &format!(
            "controller:\n  kubeconfigFile: {}\n",
            env.sim.kubeconfig_path().display()
        ),
    );
    let config_path = env.dir.path().join("config.yaml");
    std::fs::write(&config_path, config).unwrap();
    let process = spawn(&config_path);
    kube_sim::wait_for(PATIENCE, || async {
        process.find("admin endpoints listening").is_some()
    })
    .await
    .expect("admin endpoints listening");
    (env, process)
}

/// The audit line of the issuance of request `uid`, once the process has written it.
async fn audit_line(process: &Process, uid: &str) -> Value {
    kube_sim::wait_for(PATIENCE, || async {
        process
            .logs()
            .iter()
            .any(|l| l["target"] == "firefly::audit" && l["fields"]["request_uid"] == uid)
    })
    .await
    .expect("an audit line for the issued request");
    process
        .logs()
        .into_iter()
        .find(|l| l["target"] == "firefly::audit" && l["fields"]["request_uid"] == uid)
        .unwrap()
}

/// The leaf's serial number, as hex digits, read by openssl.
fn openssl_serial(leaf_pem: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), leaf_pem.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .trim_start_matches("serial=")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefly_run_issues_logs_the_request_and_exits_cleanly_on_sigterm() {
    let (env, process) = env_and_process(Options {
        leader_election: true,
        audit_log: (true, false),
        ..Options::default()
    })
    .await;
    let admin = process.find("admin endpoints listening").unwrap();
    let readiness = admin["fields"]["readiness"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    kube_sim::wait_for(PATIENCE, || async {
        http.get(format!("http://{readiness}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await
    .expect("/readyz turns 200 once the sub-CA is active");
    let live = http
        .get(format!("http://{readiness}/livez"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);

    let (name, obj) = env.issue_workload(WORKLOAD).await;
    let uid = obj["metadata"]["uid"].as_str().unwrap().to_owned();
    let Verdict { ok, output: out } =
        openssl_verify(&decoded(&obj, "certificate"), &decoded(&obj, "ca"), "any");
    assert!(ok, "{out}");

    // The issuance audit log (enabled in the TLSPC configuration): one line naming the leaf by
    // serial, its identity, the requester and the request, without the certificate itself.
    let audit = audit_line(&process, &uid).await;
    let fields = &audit["fields"];
    assert_eq!(fields["message"], "certificate issued");
    assert_eq!(fields["spiffe_id"], WORKLOAD);
    assert_eq!(fields["requester"], ISTIO_CSR_SA);
    assert!(
        fields["serial"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(&openssl_serial(&decoded(&obj, "certificate"))),
        "audit serial {} is the leaf's",
        fields["serial"]
    );
    assert!(
        fields["not_after"].as_str().is_some_and(|t| !t.is_empty()),
        "{audit}"
    );
    assert!(
        fields.get("certificate").is_none(),
        "no certificate data unless includeRawCertDataInAuditLog: {audit}"
    );

    let chain_addr = admin["fields"]["chain"].as_str().unwrap().to_owned();
    let chain: Value = http
        .get(format!("http://{chain_addr}/chain"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let certificates = chain["certificates"].as_array().expect("certificates");
    assert_eq!(
        certificates[0].as_str().unwrap().trim(),
        decoded(&obj, "ca").trim(),
        "/chain starts at the root"
    );
    let metrics_addr = admin["fields"]["metrics"].as_str().unwrap().to_owned();
    let metrics = http
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("firefly_signer_sign{success=\"true\",type=\"CertificateRequest\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("firefly_leader 1"), "{metrics}");
    // The bootstrap's TLSPC calls are counted: one login, one configuration fetch at least.
    assert!(
        metrics.contains(
            "firefly_tlspc_requests_total{code=\"2xx\",operation=\"service-account login\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "firefly_tlspc_requests_total{code=\"2xx\",operation=\"configuration fetch\"}"
        ),
        "{metrics}"
    );
    assert!(!metrics.contains(&name), "no object names in metric labels");

    kube_sim::wait_for(PATIENCE, || async {
        process
            .logs()
            .iter()
            .any(|l| l["span"]["uid"] == uid.as_str() && l["span"]["request_name"] == name.as_str())
    })
    .await
    .expect("a JSON log line carries the request's namespace, name and uid");
    let line = process
        .logs()
        .into_iter()
        .find(|l| l["span"]["uid"] == uid.as_str())
        .unwrap();
    assert_eq!(line["span"]["namespace"], NS);

    let holder = env.lease_holder().unwrap_or_default();
    assert!(
        holder.starts_with("firefly-test-pod_"),
        "lease held by the process: {holder}"
    );
    let pid = process.child.id() as i32;
    let rc = sigterm(pid);
    assert_eq!(rc, 0, "SIGTERM delivered");
    let mut process = process;
    let status = process.child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(
        env.lease_holder().as_deref(),
        Some(""),
        "lease released on SIGTERM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_carries_the_certificate_only_when_configured_to() {
    let (env, process) = env_and_process(Options {
        audit_log: (true, true),
        ..Options::default()
    })
    .await;
    let (_name, obj) = env.issue_workload(WORKLOAD).await;
    let uid = obj["metadata"]["uid"].as_str().unwrap();
    let audit = audit_line(&process, uid).await;
    let logged = audit["fields"]["certificate"]
        .as_str()
        .expect("includeRawCertDataInAuditLog adds the certificate");
    assert_eq!(
        logged.trim(),
        decoded(&obj, "certificate").trim(),
        "the audit line carries the chain as issued"
    );
    assert!(
        !process
            .lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("PRIVATE KEY")),
        "no key material in any log line"
    );
}

/// Events are published from a queue (`crate::events`): one still queued or in flight when
/// SIGTERM arrives is published before the process exits, not cancelled with the runtime.
/// Here every event create takes 2 s, and SIGTERM follows the issuance at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_in_flight_at_sigterm_is_published_before_the_process_exits() {
    let (env, process) = env_and_process(Options {
        leader_election: true,
        success_events: true,
        ..Options::default()
    })
    .await;
    env.ready_issuer(Some(NS), "firefly-istio", serde_json::json!({}))
        .await;
    // The issuer's Ready event first, so that only the issuance's event meets the slow API.
    kube_sim::wait_for(PATIENCE, || async {
        !env.events_for(NS, "firefly-istio").await.is_empty()
    })
    .await
    .expect("the issuer's Ready event");
    env.sim.faults().inject(
        kube_sim::FaultRule::latency(std::time::Duration::from_secs(2))
            .verb("create")
            .resource("events"),
    );
    let (name, _) = env.issue_through_ready_issuer(WORKLOAD).await;
    let rc = sigterm(process.child.id() as i32);
    assert_eq!(rc, 0, "SIGTERM delivered");
    let mut process = process;
    let status = process.child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    env.sim.faults().clear();
    let events = env.events_for(NS, &name).await;
    assert_eq!(
        events.len(),
        1,
        "the issuance's event was published before exit: {events:#?}"
    );
}

/// Sends SIGTERM with the `kill` command (no `unsafe` in tests).
fn sigterm(pid: i32) -> i32 {
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .map(|s| s.code().unwrap_or(1))
        .unwrap_or(1)
}

/// A listener standing in for TLSPC that records every connection (and the request line read
/// from it) without answering: `firefly run` then waits in its login, admin endpoints up.
struct FakeTlspc {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeTlspc {
    fn start() -> FakeTlspc {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sink = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let mut line = String::new();
                let _ = BufReader::new(&stream).read_line(&mut line);
                sink.lock().unwrap().push(line.trim().to_owned());
                // Keep the connection open: no answer, so no retry storm either.
                std::mem::forget(stream);
            }
        });
        FakeTlspc { port, requests }
    }

    /// Connects and sends `marker` as a request line, then waits until the listener has
    /// recorded it: it accepts connections in order, so every connection made before this one
    /// has been recorded too. Returns what was recorded before the marker.
    fn recorded_before(&self, marker: &str) -> Vec<String> {
        use std::io::Write as _;
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("the fake TLSPC");
        writeln!(stream, "{marker}").unwrap();
        for _ in 0..1200 {
            {
                let requests = self.requests.lock().unwrap();
                if let Some(at) = requests.iter().position(|r| r == marker) {
                    return requests[..at].to_vec();
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the fake TLSPC never recorded {marker:?}");
    }

    fn wait_for_request(&self) -> String {
        for _ in 0..600 {
            if let Some(first) = self.requests.lock().unwrap().first() {
                return first.clone();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!(
            "firefly run never connected to TLSPC at 127.0.0.1:{}",
            self.port
        );
    }
}

/// A config for `firefly run` against `url`, with a real key, a kubeconfig that is never
/// contacted before TLSPC, and admin endpoints on loopback ephemeral ports.
fn insecure_http_config(
    dir: &std::path::Path,
    url: &str,
    allow: Option<bool>,
) -> std::path::PathBuf {
    let key = support::repo_root().join("crates/test-support/keys/p256.pem");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:9\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n",
    )
    .unwrap();
    let allow = allow
        .map(|a| format!("    allowInsecureHTTP: {a}\n"))
        .unwrap_or_default();
    let config = format!(
        "bootstrap:\n  vaas:\n    url: {url}\n{allow}    auth:\n      clientID: 3f6f2b1e-8d4c-4a7e-9b5d-2c1e0f9a7d31\n      privateKeyFile: {}\nsigner:\n  lockMode: disabled\ncontroller:\n  kubeconfigFile: {}\n  leaderElection:\n    enabled: false\n  allowedRequesters: [\"*\"]\nadmin:\n  readinessAddress: 127.0.0.1:0\n  metricsAddress: 127.0.0.1:0\n  chainAddress: 127.0.0.1:0\n",
        key.display(),
        kubeconfig.display()
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

/// GET `/metrics` from the address the process logged, over a plain socket.
fn scrape_metrics(process: &Process) -> String {
    use std::io::{Read as _, Write as _};
    let mut addr = None;
    for _ in 0..600 {
        if let Some(line) = process.find("admin endpoints listening") {
            addr = line["fields"]["metrics"].as_str().map(str::to_owned);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let addr = addr.expect("the admin endpoints' addresses are logged");
    let mut stream = std::net::TcpStream::connect(&addr).expect("metrics endpoint");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// An `http://` URL whose host is not loopback is refused when the configuration is loaded:
/// `firefly run` exits non-zero naming both keys, and nothing connects. (`0.0.0.0` is not a
/// loopback address, yet on Linux a connection to it reaches a local listener, so the fake
/// TLSPC would see one.)
#[test]
fn firefly_run_refuses_plain_http_to_a_non_loopback_host_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let tlspc = FakeTlspc::start();
    let config = insecure_http_config(dir.path(), &format!("http://0.0.0.0:{}", tlspc.port), None);
    let mut process = spawn(&config);
    let mut status = None;
    for _ in 0..600 {
        if let Some(s) = process.child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = status.expect("firefly run exits");
    assert!(!status.success(), "{status:?}");
    let stderr = process.stderr_to_the_end();
    assert!(
        stderr.contains("bootstrap.vaas.url")
            && stderr.contains("bootstrap.vaas.allowInsecureHTTP"),
        "{stderr}"
    );
    // The process has exited: any connection it made was accepted before the test's own.
    let before = tlspc.recorded_before("BARRIER");
    assert!(
        before.is_empty(),
        "nothing may connect before the refusal: {before:?}"
    );
}

/// The same URL with `allowInsecureHTTP: true`, and a loopback URL without it (and without
/// `HOSTNAME` exported, as in an ordinary shell: the instance name falls back to the host name),
/// reach TLSPC's login; the start warns and `firefly_tlspc_insecure_http` is 1.
#[test]
fn firefly_run_uses_plain_http_for_loopback_or_with_the_flag_and_says_so() {
    for (host, allow, hostname) in [
        ("0.0.0.0", Some(true), Some("firefly-test-pod")),
        ("127.0.0.1", None, None),
        ("localhost", Some(false), Some("firefly-test-pod")),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let tlspc = FakeTlspc::start();
        let config =
            insecure_http_config(dir.path(), &format!("http://{host}:{}", tlspc.port), allow);
        let process = spawn_with_hostname(&config, hostname);
        let request = tlspc.wait_for_request();
        assert_eq!(
            request, "POST /v1/oauth/token/serviceaccount HTTP/1.1",
            "{host}: the first call is the login"
        );
        let metrics = scrape_metrics(&process);
        assert!(
            metrics.contains("\nfirefly_tlspc_insecure_http 1\n"),
            "{host}: {metrics}"
        );
        let warned = process.logs().into_iter().any(|l| {
            l["level"] == "WARN"
                && l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("plain HTTP"))
        });
        assert!(warned, "{host}: {:?}", process.lines.lock().unwrap());
    }
}
