//! API server faults during a burst (dropped watches, forced 410s, 409s and 500s on status
//! writes): every request still reaches a terminal state, and the controller never signs an
//! answered request again (each signature beyond one per request is one whose status write the
//! API server refused, audited as signed-not-delivered).

use kube_sim::FaultRule;
use serde_json::json;
use support::controller::*;

const WORKLOAD: &str = "spiffe://cluster.local/ns/sandbox/sa/httpbin";

async fn burst(env: &Env, n: usize) -> Vec<String> {
    let mut names = Vec::with_capacity(n);
    for _ in 0..n {
        let (_key, csr) = CsrSpec::workload(KeyKind::P256, WORKLOAD).build();
        let name = env
            .create_request(&RequestBuilder::istio("firefly-istio", &csr, WORKLOAD))
            .await;
        env.approve(NS, &name).await;
        names.push(name);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_issued_despite_dropped_watches_410s_409s_and_500s() {
    let env = Env::start().await;
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    let status_patches_before = env.status_writes();
    let faults = env.sim.faults();
    faults.inject(
        FaultRule::error(500)
            .verb("patch")
            .resource("certificaterequests/status")
            .probability(0.3)
            .times(15),
    );
    faults.inject(
        FaultRule::error(409)
            .verb("patch")
            .resource("certificaterequests/status")
            .times(5),
    );
    let mut names = burst(&env, 20).await;
    faults.drop_watches();
    names.extend(burst(&env, 10).await);
    faults.compact_history();
    faults.drop_watches();
    names.extend(burst(&env, 10).await);
    for name in &names {
        env.wait_ready_reason(NS, name, "Issued").await;
    }
    faults.clear();
    // kube-sim counts a call before deciding its fault: patches answered with a fault show up as
    // patches beyond one approval and one controller write per request.
    let status_patches = env.status_writes() - status_patches_before;
    let requests = names.len() as u64;
    assert!(
        status_patches > 2 * requests,
        "no status write met an injected fault ({status_patches} patches for {requests} requests)"
    );
    // One more request, issued after the faults: by the time it is answered, any second
    // decision of an already answered copy (re-queued by the re-lists above) has had its turn.
    env.issue_through_ready_issuer(WORKLOAD).await;
    // A signature whose status write the API server refused (an injected 500 or 409) never
    // reached the request: the controller audits it as signed-not-delivered and signs again.
    // Every signature beyond one per request must be such a one; a second signature for an
    // answered request would be counted in none of them.
    let metrics = env.controller.as_ref().expect("controller").metrics();
    let refused_writes = metrics.write_errors.with_label_values(&["500"]).get()
        + metrics
            .write_conflicts
            .with_label_values(&["CertificateRequest"])
            .get();
    let not_delivered = metrics
        .signed_not_delivered
        .with_label_values(&["CertificateRequest"])
        .get();
    assert_eq!(
        not_delivered, refused_writes,
        "every refused write of a signed answer is audited as signed-not-delivered"
    );
    assert_eq!(
        env.signed(),
        requests + 1 + not_delivered,
        "signatures beyond one per request that no refused write accounts for: an answered \
         request was signed again ({not_delivered} signed answers were refused)"
    );
    for name in &names {
        let obj = env.request(NS, name).unwrap();
        assert_eq!(
            kube_sim::condition_status(&obj, "Approved"),
            Some("True"),
            "{obj:#}"
        );
        let Verdict { ok, output: out } =
            openssl_verify(&decoded(&obj, "certificate"), &decoded(&obj, "ca"), "any");
        assert!(ok, "{name}: {out}");
    }
}
