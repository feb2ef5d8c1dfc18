//! The sub-CA lifecycle against the real mock TLSPC over loopback HTTP: first activation, refused upstream answers, rotation during continuous signing, policy refresh.

use std::time::{Duration, SystemTime};

use firefly::bootstrap::BootstrapError;
use firefly::ca::{IssueOptions, LeafRequest, issue};
use serde_json::json;
use support::bootstrap::{EnvBuilder, eventually};

fn workload_csr(sa: &str) -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names = vec![rcgen::SanType::URI(
        format!("spiffe://cluster.local/ns/default/sa/{sa}")
            .try_into()
            .expect("uri"),
    )];
    params
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem")
}

fn sign_once(
    signer: &firefly::bootstrap::Signer,
    csr: &str,
    opts: &IssueOptions,
) -> Result<firefly::ca::Issued, String> {
    sign_with_current(signer, csr, opts).map(|(issued, _)| issued)
}

/// [`sign_once`], also returning the sub-CA that signed (the one current when it was called).
fn sign_with_current(
    signer: &firefly::bootstrap::Signer,
    csr: &str,
    opts: &IssueOptions,
) -> Result<(firefly::ca::Issued, std::sync::Arc<firefly::ca::SubCa>), String> {
    let ca = signer
        .current()
        .ok_or_else(|| format!("no sub-CA: {}", signer.ready().message))?;
    let policy = signer.policy("istio-mtls").map_err(|e| e.to_string())?;
    let req = LeafRequest {
        csr_pem: csr.as_bytes(),
        duration: None,
        usages: None,
        is_ca: false,
        identities_annotation: None,
        trust_domain: None,
    };
    let issued = issue(&ca, &policy, &req, opts, SystemTime::now()).map_err(|e| e.to_string())?;
    Ok((issued, ca))
}

/// `cert`'s subject key identifier, or with `authority` its authority key identifier.
fn key_id(cert: &x509_parser::certificate::X509Certificate<'_>, authority: bool) -> Vec<u8> {
    use x509_parser::extensions::ParsedExtension;
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) if !authority => Some(k.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(a) if authority => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("{} has no key identifier", cert.subject()))
}

/// Checks that `ca` signed the leaf of `issued` (the leaf names it as issuer and by key
/// identifier, and its signature verifies under the sub-CA's key) and that the leaf ends no
/// later than `ca`.
fn assert_signed_by(issued: &firefly::ca::Issued, ca: &firefly::ca::SubCa) {
    let leaf_pem = pem::parse_many(&issued.chain_pem).expect("chain PEM");
    let (_, leaf) = x509_parser::parse_x509_certificate(leaf_pem[0].contents()).expect("leaf");
    let (_, sub) = x509_parser::parse_x509_certificate(ca.certificate_der()).expect("sub-CA");
    assert_eq!(leaf.issuer(), sub.subject(), "leaf issuer");
    assert_eq!(key_id(&leaf, true), key_id(&sub, false), "leaf AKI");
    leaf.verify_signature(Some(sub.public_key()))
        .expect("the leaf's signature verifies under the sub-CA that issued it");
    assert!(
        issued.not_after <= ca.not_after(),
        "the leaf ends {:?}, after its sub-CA ({:?})",
        issued.not_after,
        ca.not_after()
    );
}

#[tokio::test]
async fn first_sub_ca_is_active_signs_and_chains_to_the_mock_root() {
    let env = EnvBuilder::default().start().await;
    let bootstrap = env.bootstrap().await.expect("bootstrap starts");
    let signer = bootstrap.signer();
    let ready = signer.ready();
    assert!(ready.ready, "{}", ready.message);
    let ca = signer.current().expect("a sub-CA is active");
    assert_eq!(ca.root_pem().trim(), env.mock.root_pem().trim());
    assert_eq!(
        ca.chain_pems().len(),
        3,
        "root, intermediate1, intermediate2"
    );
    let issued = sign_once(&signer, &workload_csr("app"), &IssueOptions::default()).expect("signs");
    assert_eq!(
        issued.spiffe_id.expect("svid").to_string(),
        "spiffe://cluster.local/ns/default/sa/app"
    );
    let pinned = bootstrap.trust_anchor_der().expect("anchor pinned");
    let root = pem::parse(env.mock.root_pem()).expect("root pem");
    assert_eq!(pinned, root.contents());
    signer.record_issued(issued.not_before, issued.not_after);
}

