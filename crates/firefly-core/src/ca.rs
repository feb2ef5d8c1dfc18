//! The signing authority: the active sub-CA, the leaf template, signing, the post-sign validator and
//! chain assembly; performs no I/O (the clock is a parameter).
//!
//! Flow of [`issue`]: decode and verify the CSR → policy decision → leaf template built from the
//! policy's profile and the validated identity (only the public key comes from the CSR) → sign with
//! the sub-CA key → re-parse and check C1–C23 → chain.

pub mod subca;
pub mod template;
pub mod validate;

use std::time::{Duration, SystemTime};

pub use subca::{CaError, SubCa};

use crate::csr::{self, CsrError};
use crate::duration::format_go_duration;
use crate::policy::{CompiledPolicy, Denial, LeafProfile, Request};
use crate::spiffe::{SpiffeId, TrustDomain};

/// One CertificateRequest's inputs, as cert-manager gives them.
#[derive(Debug, Clone, Copy)]
pub struct LeafRequest<'a> {
    /// The decoded `spec.request` bytes (PEM).
    pub csr_pem: &'a [u8],
    /// `spec.duration`, Go syntax.
    pub duration: Option<&'a str>,
    /// `spec.usages`.
    pub usages: Option<&'a [String]>,
    /// `spec.isCA`.
    pub is_ca: bool,
    /// The `istio.cert-manager.io/identities` annotation.
    pub identities_annotation: Option<&'a str>,
    /// The issuer-level trust domain, when set.
    pub trust_domain: Option<&'a TrustDomain>,
}

/// Issuance knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssueOptions {
    /// Requests (and sub-CA remainders) shorter than this are refused. Default 1 minute (DESIGN §3).
    pub minimum_duration: Duration,
    /// NotBefore is set this far in the past for clock skew (C22). Default 10 seconds, as SPIRE.
    pub backdate: Duration,
    /// The longest validity window NotAfter − NotBefore, back-dating included (a
    /// PodCertificateRequest's `spec.maxExpirationSeconds`). When set, the window is counted from
    /// the back-dated NotBefore, so NotAfter − NotBefore is exactly min(policy lifetime, this,
    /// the sub-CA's remaining life from NotBefore), and a sub-CA whose remaining life from
    /// NotBefore is below `minimum_duration` is [`IssueError::SubCaExpiring`]. `None` (every
    /// other front door): the lifetime counts from now, NotBefore is back-dated before it.
    pub max_window: Option<Duration>,
}

impl Default for IssueOptions {
    fn default() -> Self {
        IssueOptions {
            minimum_duration: Duration::from_secs(60),
            backdate: Duration::from_secs(10),
            max_window: None,
        }
    }
}

/// A signed leaf and its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// Leaf, sub-CA, intermediates (no root), PEM.
    pub chain_pem: String,
    /// The root, PEM (for `status.ca`).
    pub ca_pem: String,
    /// The serial number, lowercase hex.
    pub serial_hex: String,
    /// The leaf's NotBefore.
    pub not_before: SystemTime,
    /// The leaf's NotAfter.
    pub not_after: SystemTime,
    /// The SPIFFE ID, when the leaf is an SVID.
    pub spiffe_id: Option<SpiffeId>,
    /// dNSName SANs issued.
    pub dns_names: Vec<String>,
    /// The lifetime asked for, when the policy or the sub-CA's NotAfter shortened it.
    pub clamped_from: Option<Duration>,
}

