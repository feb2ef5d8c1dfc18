//! The sub-CA's pure steps: its CSR, the validation of TLSPC's answer before activation, and the renewal schedule; performs no I/O.

use std::time::{Duration, SystemTime};

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;

use super::locked_key::LockedKey;
use crate::wire::{IntermediateCertificateInformation, SubCaProviderInformation};
use firefly_core::ca::{IssueOptions, SubCa};
use firefly_core::spiffe::SpiffeId;

/// Why a sub-CA answer from TLSPC is refused (the current sub-CA is kept).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubCaError {
    /// The CSR could not be built.
    #[error("cannot build the sub-CA CSR: {0}")]
    Csr(String),
    /// A PEM field is missing, oversized, not exactly one certificate, or not DER.
    #[error("TLSPC sub-CA answer: {field} {problem}")]
    Malformed {
        /// The field (`certificate`, `issuerCertificates[1]`).
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// The certificate breaks a sub-CA rule (x509-svid.md C5, C8, C10, C13, C21, C25).
    #[error("TLSPC sub-CA refused: {rule}")]
    Rule {
        /// The rule and the offending value.
        rule: String,
    },
    /// The chain does not verify to the trust anchor.
    #[error("TLSPC sub-CA refused: the chain does not verify to the trust anchor ({detail})")]
    Untrusted {
        /// Which link failed.
        detail: String,
    },
    /// A probe leaf signed with the new sub-CA does not verify as a relying party verifies it.
    #[error(
        "TLSPC sub-CA refused: a probe SVID signed with it does not verify to the trust anchor under rustls-webpki (the verifier of Rust meshes such as ztunnel): {detail}"
    )]
    Probe {
        /// What the probe or the verifier said.
        detail: String,
    },
}

/// The trust domain of the probe SVID when the sub-CA names none in a URI SAN. rustls-webpki
/// refuses every URI name constraint (permitted or excluded), so the verdict on a chain does not
/// depend on which trust domain the probe carries.
pub const PROBE_TRUST_DOMAIN: &str = "cluster.local";

/// Signs a probe SVID with `sub_ca` (through the issuing core's production path, post-sign checks
/// included) and verifies it, for server and client authentication, with rustls-webpki against
/// `anchor_der` through the sub-CA and `issuer_chain_der`: signatures, validity, basic constraints
/// and every parent's pathLenConstraint, extended key usage and name constraints. rustls-webpki does
/// not look at a parent's keyUsage, so every parent that carries one must assert keyCertSign.
///
/// # Errors
/// [`SubCaError::Probe`] naming the first failure: the sub-CA must not be activated.
pub fn probe(
    sub_ca: &SubCa,
    issuer_chain_der: &[Vec<u8>],
    anchor_der: &[u8],
    now: SystemTime,
) -> Result<(), SubCaError> {
    use rustls::pki_types::{CertificateDer, UnixTime};
    let refused = |detail: String| SubCaError::Probe { detail };
    // rustls-webpki applies pathLenConstraint to the intermediates only, never to the trust
    // anchor, while relying parties (OpenSSL, BoringSSL) apply it to the anchor too: every
    // parent's is checked here, the anchor's included. A parent may have at most
    // pathLenConstraint CA certificates below it (RFC 5280 §4.2.1.9); the sub-CA is the first.
    for (i, der) in issuer_chain_der.iter().enumerate() {
        let field = format!("issuerCertificates[{i}]");
        parent_may_sign_certificates(&field, der)?;
        path_length_allows(&field, der, i + 1)?;
    }
    parent_may_sign_certificates("the trust anchor", anchor_der)?;
    let below_anchor = 1 + issuer_chain_der
        .iter()
        .filter(|der| der.as_slice() != anchor_der)
        .count();
    path_length_allows("the trust anchor", anchor_der, below_anchor)?;
    let spiffe_id = probe_spiffe_id(sub_ca.certificate_der())?;
    // A sub-CA with less than the usual minimum leaf duration left (compressed test lifetimes, a
    // late activation) still gets a probe, clamped to its NotAfter.
    let opts = IssueOptions {
        minimum_duration: Duration::from_secs(1),
        ..IssueOptions::default()
    };
    let issued = firefly_core::ca::sign_probe(sub_ca, &spiffe_id, &opts, now)
        .map_err(|e| refused(format!("signing the probe failed: {e}")))?;
    let leaf = pem::parse(issued.chain_pem.as_bytes())
        .map_err(|e| refused(format!("the probe's PEM does not parse: {e}")))?;
    let leaf = CertificateDer::from(leaf.contents());
    let anchor_der = CertificateDer::from(anchor_der);
    let anchor = webpki::anchor_from_trusted_cert(&anchor_der)
        .map_err(|e| refused(format!("the trust anchor is unusable: {e}")))?;
    let intermediates: Vec<CertificateDer<'_>> = std::iter::once(sub_ca.certificate_der())
        .chain(issuer_chain_der.iter().map(Vec::as_slice))
        .map(CertificateDer::from)
        .collect();
    let end_entity = webpki::EndEntityCert::try_from(&leaf)
        .map_err(|e| refused(format!("the probe does not parse: {e}")))?;
    let time = UnixTime::since_unix_epoch(
        now.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    let algorithms = rustls::crypto::aws_lc_rs::default_provider()
        .signature_verification_algorithms
        .all;
    for (usage, name) in [
        (webpki::KeyUsage::server_auth(), "serverAuth"),
        (webpki::KeyUsage::client_auth(), "clientAuth"),
    ] {
        end_entity
            .verify_for_usage(
                algorithms,
                std::slice::from_ref(&anchor),
                &intermediates,
                time,
                usage,
                None,
                None,
            )
            .map_err(|e| refused(format!("{name}: {e}")))?;
    }
    Ok(())
}

/// The probe's SPIFFE ID: in the sub-CA's own trust domain when its URI SAN names one.
fn probe_spiffe_id(sub_ca_der: &[u8]) -> Result<SpiffeId, SubCaError> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let cert = parse("certificate", sub_ca_der)?;
    let trust_domain = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                san.general_names.iter().find_map(|n| match n {
                    GeneralName::URI(uri) => uri.parse::<SpiffeId>().ok(),
                    _ => None,
                })
            }
            _ => None,
        })
        .map(|id| id.trust_domain().to_string())
        .unwrap_or_else(|| PROBE_TRUST_DOMAIN.to_owned());
    format!("spiffe://{trust_domain}/firefly/sub-ca-probe")
        .parse()
        .map_err(|e| SubCaError::Probe {
            detail: format!("no probe SPIFFE ID in trust domain {trust_domain:?}: {e}"),
        })
}

