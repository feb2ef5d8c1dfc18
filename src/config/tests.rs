//! Unit tests of the configuration file: defaults, key paths in errors, rules.

use super::*;

const MINIMAL: &str = "bootstrap:\n  vaas:\n    url: https://api.venafi.cloud\n    auth:\n      clientID: 5b1d0c4e-0000-4000-8000-000000000001\n      privateKeyFile: /etc/firefly/key.pem\n";

#[test]
fn minimal_file_gets_documented_defaults() {
    let c = Config::from_yaml_str(MINIMAL).unwrap();
    assert_eq!(c.bootstrap.vaas.csr.instance_naming, "{HOSTNAME}");
    assert_eq!(
        c.bootstrap.vaas.policy_refresh_interval,
        Duration::from_secs(60)
    );
    assert_eq!(
        c.bootstrap.vaas.policy_max_staleness,
        Duration::from_secs(1800)
    );
    assert_eq!(c.bootstrap.vaas.request_timeout, Duration::from_secs(30));
    assert_eq!(
        c.bootstrap.vaas.sub_ca_request_deadline,
        Duration::from_secs(300)
    );
    assert_eq!(c.bootstrap.vaas.trust_anchor_file, None);
    assert_eq!(c.signer.lock_mode, LockMode::KeyPages);
    assert!(c.signer.in_memory);
    assert_eq!(c.controller.leader_election_namespace, "venafi");
    assert_eq!(
        c.controller.leader_election.lease_name,
        "firefly-controller"
    );
    assert_eq!(c.controller.cert_manager.group_name, "firefly.venafi.com");
    assert!(c.controller.cert_manager.check_approval);
    assert_eq!(c.controller.max_concurrent_reconciles, 256);
    assert_eq!(c.admin.readiness_address.port(), 8080);
    assert_eq!(c.admin.metrics_address.port(), 9402);
    assert_eq!(c.admin.chain_address.port(), 8008);
    assert_eq!(c.logging.format, LogFormat::Json);
}