/// Why a leaf was not issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The CSR is malformed, weak or forged (terminal).
    #[error("bad certificate request: {0}")]
    BadRequest(#[from] CsrError),
    /// The policy or the SPIFFE rules refuse the request (terminal); lists every broken rule.
    #[error("{0}")]
    Denied(#[from] Denial),
    /// The sub-CA is not yet valid or has expired: wait for rotation (transient).
    #[error(
        "the sub-CA is not valid at {now_unix} (valid {not_before_unix}..{not_after_unix}); waiting for a new one"
    )]
    SubCaNotValid {
        /// Seconds since the epoch.
        now_unix: u64,
        /// Sub-CA NotBefore.
        not_before_unix: u64,
        /// Sub-CA NotAfter.
        not_after_unix: u64,
    },
    /// The sub-CA expires before the minimum leaf lifetime would end (transient: rotation is due).
    #[error(
        "the sub-CA expires in {remaining}, less than the minimum leaf duration {minimum}; waiting for the next sub-CA"
    )]
    SubCaExpiring {
        /// Time left (Go syntax).
        remaining: String,
        /// The minimum (Go syntax).
        minimum: String,
    },
    /// The signer failed (internal).
    #[error("signing failed: {0}")]
    Signing(String),
    /// A certificate just signed broke a rule: a bug; the certificate is discarded (C14).
    #[error("post-sign check {rule} failed, certificate discarded: {detail}")]
    PostSignCheck {
        /// The rule (C1..C23).
        rule: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl IssueError {
    /// True when the request itself is at fault (Ready=False/Failed now); false for transient or
    /// internal errors (keep Pending, retry).
    pub fn is_request_error(&self) -> bool {
        matches!(self, IssueError::BadRequest(_) | IssueError::Denied(_))
    }

    /// A short CamelCase reason from a bounded set, for conditions and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            IssueError::BadRequest(_) => "BadRequest",
            IssueError::Denied(_) => "PolicyDenied",
            IssueError::SubCaNotValid { .. } => "SubCaNotValid",
            IssueError::SubCaExpiring { .. } => "SubCaExpiring",
            IssueError::Signing(_) => "SigningFailed",
            IssueError::PostSignCheck { .. } => "PostSignCheckFailed",
        }
    }
}

/// Decides and, when allowed, signs one leaf.
///
/// # Guarantees
/// Nothing is signed unless the request decoded, verified and passed every policy and SPIFFE
/// rule; nothing signed is returned unless it passed the post-sign checks (C1–C23).
///
/// # Errors
/// See [`IssueError`]; [`IssueError::is_request_error`] tells terminal from transient.
pub fn issue(
    ca: &SubCa,
    policy: &CompiledPolicy,
    req: &LeafRequest<'_>,
    opts: &IssueOptions,
    now: SystemTime,
) -> Result<Issued, IssueError> {
    let csr = csr::decode_pem(req.csr_pem)?;
    let profile = decide(policy, &csr, req, opts)?;
    sign_profile(ca, &csr, profile, opts, now)
}

/// The policy decision alone (no signing), for callers that explain it.
///
/// # Errors
/// [`Denial`] listing every broken rule.
pub fn decide(
    policy: &CompiledPolicy,
    csr: &csr::CertificateRequest,
    req: &LeafRequest<'_>,
    opts: &IssueOptions,
) -> Result<LeafProfile, Denial> {
    let request = Request {
        csr,
        duration: req.duration,
        usages: req.usages,
        is_ca: req.is_ca,
        identities_annotation: req.identities_annotation,
        trust_domain: req.trust_domain,
        minimum_duration: opts.minimum_duration,
    };
    policy.evaluate(&request, false).into_result()
}

/// Signs an approved profile: validity window, template, signature, post-sign checks, chain.
///
/// # Errors
/// Sub-CA validity, signing and post-sign failures.
pub fn sign_profile(
    ca: &SubCa,
    csr: &csr::CertificateRequest,
    profile: LeafProfile,
    opts: &IssueOptions,
    now: SystemTime,
) -> Result<Issued, IssueError> {
    sign_profile_with(ca, csr, profile, opts, now, template::random_serial)
}

/// [`sign_profile`] with the serial taken from `serial`: the seam tests use to fail the random
/// source.
pub(crate) fn sign_profile_with(
    ca: &SubCa,
    csr: &csr::CertificateRequest,
    profile: LeafProfile,
    opts: &IssueOptions,
    now: SystemTime,
    serial: impl FnOnce() -> Result<[u8; template::SERIAL_LEN], IssueError>,
) -> Result<Issued, IssueError> {
    let window = template::validity_window(ca, &profile, opts, now)?;
    let serial = serial()?;
    let params = template::leaf_params(&profile, &window, &serial)?;
    let key = template::RequestKey::new(csr)?;
    let cert = params
        .signed_by(&key, ca.issuer())
        .map_err(|e| IssueError::Signing(e.to_string()))?;
    let der = cert.der();
    validate::check_leaf(der, ca, &profile, &csr.public_key_der, &window, now)?;
    let mut chain_pem = pem_encode(der);
    chain_pem.push_str(ca.chain_tail_pem());
    Ok(Issued {
        chain_pem,
        ca_pem: ca.root_pem().to_owned(),
        serial_hex: crate::util::hex_lower(&serial),
        not_before: window.not_before,
        not_after: window.not_after,
        spiffe_id: profile.spiffe_id,
        dns_names: profile.dns_names,
        clamped_from: window.clamped_from,
    })
}