/// A parent that carries keyUsage must assert keyCertSign to sign certificates (RFC 5280
/// 4.2.1.3); without keyUsage any use is allowed.
fn parent_may_sign_certificates(field: &str, der: &[u8]) -> Result<(), SubCaError> {
    let cert = parse(field, der)?;
    match cert.key_usage() {
        Ok(Some(ku)) if !ku.value.key_cert_sign() => Err(SubCaError::Probe {
            detail: format!(
                "{field} ({}) has keyUsage {} without keyCertSign, so it may not sign certificates",
                cert.subject(),
                ku.value
            ),
        }),
        Ok(_) => Ok(()),
        Err(e) => Err(SubCaError::Probe {
            detail: format!("{field} ({}): keyUsage does not parse: {e}", cert.subject()),
        }),
    }
}

/// Whether the CA certificate `der` (`field`, for messages) may have `below` CA certificates
/// under it in the path to a leaf: its pathLenConstraint, when it has one, must be at least that.
fn path_length_allows(field: &str, der: &[u8], below: usize) -> Result<(), SubCaError> {
    let cert = parse(field, der)?;
    let limit = match cert.basic_constraints() {
        Ok(Some(bc)) => bc.value.path_len_constraint,
        Ok(None) => None,
        Err(e) => {
            return Err(SubCaError::Probe {
                detail: format!(
                    "{field} ({}): basicConstraints does not parse: {e}",
                    cert.subject()
                ),
            });
        }
    };
    match limit {
        Some(n) if usize::try_from(n).is_ok_and(|n| below > n) => Err(SubCaError::Probe {
            detail: format!(
                "{field} ({}) has pathLenConstraint {n}, but the path would put {below} CA certificate(s) below it (the sub-CA and the certificates between them)",
                cert.subject()
            ),
        }),
        _ => Ok(()),
    }
}

/// Largest PEM field accepted from TLSPC (a certificate is ~1 KiB; RSA-4096 chains stay far below).
const MAX_PEM_FIELD: usize = 64 * 1024;
/// Longest chain accepted above the sub-CA.
const MAX_CHAIN: usize = 8;

/// Builds the sub-CA CSR: CN = `<instance name> <provider common name>`, the provider's O/OU/L/ST/C,
/// signed by `key`.
///
/// # Errors
/// [`SubCaError::Csr`] when rcgen refuses the parameters.
pub fn build_csr(
    key: &LockedKey,
    instance_name: &str,
    provider: &SubCaProviderInformation,
) -> Result<String, SubCaError> {
    use rcgen::{CertificateParams, DistinguishedName, DnType};
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    let common_name = if provider.common_name.is_empty() {
        instance_name.to_string()
    } else {
        format!("{instance_name} {}", provider.common_name)
    };
    dn.push(DnType::CommonName, common_name);
    for (kind, value) in [
        (DnType::OrganizationName, &provider.organization),
        (
            DnType::OrganizationalUnitName,
            &provider.organizational_unit,
        ),
        (DnType::LocalityName, &provider.locality),
        (DnType::StateOrProvinceName, &provider.state_or_province),
        (DnType::CountryName, &provider.country),
    ] {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            dn.push(kind, v.clone());
        }
    }
    params.distinguished_name = dn;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let csr = params
        .serialize_request(key)
        .map_err(|e| SubCaError::Csr(e.to_string()))?;
    csr.pem().map_err(|e| SubCaError::Csr(e.to_string()))
}

