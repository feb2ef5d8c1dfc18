//! kube-sim over TLS (CA + CA:false server certificate) with bearer tokens mapped to users.

mod common;

use common::*;
use kube::api::PostParams;
use kube_sim::{KubeSim, SimOptions};

fn tls_opts() -> SimOptions {
    let mut opts = SimOptions::default();
    opts.tls = true;
    opts.tokens = vec![
        (
            "istio-csr-token".into(),
            "system:serviceaccount:istio-system:cert-manager-istio-csr".into(),
        ),
        ("other-token".into(), "alice".into()),
    ];
    opts
}

#[tokio::test]
async fn kube_rs_connects_over_tls_and_requests_record_the_creating_user() {
    let sim = KubeSim::start(tls_opts()).await.unwrap();
    assert!(sim.base_url().starts_with("https://127.0.0.1:"));
    sim.install_crds_yaml(&project_crds()).await.unwrap();
    let api = cr_api(sim.client().await.unwrap(), "default");
    let mut body = cr_body("who");
    body["spec"]["username"] = serde_json::json!("forged");
    let created = api
        .create(&PostParams::default(), &dynamic(body))
        .await
        .unwrap();
    assert_eq!(
        created.data["spec"]["username"],
        "system:serviceaccount:istio-system:cert-manager-istio-csr",
        "the webhook emulation overrides what the client sent"
    );
    let alice = cr_api(
        sim.client_with_token("other-token").await.unwrap(),
        "default",
    );
    let by_alice = alice
        .create(&PostParams::default(), &dynamic(cr_body("alices")))
        .await
        .unwrap();
    assert_eq!(by_alice.data["spec"]["username"], "alice");
}

#[tokio::test]
async fn unknown_bearer_token_is_unauthorized() {
    let sim = KubeSim::start(tls_opts()).await.unwrap();
    let api = cr_api(sim.client_with_token("wrong").await.unwrap(), "default");
    match api.get("x").await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (401, "Unauthorized")),
        other => panic!("expected 401, got {other:?}"),
    }
}

#[test]
fn server_certificate_is_not_a_ca_and_chains_to_the_sim_ca() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = rt.block_on(KubeSim::start(tls_opts())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_pem().unwrap()).unwrap();
    // openssl is the independent judge: verify the served chain against the CA and read the leaf.
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &sim.addr().to_string(), "-CAfile"])
        .arg(&ca)
        .args([
            "-verify_return_error",
            "-servername",
            "localhost",
            "-showcerts",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Verify return code: 0 (ok)"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let leaf_pem: String = text
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)
        .map(|b| {
            format!(
                "-----BEGIN CERTIFICATE-----{}-----END CERTIFICATE-----\n",
                b.split("-----END CERTIFICATE-----").next().unwrap()
            )
        })
        .unwrap();
    let leaf = dir.path().join("leaf.pem");
    std::fs::write(&leaf, leaf_pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&leaf)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("IP Address:127.0.0.1"), "{text}");
    drop(sim);
}
