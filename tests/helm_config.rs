//! The chart and the binary agree on config.yaml: the file the chart renders (Helm v4 SDK, through
//! tests/helm/chart_checks.py) loads with `firefly::config::Config`, for every value set users are shown.

use support::verifiers;

use std::path::Path;
use std::process::Command;

use firefly::config::{Config, LockMode};

use support::repo_root;

/// Renders the chart for value set `label` (plus `overrides`, JSON values files) and returns the
/// text of its config.yaml.
fn rendered_config(label: &str, overrides: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("config.yaml");
    let output = Command::new(verifiers::python())
        .arg(repo_root().join("tests/helm/chart_checks.py"))
        .arg("render_config")
        .arg(label)
        .arg(&out)
        .args(overrides)
        .current_dir(repo_root())
        .output()
        .expect("start chart_checks.py");
    assert!(
        output.status.success(),
        "rendering {label} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(&out).expect("read rendered config.yaml")
}

fn load(label: &str, overrides: &[&str]) -> Config {
    let text = rendered_config(label, overrides);
    Config::from_yaml_str(&text).unwrap_or_else(|e| {
        panic!("the binary refuses the config.yaml the chart renders for {label}: {e}\n{text}")
    })
}

#[test]
fn seed_values_render_a_config_the_binary_loads_unchanged() {
    let config = load("seed", &[]);
    assert_eq!(config.bootstrap.vaas.url, "https://api.venafi.cloud");
    assert_eq!(
        config.bootstrap.vaas.auth.client_id,
        "<REPLACE_WITH_CLIENT_ID_OF_THE_SERVICEACCOUNT>"
    );
    assert_eq!(
        config.bootstrap.vaas.auth.private_key_file,
        Path::new("/etc/firefly/credentials/svc-acct.key")
    );
    assert_eq!(
        config.controller.cert_manager.group_name,
        "firefly.venafi.com"
    );
    assert_eq!(config.controller.leader_election_namespace, "venafi");
    assert!(config.controller.cert_manager.check_approval);
    assert!(config.controller.cert_manager.ca_root_chain_population);
    assert_eq!(
        config.controller.allowed_requesters,
        ["system:serviceaccount:istio-system:cert-manager-istio-csr"]
    );
    assert_eq!(config.controller.mesh_issuer_namespaces, ["istio-system"]);
    assert_eq!(config.signer.lock_mode, LockMode::KeyPages);
    assert_eq!(config.admin.readiness_address.port(), 8080);
    assert_eq!(config.admin.metrics_address.port(), 9402);
    assert_eq!(config.admin.chain_address.port(), 8008);
    assert!(
        config.warnings().is_empty(),
        "the seed's values must start without warnings: {:?}",
        config.warnings()
    );
}

#[test]
fn every_value_set_renders_a_config_the_binary_loads() {
    for label in [
        "default",
        "everything-on",
        "lock-disabled",
        "deploy/kind",
        "deploy/openshift",
        "deploy/tlspc-mock",
    ] {
        let config = load(label, &[]);
        assert!(
            !config.controller.allowed_requesters.is_empty(),
            "{label}: the guides never run with an open allow-list"
        );
    }
    assert_eq!(load("default", &[]).signer.lock_mode, LockMode::KeyPages);
    assert_eq!(load("everything-on", &[]).signer.lock_mode, LockMode::All);
    let dev = load("lock-disabled", &[]);
    assert_eq!(dev.signer.lock_mode, LockMode::Disabled);
    assert!(!dev.controller.leader_election.enabled);
    for guide in ["deploy/tlspc-mock", "deploy/kind"] {
        let mock = load(guide, &[]);
        assert!(
            mock.bootstrap.vaas.url.starts_with("http://")
                && mock.bootstrap.vaas.allow_insecure_http,
            "{guide}: the in-cluster mock is reached over http:// with allowInsecureHTTP"
        );
        assert!(
            mock.warnings().iter().any(|w| w.contains("plain HTTP")),
            "{guide}: the mock's http:// URL must be flagged at start: {:?}",
            mock.warnings()
        );
    }
}

/// `config.bootstrap.vaas.allowInsecureHTTP` reaches config.yaml typed; without it the mock's
/// http:// URL is refused by the binary when the file is loaded, naming both keys.
#[test]
fn allow_insecure_http_is_rendered_and_the_mock_url_needs_it() {
    let seed = load("seed", &[]);
    assert!(!seed.bootstrap.vaas.allow_insecure_http);
    assert!(
        !rendered_config("seed", &[]).contains("allowInsecureHTTP"),
        "the chart does not restate the binary's default"
    );
    let on = load(
        "seed",
        &[r#"{"config": {"bootstrap": {"vaas": {"allowInsecureHTTP": true}}}}"#],
    );
    assert!(on.bootstrap.vaas.allow_insecure_http);
    let text = rendered_config(
        "deploy/tlspc-mock",
        &[r#"{"config": {"bootstrap": {"vaas": {"allowInsecureHTTP": false}}}}"#],
    );
    let err = Config::from_yaml_str(&text)
        .expect_err("an http:// URL to a cluster service without the flag is refused")
        .to_string();
    assert!(
        err.contains("bootstrap.vaas.url") && err.contains("bootstrap.vaas.allowInsecureHTTP"),
        "{err}"
    );
}

#[test]
fn chart_overrides_reach_the_binary_typed() {
    let config = load(
        "seed",
        &[
            r#"{"deployment": {"credentialsMountPath": "/var/run/firefly", "credentialsKey": "key.pem"},
              "crd": {"groupName": "issuers.example.org"},
              "config": {"adminBindAddress": "127.0.0.1", "ports": {"readiness": 18080},
                         "policyRefreshInterval": "30s", "policyMaxStaleness": "10m",
                         "allowedRequesters": [], "leaderElection": {"leaseName": "pki-lease"},
                         "meshIssuerNamespaces": ["istio-system", "tenant-a-mesh"]}}"#,
        ],
    );
    assert_eq!(
        config.bootstrap.vaas.auth.private_key_file,
        Path::new("/var/run/firefly/key.pem")
    );
    assert_eq!(
        config.controller.cert_manager.group_name,
        "issuers.example.org"
    );
    assert_eq!(
        config.admin.readiness_address.to_string(),
        "127.0.0.1:18080"
    );
    assert_eq!(
        config.bootstrap.vaas.policy_refresh_interval,
        std::time::Duration::from_secs(30)
    );
    assert_eq!(
        config.bootstrap.vaas.policy_max_staleness,
        std::time::Duration::from_secs(600)
    );
    assert_eq!(config.controller.leader_election.lease_name, "pki-lease");
    assert!(config.controller.allowed_requesters.is_empty());
    assert!(
        config
            .warnings()
            .iter()
            .any(|w| w.contains("allowedRequesters is empty") && w.contains("refused")),
        "an emptied allow-list must be warned about: every request will be refused"
    );
    assert_eq!(
        config.controller.mesh_issuer_namespaces,
        ["istio-system", "tenant-a-mesh"]
    );
}

#[test]
fn a_trust_anchor_in_values_becomes_the_trust_anchor_file() {
    let config = load(
        "seed",
        &[
            r#"{"config": {"trustAnchorPEM": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}}"#,
        ],
    );
    assert_eq!(
        config.bootstrap.vaas.trust_anchor_file.as_deref(),
        Some(Path::new("/etc/firefly/trust-anchor/trust-anchor.pem"))
    );
}

#[test]
fn the_csr_front_door_value_reaches_the_binary_with_istiod_allowed() {
    let config = load(
        "seed",
        &[
            r#"{"config": {"certificateSigningRequests": {"enabled": true,
                "istiodApprover": {"namespace": "istio-system", "serviceAccount": "istiod"}}}}"#,
        ],
    );
    assert!(config.controller.certificate_signing_requests.enabled);
    assert!(
        config
            .controller
            .allowed_requesters
            .iter()
            .any(|r| r == "system:serviceaccount:istio-system:istiod"),
        "{:?}",
        config.controller.allowed_requesters
    );
    assert!(
        !load("seed", &[])
            .controller
            .certificate_signing_requests
            .enabled,
        "off by default"
    );
}

