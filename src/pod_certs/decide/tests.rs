use std::time::{Duration, SystemTime};

use firefly_core::key::KeyAlgorithm;
use firefly_core::policy::CompiledPolicy;
use firefly_core::policy::model::{KeyAlgorithmRule, Policy, PropertyRule, PropertyType};
use rcgen::{CertificateParams, DistinguishedName, KeyPair, PublicKeyData, SignatureAlgorithm};

use super::*;

const SIGNER: &str = "firefly.venafi.com/istio-mtls";

fn policy(validity: &str, keys: &[KeyAlgorithm]) -> CompiledPolicy {
    CompiledPolicy::compile(&policy_model(validity, keys)).unwrap()
}

fn policy_model(validity: &str, keys: &[KeyAlgorithm]) -> Policy {
    let mut p = Policy {
        name: "istio-mtls".into(),
        validity_period: Some(validity.into()),
        key_usages: vec!["digitalSignature".into(), "keyEncipherment".into()],
        extended_key_usages: vec!["SERVER_AUTH".into(), "CLIENT_AUTH".into()],
        key_algorithm: Some(KeyAlgorithmRule {
            allowed_values: keys.to_vec(),
            default_value: keys.first().copied(),
        }),
        ..Policy::default()
    };
    p.sans.uniform_resource_identifiers = Some(PropertyRule {
        kind: Some(PropertyType::Required),
        allowed_values: vec![r"^spiffe://cluster\.local/ns/.*/sa/.*".into()],
        default_values: Vec::new(),
        min_occurrences: 1,
        max_occurrences: 1,
    });
    p
}

fn p256_policy() -> CompiledPolicy {
    policy("P1D", &[KeyAlgorithm::EcP256, KeyAlgorithm::Rsa3072])
}

fn signer(verify_pod: bool) -> SignerSettings {
    SignerSettings {
        signer_name: SIGNER.into(),
        policy_name: "istio-mtls".into(),
        trust_domain: "cluster.local".parse().unwrap(),
        namespaces: vec!["apps".into()],
        verify_pod,
    }
}

/// A kubelet's stub: empty subject, no extensions, signed by a fresh key of `alg`.
fn stub(alg: &'static SignatureAlgorithm) -> Vec<u8> {
    stub_of(&KeyPair::generate_for(alg).unwrap())
}

/// A kubelet's stub signed by `key`.
fn stub_of(key: &KeyPair) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.serialize_request(key).unwrap().der().to_vec()
}

fn spec_with_stub(stub: Vec<u8>) -> PcrSpec {
    PcrSpec {
        signer_name: SIGNER.into(),
        pod_name: "web-0".into(),
        pod_uid: "pod-uid".into(),
        service_account_name: "web".into(),
        node_name: "node-1".into(),
        max_expiration_seconds: Some(3600),
        pkix_public_key: None,
        stub_pkcs10_request: Some(ByteString(stub)),
        unverified_user_annotations: None,
    }
}

fn request<'a>(spec: &'a PcrSpec, namespace: &'a str) -> Request<'a> {
    Request {
        namespace,
        spec,
        status: None,
        age: Duration::from_secs(5),
    }
}

const V1: View = View::V1 {
    v1beta1_served: false,
};

fn denied(d: &Decision) -> (&'static str, &str) {
    match d {
        Decision::Answer(Answer::Denied { reason, message }) => (reason, message),
        other => panic!("expected Denied, got {other:?}"),
    }
}

/// The plan for `spec` in namespace `apps` under the P-256 policy (panics on any other decision).
fn planned(spec: &PcrSpec) -> Plan {
    let d = decide(
        &request(spec, "apps"),
        V1,
        &signer(false),
        Some(&p256_policy()),
        PodLookup::NotRequired,
    );
    match d {
        Decision::Sign(plan) => plan,
        other => panic!("expected a plan, got {other:?}"),
    }
}

#[test]
fn a_p256_stub_is_planned_with_the_asserted_identity_and_the_cap() {
    let spec = spec_with_stub(stub(&rcgen::PKCS_ECDSA_P256_SHA256));
    let plan = planned(&spec);
    assert_eq!(
        plan.identity.spiffe_id.as_str(),
        "spiffe://cluster.local/ns/apps/sa/web"
    );
    assert!(plan.identity.dns_names.is_empty());
    assert_eq!(plan.max_window, Duration::from_secs(3600));
    let mut no_max = spec.clone();
    no_max.max_expiration_seconds = None;
    assert_eq!(planned(&no_max).max_window, DEFAULT_MAX_EXPIRATION);
}