#[tokio::test]
async fn every_supported_sub_ca_algorithm_is_obtained() {
    for alg in ["EC_P384", "EC_ED25519", "RSA_2048"] {
        let env = EnvBuilder {
            sub_ca_algorithm: alg.into(),
            ..Default::default()
        }
        .start()
        .await;
        let bootstrap = env
            .bootstrap()
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        let signer = bootstrap.signer();
        assert!(signer.ready().ready, "{alg}: {}", signer.ready().message);
        sign_once(&signer, &workload_csr("app"), &IssueOptions::default())
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
    }
}

#[tokio::test]
async fn requested_for_several_polls_still_activates() {
    let env = EnvBuilder {
        faults: Some(serde_saphyr::from_str("requestedPolls: 3").unwrap()),
        ..Default::default()
    }
    .start()
    .await;
    let bootstrap = env
        .bootstrap()
        .await
        .expect("bootstrap starts after polling");
    assert!(bootstrap.signer().current().is_some());
}

#[tokio::test]
async fn failed_issuance_is_a_clear_startup_error() {
    let env = EnvBuilder {
        faults: Some(
            serde_saphyr::from_str("failIssuance: CA unavailable for maintenance").unwrap(),
        ),
        ..Default::default()
    }
    .start()
    .await;
    let err = env.bootstrap().await.expect_err("must fail");
    let text = err.to_string();
    assert!(matches!(err, BootstrapError::Client(_)), "{err:?}");
    assert!(
        text.contains("refused to issue the sub-CA")
            && text.contains("CA unavailable for maintenance"),
        "{text}"
    );
}

#[tokio::test]
async fn a_detached_account_fails_with_an_actionable_error() {
    let env = EnvBuilder {
        attach_account: false,
        ..Default::default()
    }
    .start()
    .await;
    let err = env.bootstrap().await.expect_err("must fail").to_string();
    assert!(err.contains("attach the service account"), "{err}");
}

#[tokio::test]
async fn every_bad_upstream_sub_ca_is_refused_at_start_with_the_rule_named() {
    let cases = [
        ("notCa", "C5"),
        ("noKeyCertSign", "keyCertSign"),
        ("wrongKey", "not the key of our CSR"),
        ("expired", "expired"),
        ("uriNameConstraints", "C13"),
        // Passes every check of the answer; the probe refuses it (every parent's pathLen).
        ("parentPathLen", "has pathLenConstraint 0"),
        ("hugePem", "larger than"),
        ("malformedPem", "certificate"),
        ("emptyChain", "issuerCertificates"),
    ];
    for (fault, expected) in cases {
        let env = EnvBuilder {
            faults: Some(serde_saphyr::from_str(&format!("badSubCa: {fault}")).unwrap()),
            ..Default::default()
        }
        .start()
        .await;
        let err = env.bootstrap().await.expect_err(fault).to_string();
        assert!(err.contains(expected), "{fault}: {err}");
    }
}

#[tokio::test]
async fn a_foreign_chain_is_refused_against_a_configured_trust_anchor() {
    // The anchor is the mock's root; a chain to a foreign root must not verify against it.
    let probe = EnvBuilder::default().start().await;
    let root = probe.mock.root_pem().to_string();
    drop(probe);
    let env = EnvBuilder {
        faults: Some(serde_saphyr::from_str("badSubCa: foreignChain").unwrap()),
        trust_anchor_pem: Some(root),
        ..Default::default()
    }
    .start()
    .await;
    let err = env
        .bootstrap()
        .await
        .expect_err("foreign chain")
        .to_string();
    assert!(err.contains("trust anchor"), "{err}");
}

