//! Issuing SVIDs end to end through the pure core, judged by independent verifiers (openssl and
//! Python cryptography), plus the validity, serial and chain rules (C5–C23).

use std::time::{Duration, SystemTime};

use firefly::ca::{IssueError, IssueOptions, Issued, LeafRequest, SubCa, issue};
use rcgen::KeyPair;
use support::csr::{RawCsr, ed25519, p256, p384, rsa};
use support::pki::{PkiBuilder, TestPki};
use support::verifiers::{openssl_verify, python_verify, split_pem};
use x509_parser::prelude::*;

const URI: &str = "spiffe://cluster.local/ns/default/sa/sleep";
/// verify_chain.py's reason when cryptography's verifier finds the leaf's signature wrong.
const PYTHON_BAD_SIGNATURE: &str = "signature does not match";
/// verify_chain.py's reason when no path reaches the trusted root (every candidate issuer was
/// tried and refused: a root of another hierarchy with the same name fails on the signature).
const PYTHON_NO_PATH: &str = "candidates exhausted";

fn request(csr: &[u8]) -> LeafRequest<'_> {
    LeafRequest {
        csr_pem: csr,
        duration: None,
        usages: None,
        is_ca: false,
        identities_annotation: None,
        trust_domain: None,
    }
}

fn issue_for(pki: &TestPki, key: &KeyPair, duration: Option<&str>) -> Issued {
    let csr = RawCsr::istio(key, URI).pem(key);
    let policy = support::policies::compiled_istio_policy();
    let req = LeafRequest {
        duration,
        ..request(csr.as_bytes())
    };
    issue(
        &pki.sub_ca,
        &policy,
        &req,
        &IssueOptions::default(),
        SystemTime::now(),
    )
    .expect("issued")
}

fn leaf_der(issued: &Issued) -> Vec<u8> {
    let first = &split_pem(&issued.chain_pem)[0];
    ::pem::parse(first).expect("leaf PEM").into_contents()
}

fn assert_independently_verified(issued: &Issued, python_too: bool) {
    for purpose in ["sslclient", "sslserver"] {
        let v = openssl_verify(&issued.chain_pem, &issued.ca_pem, purpose);
        assert!(
            v.ok,
            "openssl verify -purpose {purpose} failed: {}",
            v.output
        );
    }
    if python_too {
        let v = python_verify(&issued.chain_pem, &issued.ca_pem, URI);
        assert!(v.ok, "cryptography ClientVerifier failed: {}", v.output);
    }
}

#[test]
fn istio_p256_request_gets_an_svid_that_openssl_and_cryptography_accept() {
    let pki = PkiBuilder::default().build();
    let issued = issue_for(&pki, &p256(), None);
    assert_eq!(issued.spiffe_id.as_ref().map(|i| i.as_str()), Some(URI));
    assert_independently_verified(&issued, true);
}

#[test]
fn istio_rsa_2048_request_gets_an_svid_that_openssl_and_cryptography_accept() {
    let pki = PkiBuilder::default().build();
    let issued = issue_for(&pki, &rsa(2048), None);
    assert_independently_verified(&issued, true);
}

#[test]
fn p384_and_ed25519_leaf_keys_are_issued_and_verified() {
    let pki = PkiBuilder::default().build();
    assert_independently_verified(&issue_for(&pki, &p384(), None), true);
    assert_independently_verified(&issue_for(&pki, &ed25519(), None), true);
}

#[test]
fn rsa_and_ed25519_sub_cas_sign_verifiable_chains() {
    let rsa_pki = PkiBuilder::default()
        .sub_ca_alg(&rcgen::PKCS_RSA_SHA256)
        .build();
    assert_independently_verified(&issue_for(&rsa_pki, &p256(), None), true);
    // cryptography's verifier does not handle Ed25519 signatures: openssl alone judges this chain.
    let ed_pki = PkiBuilder::default()
        .sub_ca_alg(&rcgen::PKCS_ED25519)
        .build();
    assert_independently_verified(&issue_for(&ed_pki, &p256(), None), false);
}