/// kube-apiserver verifies the stub's signature at admission; the door takes only its key (a
/// stub whose signature does not verify never reaches it on a real server, and signing its key
/// gives nothing to anyone who lacks the private key).
#[test]
fn only_the_stubs_key_is_read_its_signature_is_the_api_servers_to_verify() {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut der = stub_of(&key);
    *der.last_mut().unwrap() ^= 1;
    let plan = planned(&spec_with_stub(der));
    assert_eq!(
        plan.public_key_der,
        rcgen::PublicKeyData::subject_public_key_info(&key)
    );
}

#[test]
fn key_types_outside_the_policy_or_unserved_are_unsupported_never_policy_denied() {
    for (alg, shown) in [
        (&rcgen::PKCS_ECDSA_P384_SHA384, "ECDSAP384"),
        (&rcgen::PKCS_ED25519, "ED25519"),
        (&rcgen::PKCS_ECDSA_P521_SHA512, "P-521"),
    ] {
        let spec = spec_with_stub(stub(alg));
        let d = decide(
            &request(&spec, "apps"),
            V1,
            &signer(false),
            Some(&p256_policy()),
            PodLookup::NotRequired,
        );
        let (reason, message) = denied(&d);
        assert_eq!(reason, "UnsupportedKeyType", "{shown}: {message}");
        assert!(message.contains(shown), "{message}");
        assert!(
            message.contains("accepted key types: ECDSAP256, RSA3072"),
            "{message}"
        );
    }
    // P-521 is refused even when the policy admits it.
    let all = policy("P1D", &[KeyAlgorithm::EcP521, KeyAlgorithm::EcP256]);
    let spec = spec_with_stub(stub(&rcgen::PKCS_ECDSA_P521_SHA512));
    let d = decide(
        &request(&spec, "apps"),
        V1,
        &signer(false),
        Some(&all),
        PodLookup::NotRequired,
    );
    let (reason, message) = denied(&d);
    assert_eq!(reason, "UnsupportedKeyType");
    assert!(
        message.contains("cannot be served by this signer"),
        "{message}"
    );
    assert!(
        message.ends_with("accepted key types: ECDSAP256"),
        "{message}"
    );
    // A policy of RSA_2048 only admits nothing a kubelet generates.
    let rsa2048 = policy("P1D", &[KeyAlgorithm::Rsa2048]);
    let spec = spec_with_stub(stub(&rcgen::PKCS_ECDSA_P256_SHA256));
    let d = decide(
        &request(&spec, "apps"),
        V1,
        &signer(false),
        Some(&rsa2048),
        PodLookup::NotRequired,
    );
    let (reason, message) = denied(&d);
    assert_eq!(reason, "UnsupportedKeyType");
    assert!(message.contains("admits none"), "{message}");
}

#[test]
fn each_denial_names_its_reason() {
    let good = spec_with_stub(stub(&rcgen::PKCS_ECDSA_P256_SHA256));
    let decide_spec = |spec: &PcrSpec, ns: &str, policy: &CompiledPolicy| {
        decide(
            &request(spec, ns),
            V1,
            &signer(false),
            Some(policy),
            PodLookup::NotRequired,
        )
    };
    let mut annotated = good.clone();
    annotated.unverified_user_annotations =
        Some([("example.com/x".to_owned(), "y".to_owned())].into());
    let d = decide_spec(&annotated, "apps", &p256_policy());
    let (reason, message) = denied(&d);
    assert_eq!(reason, "InvalidUnverifiedUserAnnotations");
    assert!(message.contains("example.com/x"), "{message}");
    let mut empty_annotations = good.clone();
    empty_annotations.unverified_user_annotations = Some(BTreeMap::new());
    assert!(matches!(
        decide_spec(&empty_annotations, "apps", &p256_policy()),
        Decision::Sign(_)
    ));

    let d = decide_spec(&good, "other", &p256_policy());
    assert_eq!(denied(&d).0, "NamespaceNotAllowed");

    // The API server refuses a condition message over 32 KiB: keys the request chose (up to
    // 317 bytes each) and a long namespace list are named in part.
    let mut many = good.clone();
    let long = |i: usize| format!("k{i}.{}.example.com/{}", "a".repeat(200), "b".repeat(63));
    many.unverified_user_annotations = Some((0..130).map(|i| (long(i), "v".to_owned())).collect());
    let d = decide_spec(&many, "apps", &p256_policy());
    let (reason, message) = denied(&d);
    assert_eq!(reason, "InvalidUnverifiedUserAnnotations");
    assert!(message.len() <= 1_500, "{} bytes", message.len());
    assert!(
        message.contains("k0.aaaa") && message.contains("(and 122 more)"),
        "{message}"
    );
    let mut crowded = signer(false);
    crowded.namespaces = (0..5_000).map(|i| format!("team-{i:05}")).collect();
    let d = decide(
        &request(&good, "other"),
        V1,
        &crowded,
        Some(&p256_policy()),
        PodLookup::NotRequired,
    );
    let (reason, message) = denied(&d);
    assert_eq!(reason, "NamespaceNotAllowed");
    assert!(
        message.len() <= MESSAGE_MAX + "…".len(),
        "{} bytes",
        message.len()
    );

    let mut keyless = good.clone();
    keyless.stub_pkcs10_request = Some(ByteString(Vec::new()));
    let d = decide_spec(&keyless, "apps", &p256_policy());
    assert_eq!(denied(&d).0, "MissingPublicKey");

    let d = decide_spec(&good, "apps", &policy("PT30M", &[KeyAlgorithm::EcP256]));
    let (reason, message) = denied(&d);
    assert_eq!(reason, "LifetimeBelowMinimum");
    assert!(message.contains("30m"), "{message}");
}