#[tokio::test]
async fn a_short_lived_sub_ca_only_warns_and_activates() {
    // shortLived: 10 s; with a 5 s policy it is still under 6 x the leaf: a warning, not a refusal.
    let env = EnvBuilder {
        policy_validity: "PT5S".into(),
        faults: Some(
            serde_saphyr::from_str("badSubCa: shortLived\nissuanceFaultCount: 1").unwrap(),
        ),
        ..Default::default()
    }
    .start()
    .await;
    let bootstrap = env
        .bootstrap()
        .await
        .expect("short-lived sub-CA is accepted with a warning");
    assert!(bootstrap.signer().current().is_some());
}

#[tokio::test]
async fn a_bad_answer_during_rotation_keeps_the_current_sub_ca_signing() {
    let env = EnvBuilder::default().start().await;
    let bootstrap = env.bootstrap().await.expect("starts");
    let signer = bootstrap.signer();
    let before = signer.current().expect("active").certificate_der().to_vec();
    for (fault, rule) in [
        ("notCa", "C5"),
        ("wrongKey", "not the key"),
        ("foreignChain", "trust anchor"),
    ] {
        env.set_faults(json!({"badSubCa": fault}));
        bootstrap.rotate_now();
        let seen = eventually(Duration::from_secs(20), || {
            signer.ready().message.contains(rule)
        })
        .await;
        assert!(
            seen,
            "{fault}: readiness never reported the refusal: {}",
            signer.ready().message
        );
        let ready = signer.ready();
        assert!(
            ready.ready,
            "{fault}: the current sub-CA must keep signing: {}",
            ready.message
        );
        assert_eq!(
            signer.current().expect("still active").certificate_der(),
            before.as_slice(),
            "{fault}"
        );
        sign_once(&signer, &workload_csr("app"), &IssueOptions::default()).expect("still signs");
    }
    // The outage ends: the next attempt succeeds and replaces the sub-CA.
    env.set_faults(json!({}));
    let replaced = eventually(Duration::from_secs(30), || {
        signer
            .current()
            .is_some_and(|c| c.certificate_der() != before.as_slice())
    })
    .await;
    assert!(
        replaced,
        "no new sub-CA after the fault cleared: {}",
        signer.ready().message
    );
    assert!(
        !signer.ready().message.contains("degraded"),
        "{}",
        signer.ready().message
    );
}

#[tokio::test]
async fn a_tlspc_outage_keeps_the_current_sub_ca_and_policies() {
    let env = EnvBuilder {
        refresh_interval: "1s".into(),
        max_staleness: "1m".into(),
        ..Default::default()
    }
    .start()
    .await;
    let bootstrap = env.bootstrap().await.expect("starts");
    let signer = bootstrap.signer();
    env.set_faults(json!({"routeErrors": [
        {"route": "configurations", "status": 503, "body": "html"},
        {"route": "token", "status": 502, "body": "empty"},
        {"route": "intermediateRequest", "status": 500}
    ]}));
    bootstrap.rotate_now();
    let degraded = eventually(Duration::from_secs(30), || {
        signer.ready().message.contains("degraded")
    })
    .await;
    assert!(degraded, "{}", signer.ready().message);
    assert!(signer.ready().ready);
    assert!(
        signer.policy("istio-mtls").is_ok(),
        "last-known-good policy is served"
    );
    sign_once(&signer, &workload_csr("app"), &IssueOptions::default())
        .expect("signs through the outage");
    assert!(
        !signer.ready().message.contains("<html"),
        "no raw body in messages: {}",
        signer.ready().message
    );
}

#[tokio::test]
async fn a_policy_changed_through_the_admin_api_is_picked_up_within_the_refresh_interval() {
    let env = EnvBuilder {
        refresh_interval: "1s".into(),
        ..Default::default()
    }
    .start()
    .await;
    let bootstrap = env.bootstrap().await.expect("starts");
    let signer = bootstrap.signer();
    assert_eq!(
        signer.policy("istio-mtls").expect("policy").max_validity(),
        Duration::from_secs(3600)
    );
    let policies = env
        .admin(
            reqwest::Method::GET,
            "/v1/distributedissuers/policies",
            None,
        )
        .await;
    let id = policies["policies"][0]["id"]
        .as_str()
        .expect("policy id")
        .to_string();
    env.admin(
        reqwest::Method::PATCH,
        &format!("/v1/distributedissuers/policies/{id}"),
        Some(json!({"validityPeriod": "PT2H"})),
    )
    .await;
    let seen = eventually(Duration::from_secs(10), || {
        signer
            .policy("istio-mtls")
            .is_ok_and(|p| p.max_validity() == Duration::from_secs(7200))
    })
    .await;
    assert!(seen, "the changed policy was not picked up");
}