#[test]
fn pod_certificate_values_reach_the_binary_typed_and_set_the_rotation_floor() {
    use firefly::bootstrap::{BootstrapConfig as _, subca::POD_CERTIFICATE_ROTATION_FLOOR};
    let off = load("seed", &[]);
    assert!(!off.controller.pod_certificates.enabled, "off by default");
    assert!(
        off.bootstrap_settings(&|_| Some("x".into()))
            .unwrap()
            .rotation_floor
            .is_zero()
    );
    // The chart's default signer (DESIGN 9), and a second one with verifyPod and no bundle.
    let on = load(
        "seed",
        &[r#"{"config": {"podCertificates": {"enabled": true}}}"#],
    );
    let pc = &on.controller.pod_certificates;
    assert!(pc.enabled);
    let [signer] = pc.signers.as_slice() else {
        panic!("one default signer: {:?}", pc.signers)
    };
    assert_eq!(signer.signer_name, "firefly.venafi.com/istio-mtls");
    assert_eq!(signer.policy_name, "istio-mtls");
    assert_eq!(signer.trust_domain, "cluster.local");
    assert_eq!(signer.namespaces(), ["*"]);
    assert!(!signer.verify_pod && signer.cluster_trust_bundle);
    assert_eq!(
        on.bootstrap_settings(&|_| Some("x".into()))
            .unwrap()
            .rotation_floor,
        POD_CERTIFICATE_ROTATION_FLOOR
    );
    let two = load(
        "seed",
        &[
            r#"{"config": {"podCertificates": {"enabled": true, "signers": [
                {"signerName": "firefly.venafi.com/istio-mtls", "policyName": "istio-mtls", "trustDomain": "cluster.local", "namespaces": ["*"], "clusterTrustBundle": true},
                {"signerName": "example.org/gateway.edge", "policyName": "gateways", "trustDomain": "edge.example.org", "namespaces": ["gateways"], "verifyPod": true}]}}}"#,
        ],
    );
    let names: Vec<_> = two
        .controller
        .pod_certificates
        .trust_bundle_signers()
        .iter()
        .map(|s| s.signer_name.clone())
        .collect();
    assert_eq!(names, ["firefly.venafi.com/istio-mtls"]);
    assert!(two.controller.pod_certificates.signers[1].verify_pod);
}