/// A refusal by `judge` (its verdict `v`) for the reason `needle` in its output: a judge that
/// failed for another reason (openssl missing an option, Python crashing) proves nothing.
fn assert_refused(judge: &str, v: &support::verifiers::Verdict, needle: &str) {
    assert!(
        !v.ok,
        "{judge} accepted a chain it must refuse: {}",
        v.output
    );
    assert!(
        v.output.contains(needle),
        "{judge} refused, but not with {needle:?}: {}",
        v.output
    );
}

#[test]
fn tampered_chains_are_rejected_by_both_verifiers() {
    let pki = PkiBuilder::default().build();
    let issued = issue_for(&pki, &p256(), None);
    // Positive control: the same judges, called the same way, accept the untampered chain, so the
    // refusals below come from the tampering.
    assert_independently_verified(&issued, true);

    let mut der = leaf_der(&issued);
    // Change one character of the URI inside the signed part: the signature no longer matches.
    let pos = der
        .windows(5)
        .position(|w| w == b"sleep")
        .expect("URI in leaf");
    der[pos] = b'k';
    let tampered_leaf = ::pem::encode(&::pem::Pem::new("CERTIFICATE", der));
    let rest: String = split_pem(&issued.chain_pem)[1..].concat();
    let chain = format!("{tampered_leaf}{rest}");
    for purpose in ["sslclient", "sslserver"] {
        let v = openssl_verify(&chain, &issued.ca_pem, purpose);
        // openssl's X509_V_ERR_CERT_SIGNATURE_FAILURE (7).
        assert_refused(
            &format!("openssl -purpose {purpose}"),
            &v,
            "certificate signature failure",
        );
    }
    // The URI the tampered leaf now names: only the signature is wrong.
    let v = python_verify(
        &chain,
        &issued.ca_pem,
        "spiffe://cluster.local/ns/default/sa/kleep",
    );
    assert_refused("cryptography", &v, PYTHON_BAD_SIGNATURE);

    // A chain under another root is rejected too.
    let other = PkiBuilder::default().build();
    let v = openssl_verify(&issued.chain_pem, &other.root_pem, "sslclient");
    // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY (20).
    assert_refused("openssl", &v, "unable to get local issuer certificate");
    let v = python_verify(&issued.chain_pem, &other.root_pem, URI);
    assert_refused("cryptography", &v, PYTHON_NO_PATH);
}

#[test]
fn leaf_profile_follows_the_svid_rules() {
    let pki = PkiBuilder::default().build();
    let issued = issue_for(&pki, &p256(), None);
    let der = leaf_der(&issued);
    let (_, cert) = X509Certificate::from_der(&der).expect("leaf parses");
    // C4: empty subject (istio's O= is dropped), SAN critical with exactly the one URI (C1).
    assert_eq!(cert.subject().iter_attributes().count(), 0);
    let san = cert
        .subject_alternative_name()
        .expect("SAN ok")
        .expect("SAN present");
    assert!(san.critical);
    assert_eq!(san.value.general_names, vec![GeneralName::URI(URI)]);
    // C5: CA:false, critical.
    let bc = cert
        .basic_constraints()
        .expect("bc ok")
        .expect("bc present");
    assert!(bc.critical && !bc.value.ca);
    // C6/C7: critical KU digitalSignature; EC keys get no keyEncipherment.
    let ku = cert.key_usage().expect("ku ok").expect("ku present");
    assert!(ku.critical && ku.value.digital_signature() && !ku.value.key_encipherment());
    assert!(!ku.value.key_cert_sign() && !ku.value.crl_sign());
    // C9: serverAuth + clientAuth.
    let eku = cert
        .extended_key_usage()
        .expect("eku ok")
        .expect("eku present");
    assert!(eku.value.server_auth && eku.value.client_auth && !eku.value.any);
    // C20: positive serial of 16 octets.
    let serial = cert.tbs_certificate.raw_serial();
    assert!(serial.len() == 16 && serial[0] & 0x80 == 0 && serial[0] != 0);
    assert_eq!(issued.serial_hex.len(), 32);
    // C23: AKI = sub-CA SKI.
    let (_, sub) = X509Certificate::from_der(&pki.sub_ca_der).expect("sub-CA");
    let ski = sub
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
        .expect("sub-CA SKI");
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .expect("leaf AKI");
    assert_eq!(aki, ski);
    // Chain: leaf, sub-CA, intermediates; root separately.
    let certs = split_pem(&issued.chain_pem);
    assert_eq!(certs.len(), 1 + pki.issuer_chain_der.len());
    assert!(!issued.chain_pem.contains(issued.ca_pem.trim()));
    assert_eq!(issued.ca_pem, pki.root_pem);
}

