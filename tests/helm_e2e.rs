//! The chart and the binary agree end to end: the manifests the chart renders (Helm v4 SDK) are
//! applied to kube-sim with kubectl, `firefly run` starts on the config.yaml kubectl reads back
//! from the chart's ConfigMap, the mock TLSPC is set up the way deploy/tlspc-mock/README.md says
//! (openssl key, public key in the seed, private key to the controller, root for the mesh), and an
//! istio-csr-shaped CertificateRequest is issued and verified by openssl.

use support::verifiers;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kube_sim::{KubeSim, SimOptions};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const ISTIO_CSR: &str = "system:serviceaccount:istio-system:cert-manager-istio-csr";
const CONTROLLER: &str = "system:serviceaccount:venafi:firefly";
const CONTROLLER_TOKEN: &str = "firefly-controller-token";
const ISTIO_CSR_TOKEN: &str = "istio-csr-token";
const SPIFFE_ID: &str = "spiffe://cluster.local/ns/sandbox/sa/httpbin";

use support::repo_root;

/// Runs a command to completion; fails the test with its output when it fails.
async fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

struct Kubectl<'a> {
    sim: &'a KubeSim,
    cache: tempfile::TempDir,
}

impl Kubectl<'_> {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self.sim.kubeconfig_path())
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .env_remove("KUBECONFIG");
        cmd
    }

    async fn ok(&self, args: &[&str]) -> String {
        run_ok(&mut self.cmd(args), &format!("kubectl {}", args.join(" "))).await
    }
}

/// A child process killed when the test ends, whatever the outcome.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// The seed's flow, step 1 and 2: an RSA key made with openssl, its public key in a copy of the
/// shipped mock seed. Returns (seed path, client ID, policy name).
async fn seed_with_openssl_key(dir: &Path) -> (PathBuf, String, String) {
    let key = dir.join("key.pem");
    let public = dir.join("public.pem");
    run_ok(
        Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&key)
            .arg("2048"),
        "openssl genrsa",
    )
    .await;
    run_ok(
        Command::new("openssl")
            .args(["rsa", "-in"])
            .arg(&key)
            .args(["-outform", "PEM", "-pubout", "-out"])
            .arg(&public),
        "openssl rsa -pubout",
    )
    .await;
    let shipped = std::fs::read_to_string(repo_root().join("deploy/tlspc-mock/seed.yaml"))
        .expect("read deploy/tlspc-mock/seed.yaml");
    let mut seed: serde_json::Value =
        serde_saphyr::from_str(&shipped).expect("the shipped seed parses");
    let account = &mut seed["serviceAccounts"][0];
    let client_id = account["clientId"]
        .as_str()
        .expect("the shipped seed's first service account has a clientId")
        .to_owned();
    account["publicKey"] = std::fs::read_to_string(&public)
        .expect("read public.pem")
        .into();
    let policy = seed["policies"][0]["name"]
        .as_str()
        .expect("the shipped seed has a named policy")
        .to_owned();
    let path = dir.join("seed.yaml");
    std::fs::write(
        &path,
        serde_saphyr::to_string(&seed).expect("serialize seed"),
    )
    .expect("write seed");
    (path, client_id, policy)
}

/// Starts `firefly tlspc-mock` and returns it with its base URL (its first stdout line).
async fn start_mock(seed: &Path, state: &Path) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_firefly"))
        .args(["tlspc-mock", "--listen", "127.0.0.1:0", "--seed"])
        .arg(seed)
        .arg("--state-dir")
        .arg(state)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start firefly tlspc-mock");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the mock prints its base URL within a minute")
        .expect("read the mock's stdout")
        .expect("the mock printed its base URL before exiting");
    // Keep draining stdout so the mock never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (Running(child), url.trim().to_owned())
}

/// Renders the chart with the Helm v4 SDK for the mock guide's values plus `overrides`.
async fn render_manifests(out: &Path, overrides: &Value) {
    run_ok(
        Command::new(verifiers::python())
            .arg(repo_root().join("tests/helm/chart_checks.py"))
            .arg("render_manifests")
            .arg("deploy/tlspc-mock")
            .arg(out)
            .arg(overrides.to_string())
            .current_dir(repo_root()),
        "chart_checks.py render_manifests",
    )
    .await;
}

