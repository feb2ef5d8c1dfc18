//! The controller under RBAC: kube-sim with authentication and RBAC on, the chart's rendered Roles,
//! ClusterRoles and bindings installed (rendered by the real Helm v4 SDK through
//! tests/helm/chart_checks.py), two replicas running as the chart's ServiceAccount with its token,
//! requests approved, denied and malformed, and a leader rotation. Every call the controller made
//! (kube-sim's call record) must be in the product's table (`firefly::rbac`), and none may have
//! been refused.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use firefly::rbac::Group;
use kube::api::{Patch, PatchParams};
use support::e2e::{self, GROUP, ISSUER_NAME, ISTIO_CSR_NAMESPACE};
use support::{repo_root, verifiers};

/// The chart's release namespace and ServiceAccount, and the user its token authenticates as.
const NAMESPACE: &str = "venafi";
const SERVICE_ACCOUNT: &str = "firefly";
const USER: &str = "system:serviceaccount:venafi:firefly";
/// Bound of every wait (shared, slow machine; debug build).
const PATIENCE: Duration = Duration::from_secs(90);

/// A recorded call as `(group, resource, subresource, verb)`.
type Row = (String, String, String, String);

/// The chart's RBAC objects for its default values, as the Helm SDK renders them.
fn rendered_rbac_objects() -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("rbac.json");
    let output = Command::new(verifiers::python())
        .arg(repo_root().join("tests/helm/chart_checks.py"))
        .args(["controller_rbac_objects", "default"])
        .arg(&out)
        .current_dir(repo_root())
        .output()
        .expect("start the chart checks");
    assert!(
        output.status.success(),
        "rendering the chart's RBAC failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&out).expect("read rbac.json"))
        .expect("rbac.json is a JSON list")
}

/// The product's table as kube-sim records calls.
fn table() -> BTreeSet<Row> {
    firefly::rbac::calls()
        .into_iter()
        .map(|c| {
            let group = match c.group {
                Group::Fixed(g) => g,
                Group::Issuers => GROUP,
            };
            (
                group.to_owned(),
                c.resource.to_owned(),
                c.subresource.to_owned(),
                c.verb.to_owned(),
            )
        })
        .collect()
}

/// kube-sim's kubeconfig with the admin's token replaced by `token`.
fn kubeconfig_with_token(sim: &kube_sim::KubeSim, token: &str, path: &std::path::Path) {
    let admin = sim.admin_token().expect("authentication is on");
    let text = std::fs::read_to_string(sim.kubeconfig_path()).expect("read kube-sim's kubeconfig");
    assert!(
        text.contains(admin),
        "the kubeconfig carries the admin token"
    );
    std::fs::write(path, text.replace(admin, token)).expect("write the kubeconfig");
}

/// Waits until request `name` has a Ready condition with `reason`.
async fn wait_reason(stack: &e2e::Stack, name: &str, reason: &str) {
    let res = kube_sim::wait_for(PATIENCE, || async {
        ready_reason(stack, name).as_deref() == Some(reason)
    })
    .await;
    assert!(
        res.is_ok(),
        "request {name} never reached Ready reason {reason}; last: {:?}; calls refused: {:?}",
        ready_reason(stack, name),
        stack.sim.refused_calls_by(USER)
    );
}

fn ready_reason(stack: &e2e::Stack, name: &str) -> Option<String> {
    let obj = stack.sim.object(
        "cert-manager.io",
        "certificaterequests",
        ISTIO_CSR_NAMESPACE,
        name,
    )?;
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["reason"].as_str())
        .map(str::to_owned)
}

/// Creates an istio-csr request for workload `i` with CSR `csr_pem`; returns its name.
async fn create(stack: &e2e::Stack, i: usize, csr_pem: &str) -> String {
    let cr = e2e::istio_csr_request(csr_pem, &e2e::workload_spiffe_id(i), ISSUER_NAME);
    let created = e2e::create_generated(&stack.requests(), &cr)
        .await
        .expect("create the request");
    created.metadata.name.expect("a generated name")
}