/// How long a probe SVID is valid (clamped to the sub-CA's NotAfter).
pub const PROBE_LIFETIME: Duration = Duration::from_secs(60);

/// Signs a probe SVID for `spiffe_id` with `ca` through the production path (template, signature,
/// post-sign checks), for a fresh throwaway P-256 key, valid for [`PROBE_LIFETIME`] (clamped to the
/// sub-CA's NotAfter as any leaf). The caller verifies the returned chain as a relying party would
/// before activating the sub-CA.
///
/// # Errors
/// Everything [`sign_profile`] refuses; [`IssueError::Signing`] when the probe key cannot be made.
pub fn sign_probe(
    ca: &SubCa,
    spiffe_id: &SpiffeId,
    opts: &IssueOptions,
    now: SystemTime,
) -> Result<Issued, IssueError> {
    let (request, profile) = probe_request(spiffe_id)?;
    sign_profile(ca, &request, profile, opts, now)
}

/// The probe's request (a fresh P-256 key) and its SVID profile.
fn probe_request(
    spiffe_id: &SpiffeId,
) -> Result<(csr::CertificateRequest, LeafProfile), IssueError> {
    use crate::usage::{ExtendedKeyUsage, KeyUsage};
    let key = rcgen::KeyPair::generate().map_err(|e| IssueError::Signing(e.to_string()))?;
    let sans = csr::RequestedSans {
        uris: vec![spiffe_id.to_string()],
        ..csr::RequestedSans::default()
    };
    let request = csr::from_public_key(&rcgen::PublicKeyData::subject_public_key_info(&key), sans)?;
    let profile = LeafProfile {
        subject: Vec::new(),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        rfc822_names: Vec::new(),
        uris: vec![spiffe_id.to_string()],
        spiffe_id: Some(spiffe_id.clone()),
        key_usages: vec![KeyUsage::DigitalSignature],
        extended_key_usages: vec![ExtendedKeyUsage::ServerAuth, ExtendedKeyUsage::ClientAuth],
        lifetime: PROBE_LIFETIME,
        clamped_from: None,
    };
    Ok((request, profile))
}

/// PEM for one certificate, 64-column LF lines, written in one buffer (no copy of the DER).
pub(crate) fn pem_encode(der: &[u8]) -> String {
    use base64::Engine as _;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----\n";
    const END: &str = "-----END CERTIFICATE-----\n";
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(BEGIN.len() + body.len() + body.len() / 64 + 1 + END.len());
    out.push_str(BEGIN);
    // base64 output is ASCII, so every 64-byte chunk is a char boundary.
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(END);
    out
}

