//! The controller's real CertificateRequest status bodies, for every outcome, judged by
//! structured-merge-diff (the library kube-apiserver uses, built as `tests/smd-oracle`) against
//! cert-manager's published CRD: the controller runs against kube-sim (which records every write
//! body), then each request's sequence of status applies (cert-manager's approver, then ours) is
//! replayed on a fresh kube-sim and through the oracle, and the two must agree step by step on
//! the object, every manager's fields and every error. Every step must also be accepted.

#[path = "kube-sim/tests/smd_harness/mod.rs"]
mod smd_harness;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use smd_harness::{Op, Scenario, assert_same};
use support::controller::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_body_the_controller_writes_merges_as_structured_merge_diff_merges_it() {
    let mut env = Env::start_with(Options {
        record_writes: true,
        allowed_requesters: vec![ISTIO_CSR_SA.to_owned()],
        ..Options::default()
    })
    .await;
    let workload = "spiffe://cluster.local/ns/sandbox/sa/httpbin";
    let request = |spiffe: &str| {
        let (_key, csr) = CsrSpec::workload(KeyKind::P256, spiffe).build();
        RequestBuilder::istio("firefly-istio", &csr, spiffe)
    };
    let mut names = Vec::new();
    // Issued.
    let (issued, _) = env.issue_workload(workload).await;
    names.push(issued);
    // Denied by the approver.
    let name = env.create_request(&request(workload)).await;
    env.set_approval(NS, &name, "Denied").await;
    env.wait_ready_reason(NS, &name, "Denied").await;
    names.push(name);
    // Pending: the issuer does not exist.
    let mut missing = request(workload);
    missing.issuer_name = "absent".into();
    let name = env.create_request(&missing).await;
    env.approve(NS, &name).await;
    env.wait_ready_reason(NS, &name, "Pending").await;
    names.push(name);
    // Failed: outside the policy, and a CA asked for.
    let mut ca = request(workload);
    ca.is_ca = Some(true);
    for req in [request("spiffe://evil.example/ns/sandbox/sa/httpbin"), ca] {
        let name = env.create_request(&req).await;
        env.approve(NS, &name).await;
        env.wait_ready_reason(NS, &name, "Failed").await;
        names.push(name);
    }
    env.stop_controller().await;

    // Issuer status writes are guarded too: each carries the resourceVersion it was decided on,
    // so a replica with a stale copy is refused (409) instead of overwriting a newer condition.
    let issuer_writes: Vec<Value> = env
        .sim
        .writes()
        .into_iter()
        .filter(|w| {
            w.group == "firefly.venafi.com"
                && w.resource.ends_with("issuers")
                && w.subresource.as_deref() == Some("status")
        })
        .map(|w| serde_json::from_slice(&w.body).expect("a JSON body"))
        .collect();
    assert!(!issuer_writes.is_empty(), "the issuer's Ready was written");
    for b in &issuer_writes {
        assert!(
            b["metadata"]["resourceVersion"]
                .as_str()
                .is_some_and(|rv| !rv.is_empty()),
            "issuer status write without a resourceVersion precondition: {b}"
        );
    }

    // Each request's status writes, in the order they arrived.
    let mut bodies: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for w in env.sim.writes() {
        if w.group != "cert-manager.io" || w.resource != "certificaterequests" {
            continue;
        }
        if w.subresource.as_deref() != Some("status") {
            continue;
        }
        assert_eq!(
            w.content_type, "application/apply-patch+yaml",
            "status writes are server-side applies"
        );
        let b: Value = serde_json::from_slice(&w.body).expect("a JSON body");
        let name = b["metadata"]["name"]
            .as_str()
            .expect("a named body")
            .to_owned();
        bodies.entry(name).or_default().push(b);
    }

    let scn = Scenario::from_crd(kube_sim::CERT_MANAGER_CERTIFICATE_REQUEST_CRD, "v1");
    let replay = kube_sim::KubeSim::start(kube_sim::SimOptions::default())
        .await
        .expect("kube-sim starts");
    replay
        .install_cert_manager_crds()
        .await
        .expect("cert-manager's CRD installs");
    let client = replay.client().await.expect("client");
    let mut reasons = BTreeSet::new();
    for name in &names {
        let stored = env.request(NS, name).expect("the request exists");
        let mut ops = vec![Op::apply(
            "creator",
            json!({"metadata": {"labels": stored["metadata"]["labels"].clone(),
                "annotations": stored["metadata"]["annotations"].clone()},
                "spec": stored["spec"].clone()}),
        )];
        for b in bodies.get(name).map(Vec::as_slice).unwrap_or_default() {
            let conditions = b["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let by_approver = conditions
                .iter()
                .any(|c| c["type"] == "Approved" || c["type"] == "Denied");
            for c in &conditions {
                if c["type"] == "Ready" {
                    reasons.insert(c["reason"].as_str().unwrap_or_default().to_owned());
                }
            }
            let mut body = b.clone();
            for k in ["apiVersion", "kind"] {
                body.as_object_mut().map(|o| o.remove(k));
            }
            body["metadata"] = json!({});
            let manager = if by_approver {
                "cert-manager-approver"
            } else {
                "firefly"
            };
            ops.push(Op::status(manager, body).forced());
        }
        assert!(
            ops.len() >= 3,
            "{name}: an approval and an answer were recorded"
        );
        let out = assert_same(&replay, &client, &scn, name, &strip_nulls(ops)).await;
        for (i, o) in out.iter().enumerate() {
            assert!(
                o.error.is_none(),
                "{name} step {i} was refused: {:?}",
                o.error
            );
        }
    }
    assert_eq!(
        reasons,
        ["Denied", "Failed", "Issued", "Pending"]
            .into_iter()
            .map(str::to_owned)
            .collect(),
        "every outcome's bodies were replayed"
    );
}

/// Null labels or annotations (a request without any) are left out of the creator's apply.
fn strip_nulls(mut ops: Vec<Op>) -> Vec<Op> {
    if let Some(meta) = ops[0].body["metadata"].as_object_mut() {
        meta.retain(|_, v| !v.is_null());
    }
    ops
}