#[test]
fn rsa_leaf_keeps_key_encipherment_from_the_policy() {
    let pki = PkiBuilder::default().build();
    let issued = issue_for(&pki, &rsa(2048), None);
    let der = leaf_der(&issued);
    let (_, cert) = X509Certificate::from_der(&der).expect("leaf");
    let ku = cert.key_usage().expect("ku").expect("present");
    assert!(ku.value.digital_signature() && ku.value.key_encipherment());
}

#[test]
fn serials_are_random_and_distinct() {
    // 1,000 leaves for the same key and request: only the serial source can tell them apart.
    const N: usize = 1000;
    let pki = PkiBuilder::default().build();
    let key = p256();
    let csr = RawCsr::istio(&key, URI).pem(&key);
    let policy = support::policies::compiled_istio_policy();
    let serials: Vec<[u8; 16]> = (0..N)
        .map(|_| {
            let issued = issue(
                &pki.sub_ca,
                &policy,
                &request(csr.as_bytes()),
                &IssueOptions::default(),
                SystemTime::now(),
            )
            .expect("issued");
            let der = leaf_der(&issued);
            let (_, cert) = X509Certificate::from_der(&der).expect("leaf parses");
            let raw = cert.tbs_certificate.raw_serial();
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(issued.serial_hex.to_lowercase(), hex);
            raw.try_into()
                .unwrap_or_else(|_| panic!("serial of {} octets, not 16", raw.len()))
        })
        .collect();
    // Positive, with no leading zero octet (C20): the first octet is 0b01xx_xxxx, so 126 bits
    // are random.
    for s in &serials {
        assert!(s[0] & 0xc0 == 0x40, "first octet {:#04x}", s[0]);
    }
    // Distinct, and distinct already in their high 8 octets (62 random bits: a collision among
    // 1,000 has odds of about 1 in 10^13).
    let high: std::collections::HashSet<&[u8]> = serials.iter().map(|s| &s[..8]).collect();
    assert_eq!(high.len(), N, "two serials share their high 8 octets");
    // Not a counter: sorted, neighbours are far apart (random 126-bit values are ~2^116 apart
    // on average; a counter or a timestamp-based serial would be within 2^64).
    let mut values: Vec<u128> = serials.iter().map(|s| u128::from_be_bytes(*s)).collect();
    values.sort_unstable();
    let closest = values.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    assert!(
        closest > 1u128 << 64,
        "two serials are only {closest} apart: sequential?"
    );
    // Every random bit position is set in about half the serials (mean 500, sd 16: the bounds
    // are more than 9 sd away), so no octet is fixed or biased.
    for bit in 2..128 {
        let set = serials
            .iter()
            .filter(|s| s[bit / 8] & (0x80 >> (bit % 8)) != 0)
            .count();
        assert!(
            (350..=650).contains(&set),
            "bit {bit} of the serial is set in {set} of {N}"
        );
    }
}

#[test]
fn longer_duration_is_clamped_to_the_policy_and_backdated() {
    let pki = PkiBuilder::default().build();
    let before = SystemTime::now();
    let issued = issue_for(&pki, &p256(), Some("2160h"));
    assert_eq!(issued.clamped_from, Some(Duration::from_secs(2160 * 3600)));
    let lifetime = issued
        .not_after
        .duration_since(issued.not_before)
        .expect("ordered");
    // 1 h from the policy plus the 10 s backdate (C22), at whole-second precision.
    assert!(
        lifetime >= Duration::from_secs(3600 + 9) && lifetime <= Duration::from_secs(3600 + 11),
        "{lifetime:?}"
    );
    assert!(issued.not_before < before);
}