#[test]
fn unknown_key_is_named_with_its_full_path() {
    let text = MINIMAL.replace(
        "      privateKeyFile",
        "      secret: x\n      privateKeyFile",
    );
    let err = Config::from_yaml_str(&text).unwrap_err();
    match &err {
        ConfigError::Parse { key, .. } => assert_eq!(key, "bootstrap.vaas.auth.secret"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        err.to_string().contains("bootstrap.vaas.auth.secret"),
        "{err}"
    );
}

#[test]
fn unknown_cert_manager_key_is_named() {
    let text = format!("{MINIMAL}controller:\n  cert-manager:\n    groupname: x\n");
    let err = Config::from_yaml_str(&text).unwrap_err();
    assert!(
        err.to_string()
            .contains("`controller.cert-manager.groupname`"),
        "{err}"
    );
}

#[test]
fn missing_required_key_is_named() {
    let text = MINIMAL.replace("      clientID: 5b1d0c4e-0000-4000-8000-000000000001\n", "");
    let err = Config::from_yaml_str(&text).unwrap_err();
    assert!(
        err.to_string().contains("`bootstrap.vaas.auth.clientID`"),
        "{err}"
    );
}

#[test]
fn bad_duration_names_key_and_value() {
    let text = MINIMAL.replace(
        "    auth:",
        "    policyRefreshInterval: 5 minutes\n    auth:",
    );
    let err = Config::from_yaml_str(&text).unwrap_err().to_string();
    assert!(
        err.contains("bootstrap.vaas.policyRefreshInterval"),
        "{err}"
    );
    assert!(err.contains("5 minutes"), "{err}");
}

#[test]
fn full_file_of_the_reference_parses() {
    let text = "bootstrap:\n  vaas:\n    url: http://127.0.0.1:8443\n    auth:\n      clientID: c\n      privateKeyFile: k.pem\n    csr:\n      instanceNaming: \"{POD_NAME}-{NS}\"\n    trustAnchorFile: /etc/root.pem\n    policyRefreshInterval: 5s\n    policyMaxStaleness: 1m30s\n    requestTimeout: 2s\n    subCaRequestDeadline: 1m\nsigner:\n  inMemory: true\n  lockMode: disabled\ncontroller:\n  kubeconfigFile: \"\"\n  leaderElectionNamespace: ns\n  leaderElection:\n    enabled: false\n    leaseName: l\n    leaseDuration: 30s\n    renewDeadline: 20s\n    retryPeriod: 1s\n  cert-manager:\n    groupName: example.com\n    checkApproval: false\n    caRootChainPopulation: false\n  allowedRequesters: [\"system:serviceaccount:cert-manager:istio-csr\"]\n  maxRetryDuration: 10m\n  minimumLeafDuration: 2m\n  successEvents: true\n  maxConcurrentReconciles: 8\nadmin:\n  readinessAddress: 127.0.0.1:0\n  metricsAddress: 127.0.0.1:0\n  chainAddress: \"[::1]:0\"\nlogging:\n  format: text\n  level: debug\n";
    let c = Config::from_yaml_str(text).unwrap();
    assert_eq!(
        c.bootstrap.vaas.policy_max_staleness,
        Duration::from_secs(90)
    );
    assert_eq!(
        c.bootstrap.vaas.trust_anchor_file.as_deref(),
        Some(Path::new("/etc/root.pem"))
    );
    assert_eq!(c.controller.kubeconfig_file, None);
    assert_eq!(c.signer.lock_mode, LockMode::Disabled);
    assert!(!c.controller.cert_manager.check_approval);
    assert_eq!(c.controller.allowed_requesters.len(), 1);
    assert_eq!(c.admin.chain_address.port(), 0);
    assert_eq!(c.logging.format, LogFormat::Text);
    let name = c
        .instance_name(|v| match v {
            "POD_NAME" => Some("firefly-0".into()),
            "NS" => Some("venafi".into()),
            _ => None,
        })
        .unwrap();
    assert_eq!(name, "firefly-0-venafi");
    assert!(c.warnings().iter().any(|w| w.contains("plain HTTP")));
}

#[test]
fn instance_naming_with_unset_variable_names_it() {
    let c = Config::from_yaml_str(MINIMAL).unwrap();
    let err = c.instance_name(|_| None).unwrap_err().to_string();
    assert!(
        err.contains("HOSTNAME") && err.contains("instanceNaming"),
        "{err}"
    );
}

#[test]
fn unbalanced_brace_in_instance_naming_is_refused_at_load() {
    let text = MINIMAL.replace(
        "    auth:",
        "    csr:\n      instanceNaming: \"{HOSTNAME\"\n    auth:",
    );
    let err = Config::from_yaml_str(&text).unwrap_err().to_string();
    assert!(err.contains("unbalanced"), "{err}");
}

#[test]
fn ftp_url_is_refused() {
    let err = Config::from_yaml_str(&MINIMAL.replace("https://", "ftp://"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bootstrap.vaas.url") && err.contains("ftp://"),
        "{err}"
    );
}

#[test]
fn in_memory_false_is_refused() {
    let err = Config::from_yaml_str(&format!("{MINIMAL}signer:\n  inMemory: false\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("signer.inMemory"), "{err}");
}

#[test]
fn unknown_lock_mode_is_named() {
    let err = Config::from_yaml_str(&format!("{MINIMAL}signer:\n  lockMode: some\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("signer.lockMode"), "{err}");
}

#[test]
fn staleness_shorter_than_refresh_is_refused() {
    let text = MINIMAL.replace(
        "    auth:",
        "    policyRefreshInterval: 10m\n    policyMaxStaleness: 1m\n    auth:",
    );
    let err = Config::from_yaml_str(&text).unwrap_err().to_string();
    assert!(err.contains("policyMaxStaleness"), "{err}");
}

#[test]
fn renew_deadline_not_shorter_than_lease_is_refused() {
    let text = format!(
        "{MINIMAL}controller:\n  leaderElection:\n    leaseDuration: 10s\n    renewDeadline: 10s\n"
    );
    let err = Config::from_yaml_str(&text).unwrap_err().to_string();
    assert!(err.contains("renewDeadline"), "{err}");
}

#[test]
fn bad_admin_address_is_named() {
    let err = Config::from_yaml_str(&format!("{MINIMAL}admin:\n  metricsAddress: localhost\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("admin.metricsAddress"), "{err}");
}

#[test]
fn empty_document_is_an_error_not_a_panic() {
    assert!(Config::from_yaml_str("").is_err());
    assert!(Config::from_yaml_str("[1, 2]").is_err());
}

#[test]
fn the_documented_complete_example_states_exactly_the_defaults() {
    // docs/configuration.md shows every key with its default; the defaults themselves are stated
    // once, in `defaults`. This keeps the page from drifting.
    let page = include_str!("../../docs/configuration.md");
    let example = page
        .split("## Complete example")
        .nth(1)
        .and_then(|rest| rest.split("```yaml\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("docs/configuration.md has a complete example");
    let documented = Config::from_yaml_str(example).expect("the documented example loads");
    let defaults = Config::from_yaml_str(MINIMAL).unwrap();
    let vaas = |c: &Config| {
        let v = &c.bootstrap.vaas;
        format!(
            "{:?} {:?} {:?} {:?} {:?} {:?}",
            v.csr,
            v.trust_anchor_file,
            v.policy_refresh_interval,
            v.policy_max_staleness,
            v.request_timeout,
            v.sub_ca_request_deadline
        )
    };
    assert_eq!(vaas(&documented), vaas(&defaults));
    assert_eq!(
        format!("{:?}", documented.signer),
        format!("{:?}", defaults.signer)
    );
    assert_eq!(
        format!("{:?}", documented.controller),
        format!("{:?}", defaults.controller)
    );
    assert_eq!(
        format!("{:?}", documented.admin),
        format!("{:?}", defaults.admin)
    );
    assert_eq!(
        format!("{:?}", documented.logging),
        format!("{:?}", defaults.logging)
    );
}

#[test]
fn a_key_given_twice_is_named() {
    let text = format!("{MINIMAL}controller:\n  successEvents: true\n  successEvents: false\n");
    let err = Config::from_yaml_str(&text).unwrap_err();
    match &err {
        ConfigError::Parse { key, .. } => assert_eq!(key, "controller.successEvents"),
        other => panic!("unexpected {other:?}"),
    }
    let text = format!("{MINIMAL}logging:\n  level: info\nlogging:\n  level: debug\n");
    let err = Config::from_yaml_str(&text).unwrap_err().to_string();
    assert!(err.contains("`logging`"), "{err}");
}

#[test]
fn yaml_1_1_booleans_are_refused_with_the_key() {
    let text = format!("{MINIMAL}controller:\n  leaderElection:\n    enabled: no\n");
    let err = Config::from_yaml_str(&text).unwrap_err().to_string();
    assert!(err.contains("`controller.leaderElection.enabled`"), "{err}");
}

#[test]
fn certificate_signing_requests_are_off_by_default_and_the_key_is_strict() {
    assert!(
        !Config::from_yaml_str(MINIMAL)
            .unwrap()
            .controller
            .certificate_signing_requests
            .enabled
    );
    let on = format!("{MINIMAL}controller:\n  certificateSigningRequests:\n    enabled: true\n");
    assert!(
        Config::from_yaml_str(&on)
            .unwrap()
            .controller
            .certificate_signing_requests
            .enabled
    );
    let typo = format!("{MINIMAL}controller:\n  certificateSigningRequests:\n    enable: true\n");
    let err = Config::from_yaml_str(&typo).unwrap_err();
    assert!(
        err.to_string()
            .contains("controller.certificateSigningRequests.enable"),
        "{err}"
    );
}
