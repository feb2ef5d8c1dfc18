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
    // A variable the user named stays an error when it is unset.
    let text = MINIMAL.replace(
        "    auth:",
        "    csr:\n      instanceNaming: \"{POD_NAME}-{HOSTNAME}\"\n    auth:",
    );
    let c = Config::from_yaml_str(&text).unwrap();
    let err = c
        .instance_name_with_host(|_| None, || Some("node-7".into()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("POD_NAME") && err.contains("instanceNaming"),
        "{err}"
    );
    // HOSTNAME without a readable host name is still named.
    let c = Config::from_yaml_str(MINIMAL).unwrap();
    let err = c
        .instance_name_with_host(|_| None, || None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HOSTNAME") && err.contains("instanceNaming"),
        "{err}"
    );
}

#[test]
fn the_default_instance_name_falls_back_to_the_system_host_name() {
    let c = Config::from_yaml_str(MINIMAL).unwrap();
    // The exported variable wins (in a pod it is the pod name).
    let name = c
        .instance_name_with_host(
            |v| (v == "HOSTNAME").then(|| "firefly-0".to_owned()),
            || Some("node-7".into()),
        )
        .unwrap();
    assert_eq!(name, "firefly-0");
    // Not exported, as in an ordinary shell: the system host name, as `hostname` prints it.
    let name = c
        .instance_name(|_| None)
        .expect("falls back to the host name");
    let out = std::process::Command::new("hostname")
        .output()
        .expect("hostname runs");
    assert_eq!(name, String::from_utf8_lossy(&out.stdout).trim());
}

#[test]
fn plain_http_to_a_non_loopback_host_is_refused_at_load_naming_both_keys() {
    for url in [
        "http://api.venafi.cloud",
        "http://tlspc-mock.venafi.svc.cluster.local:8080",
        "http://10.0.0.7:8080",
        "http://0.0.0.0:8080",
        "http://127.0.0.1@evil.example/",
        "http://[::ffff:10.0.0.1]/",
        "http://localhost.example.com/",
    ] {
        let text = MINIMAL.replace("https://api.venafi.cloud", url);
        let err = Config::from_yaml_str(&text).unwrap_err();
        let ConfigError::Invalid { key, .. } = &err else {
            panic!("{url}: {err:?}");
        };
        assert_eq!(key, "bootstrap.vaas.url", "{url}");
        let text = err.to_string();
        assert!(
            text.contains("bootstrap.vaas.url")
                && text.contains("bootstrap.vaas.allowInsecureHTTP"),
            "{url}: {text}"
        );
    }
}