/// One approved (issued), one denied and one malformed (failed) request.
async fn issue_three(stack: &e2e::Stack, pool: &e2e::KeyPool, first: usize) {
    let (_, key) = pool.key_for(first);
    let csr = e2e::istio_agent_csr_pem(key, &e2e::workload_spiffe_id(first)).unwrap();
    let approved = create(stack, first, &csr).await;
    e2e::approve(&stack.requests(), &approved).await.unwrap();

    let (_, key) = pool.key_for(first + 1);
    let csr = e2e::istio_agent_csr_pem(key, &e2e::workload_spiffe_id(first + 1)).unwrap();
    let denied = create(stack, first + 1, &csr).await;
    let deny = serde_json::json!({"status": {"conditions": [{
        "type": "Denied", "status": "True", "reason": "PolicyDenied",
        "message": "denied by the test's approver",
        "lastTransitionTime": "2026-12-05T00:00:00Z",
    }]}});
    stack
        .requests()
        .patch_status(&denied, &PatchParams::default(), &Patch::Merge(&deny))
        .await
        .expect("deny the request");

    let bad = create(
        stack,
        first + 2,
        "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgQ1NS\n-----END CERTIFICATE REQUEST-----\n",
    )
    .await;
    e2e::approve(&stack.requests(), &bad).await.unwrap();

    wait_reason(stack, &approved, "Issued").await;
    wait_reason(stack, &denied, "Denied").await;
    wait_reason(stack, &bad, "Failed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_call_the_controller_makes_under_the_charts_rbac_is_in_the_table() {
    let stack = e2e::Stack::start_with(kube_sim::SimOptions::authenticating())
        .await
        .unwrap();
    for obj in rendered_rbac_objects() {
        stack
            .sim
            .put_object(obj.clone())
            .unwrap_or_else(|e| panic!("installing {obj}: {e:#}"));
    }
    let token = stack
        .sim
        .service_account_token(NAMESPACE, SERVICE_ACCOUNT)
        .unwrap();
    let kubeconfig = stack.dir.path().join("controller.kubeconfig");
    kubeconfig_with_token(&stack.sim, &token, &kubeconfig);
    stack.sim.clear_calls();

    let knobs = e2e::ControllerKnobs {
        leader_election: true,
        kubeconfig: Some(kubeconfig),
        ..Default::default()
    };
    let config_a = stack.write_config("replica-a", &knobs).unwrap();
    let config_b = stack.write_config("replica-b", &knobs).unwrap();
    let (_boot_a, replica_a) = stack
        .start_controller(&config_a, "replica-a")
        .await
        .unwrap();
    let mut leadership = replica_a.leadership();
    let led = tokio::time::timeout(PATIENCE, leadership.wait_for(|l| *l))
        .await
        .is_ok_and(|r| r.is_ok());
    assert!(
        led,
        "replica-a never became leader; calls refused: {:?}",
        stack.sim.refused_calls_by(USER)
    );
    let (_boot_b, replica_b) = stack
        .start_controller(&config_b, "replica-b")
        .await
        .unwrap();
    stack.create_issuer().await.unwrap();
    stack.wait_issuer_ready(PATIENCE).await.unwrap();
    // A ClusterIssuer too: its status is written through its own (cluster-scoped) API.
    let cluster_issuers: kube::Api<firefly::crd::ClusterIssuer> =
        kube::Api::all(stack.client.clone());
    cluster_issuers
        .create(
            &kube::api::PostParams::default(),
            &firefly::crd::ClusterIssuer::new("firefly-cluster", Default::default()),
        )
        .await
        .expect("create the ClusterIssuer");
    let res = kube_sim::wait_for(PATIENCE, || async {
        stack
            .sim
            .object(GROUP, "clusterissuers", "", "firefly-cluster")
            .is_some_and(|o| kube_sim::condition_status(&o, "Ready") == Some("True"))
    })
    .await;
    assert!(
        res.is_ok(),
        "the ClusterIssuer never became Ready; calls refused: {:?}",
        stack.sim.refused_calls_by(USER)
    );

    let pool = e2e::KeyPool::generate(0, 2).unwrap();
    issue_three(&stack, &pool, 0).await;

    // Rotate the leader: replica-a stops (releasing the lease), replica-b takes over.
    assert!(
        replica_a.shutdown().await.clean(),
        "replica-a stopped cleanly"
    );
    let mut leadership = replica_b.leadership();
    let took_over = tokio::time::timeout(PATIENCE, leadership.wait_for(|l| *l))
        .await
        .is_ok_and(|r| r.is_ok());
    assert!(
        took_over,
        "replica-b never took over; calls refused: {:?}",
        stack.sim.refused_calls_by(USER)
    );
    issue_three(&stack, &pool, 3).await;
    assert!(
        replica_b.shutdown().await.clean(),
        "replica-b stopped cleanly"
    );

    let refused = stack.sim.refused_calls_by(USER);
    assert!(refused.is_empty(), "calls refused with 403: {refused:?}");
    let made: BTreeSet<Row> = stack
        .sim
        .calls_by(USER)
        .into_iter()
        .map(|c| (c.group, c.resource, c.subresource, c.verb))
        .collect();
    let table = table();
    let outside: Vec<_> = made.difference(&table).collect();
    assert!(
        outside.is_empty(),
        "calls outside the table (firefly::rbac): {outside:?}\nmade: {made:?}"
    );
    // The run exercised the table, not a trivial subset of it.
    for must in [
        ("cert-manager.io", "certificaterequests", "", "watch"),
        ("cert-manager.io", "certificaterequests", "status", "patch"),
        (GROUP, "issuers", "", "watch"),
        (GROUP, "issuers", "status", "patch"),
        (GROUP, "clusterissuers", "status", "patch"),
        ("events.k8s.io", "events", "", "create"),
        ("coordination.k8s.io", "leases", "", "get"),
        ("coordination.k8s.io", "leases", "", "create"),
        ("coordination.k8s.io", "leases", "", "update"),
        ("coordination.k8s.io", "leases", "", "watch"),
    ] {
        let row = (
            must.0.to_owned(),
            must.1.to_owned(),
            must.2.to_owned(),
            must.3.to_owned(),
        );
        assert!(
            made.contains(&row),
            "the run never called {must:?}: {made:?}"
        );
    }
    let unused: Vec<_> = table.difference(&made).collect();
    println!(
        "{} distinct calls made, all in the table; table rows this run did not need: {unused:?}",
        made.len()
    );
}