#[tokio::test]
async fn policies_go_stale_and_issuance_fails_closed_after_max_staleness() {
    let env = EnvBuilder {
        refresh_interval: "1s".into(),
        max_staleness: "2s".into(),
        ..Default::default()
    }
    .start()
    .await;
    let bootstrap = env.bootstrap().await.expect("starts");
    let signer = bootstrap.signer();
    env.set_faults(json!({"routeErrors": [{"route": "configurations", "status": 503}]}));
    let stale = eventually(Duration::from_secs(20), || {
        signer.policy("istio-mtls").is_err()
    })
    .await;
    assert!(stale);
    let err = signer.policy("istio-mtls").unwrap_err();
    assert_eq!(err.reason(), "PolicyStale", "{err}");
    assert!(!signer.ready().ready, "{}", signer.ready().message);
    env.set_faults(json!({}));
    let fresh = eventually(Duration::from_secs(20), || {
        signer.policy("istio-mtls").is_ok()
    })
    .await;
    assert!(fresh, "policies did not recover");
}

#[tokio::test]
async fn a_fips_requirement_keeps_a_non_fips_build_not_ready() {
    let env = EnvBuilder {
        require_fips: true,
        ..Default::default()
    }
    .start()
    .await;
    let bootstrap = env.bootstrap().await.expect("starts");
    let signer = bootstrap.signer();
    if firefly::bootstrap::fips_build() {
        assert!(signer.ready().ready);
    } else {
        assert!(!signer.ready().ready);
        assert!(
            signer.ready().message.contains("requireFIPSCompliantBuild"),
            "{}",
            signer.ready().message
        );
        assert!(signer.current().is_none());
    }
}

/// A 30 s sub-CA and a 5 s policy: the sub-CA is replaced (at ~20 s) while a signer loops; not one
/// signature may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_with_compressed_lifetimes_loses_no_signature() {
    let env = EnvBuilder {
        sub_ca_validity: "PT30S".into(),
        policy_validity: "PT5S".into(),
        refresh_interval: "1s".into(),
        ..Default::default()
    }
    .start()
    .await;
    let bootstrap = env.bootstrap().await.expect("starts");
    let signer = bootstrap.signer();
    let first_id = signer.current_id().expect("id");
    let csr = workload_csr("app");
    let opts = IssueOptions {
        minimum_duration: Duration::from_secs(1),
        backdate: Duration::from_secs(1),
        max_window: None,
    };
    let mut signed = 0u32;
    let mut failures = Vec::new();
    // The sub-CAs that signed, by certificate.
    let mut signing_cas = std::collections::BTreeSet::new();
    let started = std::time::Instant::now();
    // Past the first renewal point (20 s) and past the first sub-CA's expiry (30 s).
    while started.elapsed() < Duration::from_secs(34) {
        match sign_with_current(&signer, &csr, &opts) {
            Ok((issued, ca)) => {
                signed += 1;
                // Judged against the sub-CA that signed it, whatever is current by now.
                assert_signed_by(&issued, &ca);
                signing_cas.insert(ca.certificate_der().to_vec());
            }
            Err(e) => failures.push(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        failures.is_empty(),
        "{} of {} signatures failed: {:?}",
        failures.len(),
        signed as usize + failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(
        signing_cas.len() >= 2,
        "no rotation happened: every leaf was signed by the first sub-CA ({first_id}, now {:?})",
        signer.current_id()
    );
    assert!(signed > 100, "too few signatures to say anything: {signed}");
}