#[test]
fn plain_http_is_allowed_for_loopback_hosts_or_with_the_flag_and_warned_about() {
    for url in [
        "http://127.0.0.1:8443",
        "http://127.9.8.7",
        "http://[::1]:8443/",
        "http://localhost:8443",
        "http://LocalHost",
    ] {
        let text = MINIMAL.replace("https://api.venafi.cloud", url);
        let c = Config::from_yaml_str(&text).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(!c.bootstrap.vaas.allow_insecure_http);
        assert!(c.insecure_http());
        assert!(
            c.warnings()
                .iter()
                .any(|w| w.contains("plain HTTP") && w.contains("loopback")),
            "{url}: {:?}",
            c.warnings()
        );
    }
    let text = MINIMAL.replace(
        "url: https://api.venafi.cloud",
        "url: http://tlspc-mock.venafi.svc:8080\n    allowInsecureHTTP: true",
    );
    let c = Config::from_yaml_str(&text).unwrap();
    assert!(c.bootstrap.vaas.allow_insecure_http && c.insecure_http());
    assert!(
        c.warnings()
            .iter()
            .any(|w| w.contains("plain HTTP") && w.contains("allowInsecureHTTP")),
        "{:?}",
        c.warnings()
    );
    // https never needs the flag and is not warned about.
    let c = Config::from_yaml_str(MINIMAL).unwrap();
    assert!(!c.bootstrap.vaas.allow_insecure_http && !c.insecure_http());
    assert!(!c.warnings().iter().any(|w| w.contains("plain HTTP")));
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
            "{:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            v.allow_insecure_http,
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

#[test]
fn mesh_issuer_namespaces_default_to_istio_system() {
    let c = Config::from_yaml_str(MINIMAL).unwrap();
    assert_eq!(c.controller.mesh_issuer_namespaces, ["istio-system"]);
    let text =
        format!("{MINIMAL}controller:\n  meshIssuerNamespaces: [istio-system, tenant-a-mesh]\n");
    let c = Config::from_yaml_str(&text).unwrap();
    assert_eq!(
        c.controller.mesh_issuer_namespaces,
        ["istio-system", "tenant-a-mesh"]
    );
    let none = format!("{MINIMAL}controller:\n  meshIssuerNamespaces: []\n");
    assert!(
        Config::from_yaml_str(&none)
            .unwrap()
            .controller
            .mesh_issuer_namespaces
            .is_empty()
    );
}

#[test]
fn a_mesh_issuer_namespace_that_is_no_namespace_name_is_named_with_its_key() {
    for bad in ["\"\"", "Istio-System", "\"*\"", "-mesh"] {
        let text = format!("{MINIMAL}controller:\n  meshIssuerNamespaces: [{bad}]\n");
        let err = Config::from_yaml_str(&text).unwrap_err();
        match &err {
            ConfigError::Invalid { key, .. } => {
                assert_eq!(key, "controller.meshIssuerNamespaces", "{bad}")
            }
            other => panic!("{bad}: unexpected {other:?}"),
        }
        assert!(
            err.to_string().contains("controller.meshIssuerNamespaces"),
            "{err}"
        );
    }
    let text = format!("{MINIMAL}controller:\n  meshIssuerNamespaces: istio-system\n");
    let err = Config::from_yaml_str(&text).unwrap_err();
    assert!(
        err.to_string().contains("controller.meshIssuerNamespaces"),
        "a scalar instead of a list names the key: {err}"
    );
}

#[test]
fn an_empty_requester_list_warns_that_every_request_is_refused() {
    let c = Config::from_yaml_str(MINIMAL).unwrap();
    assert!(c.controller.allowed_requesters.is_empty());
    let warning = c
        .warnings()
        .into_iter()
        .find(|w| w.contains("controller.allowedRequesters"))
        .expect("a warning about the empty list");
    assert!(
        warning.contains("refused") && !warning.contains("any requester may"),
        "{warning}"
    );
    let star = format!("{MINIMAL}controller:\n  allowedRequesters: [\"*\"]\n");
    assert!(
        !Config::from_yaml_str(&star)
            .unwrap()
            .warnings()
            .iter()
            .any(|w| w.contains("controller.allowedRequesters"))
    );
}

fn with_pod_signers(signers: &str) -> String {
    format!("{MINIMAL}controller:\n  podCertificates:\n    enabled: true\n    signers:\n{signers}")
}

#[test]
fn pod_certificate_signers_parse_and_list_trust_bundles() {
    let c = Config::from_yaml_str(&with_pod_signers(
        "      - signerName: firefly.venafi.com/istio-mtls\n        policyName: istio-mtls\n        trustDomain: cluster.local\n        namespaces: [\"*\"]\n        verifyPod: true\n        clusterTrustBundle: true\n      - signerName: firefly.venafi.com/other\n        policyName: p\n        trustDomain: example.org\n        namespaces: []\n",
    ))
    .unwrap();
    let pc = &c.controller.pod_certificates;
    assert!(pc.enabled);
    assert!(pc.signers[0].verify_pod);
    assert_eq!(pc.signers[1].namespaces(), &[] as &[String]);
    let bundles: Vec<&str> = pc
        .trust_bundle_signers()
        .iter()
        .map(|s| s.signer_name.as_str())
        .collect();
    assert_eq!(bundles, ["firefly.venafi.com/istio-mtls"]);
    assert!(
        !Config::from_yaml_str(MINIMAL)
            .unwrap()
            .controller
            .pod_certificates
            .enabled
    );
}

#[test]
fn bad_pod_certificate_signers_name_the_key() {
    let one = |name: &str, extra: &str| {
        format!(
            "      - signerName: {name}\n        policyName: p\n        trustDomain: cluster.local\n{extra}"
        )
    };
    let ns = "        namespaces: [\"*\"]\n";
    for (signers, key, says) in [
        (
            one("kubernetes.io/x", ns),
            "signers[0].signerName",
            "reserved",
        ),
        (
            one("firefly.venafi.com", ns),
            "signers[0].signerName",
            "exactly one '/'",
        ),
        (one("a.b/c", ""), "signers[0].namespaces", "is required"),
        (
            format!("{}{}", one("a.b/c", ns), one("a.b/c", ns)),
            "signers[1].signerName",
            "listed twice",
        ),
        (
            one("a.b/c", "        namespaces: [Bad]\n"),
            "signers[0].namespaces",
            "namespace names",
        ),
    ] {
        let err = Config::from_yaml_str(&with_pod_signers(&signers))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("controller.podCertificates.{key}")) && err.contains(says),
            "{err}"
        );
    }
    let err = Config::from_yaml_str(&format!(
        "{MINIMAL}controller:\n  podCertificates:\n    enabled: true\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("controller.podCertificates.signers"), "{err}");
}

#[test]
fn max_concurrent_reconciles_out_of_range_is_refused_at_load_naming_the_key() {
    for value in ["0", "65536", "70000"] {
        let text = format!("{MINIMAL}controller:\n  maxConcurrentReconciles: {value}\n");
        let err = Config::from_yaml_str(&text).unwrap_err().to_string();
        assert!(
            err.contains("controller.maxConcurrentReconciles") && err.contains(value),
            "{err}"
        );
        assert!(err.contains("between 1 and 65535"), "{err}");
    }
    let text = format!("{MINIMAL}controller:\n  maxConcurrentReconciles: 65535\n");
    assert_eq!(
        Config::from_yaml_str(&text)
            .unwrap()
            .controller
            .max_concurrent_reconciles,
        65535
    );
}

fn leader_election(lease: &str, renew: &str, retry: &str) -> String {
    format!(
        "{MINIMAL}controller:\n  leaderElection:\n    leaseDuration: {lease}\n    renewDeadline: {renew}\n    retryPeriod: {retry}\n"
    )
}

#[test]
fn client_go_lease_timings_and_fractional_durations_are_accepted() {
    // A leader steps down renewDeadline after the *start* of its last renewal, and a standby
    // counts leaseDuration from when it saw that renewal: renewDeadline < leaseDuration is all
    // that safety needs. leaseDurationSeconds is recorded rounded up (never shorter).
    for (lease, renew, retry) in [
        ("15s", "10s", "5s"),
        ("15s", "14s", "13s"),
        ("4500ms", "2s", "500ms"),
    ] {
        Config::from_yaml_str(&leader_election(lease, renew, retry))
            .unwrap_or_else(|e| panic!("{lease}/{renew}/{retry}: {e}"));
    }
    let err = Config::from_yaml_str(&leader_election("10s", "10s", "2s"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("controller.leaderElection.renewDeadline"),
        "{err}"
    );
}

#[test]
fn a_zero_retry_period_is_refused() {
    let err = Config::from_yaml_str(&leader_election("15s", "10s", "0s"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("controller.leaderElection.retryPeriod"),
        "{err}"
    );
}

#[test]
fn a_lease_name_that_is_no_dns_subdomain_is_refused_naming_the_key() {
    for name in [
        "Firefly",
        "firefly_controller",
        "-firefly",
        "firefly.",
        "a..b",
        "fire fly",
        &"a".repeat(254),
    ] {
        let text = format!("{MINIMAL}controller:\n  leaderElection:\n    leaseName: {name:?}\n");
        let err = Config::from_yaml_str(&text).unwrap_err().to_string();
        assert!(
            err.contains("controller.leaderElection.leaseName") && err.contains("DNS-1123"),
            "{name}: {err}"
        );
    }
    for name in [
        "firefly-controller",
        "firefly.venafi.com",
        "a",
        &"a".repeat(253),
    ] {
        let text = format!("{MINIMAL}controller:\n  leaderElection:\n    leaseName: {name}\n");
        let c = Config::from_yaml_str(&text).unwrap();
        assert_eq!(c.controller.leader_election.lease_name, name);
    }
}

#[test]
fn a_leader_election_namespace_that_is_no_namespace_name_is_refused() {
    let text = format!("{MINIMAL}controller:\n  leaderElectionNamespace: Venafi\n");
    let err = Config::from_yaml_str(&text).unwrap_err().to_string();
    assert!(err.contains("controller.leaderElectionNamespace"), "{err}");
}

#[test]
fn an_invalid_logging_level_is_refused_naming_the_key() {
    for level in ["verbose", "info,firefly=loud", "firefly[", "warning"] {
        let text = format!("{MINIMAL}logging:\n  level: {level:?}\n");
        let err = Config::from_yaml_str(&text).unwrap_err().to_string();
        assert!(err.contains("`logging.level`"), "{level}: {err}");
    }
    for level in [
        "info",
        "DEBUG",
        "firefly=debug,info",
        "warn,kube=off",
        "off",
    ] {
        let text = format!("{MINIMAL}logging:\n  level: {level:?}\n");
        let c = Config::from_yaml_str(&text).unwrap();
        assert_eq!(c.logging.level, level);
    }
}
