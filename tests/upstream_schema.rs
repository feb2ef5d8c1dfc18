//! What the controller writes is judged by upstream's schemas, never by the project's own copies:
//! cert-manager's published CertificateRequest CRD (transcribed in tests/upstream-crds/), our own
//! Issuer CRDs for issuer status, and Kubernetes' published OpenAPI (through the PyPI package
//! kubernetes-validate) for Leases and Events. The controller runs against kube-sim holding
//! cert-manager's CRD, which refuses undeclared fields in apply patches as kube-apiserver does.

use std::collections::BTreeSet;
use std::process::Command;

use kube::CustomResourceExt;
use serde_json::{Value, json};
use support::controller::*;
use support::{schema_judge, verifiers};

const CERT_MANAGER_CRD: &str = kube_sim::CERT_MANAGER_CERTIFICATE_REQUEST_CRD;
const CR_CRD_NAME: &str = "certificaterequests.cert-manager.io";

fn upstream_certificate_request_schema() -> Value {
    schema_judge::crd_schema(CERT_MANAGER_CRD, CR_CRD_NAME, "v1")
}

/// Every property path of `mirror` (a schema) that `upstream` does not declare with the same
/// type and format.
fn mirror_fields_missing_upstream(mirror: &Value, upstream: &Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let empty = serde_json::Map::new();
    let props = mirror
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (k, m) in props {
        let here = format!("{path}.{k}");
        let Some(u) = upstream.pointer(&format!("/properties/{k}")) else {
            out.push(format!("{here}: not declared by cert-manager"));
            continue;
        };
        for facet in ["type", "format"] {
            if m.get(facet) != u.get(facet) {
                out.push(format!(
                    "{here}: {facet} {:?} here, {:?} in cert-manager's CRD",
                    m.get(facet),
                    u.get(facet)
                ));
            }
        }
        out.extend(mirror_fields_missing_upstream(m, u, &here));
        if let (Some(mi), Some(ui)) = (m.get("items"), u.get("items")) {
            out.extend(mirror_fields_missing_upstream(mi, ui, &format!("{here}[]")));
        }
    }
    out
}

#[test]
fn the_rust_mirror_declares_no_field_that_cert_managers_crd_lacks() {
    let crd = serde_json::to_value(firefly::crd::CertificateRequest::crd()).unwrap();
    let mirror = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let upstream = upstream_certificate_request_schema();
    let missing = mirror_fields_missing_upstream(mirror, &upstream, "");
    assert!(
        missing.is_empty(),
        "the Rust mirror of CertificateRequest differs from cert-manager's CRD:\n{}",
        missing.join("\n")
    );

    // The comparison can fail: the field this project once wrote is caught.
    let mut doctored = mirror.clone();
    doctored["properties"]["status"]["properties"]["conditions"]["items"]["properties"]["observedGeneration"] =
        json!({"type": "integer", "format": "int64"});
    let missing = mirror_fields_missing_upstream(&doctored, &upstream, "");
    assert_eq!(
        missing,
        [".status.conditions[].observedGeneration: not declared by cert-manager"]
    );
}

#[test]
fn the_judge_refuses_what_kube_apiserver_refuses() {
    let schema = upstream_certificate_request_schema();
    let good = json!({
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": "r", "namespace": "istio-system"},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Issued",
            "message": "m", "lastTransitionTime": "2026-12-04T10:00:00Z"}],
            "certificate": "Q0VSVA==", "ca": "Q0E=", "failureTime": "2026-12-04T10:00:00Z"},
    });
    assert_eq!(
        schema_judge::violations(&schema, &good),
        Vec::<String>::new()
    );
    let mut bad = good.clone();
    bad["status"]["conditions"][0]["observedGeneration"] = json!(1);
    bad["status"]["certificate"] = json!("not base64!");
    bad["status"]["conditions"][0]["status"] = json!("Yes");
    bad["metadata"]["bogus"] = json!(true);
    assert_eq!(
        schema_judge::violations(&schema, &bad),
        [
            ".metadata.bogus: not a field of ObjectMeta",
            ".status.certificate: not base64 (format byte)",
            ".status.conditions[0].observedGeneration: field not declared in schema",
            ".status.conditions[0].status: \"Yes\" is not one of [String(\"True\"), String(\"False\"), String(\"Unknown\")]",
        ]
    );
}

/// A write body as recorded by kube-sim, parsed.
fn body(w: &kube_sim::WriteRecord) -> Value {
    serde_json::from_slice(&w.body).unwrap_or_else(|e| {
        panic!(
            "{} {}/{:?} body is not JSON ({e}): {}",
            w.verb,
            w.resource,
            w.subresource,
            String::from_utf8_lossy(&w.body)
        )
    })
}

/// Judges built-in objects with kubernetes-validate (Kubernetes' published OpenAPI, strict: no
/// undeclared field) for release 1.37; returns one line per failure.
fn kubernetes_validate(objects: &[Value]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("objects.json");
    std::fs::write(&input, serde_json::to_vec(objects).unwrap()).unwrap();
    let script = r#"
import json, sys
import kubernetes_validate
failures = []
for obj in json.load(open(sys.argv[1])):
    try:
        kubernetes_validate.validate(obj, "1.37.0", strict=True)
    except kubernetes_validate.ValidationError as e:
        failures.append("%s %s: %s at %s" % (obj.get("kind"), obj.get("metadata", {}).get("name"), e.message, list(e.path)))
print(json.dumps(failures))
"#;
    let out = Command::new(verifiers::python())
        .arg("-c")
        .arg(script)
        .arg(&input)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "kubernetes-validate failed to run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON list of failures")
}

