//! cert-manager.md §2 end to end: kube-sim and the mock TLSPC over loopback HTTP, the real
//! controller, and openssl as the judge of every chain issued.

#[path = "controller_support/env.rs"]
mod env;

use env::*;
use serde_json::json;

const WORKLOAD: &str = "spiffe://cluster.local/ns/sandbox/sa/httpbin";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_istio_workload_request_is_issued_with_a_chain_openssl_verifies() {
    let env = Env::start().await;
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    let (_key, csr) = CsrSpec::workload(KeyKind::P256, WORKLOAD).build();
    let name = env
        .create_request(&RequestBuilder::istio("firefly-istio", &csr, WORKLOAD))
        .await;
    env.approve(NS, &name).await;
    let obj = env.wait_ready_reason(NS, &name, "Issued").await;
    assert_eq!(kube_sim::condition_status(&obj, "Ready"), Some("True"));
    assert_eq!(
        kube_sim::condition_status(&obj, "Approved"),
        Some("True"),
        "Approved survives our write"
    );
    let chain = decoded(&obj, "certificate");
    let root = decoded(&obj, "ca");
    assert_eq!(root.trim(), env.authority.root_pem().trim());
    let (ok, out) = openssl_verify(&root, &chain);
    assert!(ok, "openssl verify: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_for_another_issuer_group_is_left_untouched() {
    let env = Env::start().await;
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    let (_key, csr) = CsrSpec::workload(KeyKind::P256, WORKLOAD).build();
    let mut req = RequestBuilder::istio("firefly-istio", &csr, WORKLOAD);
    req.issuer_group = Some("cert-manager.io".into());
    let foreign = env.create_request(&req).await;
    env.approve(NS, &foreign).await;
    // A request of ours created afterwards is answered; by then the foreign one was seen too.
    let (_key, csr) = CsrSpec::workload(KeyKind::P256, WORKLOAD).build();
    let ours = env
        .create_request(&RequestBuilder::istio("firefly-istio", &csr, WORKLOAD))
        .await;
    env.approve(NS, &ours).await;
    env.wait_ready_reason(NS, &ours, "Issued").await;
    let obj = env.request(NS, &foreign).unwrap();
    assert!(
        condition(&obj, "Ready").is_none(),
        "no Ready on a foreign request: {obj:#}"
    );
    assert!(env.events_for(NS, &foreign).await.is_empty());
}
