//! `firefly tlspc-mock` as a process: first stdout line, state-dir files, restart reload, and the contract walked by Python (PyJWT + cryptography) and judged by openssl.

use support::verifiers;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/tlspc-mock/seed.yaml");
const SEED_CLIENT_ID: &str = "3f6f2b1e-8d4c-4a7e-9b5d-2c1e0f9a7d31";
/// Upper bound for the mock to print its URL; generous because the machine is shared.
const START_BOUND: Duration = Duration::from_secs(120);

/// A running `firefly tlspc-mock`; killed on drop.
struct MockProcess {
    child: Child,
    base_url: String,
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_mock(seed: &str, state_dir: &Path) -> MockProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_firefly"))
        .args([
            "tlspc-mock",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            seed,
            "--state-dir",
        ])
        .arg(state_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("firefly binary runs");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(START_BOUND)
        .expect("mock printed its base URL");
    MockProcess {
        child,
        base_url: line.trim_end_matches('\n').to_owned(),
    }
}

async fn get_text(url: &str) -> String {
    firefly::crypto::install_default_provider();
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn first_stdout_line_is_the_base_url_and_state_files_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (root, key) = {
        let mock = spawn_mock(SEED, &state);
        let re = regex::Regex::new(r"^http://127\.0\.0\.1:[1-9][0-9]*$").unwrap();
        assert!(re.is_match(&mock.base_url), "{:?}", mock.base_url);
        let root = std::fs::read_to_string(state.join("root.pem")).unwrap();
        assert!(root.starts_with("-----BEGIN CERTIFICATE-----"));
        let served = get_text(&format!("{}/mock/root.pem", mock.base_url)).await;
        assert_eq!(served, root, "state-dir root.pem is the served root");
        assert_eq!(
            std::fs::read_to_string(state.join("client-id")).unwrap(),
            format!("{SEED_CLIENT_ID}\n")
        );
        let key = std::fs::read_to_string(state.join("svc-acct.key")).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
        let mode = std::fs::metadata(state.join("svc-acct.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        (root, key)
    };
    let mock = spawn_mock(SEED, &state);
    assert_eq!(
        std::fs::read_to_string(state.join("root.pem")).unwrap(),
        root,
        "CA hierarchy reloaded"
    );
    assert_eq!(
        std::fs::read_to_string(state.join("svc-acct.key")).unwrap(),
        key,
        "account key reloaded"
    );
    let served = get_text(&format!("{}/mock/root.pem", mock.base_url)).await;
    assert_eq!(served, root);
}

#[test]
fn python_walks_token_configuration_request_poll_and_openssl_verifies_the_sub_ca_against_root_pem()
{
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let seed = dir.path().join("seed.yaml");
    // A few REQUESTED polls first, so the walk exercises polling.
    std::fs::write(
        &seed,
        format!(
            "{}\nfaults:\n  requestedPolls: 2\n",
            std::fs::read_to_string(SEED).unwrap()
        ),
    )
    .unwrap();
    let mock = spawn_mock(seed.to_str().unwrap(), &state);
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let script = support::script("tlspc_walk.py");
    let out = Command::new(verifiers::python())
        .arg(&script)
        .args(["--base-url", &mock.base_url])
        .arg("--client-id-file")
        .arg(state.join("client-id"))
        .arg("--key-file")
        .arg(state.join("svc-acct.key"))
        .arg("--out-dir")
        .arg(&out_dir)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "walk failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(summary["configuration"], "firefly-istio");
    assert_eq!(summary["policies"], serde_json::json!(["istio-mtls"]));
    assert_eq!(summary["polls"], 3, "two REQUESTED, then ISSUED");
    assert_eq!(
        summary["commonName"],
        "python-walk firefly-istio.mock.tlspc"
    );
    assert_eq!(summary["ca"], true);
    assert_eq!(summary["pathLength"], 0);
    assert_eq!(summary["basicConstraintsCritical"], true);
    assert_eq!(summary["keyCertSign"], true);
    assert_eq!(summary["keyUsageCritical"], true);
    assert_eq!(summary["issuerCertificates"], 3);

    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).expect("walk output");
    let chain = read(out_dir.join("chain.pem"));
    let (ok, text) = verifiers::openssl_verify_parts(
        dir.path(),
        &read(state.join("root.pem")),
        &[chain],
        &read(out_dir.join("subca.pem")),
    );
    assert!(ok, "openssl verify: {text}");
}

#[test]
fn bad_seed_exits_non_zero_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.yaml");
    std::fs::write(
        &seed,
        std::fs::read_to_string(SEED).unwrap().replace(
            "keyAlgorithm: EC_P256\n\npolicies",
            "keyAlgorithm: EC_P999\n\npolicies",
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_firefly"))
        .args(["tlspc-mock", "--listen", "127.0.0.1:0", "--seed"])
        .arg(&seed)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no URL printed for a bad seed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("subCaProviders[0]") && err.contains("EC_P999"),
        "{err}"
    );
}

/// Kubernetes stops a pod with SIGTERM, which the mock (its container's PID 1, which gets no
/// default handler) ignored: every restart of the mock's pod waited out the grace period and was
/// killed. It now stops on SIGTERM, successfully.
#[test]
fn sigterm_stops_the_mock_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut mock = spawn_mock(SEED, dir.path());
    let status = Command::new("kill")
        .args(["-TERM", &mock.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = mock.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the mock did not stop within 20 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}