#[test]
fn kubernetes_validate_refuses_an_undeclared_field() {
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "l", "namespace": "venafi"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
    });
    assert_eq!(
        kubernetes_validate(std::slice::from_ref(&lease)),
        Vec::<String>::new()
    );
    let mut bad = lease;
    bad["spec"]["observedGeneration"] = json!(1);
    let failures = kubernetes_validate(&[bad]);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("observedGeneration"), "{failures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_the_controller_writes_passes_upstream_schemas() {
    let mut env = Env::start_with(Options {
        record_writes: true,
        leader_election: true,
        allowed_requesters: vec![ISTIO_CSR_SA.to_owned()],
        ..Options::default()
    })
    .await;
    env.ready_issuer(None, "firefly-cluster", json!({})).await;
    let workload = "spiffe://cluster.local/ns/sandbox/sa/httpbin";
    let request = |spiffe: &str| {
        let (_key, csr) = CsrSpec::workload(KeyKind::P256, spiffe).build();
        RequestBuilder::istio("firefly-istio", &csr, spiffe)
    };

    // Issued, through an Issuer (created Ready by issue_workload) and a ClusterIssuer.
    let (_, issued) = env.issue_workload(workload).await;
    assert!(!decoded(&issued, "certificate").is_empty());
    let mut cluster = request(workload);
    cluster.issuer_name = "firefly-cluster".into();
    cluster.issuer_kind = Some("ClusterIssuer".into());
    let name = env.create_request(&cluster).await;
    env.approve(NS, &name).await;
    env.wait_ready_reason(NS, &name, "Issued").await;

    // Denied by the approver.
    let name = env.create_request(&request(workload)).await;
    env.set_approval(NS, &name, "Denied").await;
    env.wait_ready_reason(NS, &name, "Denied").await;

    // Pending: the issuer does not exist.
    let mut missing = request(workload);
    missing.issuer_name = "absent".into();
    let name = env.create_request(&missing).await;
    env.approve(NS, &name).await;
    env.wait_ready_reason(NS, &name, "Pending").await;

    // Failed, for each kind of refusal.
    let mut failures: Vec<(&str, RequestBuilder)> = Vec::new();
    let mut stranger = request(workload);
    stranger.username = Some("system:serviceaccount:sandbox:stranger".into());
    failures.push(("requester not allowed", stranger));
    failures.push((
        "unknown policy",
        request(workload).annotation("firefly.venafi.com/policy-name", Some("no-such-policy")),
    ));
    failures.push((
        "outside the policy",
        request("spiffe://evil.example/ns/sandbox/sa/httpbin"),
    ));
    let mut garbage = request(workload);
    garbage.csr_pem =
        "-----BEGIN CERTIFICATE REQUEST-----\nnot a csr\n-----END CERTIFICATE REQUEST-----\n"
            .into();
    failures.push(("undecodable CSR", garbage));
    let mut ca = request(workload);
    ca.is_ca = Some(true);
    failures.push(("isCA", ca));
    let mut short = request(workload);
    short.duration = Some("1s".into());
    failures.push(("duration below the minimum", short));
    for (what, req) in &failures {
        let name = env.create_request(req).await;
        env.approve(NS, &name).await;
        let obj = env.wait_ready_reason(NS, &name, "Failed").await;
        assert!(
            obj.pointer("/status/failureTime").is_some(),
            "{what}: no failureTime"
        );
    }
    env.stop_controller().await;

    let writes = env.sim.writes();
    let cr_schema = upstream_certificate_request_schema();
    let ours = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/firefly.yaml"))
        .expect("crds/firefly.yaml");
    let issuer_schema = schema_judge::crd_schema(&ours, "issuers.firefly.venafi.com", "v1alpha1");
    let cluster_issuer_schema =
        schema_judge::crd_schema(&ours, "clusterissuers.firefly.venafi.com", "v1alpha1");

    let mut ready_reasons = BTreeSet::new();
    let mut issuer_bodies = 0;
    let mut builtins = Vec::new();
    let mut problems = Vec::new();
    for w in &writes {
        let sub = w.subresource.as_deref();
        match (w.group.as_str(), w.resource.as_str(), sub) {
            ("cert-manager.io", "certificaterequests", Some("status")) => {
                let b = body(w);
                for c in b
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if c["type"] == "Ready" {
                        ready_reasons.insert(c["reason"].as_str().unwrap_or("").to_owned());
                        assert_eq!(
                            w.content_type, "application/apply-patch+yaml",
                            "the controller answers with server-side apply"
                        );
                    }
                }
                for v in schema_judge::violations(&cr_schema, &b) {
                    problems.push(format!("CertificateRequest status {b}: {v}"));
                }
            }
            ("firefly.venafi.com", plural @ ("issuers" | "clusterissuers"), Some("status")) => {
                let b = body(w);
                let schema = if plural == "issuers" {
                    &issuer_schema
                } else {
                    &cluster_issuer_schema
                };
                issuer_bodies += 1;
                for v in schema_judge::violations(schema, &b) {
                    problems.push(format!("{plural} status {b}: {v}"));
                }
            }
            ("coordination.k8s.io", "leases", None) | ("events.k8s.io", "events", None) => {
                builtins.push(body(w));
            }
            _ => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        ready_reasons,
        ["Denied", "Failed", "Issued", "Pending"]
            .into_iter()
            .map(str::to_owned)
            .collect(),
        "every outcome's body was judged"
    );
    assert!(issuer_bodies >= 2, "issuer status bodies: {issuer_bodies}");
    let kinds: BTreeSet<&str> = builtins.iter().filter_map(|b| b["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["Event", "Lease"].into_iter().collect(),
        "Lease and Event bodies were recorded"
    );
    let failures = kubernetes_validate(&builtins);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