#[test]
fn shorter_duration_is_honoured() {
    let pki = PkiBuilder::default().build();
    let issued = issue_for(&pki, &p256(), Some("10m"));
    assert_eq!(issued.clamped_from, None);
    let lifetime = issued
        .not_after
        .duration_since(issued.not_before)
        .expect("ordered");
    assert!(lifetime <= Duration::from_secs(600 + 11), "{lifetime:?}");
}

#[test]
fn leaf_never_outlives_the_sub_ca() {
    // Sub-CA started 1 h ago and lives 1 h 30 min: 30 minutes left, the policy wants 1 h.
    let pki = PkiBuilder {
        sub_ca_lifetime: Duration::from_secs(5400),
        ..PkiBuilder::default()
    }
    .build();
    let issued = issue_for(&pki, &p256(), None);
    assert!(issued.not_after <= pki.sub_ca.not_after());
    assert_eq!(issued.clamped_from, Some(Duration::from_secs(3600)));
    assert_independently_verified(&issued, true);
}

#[test]
fn sub_ca_too_close_to_expiry_is_a_transient_error() {
    let pki = PkiBuilder {
        sub_ca_lifetime: Duration::from_secs(3630),
        ..PkiBuilder::default()
    }
    .build();
    let key = p256();
    let csr = RawCsr::istio(&key, URI).pem(&key);
    let policy = support::policies::compiled_istio_policy();
    let err = issue(
        &pki.sub_ca,
        &policy,
        &request(csr.as_bytes()),
        &IssueOptions::default(),
        SystemTime::now(),
    )
    .expect_err("refused");
    assert!(matches!(err, IssueError::SubCaExpiring { .. }), "{err:?}");
    assert!(!err.is_request_error());
    assert_eq!(err.reason(), "SubCaExpiring");
}

#[test]
fn expired_or_future_sub_ca_refuses_to_sign() {
    let pki = PkiBuilder::default().build();
    let key = p256();
    let csr = RawCsr::istio(&key, URI).pem(&key);
    let policy = support::policies::compiled_istio_policy();
    for when in [
        pki.sub_ca.not_after() + Duration::from_secs(1),
        pki.sub_ca.not_before() - Duration::from_secs(1),
    ] {
        let err = issue(
            &pki.sub_ca,
            &policy,
            &request(csr.as_bytes()),
            &IssueOptions::default(),
            when,
        )
        .expect_err("refused");
        assert!(matches!(err, IssueError::SubCaNotValid { .. }), "{err:?}");
        assert!(!err.is_request_error());
    }
}

#[test]
fn denial_lists_every_broken_rule_in_its_message() {
    let pki = PkiBuilder::default().build();
    let key = p256();
    let csr = RawCsr::istio(&key, "spiffe://evil.example/ns/../sa/x")
        .with_sans(&[
            support::csr::gn_uri("spiffe://evil.example/ns/../sa/x"),
            support::csr::gn_dns("evil.example"),
        ])
        .pem(&key);
    let policy = support::policies::compiled_istio_policy();
    let req = LeafRequest {
        duration: Some("5s"),
        is_ca: true,
        ..request(csr.as_bytes())
    };
    let err = issue(
        &pki.sub_ca,
        &policy,
        &req,
        &IssueOptions::default(),
        SystemTime::now(),
    )
    .expect_err("denied");
    assert!(err.is_request_error());
    assert_eq!(err.reason(), "PolicyDenied");
    let msg = err.to_string();
    for needle in [
        "sans.dnsNames",
        "evil.example",
        "FORBIDDEN",
        "allowedValues",
        "SPIFFE ID",
        "\"..\"",
        "isCA",
        "duration",
        "5s",
    ] {
        assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
    }
}

