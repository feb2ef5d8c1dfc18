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

const CHART_LIKE: &str = "apiVersion: v1
kind: Namespace
metadata: {name: venafi}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: firefly, namespace: venafi}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: firefly}
rules:
- apiGroups: [cert-manager.io]
  resources: [certificaterequests, certificaterequests/status]
  verbs: [get, list, watch, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: firefly}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: firefly}
subjects: [{kind: ServiceAccount, name: firefly, namespace: venafi}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: firefly-leases, namespace: venafi}
rules: [{apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, create, update]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: firefly-leases, namespace: venafi}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: firefly-leases}
subjects: [{kind: ServiceAccount, name: firefly, namespace: venafi}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: firefly, namespace: venafi}
spec:
  replicas: 2
  selector: {matchLabels: {app: firefly}}
  template:
    metadata: {labels: {app: firefly}}
    spec:
      serviceAccountName: firefly
      containers: [{name: firefly, image: example.invalid/firefly:0.1.0, args: [run, -c, /etc/firefly/config.yaml]}]
---
apiVersion: v1
kind: Service
metadata: {name: firefly-metrics, namespace: venafi}
spec:
  selector: {app: firefly}
  ports: [{name: metrics, port: 9402, targetPort: 9402}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: firefly, namespace: venafi}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: firefly}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: firefly, namespace: venafi}
spec:
  podSelector: {matchLabels: {app: firefly}}
  policyTypes: [Ingress]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_the_kinds_a_helm_chart_renders() {
    let (sim, dir) = setup().await;
    let k = Kubectl {
        sim: &sim,
        cache: tempfile::tempdir().unwrap(),
    };
    let manifest = write(dir.path(), "chart.yaml", CHART_LIKE);
    let out = k.ok(&["apply", "-f", &manifest]).await;
    assert_eq!(
        out.lines().filter(|l| l.ends_with(" created")).count(),
        10,
        "{out}"
    );
    let got = k
        .json(&[
            "get",
            "deployments,services,poddisruptionbudgets,networkpolicies,roles,rolebindings",
            "-n",
            "venafi",
            "-o",
            "json",
        ])
        .await;
    let kinds: Vec<&str> = got["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "Role",
            "RoleBinding"
        ]
    );
    // Re-applying changes nothing: kubectl may still send a patch (strategic-merge directives for
    // some kinds), but a no-op write must not move any resourceVersion.
    let rv_before = sim.resource_version();
    let again = k.ok(&["apply", "-f", &manifest]).await;
    assert!(
        again
            .lines()
            .all(|l| l.ends_with(" unchanged") || l.ends_with(" configured")),
        "{again}"
    );
    assert_eq!(sim.resource_version(), rv_before, "{again}");
    let deploy = sim
        .object("apps", "deployments", "venafi", "firefly")
        .unwrap();
    assert_eq!(deploy["spec"]["replicas"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_works_over_tls_with_a_bearer_token() {
    require_kubectl();
    let mut opts = SimOptions::default();
    opts.tls = true;
    opts.tokens = vec![("t0k3n".into(), "admin".into())];
    let sim = KubeSim::start(opts).await.unwrap();
    let k = Kubectl {
        sim: &sim,
        cache: tempfile::tempdir().unwrap(),
    };
    let ns = k.json(&["get", "namespace", "default", "-o", "json"]).await;
    assert_eq!(ns["status"]["phase"], "Active");
}