/// The CertificateRequest istio-csr would create for httpbin's sidecar (contract §5), with a CSR
/// made by openssl: empty subject, one critical URI SAN.
async fn istio_csr_request(dir: &Path, name: &str, policy: &str) -> String {
    let key = dir.join(format!("{name}-key.pem"));
    let csr = dir.join(format!("{name}.csr"));
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .arg("-keyout")
            .arg(&key)
            .args(["-subj", "/O=", "-addext"])
            .arg(format!("subjectAltName=critical,URI:{SPIFFE_ID}"))
            .arg("-out")
            .arg(&csr),
        "openssl req",
    )
    .await;
    use base64::Engine as _;
    let request = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(&csr).expect("read the CSR"));
    format!(
        "apiVersion: cert-manager.io/v1
kind: CertificateRequest
metadata:
  name: {name}
  namespace: istio-system
  annotations:
    istio.cert-manager.io/identities: {SPIFFE_ID}
    firefly.venafi.com/policy-name: {policy}
spec:
  duration: 1h0m0s
  issuerRef: {{group: firefly.venafi.com, kind: Issuer, name: firefly-istio}}
  request: {request}
  usages: [client auth, server auth]
"
    )
}

/// A TLS kube-sim where bearer tokens identify the controller and istio-csr (the sim sets
/// spec.username from the creating identity, like cert-manager's webhook), with what exists before
/// the chart: cert-manager's CertificateRequest CRD and the namespaces venafi and istio-system.
async fn cluster_before_the_chart(dir: &Path) -> KubeSim {
    let mut opts = SimOptions::default();
    opts.tls = true;
    opts.tokens = vec![
        (CONTROLLER_TOKEN.to_owned(), CONTROLLER.to_owned()),
        (ISTIO_CSR_TOKEN.to_owned(), ISTIO_CSR.to_owned()),
    ];
    let sim = KubeSim::start(opts).await.expect("start kube-sim");
    let kubectl = Kubectl {
        sim: &sim,
        cache: tempfile::tempdir().expect("tempdir"),
    };
    // cert-manager's part: its CertificateRequest CRD as cert-manager v1.21.1 publishes it.
    let crd_file = repo_root().join("tests/upstream-crds/certificaterequests.cert-manager.io.yaml");
    kubectl
        .ok(&["apply", "-f", crd_file.to_str().expect("utf-8 path")])
        .await;
    // Namespaces by `apply` (JSON): `kubectl create namespace` sends protobuf, which kube-sim
    // does not speak.
    let namespaces = dir.join("namespaces.yaml");
    std::fs::write(
        &namespaces,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: venafi}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n",
    )
    .expect("write namespaces");
    kubectl
        .ok(&["apply", "-f", namespaces.to_str().expect("utf-8 path")])
        .await;
    drop(kubectl);
    sim
}

