use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;
use crate::key::KeyAlgorithm;
use crate::policy::model::{KeyAlgorithmRule, Policy, PropertyRule, PropertyType};

const URI: &str = "spiffe://cluster.local/ns/default/sa/sleep";

fn ca_params(cn: &str, now: SystemTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name
        .push(DnType::OrganizationName, "Core Test");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.use_authority_key_identifier_extension = true;
    p.not_before = (now - Duration::from_secs(3600)).into();
    p.not_after = (now + Duration::from_secs(30 * 24 * 3600)).into();
    p
}

/// A root and a sub-CA under it, both P-256.
fn sub_ca(now: SystemTime) -> SubCa {
    let root_key = KeyPair::generate().unwrap();
    let root_params = ca_params("Core Test Root", now);
    let root = root_params.self_signed(&root_key).unwrap();
    let sub_key = Arc::new(KeyPair::generate().unwrap());
    let mut sub_params = ca_params("Core Test Sub-CA", now);
    sub_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let sub = sub_params
        .signed_by(sub_key.as_ref(), &Issuer::new(root_params, &root_key))
        .unwrap();
    SubCa::new(sub.der().to_vec(), vec![root.der().to_vec()], sub_key).unwrap()
}

fn rule(kind: PropertyType, allowed: &[&str], min: i32, max: i32) -> Option<PropertyRule> {
    Some(PropertyRule {
        kind: Some(kind),
        allowed_values: allowed.iter().map(|s| s.to_string()).collect(),
        default_values: Vec::new(),
        min_occurrences: min,
        max_occurrences: max,
    })
}

fn workload_policy() -> CompiledPolicy {
    let mut p = Policy {
        name: "workloads".into(),
        validity_period: Some("PT1H".into()),
        key_usages: vec!["digitalSignature".into(), "keyEncipherment".into()],
        extended_key_usages: vec!["SERVER_AUTH".into(), "CLIENT_AUTH".into()],
        key_algorithm: Some(KeyAlgorithmRule {
            allowed_values: vec![KeyAlgorithm::EcP256, KeyAlgorithm::Rsa2048],
            default_value: Some(KeyAlgorithm::EcP256),
        }),
        ..Policy::default()
    };
    p.subject.common_name = rule(PropertyType::Forbidden, &[], 0, 0);
    p.sans.dns_names = rule(PropertyType::Optional, &[r"^.*\.svc$"], 0, 2);
    p.sans.uniform_resource_identifiers = rule(
        PropertyType::Required,
        &[r"^spiffe://cluster\.local/ns/.*/sa/.*"],
        1,
        1,
    );
    CompiledPolicy::compile(&p).unwrap()
}

fn csr_pem(key: &KeyPair, uri: &str) -> String {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    params.serialize_request(key).unwrap().pem().unwrap()
}

/// Every requester, every namespace: `"*"` on the controller list, no issuer lists, exempt.
fn everyone() -> Scope<'static> {
    static STAR: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| vec!["*".to_owned()]);
    Scope::Requester {
        username: Some("system:serviceaccount:istio-system:istio-csr"),
        controller_allowed: STAR.as_slice(),
        issuer_allowed: None,
        allowed_policies: None,
        identity_namespaces: IdentityNamespaces::Any,
    }
}

fn request<'a>(subject: Subject<'a>, scope: Scope<'a>) -> IssuanceRequest<'a> {
    IssuanceRequest {
        subject,
        scope,
        policy: "workloads",
        duration: Some("30m"),
        usages: None,
        is_ca: false,
        trust_domain: None,
    }
}

fn leaf_spki(issued: &Issued) -> Vec<u8> {
    let first = issued
        .chain_pem
        .split("-----END CERTIFICATE-----")
        .next()
        .unwrap();
    let body: String = first.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    cert.tbs_certificate.subject_pki.raw.to_vec()
}

fn issued(outcome: Outcome) -> Issued {
    match outcome {
        Outcome::Issued(issued) => issued,
        other => panic!("expected a certificate, got {other:?}"),
    }
}

