//! kube-sim judged by the real kubectl (≥ 1.27, strict client validation on, never `--validate=false`).

mod common;

use common::*;
use kube_sim::{KubeSim, SimOptions};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

/// Fail clearly when kubectl is missing or too old (Debian's kubernetes-client is 1.20).
fn require_kubectl() {
    let out = std::process::Command::new("kubectl")
        .args(["version", "--client", "-o", "json"])
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => panic!(
            "kubectl version failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            panic!("kubectl (>= 1.27) is required on PATH for these tests and was not found: {e}")
        }
    };
    let v: Value =
        serde_json::from_slice(&out.stdout).expect("kubectl version -o json prints JSON");
    let minor: u32 = v["clientVersion"]["minor"]
        .as_str()
        .unwrap_or("0")
        .trim_end_matches('+')
        .parse()
        .unwrap_or(0);
    assert!(
        v["clientVersion"]["major"] == "1" && minor >= 27,
        "kubectl >= 1.27 is required (found {}); Debian's kubernetes-client package is too old",
        v["clientVersion"]["gitVersion"]
    );
}

struct Kubectl<'a> {
    sim: &'a KubeSim,
    cache: tempfile::TempDir,
}

impl Kubectl<'_> {
    async fn run(&self, args: &[&str]) -> Output {
        tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.sim.kubeconfig_path())
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .await
            .expect("kubectl runs")
    }
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    async fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args).await).expect("kubectl -o json prints JSON")
    }
}

async fn setup() -> (KubeSim, tempfile::TempDir) {
    require_kubectl();
    let sim = KubeSim::start(SimOptions::default()).await.unwrap();
    (sim, tempfile::tempdir().unwrap())
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.to_string_lossy().into_owned()
}

const REQUEST_YAML: &str = "apiVersion: cert-manager.io/v1
kind: CertificateRequest
metadata:
  name: r1
  namespace: default
spec:
  request: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K
  issuerRef: {name: firefly, kind: Issuer, group: firefly.venafi.com}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_the_crds_then_creates_gets_patches_waits_and_deletes() {
    let (sim, dir) = setup().await;
    let k = Kubectl {
        sim: &sim,
        cache: tempfile::tempdir().unwrap(),
    };
    let crds = write(dir.path(), "crds.yaml", &project_crds());
    let out = k.ok(&["apply", "-f", &crds]).await;
    assert!(
        out.contains("certificaterequests.cert-manager.io created"),
        "{out}"
    );
    let req = write(dir.path(), "req.yaml", REQUEST_YAML);
    k.ok(&["create", "-f", &req]).await;
    let one = k
        .json(&["get", "certificaterequest", "r1", "-o", "json"])
        .await;
    assert_eq!(one["spec"]["issuerRef"]["name"], "firefly");
    assert_eq!(one["metadata"]["generation"], 1);
    let list = k.json(&["get", "cr", "-o", "json"]).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // The printer columns of the project's CRD are served as a Table.
    let table = k.ok(&["get", "certificaterequests"]).await;
    assert!(table.lines().next().unwrap().contains("READY"), "{table}");
    let wait = tokio::spawn({
        let kubeconfig = sim.kubeconfig_path().to_path_buf();
        let cache = tempfile::tempdir().unwrap();
        async move {
            let out = tokio::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .arg("--cache-dir")
                .arg(cache.path())
                .args([
                    "wait",
                    "--for=condition=Ready",
                    "certificaterequest/r1",
                    "--timeout=60s",
                ])
                .output()
                .await
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr),
            )
        }
    });
    let patch = r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Issued","message":"ok","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
    k.ok(&[
        "patch",
        "certificaterequest",
        "r1",
        "--subresource=status",
        "--type=merge",
        "-p",
        patch,
    ])
    .await;
    let (ok, out) = wait.await.unwrap();
    assert!(ok, "kubectl wait failed: {out}");
    assert!(out.contains("condition met"), "{out}");
    let after = sim
        .object("cert-manager.io", "certificaterequests", "default", "r1")
        .unwrap();
    assert_eq!(kube_sim::condition_status(&after, "Ready"), Some("True"));
    assert_eq!(
        after["metadata"]["generation"], 1,
        "a status patch leaves generation alone"
    );
    k.ok(&["delete", "certificaterequest", "r1"]).await;
    assert!(
        sim.object("cert-manager.io", "certificaterequests", "default", "r1")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_strict_validation_rejects_unknown_and_malformed_fields() {
    let (sim, dir) = setup().await;
    sim.install_crds_yaml(&project_crds()).await.unwrap();
    let k = Kubectl {
        sim: &sim,
        cache: tempfile::tempdir().unwrap(),
    };
    let unknown = write(
        dir.path(),
        "unknown.yaml",
        &REQUEST_YAML.replace("  request:", "  bogus: 1\n  request:"),
    );
    let out = k.run(&["create", "-f", &unknown]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field \"spec.bogus\""), "{err}");
    let malformed = write(
        dir.path(),
        "malformed.yaml",
        &REQUEST_YAML.replace(
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K",
            "\"not base64!\"",
        ),
    );
    let out = k.run(&["create", "-f", &malformed]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is invalid") && err.contains("spec.request"),
        "{err}"
    );
    assert_eq!(
        sim.object_count("cert-manager.io", "certificaterequests"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_twice_is_idempotent_and_updates_built_ins() {
    let (sim, dir) = setup().await;
    sim.install_crds_yaml(&project_crds()).await.unwrap();
    let k = Kubectl {
        sim: &sim,
        cache: tempfile::tempdir().unwrap(),
    };
    let req = write(dir.path(), "req.yaml", REQUEST_YAML);
    assert!(k.ok(&["apply", "-f", &req]).await.contains("created"));
    assert!(k.ok(&["apply", "-f", &req]).await.contains("unchanged"));
    let cm = write(
        dir.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1, namespace: default}\ndata: {k: v}\n",
    );
    k.ok(&["apply", "-f", &cm]).await;
    let cm2 = write(
        dir.path(),
        "cm2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1, namespace: default}\ndata: {k: changed, extra: added}\n",
    );
    assert!(k.ok(&["apply", "-f", &cm2]).await.contains("configured"));
    let got = k.json(&["get", "configmap", "c1", "-o", "json"]).await;
    assert_eq!(
        got["data"],
        serde_json::json!({"k": "changed", "extra": "added"})
    );
    assert!(
        k.ok(&["apply", "--server-side", "-f", &cm2])
            .await
            .contains("serverside-applied")
    );
    let ns = k.json(&["get", "namespaces", "-o", "json"]).await;
    let names: Vec<&str> = ns["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str())
        .collect();
    assert!(
        names.contains(&"default") && names.contains(&"kube-system"),
        "{names:?}"
    );
}