/// Renders the chart for the mock guide's values plus `overrides`, applies every manifest with
/// kubectl (which validates them against the sim's OpenAPI), and returns the config.yaml kubectl
/// reads back from the chart's ConfigMap.
async fn install_chart(kubectl: &Kubectl<'_>, dir: &Path, overrides: &Value) -> String {
    let manifests = dir.join("manifests.yaml");
    render_manifests(&manifests, overrides).await;
    let applied = kubectl
        .ok(&["apply", "-f", manifests.to_str().expect("utf-8 path")])
        .await;
    for object in [
        "customresourcedefinition.apiextensions.k8s.io/issuers.firefly.venafi.com",
        "customresourcedefinition.apiextensions.k8s.io/clusterissuers.firefly.venafi.com",
        "serviceaccount/firefly",
        "configmap/firefly-config",
        "deployment.apps/firefly",
        "clusterrole.rbac.authorization.k8s.io/firefly-controller",
        "clusterrole.rbac.authorization.k8s.io/firefly-approver",
        "clusterrolebinding.rbac.authorization.k8s.io/firefly-approver",
        "role.rbac.authorization.k8s.io/firefly-leader-election",
        "poddisruptionbudget.policy/firefly",
        "service/firefly-metrics",
        "networkpolicy.networking.k8s.io/firefly",
    ] {
        assert!(
            applied.contains(object),
            "kubectl apply did not create {object}:\n{applied}"
        );
    }
    kubectl
        .ok(&[
            "wait",
            "--for=condition=Established",
            "crd/issuers.firefly.venafi.com",
            "--timeout=60s",
        ])
        .await;
    kubectl
        .ok(&[
            "get",
            "configmap",
            "firefly-config",
            "-n",
            "venafi",
            "-o",
            "jsonpath={.data.config\\.yaml}",
        ])
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_manifests_apply_to_kube_sim_and_the_config_read_back_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = cluster_before_the_chart(dir.path()).await;
    let kubectl = Kubectl {
        sim: &sim,
        cache: tempfile::tempdir().expect("tempdir"),
    };
    let overrides = serde_json::json!({
        "deployment": {
            "venafiClientID": "3f6f2b1e-8d4c-4a7e-9b5d-2c1e0f9a7d31",
            "venafiURL": "http://tlspc-mock.venafi.svc.cluster.local:8080",
        },
        // The in-cluster mock over plain HTTP, as deploy/tlspc-mock sets it.
        "config": {"bootstrap": {"vaas": {"allowInsecureHTTP": true}}},
    });
    let config_yaml = install_chart(&kubectl, dir.path(), &overrides).await;
    let config = firefly::config::Config::from_yaml_str(&config_yaml).unwrap_or_else(|e| {
        panic!("the binary refuses the ConfigMap's config.yaml: {e}\n{config_yaml}")
    });
    assert!(config.bootstrap.vaas.allow_insecure_http);
    assert_eq!(config.controller.leader_election_namespace, "venafi");
    assert_eq!(config.controller.allowed_requesters, [ISTIO_CSR]);

    // What the cluster now holds, read back through kubectl.
    let approver: Value = serde_json::from_str(
        &kubectl
            .ok(&["get", "clusterrole", "firefly-approver", "-o", "json"])
            .await,
    )
    .expect("kubectl -o json prints JSON");
    assert_eq!(
        approver["rules"][0]["resourceNames"],
        serde_json::json!([
            "issuers.firefly.venafi.com/*",
            "clusterissuers.firefly.venafi.com/*"
        ])
    );
    let deployment: Value = serde_json::from_str(
        &kubectl
            .ok(&["get", "deployment", "firefly", "-n", "venafi", "-o", "json"])
            .await,
    )
    .expect("kubectl -o json prints JSON");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    // deploy/tlspc-mock keeps the default lockMode (keyPages): no capability is added.
    assert_eq!(
        container["securityContext"]["capabilities"],
        serde_json::json!({"drop": ["ALL"]})
    );
    assert_eq!(
        container["args"],
        serde_json::json!(["run", "-c", "/etc/firefly/config.yaml"])
    );
    // The guide's Issuer is accepted by the chart's CRD.
    kubectl
        .ok(&[
            "apply",
            "-f",
            repo_root()
                .join("deploy/istio-csr/issuer.yaml")
                .to_str()
                .expect("utf-8"),
        ])
        .await;
    kubectl
        .ok(&[
            "get",
            "issuers.firefly.venafi.com",
            "firefly-istio",
            "-n",
            "istio-system",
        ])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_sdk_installs_upgrades_and_uninstalls_the_chart_on_kube_sim() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = cluster_before_the_chart(dir.path()).await;
    let output = Command::new(verifiers::python())
        .arg(repo_root().join("tests/helm/chart_checks.py"))
        .arg("helm_install_upgrade_uninstall")
        .arg(sim.kubeconfig_path())
        .current_dir(repo_root())
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("start chart_checks.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success() && stdout.contains("ok helm_install_upgrade_uninstall"),
        "helm install/upgrade/uninstall against kube-sim failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rendered_config_runs_the_controller_and_a_request_is_issued() {
    firefly::crypto::install_default_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = cluster_before_the_chart(dir.path()).await;
    let kubectl = Kubectl {
        sim: &sim,
        cache: tempfile::tempdir().expect("tempdir"),
    };

    // The mock TLSPC, following the guide: openssl key, public key in the seed.
    let (seed, client_id, policy) = seed_with_openssl_key(dir.path()).await;
    let state = dir.path().join("mock-state");
    let (_mock, mock_url) = start_mock(&seed, &state).await;

    // The credentials Secret's content, where the chart mounts it (credentialsMountPath).
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).expect("mkdir credentials");
    std::fs::copy(dir.path().join("key.pem"), credentials.join("svc-acct.key")).expect("copy key");

    // Only values change, never the rendered files: the mock's URL, the key's directory, and
    // loopback admin ports so tests run side by side.
    let (readiness, metrics, chain) = (free_port(), free_port(), free_port());
    let overrides = serde_json::json!({
        "deployment": {
            "venafiClientID": client_id,
            "venafiURL": mock_url,
            "credentialsMountPath": credentials.to_str().expect("utf-8 path"),
        },
        "config": {
            "adminBindAddress": "127.0.0.1",
            "ports": {"readiness": readiness, "metrics": metrics, "chain": chain},
        },
    });
    // Render and apply the chart; the exact config.yaml the cluster holds is read back.
    let config_yaml = install_chart(&kubectl, dir.path(), &overrides).await;
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, &config_yaml).expect("write config.yaml");
    let parsed = firefly::config::Config::from_yaml_str(&config_yaml)
        .expect("the binary loads the chart's config");
    assert_eq!(parsed.bootstrap.vaas.url, mock_url);

    let controller = Command::new(env!("CARGO_BIN_EXE_firefly"))
        .args(["run", "-c"])
        .arg(&config_path)
        .env("KUBECONFIG", sim.kubeconfig_path())
        .env("HOSTNAME", "firefly-0")
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start firefly run");
    let mut controller = Running(controller);
    wait_until_live(&mut controller, readiness).await;

    // The Issuer from the istio-csr guide, then the request istio-csr would make, as istio-csr.
    kubectl
        .ok(&[
            "apply",
            "-f",
            repo_root()
                .join("deploy/istio-csr/issuer.yaml")
                .to_str()
                .expect("utf-8"),
        ])
        .await;
    kubectl
        .ok(&[
            "wait",
            "-n",
            "istio-system",
            "--for=condition=Ready",
            "issuers.firefly.venafi.com/firefly-istio",
            "--timeout=90s",
        ])
        .await;
    let request = dir.path().join("request.yaml");
    std::fs::write(
        &request,
        istio_csr_request(dir.path(), "istio-csr-httpbin", &policy).await,
    )
    .expect("write request");
    kubectl
        .ok(&[
            "--token",
            ISTIO_CSR_TOKEN,
            "create",
            "-f",
            request.to_str().expect("utf-8"),
        ])
        .await;
    approve(&kubectl, "istio-csr-httpbin").await;
    kubectl
        .ok(&[
            "wait",
            "-n",
            "istio-system",
            "--for=condition=Ready",
            "certificaterequest/istio-csr-httpbin",
            "--timeout=90s",
        ])
        .await;

    // The answer, judged by openssl against the mock's root (what istio-csr's root-cert holds).
    let status: Value = serde_json::from_str(
        &kubectl
            .ok(&[
                "get",
                "certificaterequest",
                "istio-csr-httpbin",
                "-n",
                "istio-system",
                "-o",
                "json",
            ])
            .await,
    )
    .expect("kubectl -o json prints JSON");
    use base64::Engine as _;
    let decode = |field: &str| {
        let b64 = status["status"][field]
            .as_str()
            .unwrap_or_else(|| panic!("status.{field} is set: {status}"));
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_else(|e| panic!("status.{field} is base64: {e}"))
    };
    let chain = dir.path().join("chain.pem");
    std::fs::write(&chain, decode("certificate")).expect("write chain");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, decode("ca")).expect("write ca");
    let root = state.join("root.pem");
    assert_eq!(
        std::fs::read_to_string(&ca).expect("read ca").trim(),
        std::fs::read_to_string(&root)
            .expect("the mock writes root.pem to its state dir")
            .trim(),
        "status.ca must be the mock's root (the mesh's trust anchor)"
    );
    let verified = run_ok(
        Command::new("openssl")
            .args(["verify", "-x509_strict", "-CAfile"])
            .arg(&root)
            .arg("-untrusted")
            .arg(&chain)
            .arg(&chain),
        "openssl verify",
    )
    .await;
    assert!(verified.contains(": OK"), "openssl verify: {verified}");
    let text = run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(&chain),
        "openssl x509",
    )
    .await;
    assert!(
        text.contains(&format!("URI:{SPIFFE_ID}")),
        "the leaf's SAN: {text}"
    );

    // The chart's allow-list reaches the controller: the same request from another identity (the
    // controller's own ServiceAccount) is refused, never signed.
    let intruder = dir.path().join("intruder.yaml");
    std::fs::write(
        &intruder,
        istio_csr_request(dir.path(), "not-from-istio-csr", &policy).await,
    )
    .expect("write request");
    kubectl
        .ok(&[
            "--token",
            CONTROLLER_TOKEN,
            "create",
            "-f",
            intruder.to_str().expect("utf-8"),
        ])
        .await;
    approve(&kubectl, "not-from-istio-csr").await;
    let refused = wait_for_ready_reason(&kubectl, "not-from-istio-csr").await;
    assert_eq!(
        refused["reason"], "Failed",
        "a requester outside config.allowedRequesters: {refused}"
    );
    let why = refused["message"].as_str().unwrap_or_default();
    assert!(
        why.contains(CONTROLLER) && why.contains("allowedRequesters"),
        "the refusal must name the requester and the allow-list: {why}"
    );
    let leaked = kubectl
        .ok(&[
            "get",
            "certificaterequest",
            "not-from-istio-csr",
            "-n",
            "istio-system",
            "-o",
            "jsonpath={.status.certificate}",
        ])
        .await;
    assert!(
        leaked.is_empty(),
        "a refused request must carry no certificate"
    );

    // Still serving on the admin port the chart rendered.
    let livez = reqwest::get(format!("http://127.0.0.1:{readiness}/livez"))
        .await
        .expect("GET /livez");
    assert!(livez.status().is_success(), "/livez: {}", livez.status());
}

