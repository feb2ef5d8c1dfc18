//! Steps driven through kubectl against kube-sim: the Issuer applied from YAML, requests listed
//! with the CRD's printer columns, issuer readiness shown as kubectl prints it.

use std::process::Command;

use support::controller::*;

const WORKLOAD: &str = "spiffe://cluster.local/ns/sandbox/sa/httpbin";

fn kubectl(env: &Env, args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(env.sim.kubeconfig_path())
        .args(args);
    let out = if let Some(input) = stdin {
        use std::io::Write as _;
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    } else {
        cmd.output().expect("kubectl runs")
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_applied_with_kubectl_becomes_ready_and_requests_list_with_printer_columns() {
    let env = Env::start().await;
    let issuer = format!(
        "apiVersion: firefly.venafi.com/v1alpha1\nkind: Issuer\nmetadata:\n  name: firefly-istio\n  namespace: {NS}\nspec:\n  defaultPolicyName: {POLICY}\n"
    );
    kubectl(&env, &["apply", "-f", "-"], Some(&issuer));
    kube_sim::wait_for(PATIENCE, || async {
        env.sim
            .object(GROUP, "issuers", NS, "firefly-istio")
            .is_some_and(|o| kube_sim::condition_status(&o, "Ready") == Some("True"))
    })
    .await
    .expect("issuer Ready");
    let issuers = kubectl(&env, &["get", "issuers.firefly.venafi.com", "-n", NS], None);
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
    let listed = kubectl(&env, &["get", "cr", "-n", NS, "-o", "wide"], None);
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
    let by_category = kubectl(&env, &["get", "cert-manager", "-n", NS, "-o", "name"], None);
    assert!(
        by_category.contains(&name),
        "category cert-manager lists the request: {by_category}"
    );
}