pub(crate) fn go(d: Duration) -> String {
    format_go_duration(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::subca::SharedKey;
    use rcgen::{BasicConstraints, IsCa, KeyPair, KeyUsagePurpose, PublicKeyData, SigningKey};
    use std::sync::Arc;

    /// A CA certificate's parameters, valid an hour either side of `now`.
    fn authority(cn: &str, path_len: Option<u8>, now: SystemTime) -> rcgen::CertificateParams {
        let constraint = match path_len {
            Some(n) => BasicConstraints::Constrained(n),
            None => BasicConstraints::Unconstrained,
        };
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, cn);
        let mut p = rcgen::CertificateParams::default();
        (p.distinguished_name, p.is_ca) = (dn, IsCa::Ca(constraint));
        p.key_usages = [
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ]
        .into();
        (p.not_before, p.not_after) = (
            (now - Duration::from_secs(3600)).into(),
            (now + Duration::from_secs(3600)).into(),
        );
        p
    }

    /// A sub-CA whose certificate carries `key`'s public key, under a fresh root.
    fn sub_ca_with(key: Arc<dyn SigningKey + Send + Sync>, now: SystemTime) -> SubCa {
        let root_key = KeyPair::generate().unwrap();
        let root_params = authority("Signature Test Root", None, now);
        let root = root_params.self_signed(&root_key).unwrap();
        let sub = authority("Signature Test Sub-CA", Some(0), now)
            .signed_by(
                &SharedKey(key.clone()),
                &rcgen::Issuer::new(root_params, &root_key),
            )
            .unwrap();
        SubCa::new(sub.der().to_vec(), vec![root.der().to_vec()], key).unwrap()
    }

    /// Presents one key's public half and signs with another: a faulty or swapped signing key.
    struct WrongKey {
        presented: KeyPair,
        signing: KeyPair,
        corrupt: bool,
    }

    impl PublicKeyData for WrongKey {
        fn der_bytes(&self) -> &[u8] {
            self.presented.der_bytes()
        }

        fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
            self.presented.algorithm()
        }
    }

    impl SigningKey for WrongKey {
        fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
            let mut signature = self.signing.sign(msg)?;
            if self.corrupt {
                let last = signature.len() - 1;
                signature[last] ^= 0x01;
            }
            Ok(signature)
        }
    }

    fn probe_id() -> SpiffeId {
        "spiffe://cluster.local/ns/probe/sa/probe".parse().unwrap()
    }

    #[test]
    fn a_window_cap_counts_the_back_dating_into_the_lifetime() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        // Valid from 10 min ago until 1 h 50 min from now.
        let ca = sub_ca_with(
            Arc::new(KeyPair::generate().unwrap()),
            now + Duration::from_secs(50 * 60),
        );
        let (csr, mut profile) = probe_request(&probe_id()).unwrap();
        profile.lifetime = Duration::from_secs(24 * 3600);
        let hour = Duration::from_secs(3600);
        let capped = IssueOptions {
            minimum_duration: hour,
            max_window: Some(hour),
            ..IssueOptions::default()
        };
        let issued = sign_profile(&ca, &csr, profile.clone(), &capped, now).unwrap();
        assert_eq!(
            issued.not_before,
            now - Duration::from_secs(10),
            "back-dated 10 s"
        );
        assert_eq!(
            issued.not_after.duration_since(issued.not_before).unwrap(),
            hour,
            "NotAfter − NotBefore is exactly the cap, back-dating included"
        );
        // Without a cap the lifetime counts from now (the other front doors).
        let mut short = profile.clone();
        short.lifetime = hour;
        let free = IssueOptions::default();
        let issued = sign_profile(&ca, &csr, short, &free, now).unwrap();
        assert_eq!(
            issued.not_after.duration_since(issued.not_before).unwrap(),
            hour + Duration::from_secs(10)
        );
        // A cap beyond the sub-CA's life: clamped to the sub-CA's NotAfter.
        let long = IssueOptions {
            max_window: Some(Duration::from_secs(7_862_400)),
            ..capped
        };
        let issued = sign_profile(&ca, &csr, profile.clone(), &long, now).unwrap();
        assert_eq!(issued.not_after, ca.not_after());
        assert_eq!(issued.not_before, now - Duration::from_secs(10));
        // Less than the minimum left from NotBefore: wait for the next sub-CA.
        let ending = sub_ca_with(
            Arc::new(KeyPair::generate().unwrap()),
            now - Duration::from_secs(30 * 60),
        );
        let err = sign_profile(&ending, &csr, profile, &capped, now).unwrap_err();
        assert!(matches!(err, IssueError::SubCaExpiring { .. }), "{err}");
    }

    #[test]
    fn a_leaf_signed_by_the_sub_ca_key_is_returned() {
        let now = SystemTime::now();
        let ca = sub_ca_with(Arc::new(KeyPair::generate().unwrap()), now);
        let issued = sign_probe(&ca, &probe_id(), &IssueOptions::default(), now).unwrap();
        assert_eq!(issued.spiffe_id, Some(probe_id()));
    }

    #[test]
    fn a_leaf_whose_signature_does_not_verify_is_never_returned() {
        let now = SystemTime::now();
        for (what, key) in [
            (
                "another key",
                WrongKey {
                    presented: KeyPair::generate().unwrap(),
                    signing: KeyPair::generate().unwrap(),
                    corrupt: false,
                },
            ),
            ("a corrupted signature", {
                let pair = KeyPair::generate().unwrap();
                let presented = KeyPair::try_from(pair.serialize_der()).unwrap();
                WrongKey {
                    presented,
                    signing: pair,
                    corrupt: true,
                }
            }),
        ] {
            let ca = sub_ca_with(Arc::new(key), now);
            let err = sign_probe(&ca, &probe_id(), &IssueOptions::default(), now).unwrap_err();
            assert!(
                matches!(err, IssueError::PostSignCheck { rule: "C14", .. }),
                "{what}: {err}"
            );
            assert!(
                err.to_string().contains("signature does not verify"),
                "{what}: {err}"
            );
            assert!(
                !err.is_request_error(),
                "{what}: an internal fault is retried, not blamed on the request"
            );
        }
    }

    /// The SPIFFE ID a profile reports (in `Issued` and the audit line) is the leaf's URI SAN:
    /// a profile naming one while its leaf carries no URI SAN is never delivered.
    #[test]
    fn a_spiffe_id_the_leaf_does_not_carry_is_never_returned() {
        let now = SystemTime::now();
        let ca = sub_ca_with(Arc::new(KeyPair::generate().unwrap()), now);
        let (request, mut profile) = probe_request(&probe_id()).unwrap();
        profile.uris.clear();
        profile.dns_names = vec!["probe.svc".to_owned()];
        let err = sign_profile(&ca, &request, profile, &IssueOptions::default(), now).unwrap_err();
        assert!(
            matches!(err, IssueError::PostSignCheck { rule: "C1", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("no URI SAN"), "{err}");
    }

    /// The leaf's subject is exactly the profile's: rcgen keeps one value per attribute type, so
    /// a profile with two (which the policy engine refuses) would be cut, and is never delivered.
    #[test]
    fn a_subject_the_encoder_cut_is_never_returned() {
        use crate::policy::engine::Field;
        let now = SystemTime::now();
        let ca = sub_ca_with(Arc::new(KeyPair::generate().unwrap()), now);
        let opts = IssueOptions::default();
        let (request, mut profile) = probe_request(&probe_id()).unwrap();
        profile.subject = vec![
            (Field::Organization, "o".to_owned()),
            (Field::OrganizationalUnit, "a".to_owned()),
        ];
        sign_profile(&ca, &request, profile.clone(), &opts, now).unwrap();
        profile
            .subject
            .push((Field::OrganizationalUnit, "b".to_owned()));
        let err = sign_profile(&ca, &request, profile, &opts, now).unwrap_err();
        assert!(
            matches!(err, IssueError::PostSignCheck { rule: "C14", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("subject differs"), "{err}");
    }

    #[test]
    fn a_failing_random_source_refuses_the_signature() {
        let now = SystemTime::now();
        let ca = sub_ca_with(Arc::new(KeyPair::generate().unwrap()), now);
        let opts = IssueOptions::default();
        let (request, profile) = probe_request(&probe_id()).unwrap();
        let err = sign_profile_with(&ca, &request, profile.clone(), &opts, now, || {
            template::serial_from(|_| Err(aws_lc_rs::error::Unspecified))
        })
        .unwrap_err();
        assert!(matches!(err, IssueError::Signing(_)), "{err}");
        assert!(err.to_string().contains("random source failed"), "{err}");
        assert!(!err.is_request_error());
        // The same request signs once the random source works.
        sign_profile_with(&ca, &request, profile, &opts, now, template::random_serial).unwrap();
    }

    #[test]
    fn pem_encode_writes_what_the_pem_crate_writes_for_every_line_boundary() {
        for len in [0usize, 1, 47, 48, 49, 95, 96, 97, 300, 700] {
            let der: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let expected = pem::encode_config(
                &pem::Pem::new("CERTIFICATE", der.clone()),
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            );
            assert_eq!(pem_encode(&der), expected, "length {len}");
        }
    }
}