#[test]
fn a_pkcs10_request_and_an_asserted_key_are_both_issued_through_the_seam() {
    let now = SystemTime::now();
    let ca = sub_ca(now);
    let policy = workload_policy();
    let opts = IssueOptions::default();

    // Shape (a): the CSR's SANs are the claimed identity.
    let csr_key = KeyPair::generate().unwrap();
    let pem = csr_pem(&csr_key, URI);
    let from_csr = issued(issue(
        &ca,
        &policy,
        &request(
            Subject::Csr {
                pem: pem.as_bytes(),
                identities_annotation: None,
            },
            everyone(),
        ),
        &opts,
        now,
    ));
    assert_eq!(from_csr.spiffe_id.as_ref().map(|i| i.as_str()), Some(URI));
    assert_eq!(leaf_spki(&from_csr), csr_key.subject_public_key_info());
    assert_eq!(
        from_csr
            .not_after
            .duration_since(from_csr.not_before)
            .unwrap(),
        Duration::from_secs(30 * 60 + 10),
        "30 minutes asked for, backdated 10 s"
    );

    // Shape (b): a bare key plus the identity the front door asserts; no CSR exists.
    let pod_key = KeyPair::generate().unwrap();
    let spki = pod_key.subject_public_key_info();
    let identity = AssertedIdentity {
        spiffe_id: "spiffe://cluster.local/ns/apps/sa/web".parse().unwrap(),
        dns_names: vec!["web.apps.svc".into()],
    };
    let namespaces = vec!["apps".to_owned()];
    let from_key = issued(issue(
        &ca,
        &policy,
        &request(
            Subject::AssertedKey {
                public_key_der: &spki,
                identity: &identity,
            },
            Scope::Signer {
                namespace: "apps",
                namespaces: &namespaces,
            },
        ),
        &opts,
        now,
    ));
    assert_eq!(from_key.spiffe_id.as_ref(), Some(&identity.spiffe_id));
    assert_eq!(from_key.dns_names, identity.dns_names);
    assert_eq!(
        leaf_spki(&from_key),
        spki,
        "only the key comes from the caller"
    );
}

#[test]
fn scopes_refuse_before_anything_is_decoded() {
    let now = SystemTime::now();
    let ca = sub_ca(now);
    let policy = workload_policy();
    let garbage = Subject::Csr {
        pem: b"not a request",
        identities_annotation: None,
    };
    let allowed = vec!["system:serviceaccount:istio-system:istio-csr".to_owned()];
    let refused = issue(
        &ca,
        &policy,
        &request(
            garbage,
            Scope::Requester {
                username: Some("mallory"),
                controller_allowed: &allowed,
                issuer_allowed: None,
                allowed_policies: None,
                identity_namespaces: IdentityNamespaces::Any,
            },
        ),
        &IssueOptions::default(),
        now,
    );
    assert!(
        matches!(&refused, Outcome::Refused { reason: "RequesterNotAllowed", message } if message.contains("\"mallory\"")),
        "{refused:?}"
    );
    for namespaces in [vec![], vec!["other".to_owned()]] {
        let refused = issue(
            &ca,
            &policy,
            &request(
                garbage,
                Scope::Signer {
                    namespace: "apps",
                    namespaces: &namespaces,
                },
            ),
            &IssueOptions::default(),
            now,
        );
        assert!(
            matches!(
                &refused,
                Outcome::Refused {
                    reason: "NamespaceNotAllowed",
                    ..
                }
            ),
            "{namespaces:?}: {refused:?}"
        );
    }
    let every = vec!["*".to_owned()];
    let scope = Scope::Signer {
        namespace: "apps",
        namespaces: &every,
    };
    assert_eq!(scope.authorize("workloads"), Ok(()));
}