#[test]
fn sub_ca_checks_refuse_unusable_authorities() {
    let pki = PkiBuilder::default().build();
    // Not our key.
    let other_key: std::sync::Arc<dyn rcgen::SigningKey + Send + Sync> =
        std::sync::Arc::new(p256());
    let err = SubCa::new(
        pki.sub_ca_der.clone(),
        pki.issuer_chain_der.clone(),
        other_key,
    )
    .expect_err("key mismatch");
    assert!(err.to_string().contains("not our signing key"), "{err}");
    // No issuer chain: self-signed fallback refused (C25).
    let err =
        SubCa::new(pki.sub_ca_der.clone(), vec![], pki.sub_ca_key.clone()).expect_err("no chain");
    assert!(err.to_string().contains("C25"), "{err}");
    // A chain from another hierarchy.
    let other = PkiBuilder::default().build();
    let err = SubCa::new(
        pki.sub_ca_der.clone(),
        other.issuer_chain_der.clone(),
        pki.sub_ca_key.clone(),
    )
    .expect_err("broken chain");
    assert!(err.to_string().contains("chain link 0"), "{err}");
    // Root missing from the end of the chain.
    let mut no_root = pki.issuer_chain_der.clone();
    no_root.pop();
    let err =
        SubCa::new(pki.sub_ca_der.clone(), no_root, pki.sub_ca_key.clone()).expect_err("no root");
    assert!(err.to_string().contains("self-signed root"), "{err}");
    // pathLen other than 0 (C5).
    let err = PkiBuilder {
        sub_ca_path_len: None,
        ..PkiBuilder::default()
    }
    .try_build()
    .err()
    .expect("refused");
    assert!(
        err.to_string().contains("pathLenConstraint is absent"),
        "{err}"
    );
    let err = PkiBuilder {
        sub_ca_path_len: Some(1),
        ..PkiBuilder::default()
    }
    .try_build()
    .err()
    .expect("refused");
    assert!(err.to_string().contains("pathLenConstraint is 1"), "{err}");
    // A profile extension that does not parse (an extendedKeyUsage whose content is a truncated
    // SEQUENCE) is refused, not skipped.
    let err = PkiBuilder {
        sub_ca_raw_extensions: vec![(vec![2, 5, 29, 37], vec![0x30, 0x05, 0x06, 0x03])],
        ..PkiBuilder::default()
    }
    .try_build()
    .err()
    .expect("refused");
    assert!(
        err.to_string().contains("sub-CA extension 2.5.29.37"),
        "{err}"
    );
}

#[test]
fn sub_ca_exposes_chain_in_root_first_order_and_hides_its_key() {
    let pki = PkiBuilder::default().build();
    let pems = pki.sub_ca.chain_pems();
    assert_eq!(pems.len(), pki.issuer_chain_der.len());
    assert_eq!(pems[0], pki.root_pem);
    assert_eq!(pki.sub_ca.root_pem(), pki.root_pem);
    assert_eq!(pki.sub_ca.certificate_der(), pki.sub_ca_der.as_slice());
    let debug = format!("{:?}", pki.sub_ca);
    assert!(
        debug.contains("...") && !debug.contains("PRIVATE"),
        "{debug}"
    );
}

#[test]
fn istio_csr_usages_and_identities_annotation_are_accepted() {
    let pki = PkiBuilder::default().build();
    let policy = support::policies::compiled_istio_policy();
    let key = p256();
    let csr = RawCsr::istio(&key, URI).pem(&key);
    let usages: Vec<String> = [
        "client auth",
        "server auth",
        "digital signature",
        "key encipherment",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let annotation = format!("{URI},istio-csr-serving");
    let req = LeafRequest {
        usages: Some(&usages),
        identities_annotation: Some(&annotation),
        duration: Some("1h"),
        ..request(csr.as_bytes())
    };
    let issued = issue(
        &pki.sub_ca,
        &policy,
        &req,
        &IssueOptions::default(),
        SystemTime::now(),
    )
    .expect("istio-csr's request shape is issued");
    assert_independently_verified(&issued, true);
}