/// A sub-CA answer that passed every check: ready to be activated.
#[derive(Clone, Debug)]
pub struct ValidatedSubCa {
    /// TLSPC's request id (for usage reports).
    pub id: String,
    /// The sub-CA certificate, DER.
    pub cert_der: Vec<u8>,
    /// Its issuers, DER, upward; the self-signed root last.
    pub issuer_chain_der: Vec<Vec<u8>>,
    /// Validity start.
    pub not_before: SystemTime,
    /// Validity end.
    pub not_after: SystemTime,
    /// Allowed but worth a warning (C24).
    pub warnings: Vec<String>,
}

impl ValidatedSubCa {
    /// The self-signed root at the end of the chain (the trust anchor to pin when none is configured).
    pub fn root_der(&self) -> &[u8] {
        self.issuer_chain_der
            .last()
            .map(Vec::as_slice)
            .unwrap_or(&self.cert_der)
    }
}

/// Checks TLSPC's ISSUED answer before it may sign anything.
///
/// `trust_anchors_der`: the configured or pinned anchor set; the chain must contain one of them.
/// Empty → the chain's own self-signed root is accepted (the caller pins it). `longest_leaf`: the longest `validityPeriod` of the usable
/// policies, for the C24 warning.
///
/// # Errors
/// [`SubCaError`] naming the first rule broken.
pub fn validate_issued(
    answer: &IntermediateCertificateInformation,
    key: &LockedKey,
    trust_anchors_der: &[Vec<u8>],
    now: SystemTime,
    longest_leaf: Option<Duration>,
) -> Result<ValidatedSubCa, SubCaError> {
    let cert_pem = answer.certificate.as_deref().unwrap_or("");
    let cert_der = single_certificate("certificate", cert_pem)?;
    if answer.issuer_certificates.is_empty() {
        return Err(SubCaError::Malformed {
            field: "issuerCertificates".into(),
            problem: "is empty: the chain to the root is missing".into(),
        });
    }
    if answer.issuer_certificates.len() > MAX_CHAIN {
        return Err(SubCaError::Malformed {
            field: "issuerCertificates".into(),
            problem: format!(
                "has {} certificates (at most {MAX_CHAIN})",
                answer.issuer_certificates.len()
            ),
        });
    }
    let chain_der = answer
        .issuer_certificates
        .iter()
        .enumerate()
        .map(|(i, pem)| single_certificate(&format!("issuerCertificates[{i}]"), pem))
        .collect::<Result<Vec<_>, _>>()?;

    let cert = parse("certificate", &cert_der)?;
    // The sub-CA profile (C5, C6, C8, C10–C13) has one implementation, the issuing core's.
    firefly_core::ca::subca::check_sub_ca_profile(&cert).map_err(|e| SubCaError::Rule {
        rule: e.to_string(),
    })?;
    if cert.public_key().raw != key.public_key_spki_der().as_slice() {
        return Err(SubCaError::Rule {
            rule: "the certificate's public key is not the key of our CSR (C19)".into(),
        });
    }
    let (not_before, not_after) = validity(&cert);
    check_current("certificate", not_before, not_after, now)?;

    let chain = chain_der
        .iter()
        .enumerate()
        .map(|(i, der)| parse(&format!("issuerCertificates[{i}]"), der))
        .collect::<Result<Vec<_>, _>>()?;
    let mut child = &cert;
    for (i, parent) in chain.iter().enumerate() {
        let field = format!("issuerCertificates[{i}]");
        if child.issuer().as_raw() != parent.subject().as_raw() {
            return Err(SubCaError::Untrusted {
                detail: format!(
                    "{field} ({}) is not the issuer of {}",
                    parent.subject(),
                    child.subject()
                ),
            });
        }
        if !parent.is_ca() {
            return Err(SubCaError::Untrusted {
                detail: format!("{field} ({}) is not a CA", parent.subject()),
            });
        }
        child
            .verify_signature(Some(parent.public_key()))
            .map_err(|_| SubCaError::Untrusted {
                detail: format!(
                    "the signature of {} does not verify with {field}",
                    child.subject()
                ),
            })?;
        let (nb, na) = validity(parent);
        check_current(&field, nb, na, now)?;
        child = parent;
    }
    let root = child;
    if root.subject().as_raw() != root.issuer().as_raw() || root.verify_signature(None).is_err() {
        return Err(SubCaError::Untrusted {
            detail: format!(
                "the last of issuerCertificates ({}) is not a self-signed root",
                root.subject()
            ),
        });
    }
    if !trust_anchors_der.is_empty() && anchor_in_chain(trust_anchors_der, &chain_der).is_none() {
        let names = trust_anchors_der
            .iter()
            .enumerate()
            .map(|(i, der)| {
                parse(&format!("trust anchor {i}"), der).map(|c| c.subject().to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let pinned = if names.len() == 1 {
            "the pinned trust anchor is"
        } else {
            "none of the trust anchors is in it:"
        };
        return Err(SubCaError::Untrusted {
            detail: format!(
                "the chain ends at {} but {pinned} {}",
                root.subject(),
                names.join(", ")
            ),
        });
    }

    let mut warnings = Vec::new();
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    if let Some(leaf) = longest_leaf
        && lifetime < leaf.saturating_mul(6)
    {
        warnings.push(format!(
            "sub-CA lifetime {} is under 6 x the longest policy leaf lifetime {} (C24): leaves near the sub-CA's expiry are clamped to it",
            firefly_core::duration::format_go_duration(lifetime),
            firefly_core::duration::format_go_duration(leaf)
        ));
    }
    Ok(ValidatedSubCa {
        id: answer.id.clone(),
        cert_der,
        issuer_chain_der: chain_der,
        not_before,
        not_after,
        warnings,
    })
}

/// The first of `anchors` that appears in `chain` (the issuers above the sub-CA).
pub fn anchor_in_chain<'a>(anchors: &'a [Vec<u8>], chain: &[Vec<u8>]) -> Option<&'a [u8]> {
    anchors
        .iter()
        .find(|a| chain.iter().any(|c| c == *a))
        .map(Vec::as_slice)
}

fn single_certificate(field: &str, pem_text: &str) -> Result<Vec<u8>, SubCaError> {
    let malformed = |problem: String| SubCaError::Malformed {
        field: field.to_string(),
        problem,
    };
    if pem_text.trim().is_empty() {
        return Err(malformed("is empty".into()));
    }
    if pem_text.len() > MAX_PEM_FIELD {
        return Err(malformed(format!(
            "is {} bytes (at most {MAX_PEM_FIELD})",
            pem_text.len()
        )));
    }
    let blocks = pem::parse_many(pem_text).map_err(|e| malformed(format!("is not PEM: {e}")))?;
    let [block] = blocks.as_slice() else {
        return Err(malformed(format!(
            "holds {} PEM blocks (exactly one certificate expected)",
            blocks.len()
        )));
    };
    if block.tag() != "CERTIFICATE" {
        return Err(malformed(format!(
            "is a PEM {:?} block, not CERTIFICATE",
            block.tag()
        )));
    }
    Ok(block.contents().to_vec())
}

fn parse<'a>(field: &str, der: &'a [u8]) -> Result<X509Certificate<'a>, SubCaError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| SubCaError::Malformed {
        field: field.to_string(),
        problem: format!("is not an X.509 certificate: {e}"),
    })?;
    if !rest.is_empty() {
        return Err(SubCaError::Malformed {
            field: field.to_string(),
            problem: "has trailing data after the certificate".into(),
        });
    }
    Ok(cert)
}