/// Approves a request the way cert-manager's approver does (the chart grants it the signers).
async fn approve(kubectl: &Kubectl<'_>, name: &str) {
    let approved = r#"{"status":{"conditions":[{"type":"Approved","status":"True","reason":"cert-manager.io","message":"approved by the test as cert-manager","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
    kubectl
        .ok(&[
            "patch",
            "certificaterequest",
            name,
            "-n",
            "istio-system",
            "--subresource=status",
            "--type=merge",
            "-p",
            approved,
        ])
        .await;
}

/// Polls (bounded) until the request has a Ready condition; returns it.
async fn wait_for_ready_reason(kubectl: &Kubectl<'_>, name: &str) -> Value {
    for _ in 0..300 {
        let request: Value = serde_json::from_str(
            &kubectl
                .ok(&[
                    "get",
                    "certificaterequest",
                    name,
                    "-n",
                    "istio-system",
                    "-o",
                    "json",
                ])
                .await,
        )
        .expect("kubectl -o json prints JSON");
        if let Some(ready) = request["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        {
            return ready.clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("certificaterequest {name} got no Ready condition within a minute");
}

/// Waits (bounded) until the controller answers `/livez` on the chart's readiness port; fails at
/// once, with its exit status, if the process ends first.
async fn wait_until_live(controller: &mut Running, port: u16) {
    let url = format!("http://127.0.0.1:{port}/livez");
    for _ in 0..600 {
        if let Some(status) = controller.0.try_wait().expect("poll firefly run") {
            panic!(
                "`firefly run` on the chart's config.yaml exited before serving /livez: {status}"
            );
        }
        if let Ok(resp) = reqwest::get(&url).await
            && resp.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`firefly run` did not answer {url} within a minute");
}
