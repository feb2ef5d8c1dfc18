//! API server faults during a burst (dropped watches, forced 410s, 409s and 500s on status
//! writes): every request still reaches a terminal state, and the controller never signs an
//! answered request again.

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