#[test]
fn asserted_identities_and_keys_still_answer_to_the_policy() {
    let now = SystemTime::now();
    let ca = sub_ca(now);
    let policy = workload_policy();
    let key = KeyPair::generate().unwrap();
    let spki = key.subject_public_key_info();
    let outsider = AssertedIdentity {
        spiffe_id: "spiffe://elsewhere.example/ns/apps/sa/web".parse().unwrap(),
        dns_names: vec![],
    };
    let denied = issue(
        &ca,
        &policy,
        &request(
            Subject::AssertedKey {
                public_key_der: &spki,
                identity: &outsider,
            },
            everyone(),
        ),
        &IssueOptions::default(),
        now,
    );
    assert!(
        matches!(&denied, Outcome::Refused { reason: "PolicyDenied", message } if message.contains("elsewhere.example")),
        "{denied:?}"
    );
    let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let p384_spki = p384.subject_public_key_info();
    let identity = AssertedIdentity {
        spiffe_id: URI.parse().unwrap(),
        dns_names: vec![],
    };
    let wrong_key = issue(
        &ca,
        &policy,
        &request(
            Subject::AssertedKey {
                public_key_der: &p384_spki,
                identity: &identity,
            },
            everyone(),
        ),
        &IssueOptions::default(),
        now,
    );
    assert!(
        matches!(&wrong_key, Outcome::Refused { reason: "PolicyDenied", message } if message.contains("EC_P384")),
        "{wrong_key:?}"
    );
    let mut truncated = spki.clone();
    truncated.truncate(spki.len() - 4);
    let bad_key = issue(
        &ca,
        &policy,
        &request(
            Subject::AssertedKey {
                public_key_der: &truncated,
                identity: &identity,
            },
            everyone(),
        ),
        &IssueOptions::default(),
        now,
    );
    assert!(
        matches!(
            &bad_key,
            Outcome::Refused {
                reason: "InvalidRequest",
                ..
            }
        ),
        "{bad_key:?}"
    );
}