fn validity(cert: &X509Certificate<'_>) -> (SystemTime, SystemTime) {
    let at = |t: i64| {
        if t >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(t.unsigned_abs())
        } else {
            SystemTime::UNIX_EPOCH - Duration::from_secs(t.unsigned_abs())
        }
    };
    (
        at(cert.validity().not_before.timestamp()),
        at(cert.validity().not_after.timestamp()),
    )
}

fn check_current(
    field: &str,
    not_before: SystemTime,
    not_after: SystemTime,
    now: SystemTime,
) -> Result<(), SubCaError> {
    if now < not_before {
        return Err(SubCaError::Rule {
            rule: format!("{field} is not valid yet (C21)"),
        });
    }
    if now >= not_after {
        return Err(SubCaError::Rule {
            rule: format!("{field} has expired (C21)"),
        });
    }
    Ok(())
}

/// Fraction of the sub-CA lifetime after which the next one is prepared (Firefly renews at ~2/3).
pub const RENEW_AT_FRACTION: f64 = 2.0 / 3.0;

/// When to start preparing the successor of a sub-CA valid `[not_before, not_after)`.
pub fn renewal_time(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    not_before + lifetime.mul_f64(RENEW_AT_FRACTION)
}

/// The remaining life pod certificates need from the sub-CA: the API server refuses a pod
/// certificate valid for less than an hour, and a leaf is back-dated by 10 s.
pub const POD_CERTIFICATE_ROTATION_FLOOR: Duration = Duration::from_secs(3600 + 10);

/// A sub-CA is used for at least this share of its lifetime before a floor makes the rotation
/// replace it: with a lifetime barely above the floor, an earlier rotation would ask TLSPC for a
/// new sub-CA every few seconds (the floor is then reported unmet instead).
pub const FLOOR_MIN_USE_FRACTION: f64 = 0.25;

