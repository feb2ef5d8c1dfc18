//! kube-sim judged by the official Python `kubernetes` client: list, watch, patch status, read a Lease.

mod common;

use common::*;
use kube::api::{Api, PostParams};
use kube_sim::{KubeSim, SimOptions};
use serde_json::{Value, json};
use std::path::PathBuf;

/// $FIREFLY_TEST_PYTHON, else `<repo>/.venv/bin/python`; fails (never skips) when neither exists.
fn python() -> PathBuf {
    let p = std::env::var_os("FIREFLY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../.venv/bin/python"
            ))
        });
    assert!(
        p.exists(),
        "no Python for the client tests at {} — run scripts/test (it creates .venv from tests/requirements.txt) or set FIREFLY_TEST_PYTHON",
        p.display()
    );
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_lists_watches_patches_status_and_reads_a_lease() {
    let py = python();
    let sim = KubeSim::start(SimOptions::default()).await.unwrap();
    sim.install_crds_yaml(&project_crds()).await.unwrap();
    let client = sim.client().await.unwrap();
    let crs = cr_api(client.clone(), "default");
    for i in 0..2 {
        crs.create(&PostParams::default(), &dynamic(cr_body(&format!("r{i}"))))
            .await
            .unwrap();
    }
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(client, "default");
    let lease = serde_json::from_value(json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "firefly-0", "leaseDurationSeconds": 15, "renewTime": "2026-01-01T00:00:00.000000Z", "acquireTime": "2026-01-01T00:00:00.000000Z"}})).unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client_check.py");
    let out = tokio::process::Command::new(&py)
        .arg(script)
        .arg(sim.kubeconfig_path())
        .arg("default")
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "python client check failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the script prints JSON");
    assert_eq!(seen["listed"], json!(["r0", "r1"]));
    assert_eq!(seen["patched_ready"], json!(["True"]));
    assert_eq!(seen["lease_holder"], "firefly-0");
    assert_eq!(seen["lease_duration"], 15);
    let watched = seen["watched"].as_array().unwrap();
    assert!(watched.contains(&json!(["MODIFIED", "r0"])), "{watched:?}");
    assert!(
        watched.contains(&json!(["ADDED", "from-python"])),
        "{watched:?}"
    );
    assert_eq!(seen["missing_status"], 404);
    assert_eq!(seen["missing_reason"], "NotFound");
    let r0 = sim
        .object("cert-manager.io", "certificaterequests", "default", "r0")
        .unwrap();
    assert_eq!(kube_sim::condition_status(&r0, "Ready"), Some("True"));
    assert_eq!(sim.request_count("patch", "certificaterequests/status"), 1);
}
