//! The shipped seed and seed validation: istio-mtls passes the shape rules and the core engine admits exactly istio-csr's three request kinds; bad seeds name the field.

use firefly::csr::decode_pem;
use firefly::policy::model::PolicyInformation;
use firefly::policy::{CompiledPolicy, Request, validate_shape};
use firefly::tlspc_mock::Seed;

use support::SHIPPED_SEED;

fn istio_mtls() -> PolicyInformation {
    let seed = Seed::from_yaml_str(SHIPPED_SEED).expect("shipped seed is valid");
    let doc = seed
        .policies
        .iter()
        .find(|p| p["name"] == "istio-mtls")
        .expect("istio-mtls present");
    serde_json::from_value(doc.clone()).unwrap()
}

/// A CSR shaped like istio-csr's: one empty O, optional CN, the given SANs.
fn csr_pem(cn: Option<&str>, dns: &[&str], uri: Option<&str>, ip: Option<&str>) -> String {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "");
    if let Some(cn) = cn {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    for d in dns {
        params
            .subject_alt_names
            .push(rcgen::SanType::DnsName((*d).try_into().unwrap()));
    }
    if let Some(u) = uri {
        params
            .subject_alt_names
            .push(rcgen::SanType::URI(u.try_into().unwrap()));
    }
    if let Some(ip) = ip {
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(ip.parse().unwrap()));
    }
    params.serialize_request(&kp).unwrap().pem().unwrap()
}

fn decide(pem: &str, usages: &[&str], identities: &str) -> Result<(), String> {
    let policy = CompiledPolicy::compile(&istio_mtls().to_policy()).map_err(|e| e.to_string())?;
    let csr = decode_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
    let usages: Vec<String> = usages.iter().map(|s| (*s).to_owned()).collect();
    let req = Request {
        csr: &csr,
        duration: Some("1h0m0s"),
        usages: Some(&usages),
        is_ca: false,
        identities_annotation: Some(identities),
        trust_domain: None,
        minimum_duration: std::time::Duration::from_secs(60),
    };
    policy
        .evaluate(&req, false)
        .into_result()
        .map(|_| ())
        .map_err(|d| d.to_string())
}

#[test]
fn shipped_istio_mtls_policy_passes_the_shape_rules() {
    assert_eq!(validate_shape(&istio_mtls().to_policy()), Ok(()));
}

#[test]
fn istio_mtls_admits_a_workload_svid() {
    let uri = "spiffe://cluster.local/ns/sandbox/sa/httpbin";
    let pem = csr_pem(None, &[], Some(uri), None);
    decide(&pem, &["client auth", "server auth"], uri).unwrap();
}

#[test]
fn istio_mtls_admits_istio_csr_serving_certificate() {
    let pem = csr_pem(
        None,
        &[
            "cert-manager-istio-csr.cert-manager.svc",
            "istio-csr.istio-system.svc",
            "cert-manager-istio-csr.istio-system.svc",
        ],
        None,
        None,
    );
    decide(&pem, &["server auth"], "istio-csr-serving").unwrap();
}

#[test]
fn istio_mtls_admits_istiods_certificate() {
    let uri = "spiffe://cluster.local/ns/istio-system/sa/istiod-service-account";
    let pem = csr_pem(
        Some("istiod.istio-system.svc"),
        &["istiod.istio-system.svc", "istiod-basic.istio-system.svc"],
        Some(uri),
        None,
    );
    decide(&pem, &["server auth", "client auth"], uri).unwrap();
}

#[test]
fn istio_mtls_denies_foreign_dns_names_ip_addresses_foreign_trust_domains_and_other_cns() {
    let wl = "spiffe://cluster.local/ns/a/sa/b";
    let foreign = "spiffe://other.domain/ns/a/sa/b";
    let cases = [
        (
            csr_pem(None, &["evil.example.com"], None, None),
            "istio-csr-serving",
            "sans.dnsNames",
        ),
        (
            csr_pem(None, &[], Some(wl), Some("10.0.0.1")),
            wl,
            "sans.ipAddresses",
        ),
        (
            csr_pem(None, &[], Some(foreign), None),
            foreign,
            "sans.uniformResourceIdentifiers",
        ),
        (
            csr_pem(Some("admin"), &[], Some(wl), None),
            wl,
            "subject.commonName",
        ),
    ];
    for (pem, identities, field) in &cases {
        let err =
            decide(pem, &["client auth", "server auth"], identities).expect_err("must be denied");
        assert!(err.contains(field), "denial names {field}: {err}");
    }
}