#[test]
fn an_expired_sub_ca_asks_the_front_door_to_retry() {
    let now = SystemTime::now();
    let ca = sub_ca(now);
    let policy = workload_policy();
    let key = KeyPair::generate().unwrap();
    let pem = csr_pem(&key, URI);
    let later = now + Duration::from_secs(60 * 24 * 3600);
    let outcome = issue(
        &ca,
        &policy,
        &request(
            Subject::Csr {
                pem: pem.as_bytes(),
                identities_annotation: None,
            },
            everyone(),
        ),
        &IssueOptions::default(),
        later,
    );
    assert!(
        matches!(
            &outcome,
            Outcome::Retry {
                reason: "SubCaNotValid",
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[test]
fn a_policy_refusal_names_the_policy_once() {
    let now = SystemTime::now();
    let ca = sub_ca(now);
    let policy = workload_policy();
    let key = KeyPair::generate().unwrap();
    let pem = csr_pem(&key, "spiffe://elsewhere.example/ns/default/sa/sleep");
    let denied = issue(
        &ca,
        &policy,
        &request(
            Subject::Csr {
                pem: pem.as_bytes(),
                identities_annotation: None,
            },
            everyone(),
        ),
        &IssueOptions::default(),
        now,
    );
    let Outcome::Refused {
        reason: "PolicyDenied",
        message,
    } = &denied
    else {
        panic!("expected a policy refusal, got {denied:?}");
    };
    assert_eq!(
        message.matches("\"workloads\"").count(),
        1,
        "the policy is named exactly once: {message}"
    );
    assert!(message.contains("elsewhere.example"), "{message}");
}

#[test]
fn an_identity_outside_the_namespace_is_refused_before_the_policy_and_unsigned() {
    let now = SystemTime::now();
    let ca = sub_ca(now);
    let policy = workload_policy();
    let key = KeyPair::generate().unwrap();
    let allowed = vec!["system:serviceaccount:team-a:author".to_owned()];
    let team_a = vec!["team-a".to_owned()];
    let scope = Scope::Requester {
        username: Some("system:serviceaccount:team-a:author"),
        controller_allowed: &allowed,
        issuer_allowed: None,
        allowed_policies: None,
        identity_namespaces: IdentityNamespaces::Only(&team_a),
    };
    // istiod's identity: the policy (ns/.*) would admit it; only the namespace rule stops it.
    let istiod = csr_pem(
        &key,
        "spiffe://cluster.local/ns/istio-system/sa/istiod-service-account",
    );
    let refused = issue(
        &ca,
        &policy,
        &request(
            Subject::Csr {
                pem: istiod.as_bytes(),
                identities_annotation: None,
            },
            scope,
        ),
        &IssueOptions::default(),
        now,
    );
    assert!(
        matches!(&refused, Outcome::Refused { reason: "IdentityOutsideNamespace", message }
            if message.contains("istio-system") && message.contains("team-a")),
        "{refused:?}"
    );
    // The same scope signs its own namespace's identity.
    let own = csr_pem(&key, "spiffe://cluster.local/ns/team-a/sa/web");
    let signed = issued(issue(
        &ca,
        &policy,
        &request(
            Subject::Csr {
                pem: own.as_bytes(),
                identities_annotation: None,
            },
            scope,
        ),
        &IssueOptions::default(),
        now,
    ));
    assert_eq!(
        signed.spiffe_id.as_ref().map(|i| i.as_str()),
        Some("spiffe://cluster.local/ns/team-a/sa/web")
    );
    // An issuer that limits the policies refuses another policy before decoding.
    let only_other = vec!["other".to_owned()];
    let limited = Scope::Requester {
        username: Some("system:serviceaccount:team-a:author"),
        controller_allowed: &allowed,
        issuer_allowed: None,
        allowed_policies: Some(&only_other),
        identity_namespaces: IdentityNamespaces::Only(&team_a),
    };
    let refused = issue(
        &ca,
        &policy,
        &request(
            Subject::Csr {
                pem: b"not a request",
                identities_annotation: None,
            },
            limited,
        ),
        &IssueOptions::default(),
        now,
    );
    assert!(
        matches!(&refused, Outcome::Refused { reason: "PolicyDenied", message }
            if message.contains("spec.allowedPolicies") && message.contains("\"workloads\"")),
        "{refused:?}"
    );
}

#[test]
fn a_policy_names_its_required_fields_and_key_algorithms() {
    let policy = workload_policy();
    assert_eq!(
        policy.required_fields(),
        ["sans.uniformResourceIdentifiers"]
    );
    assert_eq!(
        policy.key_algorithms(),
        [KeyAlgorithm::EcP256, KeyAlgorithm::Rsa2048]
    );
}

/// [`workload_policy`] with `edit` applied: every key type, and whatever the test changes.
fn policy_with(edit: impl FnOnce(&mut Policy)) -> CompiledPolicy {
    let mut p = Policy {
        name: "workloads".into(),
        validity_period: Some("PT1H".into()),
        key_usages: vec!["digitalSignature".into(), "keyEncipherment".into()],
        extended_key_usages: vec!["SERVER_AUTH".into(), "CLIENT_AUTH".into()],
        key_algorithm: Some(KeyAlgorithmRule {
            allowed_values: vec![
                KeyAlgorithm::EcP256,
                KeyAlgorithm::EcP384,
                KeyAlgorithm::EcEd25519,
                KeyAlgorithm::Rsa2048,
            ],
            default_value: Some(KeyAlgorithm::EcP256),
        }),
        ..Policy::default()
    };
    p.sans.uniform_resource_identifiers = rule(
        PropertyType::Required,
        &[r"^spiffe://cluster\.local/ns/.*/sa/.*"],
        1,
        1,
    );
    edit(&mut p);
    CompiledPolicy::compile(&p).unwrap()
}

/// Issues `pem` under `policy` with `duration`, through the seam, now.
fn issue_pem(policy: &CompiledPolicy, pem: &str, duration: Option<&str>) -> Outcome {
    issue_pem_with(policy, pem, |req| req.duration = duration)
}

/// Issues `pem` under `policy` through the seam, now, with the request `edit` made.
fn issue_pem_with<'a>(
    policy: &CompiledPolicy,
    pem: &'a str,
    edit: impl FnOnce(&mut IssuanceRequest<'a>),
) -> Outcome {
    let now = SystemTime::now();
    let ca = sub_ca(now);
    let mut req = request(
        Subject::Csr {
            pem: pem.as_bytes(),
            identities_annotation: None,
        },
        everyone(),
    );
    edit(&mut req);
    issue(&ca, policy, &req, &IssueOptions::default(), now)
}

fn leaf_of(issued: &Issued) -> Vec<u8> {
    let first = issued
        .chain_pem
        .split("-----END CERTIFICATE-----")
        .next()
        .unwrap();
    let body: String = first.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// A malformed key in a request is the request's fault, refused at once (x509-svid §4): it used to
/// decode, fail the post-sign key comparison (C19) and come back as a Retry, for ever.
#[test]
fn a_malformed_request_key_is_refused_not_retried() {
    use crate::csr::testing;
    let policy = policy_with(|_| {});
    let rsa = testing::rsa2048();
    let cases = [
        (
            "RSA without NULL parameters",
            testing::rsa_csr_without_null_params(&rsa, URI),
        ),
        (
            "P-256 with 1 unused bit",
            testing::csr_with_one_unused_key_bit(
                &testing::with_even_last_octet(testing::p256),
                URI,
            ),
        ),
        (
            "Ed25519 with 1 unused bit",
            testing::csr_with_one_unused_key_bit(
                &testing::with_even_last_octet(testing::ed25519),
                URI,
            ),
        ),
    ];
    for (name, der) in cases {
        match issue_pem(&policy, &testing::to_pem(&der), None) {
            Outcome::Refused { reason, message } => {
                assert_eq!(reason, reason::INVALID_REQUEST, "{name}: {message}");
                assert!(
                    message.contains("public key is invalid"),
                    "{name}: {message}"
                );
            }
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
    }
}

/// The lifetime is whole seconds: a fractional second in the requested duration or in the
/// policy's validityPeriod is dropped before the policy decides. It used to reach the template,
/// whose NotAfter kept the nanoseconds while the certificate could not, so the post-sign window
/// check (C21) failed on every attempt.
#[test]
fn a_fractional_second_is_dropped_from_the_lifetime_not_retried_for_ever() {
    let backdate = IssueOptions::default().backdate;
    let lifetime = |outcome: Outcome| {
        let issued = issued(outcome);
        issued.not_after.duration_since(issued.not_before).unwrap() - backdate
    };
    let two_hours = policy_with(|p| p.validity_period = Some("PT2H".into()));
    assert_eq!(
        lifetime(issue_pem(
            &two_hours,
            &csr_pem(&KeyPair::generate().unwrap(), URI),
            Some("59m59.5s")
        )),
        Duration::from_secs(3599)
    );
    let ninety = policy_with(|p| p.validity_period = Some("PT90.5S".into()));
    assert_eq!(ninety.max_validity(), Duration::from_secs(90));
    assert_eq!(
        lifetime(issue_pem(
            &ninety,
            &csr_pem(&KeyPair::generate().unwrap(), URI),
            None
        )),
        Duration::from_secs(90)
    );
    // Asked for more than the policy grants: clamped to the whole-second 90 s.
    assert_eq!(
        lifetime(issue_pem(
            &ninety,
            &csr_pem(&KeyPair::generate().unwrap(), URI),
            Some("95.5s")
        )),
        Duration::from_secs(90)
    );
}

/// keyAgreement is for (EC)DH keys: RFC 3279 §2.3.1 forbids it with RSA and RFC 8410 §5 with
/// Ed25519 (pkilint: key_usage_value_prohibited_for_rsa / _for_edwards_curve). A policy granting
/// it gives it to P-256 and P-384 leaves only, as keyEncipherment goes to RSA leaves only.
#[test]
fn key_agreement_is_issued_to_ec_keys_only() {
    use crate::csr::testing;
    let policy = policy_with(|p| {
        p.key_usages = vec!["digitalSignature".into(), "keyAgreement".into()];
    });
    let key_usage = |key: &KeyPair, usages: Option<&[String]>| {
        let pem = csr_pem(key, URI);
        let der = leaf_of(&issued(issue_pem_with(&policy, &pem, |req| {
            req.usages = usages;
        })));
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let ku = cert.key_usage().unwrap().unwrap().value;
        (ku.digital_signature(), ku.key_agreement())
    };
    // Asked for through cert-manager's usages too: dropped for RSA and Ed25519, not refused.
    let asked = ["digital signature".to_owned(), "key agreement".to_owned()];
    for (name, key) in [
        ("RSA-2048", testing::rsa2048()),
        ("Ed25519", testing::ed25519()),
    ] {
        assert_eq!(key_usage(&key, None), (true, false), "{name}");
        assert_eq!(key_usage(&key, Some(&asked)), (true, false), "{name}");
    }
    for (name, key) in [
        ("P-256", testing::p256()),
        (
            "P-384",
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
        ),
    ] {
        assert_eq!(key_usage(&key, None), (true, true), "{name}");
        assert_eq!(key_usage(&key, Some(&asked)), (true, true), "{name}");
    }
}

/// Subject values are held to X.520 as RFC 5280 Appendix A profiles it, before signing:
/// countryName is exactly two PrintableString characters (an ISO 3166 code); commonName,
/// organizationName and organizationalUnitName at most 64 characters; localityName and
/// stateOrProvinceName at most 128. They used to be signed (a bad country as UTF8String).
#[test]
fn subject_values_outside_x520_syntax_are_refused_before_signing() {
    use crate::csr::testing::{self, OID_C, OID_CN};
    let policy = policy_with(|p| {
        p.subject.common_name = rule(PropertyType::Optional, &[], 0, 1);
        p.subject.country = rule(PropertyType::Optional, &[], 0, 1);
    });
    let outcome = |attrs: &[(&[u8], u8, &str)]| {
        let key = testing::p256();
        let spki = key.subject_public_key_info();
        let der = testing::csr_der(&key, &spki, &testing::name(attrs), URI);
        issue_pem(&policy, &testing::to_pem(&der), None)
    };
    let cn_64 = "a".repeat(64);
    let cn_65 = "a".repeat(65);
    for (attrs, needles) in [
        (vec![(OID_C, 0x13, "Germany")], ["countryName", "2"]),
        (vec![(OID_C, 0x13, "?")], ["countryName", "2"]),
        (
            vec![(OID_C, 0x0c, "DÉ")],
            ["countryName", "PrintableString"],
        ),
        (vec![(OID_CN, 0x0c, cn_65.as_str())], ["commonName", "64"]),
    ] {
        match outcome(&attrs) {
            Outcome::Refused { reason, message } => {
                assert_eq!(reason, "PolicyDenied", "{attrs:?}: {message}");
                for needle in needles {
                    assert!(message.contains(needle), "{attrs:?}: {message}");
                }
            }
            other => panic!("{attrs:?}: expected a refusal, got {other:?}"),
        }
    }
    let der = leaf_of(&issued(outcome(&[
        (OID_C, 0x13, "DE"),
        (OID_CN, 0x0c, cn_64.as_str()),
    ])));
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let country = cert.subject().iter_country().next().unwrap();
    assert_eq!(
        country.attr_value().tag(),
        x509_parser::der_parser::asn1_rs::Tag::PrintableString
    );
    assert_eq!(country.as_str().unwrap(), "DE");
    let cn = cert.subject().iter_common_name().next().unwrap();
    assert_eq!(cn.as_str().unwrap(), cn_64);

    // A policy's LOCKED default is held to the same rules.
    let locked = policy_with(|p| {
        p.subject.organization = Some(PropertyRule {
            kind: Some(PropertyType::Locked),
            allowed_values: Vec::new(),
            default_values: vec!["o".repeat(65)],
            min_occurrences: 0,
            max_occurrences: 0,
        });
    });
    match issue_pem(&locked, &csr_pem(&KeyPair::generate().unwrap(), URI), None) {
        Outcome::Refused { reason, message } => {
            assert_eq!(reason, "PolicyDenied", "{message}");
            assert!(
                message.contains("organizationName") && message.contains("64"),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn csr_pem_with_sans(key: &KeyPair, dns: &str, uri: &str) -> String {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![
        SanType::DnsName(dns.try_into().unwrap()),
        SanType::URI(uri.try_into().unwrap()),
    ];
    params.serialize_request(key).unwrap().pem().unwrap()
}

/// The URI SANs of the leaf in `issued`.
fn leaf_uris(issued: &Issued) -> Vec<String> {
    let der = leaf_of(issued);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let Some(san) = cert.subject_alternative_name().unwrap() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => Some((*u).to_owned()),
            _ => None,
        })
        .collect()
}

/// URIs under an IGNORED URI property are dropped from the leaf and take no part in the decision:
/// no SPIFFE parsing (a non-SPIFFE URI used to be refused under C15), no SPIFFE ID (a SPIFFE URI
/// used to name, in `Issued.spiffe_id` and the audit line, an identity the leaf does not carry),
/// no SVID rule (C9 used to demand SERVER_AUTH and CLIENT_AUTH of a leaf with no URI SAN).
#[test]
fn ignored_uris_take_no_part_in_the_decision() {
    let ignored = |ekus: &[&str]| {
        let ekus: Vec<String> = ekus.iter().map(|e| (*e).to_owned()).collect();
        policy_with(|p| {
            p.extended_key_usages = ekus;
            p.sans.uniform_resource_identifiers = rule(PropertyType::Ignored, &[], 0, 0);
            p.sans.dns_names = rule(PropertyType::Optional, &[], 0, 1);
        })
    };
    let mesh = ignored(&["SERVER_AUTH", "CLIENT_AUTH"]);
    let server_only = ignored(&["SERVER_AUTH"]);
    for (name, policy) in [("mesh EKUs", &mesh), ("SERVER_AUTH only", &server_only)] {
        for uri in ["https://x", URI] {
            let pem = csr_pem_with_sans(&KeyPair::generate().unwrap(), "web.apps.svc", uri);
            let outcome = issue_pem(policy, &pem, None);
            let Outcome::Issued(leaf) = outcome else {
                panic!("{name}, {uri}: expected a certificate, got {outcome:?}");
            };
            assert_eq!(leaf.spiffe_id, None, "{name}, {uri}");
            assert_eq!(leaf.dns_names, ["web.apps.svc"], "{name}, {uri}");
            assert_eq!(leaf_uris(&leaf), Vec::<String>::new(), "{name}, {uri}");
        }
    }
}

/// rcgen's DistinguishedName holds one value per attribute type (a second `push` replaces the
/// first), so a subject with OU=a, OU=b used to be issued as OU=b alone, and LOCKED defaults
/// ["A", "B"] as "B". Such a subject is refused before signing, naming the attribute.
#[test]
fn several_values_of_one_subject_attribute_are_refused_not_cut() {
    use crate::csr::testing::{self, OID_CN};
    const OID_OU: &[u8] = &[0x55, 0x04, 0x0b];
    let policy = policy_with(|p| {
        p.subject.organizational_unit = rule(PropertyType::Optional, &[], 0, 2);
        p.subject.common_name = rule(PropertyType::Optional, &[], 0, 1);
    });
    let outcome = |attrs: &[(&[u8], u8, &str)]| {
        let key = testing::p256();
        let spki = key.subject_public_key_info();
        let der = testing::csr_der(&key, &spki, &testing::name(attrs), URI);
        issue_pem(&policy, &testing::to_pem(&der), None)
    };
    match outcome(&[(OID_OU, 0x0c, "a"), (OID_OU, 0x0c, "b")]) {
        Outcome::Refused { reason, message } => {
            assert_eq!(reason, "PolicyDenied", "{message}");
            assert!(
                message.contains("the issuer writes one organizationalUnitName")
                    && message.contains("the request carries 2"),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // One value of each attribute is issued, all of them.
    let der = leaf_of(&issued(outcome(&[
        (OID_OU, 0x0c, "a"),
        (OID_CN, 0x0c, "web"),
    ])));
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let ous: Vec<&str> = cert
        .subject()
        .iter_organizational_unit()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(ous, ["a"]);

    // The policy's LOCKED defaults are held to the same rule.
    let locked = policy_with(|p| {
        p.subject.organizational_unit = Some(PropertyRule {
            kind: Some(PropertyType::Locked),
            allowed_values: Vec::new(),
            default_values: vec!["A".into(), "B".into()],
            min_occurrences: 0,
            max_occurrences: 0,
        });
    });
    match issue_pem(&locked, &csr_pem(&KeyPair::generate().unwrap(), URI), None) {
        Outcome::Refused { reason, message } => {
            assert_eq!(reason, "PolicyDenied", "{message}");
            assert!(
                message.contains("the issuer writes one organizationalUnitName")
                    && message.contains("the policy's LOCKED defaults carry 2"),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