/// [`renewal_time`] that also keeps at least `floor` of remaining life: the successor is prepared
/// at `not_after - floor` when that comes before 2/3 of the lifetime, but never before
/// [`FLOOR_MIN_USE_FRACTION`] of it. A sub-CA whose whole lifetime is within the floor cannot meet
/// it however early it is replaced, so it keeps the usual schedule. A zero floor changes nothing.
pub fn renewal_time_with_floor(
    not_before: SystemTime,
    not_after: SystemTime,
    floor: Duration,
) -> SystemTime {
    let usual = renewal_time(not_before, not_after);
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    if floor.is_zero() || lifetime <= floor {
        return usual;
    }
    let by_floor = not_after - floor;
    let earliest = not_before + lifetime.mul_f64(FLOOR_MIN_USE_FRACTION);
    usual.min(by_floor.max(earliest))
}

/// Why a sub-CA valid `[not_before, not_after)` does not have `floor` of life left at `now`
/// (`None` when it does, or the floor is zero): its whole lifetime is too short, or its successor
/// has not been obtained in time.
pub fn floor_shortfall(
    not_before: SystemTime,
    not_after: SystemTime,
    floor: Duration,
    now: SystemTime,
) -> Option<String> {
    let go =
        |d: Duration| firefly_core::duration::format_go_duration(Duration::from_secs(d.as_secs()));
    let left = not_after.duration_since(now).unwrap_or_default();
    if floor.is_zero() || left >= floor {
        return None;
    }
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    if lifetime <= floor {
        return Some(format!(
            "pod certificates need {} of sub-CA life (the API server refuses pod certificates valid under 1h) but the TLSPC sub-CA is issued for only {}: lengthen the validity of the sub-CA provider in TLSPC",
            go(floor),
            go(lifetime)
        ));
    }
    Some(format!(
        "pod certificates need {} of sub-CA life and the sub-CA has {} left: its successor has not been obtained yet",
        go(floor),
        go(left)
    ))
}