fn seed_error(yaml: &str) -> String {
    Seed::from_yaml_str(yaml).unwrap_err().to_string()
}

#[test]
fn bad_seeds_are_refused_with_the_path_of_the_bad_field() {
    let cases: [(String, &str); 9] = [
        (SHIPPED_SEED.replace("apiKeys:", "apiKeyz:"), "apiKeyz"),
        (
            SHIPPED_SEED.replace(
                "clientId: 3f6f2b1e-8d4c-4a7e-9b5d-2c1e0f9a7d31",
                "clientId: not-a-uuid",
            ),
            "serviceAccounts[0].clientId",
        ),
        (
            SHIPPED_SEED.replace("subCaProvider: firefly-builtin-ca", "subCaProvider: nope"),
            "configurations[0].subCaProvider",
        ),
        (
            SHIPPED_SEED.replace("policies: [istio-mtls]", "policies: [istio-mtlz]"),
            "configurations[0].policies[0]",
        ),
        (
            SHIPPED_SEED.replace(
                "ipAddresses: {type: FORBIDDEN}",
                "ipAddresses: {type: FORBIDDEN, bogus: 1}",
            ),
            "policies[0].sans.ipAddresses.bogus",
        ),
        (
            SHIPPED_SEED.replace("validityPeriod: P7D", "validityPeriod: 7 days"),
            "subCaProviders[0].validityPeriod",
        ),
        (
            SHIPPED_SEED.replace(
                "validityPeriod: PT1H",
                "validityPeriod: PT1H\n    keyUsages: [keyCertSign]",
            ),
            "policies[0]",
        ),
        (
            SHIPPED_SEED.replace("caType: BUILTIN", "caType: DIGICERT"),
            "subCaProviders[0].caType",
        ),
        (
            format!("{SHIPPED_SEED}\nfaults:\n  routeErrors: [{{route: token, status: 7}}]\n"),
            "routeErrors[0].status",
        ),
    ];
    for (yaml, needle) in cases {
        let err = seed_error(&yaml);
        assert!(err.contains(needle), "expected {needle:?} in: {err}");
    }
}

/// Parse errors (serde-saphyr) name the full key path, the missing, duplicate or ill-typed key
/// itself included, and the line.
#[test]
fn seed_parse_errors_name_the_whole_key_path() {
    let account = "clientId: 3f6f2b1e-8d4c-4a7e-9b5d-2c1e0f9a7d31\n";
    let cases: [(String, &str); 4] = [
        (
            SHIPPED_SEED.replace(account, "scopes: [distributed-issuance]\n"),
            "invalid seed at serviceAccounts[0].clientId: missing field `clientId`",
        ),
        (
            SHIPPED_SEED.replace(account, &format!("{account}    revoked: yes\n")),
            "invalid seed at serviceAccounts[0].revoked: ",
        ),
        (
            SHIPPED_SEED.replace(account, &format!("{account}    name: again\n")),
            "invalid seed at serviceAccounts[0].name: duplicate mapping key",
        ),
        (
            format!("{SHIPPED_SEED}\ntokenExpiresIn: soon\n"),
            "invalid seed at tokenExpiresIn: ",
        ),
    ];
    for (yaml, needle) in cases {
        let err = seed_error(&yaml);
        assert!(err.starts_with(needle), "expected {needle:?} in: {err}");
        assert!(err.contains("line "), "the line is named: {err}");
    }
}

#[test]
fn a_service_account_attached_twice_is_refused() {
    let yaml = SHIPPED_SEED.replace(
        "configurations:\n",
        "configurations:\n  - {name: other, subCaProvider: firefly-builtin-ca, serviceAccounts: [firefly]}\n",
    );
    let err = seed_error(&yaml);
    assert!(err.contains("already attached"), "{err}");
}

#[test]
fn seed_loaded_from_a_missing_file_names_the_file() {
    let err = Seed::load(std::path::Path::new("/nonexistent/seed.yaml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/seed.yaml"), "{err}");
}