#[test]
fn pkix_requests_are_served_from_the_v1beta1_view_only_when_both_are_served() {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut pkix = spec_with_stub(Vec::new());
    pkix.stub_pkcs10_request = Some(ByteString(Vec::new()));
    pkix.pkix_public_key = Some(ByteString(key.subject_public_key_info()));
    let run = |view: View, spec: &PcrSpec| {
        decide(
            &request(spec, "apps"),
            view,
            &signer(false),
            Some(&p256_policy()),
            PodLookup::NotRequired,
        )
    };
    assert!(matches!(
        run(
            View::V1 {
                v1beta1_served: true
            },
            &pkix
        ),
        Decision::Ignore(_)
    ));
    let Decision::Sign(plan) = run(View::V1beta1 { v1_served: true }, &pkix) else {
        panic!()
    };
    assert_eq!(plan.public_key_der, key.subject_public_key_info());
    let with_stub = spec_with_stub(stub(&rcgen::PKCS_ECDSA_P256_SHA256));
    assert!(matches!(
        run(View::V1beta1 { v1_served: true }, &with_stub),
        Decision::Ignore(_)
    ));
    assert!(matches!(
        run(View::V1beta1 { v1_served: false }, &with_stub),
        Decision::Sign(_)
    ));
    // Only v1 served: nothing else will ever see a key.
    let mut keyless = pkix.clone();
    keyless.pkix_public_key = None;
    assert_eq!(denied(&run(V1, &keyless)).0, "MissingPublicKey");
}

#[test]
fn terminal_and_foreign_requests_are_left_alone() {
    let spec = spec_with_stub(stub(&rcgen::PKCS_ECDSA_P256_SHA256));
    for t in ["Issued", "Denied", "Failed"] {
        let status = PcrStatus {
            conditions: Some(vec![PcrCondition { type_: t.into() }]),
        };
        let mut req = request(&spec, "apps");
        req.status = Some(&status);
        assert_eq!(
            decide(
                &req,
                V1,
                &signer(false),
                Some(&p256_policy()),
                PodLookup::NotRequired
            ),
            Decision::Ignore("already answered"),
            "{t}"
        );
    }
    let mut foreign = spec.clone();
    foreign.signer_name = "example.com/other".into();
    assert!(matches!(
        decide(
            &request(&foreign, "apps"),
            V1,
            &signer(false),
            Some(&p256_policy()),
            PodLookup::NotRequired
        ),
        Decision::Ignore(_)
    ));
}

#[test]
fn the_pod_cross_check_names_the_field_and_waits_for_the_cache() {
    let spec = spec_with_stub(stub(&rcgen::PKCS_ECDSA_P256_SHA256));
    let facts = PodFacts {
        uid: "pod-uid".into(),
        service_account: "web".into(),
        node: "node-1".into(),
    };
    let run = |pod: PodLookup<'_>, age: u64| {
        let mut req = request(&spec, "apps");
        req.age = Duration::from_secs(age);
        decide(&req, V1, &signer(true), Some(&p256_policy()), pod)
    };
    assert!(matches!(
        run(PodLookup::Found(&facts), 1),
        Decision::Sign(_)
    ));
    for (field, changed) in [
        (
            "spec.podUID",
            PodFacts {
                uid: "other".into(),
                ..facts.clone()
            },
        ),
        (
            "spec.serviceAccountName",
            PodFacts {
                service_account: "admin".into(),
                ..facts.clone()
            },
        ),
        (
            "spec.nodeName",
            PodFacts {
                node: "node-2".into(),
                ..facts.clone()
            },
        ),
    ] {
        assert!(!changed.describes(&spec));
        let d = run(PodLookup::Found(&changed), 1);
        let (reason, message) = denied(&d);
        assert_eq!(reason, "PolicyDenied");
        assert!(message.contains(field), "{message}");
    }
    assert!(matches!(
        run(PodLookup::Missing, 1),
        Decision::Wait {
            reason: "PodNotFound",
            ..
        }
    ));
    assert!(facts.describes(&spec));
    let Decision::Wait { reason, message } =
        run(PodLookup::Unavailable("503 Service Unavailable"), 1)
    else {
        panic!("an unreadable pod does not wait");
    };
    assert_eq!(reason, "PodLookupFailed");
    assert!(message.contains("503"), "{message}");
    assert!(matches!(
        run(PodLookup::Missing, 14 * 60),
        Decision::Answer(Answer::Failed {
            reason: "RetryDurationExceeded",
            ..
        })
    ));
}