/// The wait before the next attempt after `failures` consecutive failures to obtain a sub-CA,
/// never beyond a fraction of the time the current one has left (so a recovery is attempted
/// several times before expiry). Jitter is added by the caller.
pub fn retry_delay(failures: u32, time_left: Option<Duration>) -> Duration {
    let exp = Duration::from_secs(1)
        .saturating_mul(2u32.saturating_pow(failures.min(16)))
        .min(Duration::from_secs(300));
    match time_left {
        Some(left) => exp.min((left / 8).max(Duration::from_millis(250))),
        None => exp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::locked_key::LockMode;
    use crate::wire::IntermediateStatus;
    use firefly_core::KeyAlgorithm;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};

    /// A root → intermediate hierarchy that signs sub-CA certificates with adjustable profiles.
    struct TestPki {
        root_pem: String,
        root_der: Vec<u8>,
        intermediate: Issuer<'static, KeyPair>,
        intermediate_pem: String,
    }

    fn ca_params(cn: &str) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    }

    impl TestPki {
        fn new() -> TestPki {
            Self::with_intermediate(ca_params("Test Intermediate"))
        }

        /// A hierarchy whose intermediate (the sub-CA's parent) is built from `params`.
        fn with_intermediate(params: CertificateParams) -> TestPki {
            let root_key = KeyPair::generate().unwrap();
            let root = ca_params("Test Root").self_signed(&root_key).unwrap();
            let root_issuer = Issuer::new(ca_params("Test Root"), root_key);
            let int_key = KeyPair::generate().unwrap();
            let int_cert = params.signed_by(&int_key, &root_issuer).unwrap();
            TestPki {
                root_pem: root.pem(),
                root_der: root.der().to_vec(),
                intermediate: Issuer::new(params, int_key),
                intermediate_pem: int_cert.pem(),
            }
        }

        fn sub_ca_params() -> CertificateParams {
            let mut p = ca_params("node-1 Firefly sub-CA");
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let now = jiff::Timestamp::now().as_second();
            p.not_before = rcgen::date_time_ymd(1970, 1, 1) + time_secs(now - 60);
            p.not_after = rcgen::date_time_ymd(1970, 1, 1) + time_secs(now + 7 * 86400);
            p
        }

        fn answer(
            &self,
            params: CertificateParams,
            key: &impl rcgen::PublicKeyData,
        ) -> IntermediateCertificateInformation {
            let cert = params.signed_by(key, &self.intermediate).unwrap();
            IntermediateCertificateInformation {
                id: "req-1".into(),
                common_name: String::new(),
                status: IntermediateStatus::Issued,
                workflow_id: None,
                certificate: Some(cert.pem()),
                issuer_certificates: vec![self.intermediate_pem.clone(), self.root_pem.clone()],
                fingerprint: None,
                validity_start: None,
                validity_end: None,
                error_information: None,
                configuration: None,
                long_lived_cert_count: 0,
                short_lived_cert_count: 0,
                ultra_short_lived_cert_count: 0,
            }
        }
    }

    fn time_secs(s: i64) -> std::time::Duration {
        std::time::Duration::from_secs(s.unsigned_abs())
    }

    fn key() -> LockedKey {
        LockedKey::generate(KeyAlgorithm::EcP256, LockMode::Disabled).unwrap()
    }

    fn refused(
        answer: &IntermediateCertificateInformation,
        key: &LockedKey,
        anchor: Option<&[u8]>,
    ) -> String {
        let anchors: Vec<Vec<u8>> = anchor.map(<[u8]>::to_vec).into_iter().collect();
        validate_issued(answer, key, &anchors, SystemTime::now(), None)
            .unwrap_err()
            .to_string()
    }

    /// Validates a good answer for `key` with `anchor`, policies' longest leaf `longest_leaf`.
    fn validated(
        pki: &TestPki,
        key: &LockedKey,
        anchor: Option<&[u8]>,
        longest_leaf: Duration,
    ) -> ValidatedSubCa {
        let answer = pki.answer(TestPki::sub_ca_params(), key);
        let anchors: Vec<Vec<u8>> = anchor.map(<[u8]>::to_vec).into_iter().collect();
        validate_issued(
            &answer,
            key,
            &anchors,
            SystemTime::now(),
            Some(longest_leaf),
        )
        .unwrap()
    }

    #[test]
    fn a_good_answer_is_accepted_and_exposes_its_root() {
        let pki = TestPki::new();
        let v = validated(&pki, &key(), Some(&pki.root_der), Duration::from_secs(3600));
        assert_eq!(v.root_der(), pki.root_der.as_slice());
        assert_eq!(v.issuer_chain_der.len(), 2);
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    }

    #[test]
    fn a_short_lived_sub_ca_only_warns() {
        let v = validated(
            &TestPki::new(),
            &key(),
            None,
            Duration::from_secs(2 * 86400),
        );
        assert!(v.warnings[0].contains("C24"), "{:?}", v.warnings);
    }

    /// What the bootstrap does before activation: validate, build the core's sub-CA, probe it
    /// against `anchor` (the chain's own root when `None`).
    fn activate(pki: &TestPki, anchor: Option<&[u8]>) -> Result<(), SubCaError> {
        let key = key();
        let answer = pki.answer(TestPki::sub_ca_params(), &key);
        let v = validate_issued(&answer, &key, &[], SystemTime::now(), None)?;
        let (chain, root) = (v.issuer_chain_der.clone(), v.root_der().to_vec());
        let sub_ca = SubCa::new(v.cert_der, v.issuer_chain_der, std::sync::Arc::new(key))
            .expect("the core accepts the sub-CA");
        probe(&sub_ca, &chain, anchor.unwrap_or(&root), SystemTime::now())
    }

    fn probe_refusal(pki: &TestPki, anchor: Option<&[u8]>) -> String {
        match activate(pki, anchor) {
            Err(e @ SubCaError::Probe { .. }) => e.to_string(),
            other => panic!("expected the probe to refuse the sub-CA, got {other:?}"),
        }
    }

    #[test]
    fn the_probe_verifies_a_good_chain_to_its_anchor() {
        let pki = TestPki::new();
        activate(&pki, Some(&pki.root_der)).unwrap();
        activate(&pki, None).unwrap();
    }

    #[test]
    fn the_probe_refuses_a_chain_to_another_anchor() {
        let other = TestPki::new();
        // Same subject name, another key: the intermediate's signature does not verify.
        let refusal = probe_refusal(&TestPki::new(), Some(&other.root_der));
        assert!(
            refusal.contains("InvalidSignatureForPublicKey"),
            "{refusal}"
        );
    }

    #[test]
    fn the_probe_refuses_a_parent_without_key_cert_sign() {
        let mut params = ca_params("Test Intermediate");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
        let refusal = probe_refusal(&TestPki::with_intermediate(params), None);
        assert!(refusal.contains("issuerCertificates[0]"), "{refusal}");
        assert!(refusal.contains("without keyCertSign"), "{refusal}");
    }

    #[test]
    fn the_probe_refuses_a_parent_whose_path_length_excludes_the_sub_ca() {
        let mut params = ca_params("Test Intermediate");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let refusal = probe_refusal(&TestPki::with_intermediate(params), None);
        assert!(refusal.contains("issuerCertificates[0]"), "{refusal}");
        assert!(refusal.contains("pathLenConstraint 0"), "{refusal}");
    }

    /// A hierarchy whose self-signed root has `path_len`, above an unconstrained intermediate.
    fn pki_with_root_path_length(path_len: u8) -> TestPki {
        let root_key = KeyPair::generate().unwrap();
        let mut root_params = ca_params("Test Root");
        root_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, root_key);
        let int_key = KeyPair::generate().unwrap();
        let int_cert = ca_params("Test Intermediate")
            .signed_by(&int_key, &root_issuer)
            .unwrap();
        TestPki {
            root_pem: root.pem(),
            root_der: root.der().to_vec(),
            intermediate: Issuer::new(ca_params("Test Intermediate"), int_key),
            intermediate_pem: int_cert.pem(),
        }
    }

    /// The trust anchor is the one certificate rustls-webpki never checks a pathLen of. Below
    /// the root are the intermediate and the sub-CA: two CA certificates, so a root with
    /// pathLen 1 refuses the path (OpenSSL would refuse every leaf) and one with 2 allows it.
    #[test]
    fn the_probe_applies_the_trust_anchors_path_length() {
        let short = pki_with_root_path_length(1);
        for anchor in [None, Some(short.root_der.as_slice())] {
            let refusal = probe_refusal(&short, anchor);
            assert!(refusal.contains("pathLenConstraint 1"), "{refusal}");
            assert!(refusal.contains("2 CA certificate(s)"), "{refusal}");
        }
        let enough = pki_with_root_path_length(2);
        activate(&enough, None).expect("pathLen 2 allows intermediate and sub-CA");
        activate(&enough, Some(&enough.root_der)).expect("the same, pinned");
    }

    #[test]
    fn the_probe_refuses_a_parent_whose_name_constraints_exclude_the_trust_domain() {
        let mut params = ca_params("Test Intermediate");
        params
            .custom_extensions
            .push(uri_name_constraints(0xA1, "spiffe://cluster.local"));
        let refusal = probe_refusal(&TestPki::with_intermediate(params), None);
        assert!(refusal.contains("NameConstraintViolation"), "{refusal}");
    }

    #[test]
    fn ca_false_is_refused() {
        let pki = TestPki::new();
        let key = key();
        let mut p = TestPki::sub_ca_params();
        p.is_ca = IsCa::ExplicitNoCa;
        assert!(refused(&pki.answer(p, &key), &key, None).contains("C5"));
    }

    #[test]
    fn a_path_length_other_than_zero_is_refused() {
        let pki = TestPki::new();
        let key = key();
        let mut p = TestPki::sub_ca_params();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        assert!(refused(&pki.answer(p, &key), &key, None).contains("pathLen"));
    }

    #[test]
    fn missing_key_cert_sign_is_refused() {
        let pki = TestPki::new();
        let key = key();
        let mut p = TestPki::sub_ca_params();
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        assert!(refused(&pki.answer(p, &key), &key, None).contains("keyCertSign"));
    }

    #[test]
    fn a_certificate_for_another_key_is_refused() {
        let pki = TestPki::new();
        let ours = key();
        let theirs = key();
        assert!(
            refused(&pki.answer(TestPki::sub_ca_params(), &theirs), &ours, None)
                .contains("not the key of our CSR")
        );
    }

    #[test]
    fn a_chain_to_another_root_is_refused() {
        let pki = TestPki::new();
        let other = TestPki::new();
        let key = key();
        let answer = pki.answer(TestPki::sub_ca_params(), &key);
        assert!(refused(&answer, &key, Some(&other.root_der)).contains("pinned trust anchor"));
    }

    #[test]
    fn a_chain_that_does_not_verify_is_refused() {
        let pki = TestPki::new();
        let other = TestPki::new();
        let key = key();
        let mut answer = pki.answer(TestPki::sub_ca_params(), &key);
        answer.issuer_certificates = vec![other.intermediate_pem.clone(), other.root_pem.clone()];
        assert!(refused(&answer, &key, None).contains("does not verify"));
    }

    #[test]
    fn an_expired_sub_ca_is_refused() {
        let pki = TestPki::new();
        let key = key();
        let mut p = TestPki::sub_ca_params();
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2020, 1, 2);
        assert!(refused(&pki.answer(p, &key), &key, None).contains("expired"));
    }

    /// A critical nameConstraints extension with one URI subtree, permitted (`0xA0`) or excluded
    /// (`0xA1`); rcgen has no URI subtree, so the DER is written here.
    fn uri_name_constraints(subtrees_tag: u8, uri: &str) -> rcgen::CustomExtension {
        let tlv = |tag: u8, content: Vec<u8>| {
            let mut out = vec![tag, u8::try_from(content.len()).unwrap()];
            out.extend(content);
            out
        };
        let general_subtree = tlv(0x30, tlv(0x86, uri.as_bytes().to_vec()));
        let value = tlv(0x30, tlv(subtrees_tag, general_subtree));
        let mut ext = rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 30], value);
        ext.set_criticality(true);
        ext
    }

    #[test]
    fn uri_name_constraints_are_refused() {
        let pki = TestPki::new();
        let key = key();
        let mut p = TestPki::sub_ca_params();
        p.custom_extensions
            .push(uri_name_constraints(0xA0, "spiffe://cluster.local"));
        assert!(refused(&pki.answer(p, &key), &key, None).contains("C13"));
    }

    #[test]
    fn dns_name_constraints_are_not_a_reason_to_refuse() {
        let pki = TestPki::new();
        let key = key();
        let mut p = TestPki::sub_ca_params();
        p.name_constraints = Some(rcgen::NameConstraints {
            permitted_subtrees: vec![rcgen::GeneralSubtree::DnsName("example.com".into())],
            excluded_subtrees: vec![],
        });
        assert!(validate_issued(&pki.answer(p, &key), &key, &[], SystemTime::now(), None).is_ok());
    }

    #[test]
    fn malformed_pem_is_refused_by_field() {
        let pki = TestPki::new();
        let key = key();
        let good = pki.answer(TestPki::sub_ca_params(), &key);
        let mut two = good.clone();
        two.certificate = Some(format!(
            "{}{}",
            good.certificate.clone().unwrap(),
            pki.root_pem
        ));
        assert!(refused(&two, &key, None).contains("2 PEM blocks"));
        let mut garbage = good.clone();
        garbage.certificate = Some("<html>502</html>".into());
        assert!(refused(&garbage, &key, None).contains("certificate"));
        let mut huge = good.clone();
        huge.issuer_certificates[0] = "A".repeat(MAX_PEM_FIELD + 1);
        assert!(refused(&huge, &key, None).contains("issuerCertificates[0]"));
        let mut no_chain = good;
        no_chain.issuer_certificates.clear();
        assert!(refused(&no_chain, &key, None).contains("issuerCertificates"));
    }

    #[test]
    fn a_chain_is_accepted_when_any_anchor_of_the_set_is_in_it() {
        let pki = TestPki::new();
        let other = TestPki::new();
        let key = key();
        let answer = pki.answer(TestPki::sub_ca_params(), &key);
        let set = vec![other.root_der.clone(), pki.root_der.clone()];
        validate_issued(&answer, &key, &set, SystemTime::now(), None).expect("second anchor");
        let v = validate_issued(&answer, &key, &set, SystemTime::now(), None).unwrap();
        assert_eq!(
            anchor_in_chain(&set, &v.issuer_chain_der),
            Some(pki.root_der.as_slice())
        );
        let foreign = vec![other.root_der.clone(), TestPki::new().root_der];
        let err = validate_issued(&answer, &key, &foreign, SystemTime::now(), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("none of the trust anchors is in it: CN=Test Root, CN=Test Root"),
            "{err}"
        );
    }

    #[test]
    fn a_floor_moves_renewal_to_keep_that_much_life_left() {
        let nb = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let floor = POD_CERTIFICATE_ROTATION_FLOOR;
        let h = |n: u64| Duration::from_secs(n * 3600);
        // Seven days: 2/3 leaves days, far above the floor.
        assert_eq!(
            renewal_time_with_floor(nb, nb + h(168), floor),
            renewal_time(nb, nb + h(168))
        );
        // Two hours: 2/3 would leave 40 min; the floor moves renewal to NotAfter - 1h0m10s.
        assert_eq!(
            renewal_time_with_floor(nb, nb + h(2), floor),
            nb + h(2) - floor
        );
        assert!(renewal_time(nb, nb + h(2)) > nb + h(2) - floor);
        // Just above the floor: used for a quarter of its life first, not replaced at once.
        let just = floor + Duration::from_secs(60);
        assert_eq!(
            renewal_time_with_floor(nb, nb + just, floor),
            nb + just.mul_f64(FLOOR_MIN_USE_FRACTION)
        );
        // Within the floor: no earlier renewal can help; the usual schedule.
        assert_eq!(
            renewal_time_with_floor(nb, nb + h(1), floor),
            renewal_time(nb, nb + h(1))
        );
        // No floor: unchanged.
        assert_eq!(
            renewal_time_with_floor(nb, nb + h(2), Duration::ZERO),
            renewal_time(nb, nb + h(2))
        );
    }

    #[test]
    fn a_floor_shortfall_says_whether_the_lifetime_or_the_successor_is_missing() {
        let nb = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let floor = POD_CERTIFICATE_ROTATION_FLOOR;
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(floor_shortfall(nb, nb + h(2), floor, nb + h(0)), None);
        assert_eq!(
            floor_shortfall(nb, nb + h(2), Duration::ZERO, nb + h(2)),
            None
        );
        let late = floor_shortfall(nb, nb + h(2), floor, nb + h(1)).unwrap();
        assert!(
            late.contains("need 1h0m10s") && late.contains("has 1h0m0s left"),
            "{late}"
        );
        let short = floor_shortfall(nb, nb + h(1), floor, nb).unwrap();
        assert!(
            short.contains("issued for only 1h0m0s") && short.contains("sub-CA provider"),
            "{short}"
        );
    }

    #[test]
    fn renewal_is_prepared_at_two_thirds_of_the_lifetime() {
        let nb = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let at = renewal_time(nb, nb + Duration::from_secs(30));
        assert_eq!(at, nb + Duration::from_secs(20));
    }

    #[test]
    fn retry_delay_backs_off_but_stays_under_an_eighth_of_the_time_left() {
        assert_eq!(retry_delay(0, None), Duration::from_secs(1));
        assert_eq!(retry_delay(3, None), Duration::from_secs(8));
        assert_eq!(retry_delay(30, None), Duration::from_secs(300));
        assert_eq!(
            retry_delay(10, Some(Duration::from_secs(80))),
            Duration::from_secs(10)
        );
        assert_eq!(
            retry_delay(10, Some(Duration::from_millis(100))),
            Duration::from_millis(250)
        );
    }
}
