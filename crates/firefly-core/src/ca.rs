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
}

impl Default for IssueOptions {
    fn default() -> Self {
        IssueOptions {
            minimum_duration: Duration::from_secs(60),
            backdate: Duration::from_secs(10),
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
    let window = template::validity_window(ca, &profile, opts, now)?;
    let serial = template::random_serial();
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