#[test]
fn temporary_trouble_waits_until_fourteen_minutes_then_fails() {
    let retry = Outcome::Retry {
        reason: "SubCaExpiring",
        message: "rotation due".into(),
    };
    assert!(matches!(
        after_issue(&retry, Duration::from_secs(13 * 60 + 59)),
        Decision::Wait {
            reason: "SubCaExpiring",
            ..
        }
    ));
    let Decision::Answer(Answer::Failed { reason, message }) =
        after_issue(&retry, Duration::from_secs(14 * 60))
    else {
        panic!()
    };
    assert_eq!(reason, "RetryDurationExceeded");
    assert!(message.contains("SubCaExpiring"), "{message}");
    // No usable policy yet: the same.
    let spec = spec_with_stub(stub(&rcgen::PKCS_ECDSA_P256_SHA256));
    assert!(matches!(
        decide(
            &request(&spec, "apps"),
            V1,
            &signer(false),
            None,
            PodLookup::NotRequired
        ),
        Decision::Wait {
            reason: "PolicyUnavailable",
            ..
        }
    ));
    // Core refusals keep their contract names.
    for (core, ours) in [
        ("NamespaceNotAllowed", "NamespaceNotAllowed"),
        ("InvalidRequest", "UnsupportedKeyType"),
        ("PolicyDenied", "PolicyDenied"),
        ("PolicyNotFound", "PolicyDenied"),
    ] {
        let d = after_issue(
            &Outcome::Refused {
                reason: core,
                message: "m".into(),
            },
            Duration::ZERO,
        );
        assert_eq!(denied(&d).0, ours);
    }
}

#[test]
fn refresh_falls_two_thirds_in_and_stays_ten_minutes_inside() {
    let nb = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let at = |secs: u64| {
        begin_refresh_at(nb, nb + Duration::from_secs(secs))
            .duration_since(nb)
            .unwrap()
            .as_secs()
    };
    assert_eq!(at(86_400), 57_600);
    assert_eq!(at(3600), 2400);
    // A short window: clamped so that [nb + 10 min, na − 10 min] holds.
    assert_eq!(at(1500), 900);
    assert_eq!(at(1200), 600);
}

#[test]
fn repeated_panics_fail_the_request_with_internal_error() {
    assert_eq!(after_panic(1), None);
    assert_eq!(after_panic(MAX_PANICS - 1), None);
    let Some(Decision::Answer(Answer::Failed { reason, message })) = after_panic(MAX_PANICS) else {
        panic!()
    };
    assert_eq!(reason, "InternalError");
    assert!(message.contains("3 times"), "{message}");
}

/// A policy whose subject or DNS names are REQUIRED can never be met by a kubelet's empty stub
/// (the core refuses each request: PolicyDenied), so the start-up check warns about that signer;
/// an unknown policy is an error naming the key; a validity under the hour is a warning.
#[test]
fn required_subject_values_and_short_validity_are_warned_about_at_start() {
    let mut p = policy_model("P1D", &[KeyAlgorithm::EcP256]);
    p.subject.organization = Some(PropertyRule {
        kind: Some(PropertyType::Required),
        allowed_values: vec!["^Acme$".into()],
        default_values: Vec::new(),
        min_occurrences: 1,
        max_occurrences: 1,
    });
    let required = std::sync::Arc::new(CompiledPolicy::compile(&p).unwrap());

    let signers = [signer(false)];
    let warnings = check_policies(&signers, |_| Some(required.clone())).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("controller.podCertificates.signers[0].policyName")
            && warnings[0].contains("subject.organization")
            && warnings[0].contains("PolicyDenied"),
        "{}",
        warnings[0]
    );
    let fine = std::sync::Arc::new(p256_policy());
    assert_eq!(
        check_policies(&signers, |_| Some(fine.clone())).unwrap(),
        Vec::<String>::new()
    );
    let short = std::sync::Arc::new(policy("PT30M", &[KeyAlgorithm::EcP256]));
    let w = check_policies(&signers, |_| Some(short.clone())).unwrap();
    assert!(
        w.len() == 1 && w[0].contains("LifetimeBelowMinimum"),
        "{w:?}"
    );
    let err = check_policies(&signers, |_| None).unwrap_err();
    assert!(
        err.contains("controller.podCertificates.signers[0].policyName"),
        "{err}"
    );
}
