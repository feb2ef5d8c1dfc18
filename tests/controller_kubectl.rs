//! Steps driven through kubectl against kube-sim: the Issuer applied from YAML, requests listed
//! with the CRD's printer columns, issuer readiness shown as kubectl prints it.

use support::controller::*;

const WORKLOAD: &str = "spiffe://cluster.local/ns/sandbox/sa/httpbin";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_applied_with_kubectl_becomes_ready_and_requests_list_with_printer_columns() {
    let env = Env::start().await;
    let issuer = format!(
        "apiVersion: firefly.venafi.com/v1alpha1\nkind: Issuer\nmetadata:\n  name: firefly-istio\n  namespace: {NS}\nspec:\n  defaultPolicyName: {POLICY}\n"
    );
    env.kubectl(&["apply", "-f", "-"], Some(&issuer));
    kube_sim::wait_for(PATIENCE, || async {
        env.sim
            .object(GROUP, "issuers", NS, "firefly-istio")
            .is_some_and(|o| kube_sim::condition_status(&o, "Ready") == Some("True"))
    })
    .await
    .expect("issuer Ready");
    let issuers = env.kubectl(&["get", "issuers.firefly.venafi.com", "-n", NS], None);
    let header = issuers.lines().next().unwrap_or("");
    for column in ["NAME", "READY", "REASON", "MESSAGE", "AGE"] {
        assert!(header.contains(column), "{issuers}");
    }
    assert!(
        issuers.lines().nth(1).is_some_and(|l| l.contains("True")),
        "{issuers}"
    );

    let (_key, csr) = CsrSpec::workload(KeyKind::P256, WORKLOAD).build();
    let req = RequestBuilder::istio("firefly-istio", &csr, WORKLOAD)
        .annotation("firefly.venafi.com/policy-name", None);
    let name = env.create_request(&req).await;
    env.approve(NS, &name).await;
    env.wait_ready_reason(NS, &name, "Issued").await;
    let listed = env.kubectl(&["get", "cr", "-n", NS, "-o", "wide"], None);
    let header = listed.lines().next().unwrap_or("");
    for column in [
        "APPROVED",
        "DENIED",
        "READY",
        "ISSUER",
        "REQUESTER",
        "STATUS",
        "AGE",
    ] {
        assert!(header.contains(column), "{listed}");
    }
    let row = listed
        .lines()
        .find(|l| l.starts_with(&name))
        .expect("request listed");
    assert!(
        row.contains("True") && row.contains("firefly-istio") && row.contains(ISTIO_CSR_SA),
        "{row}"
    );
    let by_category = env.kubectl(&["get", "cert-manager", "-n", NS, "-o", "name"], None);
    assert!(
        by_category.contains(&name),
        "category cert-manager lists the request: {by_category}"
    );
}
