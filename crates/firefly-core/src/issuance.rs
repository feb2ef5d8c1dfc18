//! The front-door seam: an [`IssuanceRequest`] in, an [`Outcome`] out, whichever Kubernetes API the
//! request came through; authorization by [`Scope`]; the [`Signer`] trait the bootstrap implements.
//! Performs no I/O (the clock is a parameter).
//!
//! A front door owns only which objects are its own, its gate (approved? terminal? too old?),
//! turning its object into an [`IssuanceRequest`], and turning the [`Outcome`] into one status
//! write. Everything between is decided here:
//!
//! ```text
//! IssuanceRequest ─► authorize(scope: requester lists, issuer's policies)
//!                 ─► decode (CSR) or check (asserted key) ─► namespace rule (scope) ─► policy
//!                 ─► leaf template ─► sign ─► post-sign validation ─► Issued | Refused | Retry
//! ```
//!
//! Authorization (DESIGN §8) is [`Scope`]'s: see [`scope`] for the model and how a front door
//! builds one.

use std::time::{Duration, SystemTime};

use crate::ca::{self, IssueError, IssueOptions, SubCa};
use crate::csr::{self, RequestedSans};
use crate::policy::{CompiledPolicy, Request};
use crate::spiffe::{SpiffeId, TrustDomain};

pub use crate::ca::Issued;
pub use scope::{ANY_REQUESTER, IdentityNamespaces, Refusal, Scope, reason};

pub mod scope;

/// One request for a leaf certificate, in the core's terms.
#[derive(Debug, Clone, Copy)]
pub struct IssuanceRequest<'a> {
    /// The key and the claimed or asserted identity.
    pub subject: Subject<'a>,
    /// Who may obtain what: the requester and policy lists are checked before anything is
    /// decoded, the namespace rule right after decoding, before the policy.
    pub scope: Scope<'a>,
    /// The name of the policy to judge the request under (the [`Signer`] resolves it).
    pub policy: &'a str,
    /// The lifetime asked for (Go syntax, `1h`), when the request names one.
    pub duration: Option<&'a str>,
    /// The usages asked for (cert-manager spelling), when the request names them.
    pub usages: Option<&'a [String]>,
    /// Whether a CA certificate was asked for (always refused: leaves only).
    pub is_ca: bool,
    /// The trust domain every SPIFFE ID must belong to, when the issuer or signer sets one.
    pub trust_domain: Option<&'a TrustDomain>,
}

/// Where the key and the identity come from: the two shapes the front doors produce.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A PKCS#10 request (PEM) whose SANs are the claimed identity: cert-manager
    /// CertificateRequests and Kubernetes CertificateSigningRequests. The request is decoded and
    /// its signature verified before anything else is read from it.
    Csr {
        /// The request, PEM.
        pem: &'a [u8],
        /// istio-csr's `istio.cert-manager.io/identities` annotation, when present.
        identities_annotation: Option<&'a str>,
    },
    /// A public key plus an identity the front door asserts (PodCertificateRequest: derived from
    /// the pod's namespace and service account). No CSR exists; only the key is the caller's.
    AssertedKey {
        /// The SubjectPublicKeyInfo, DER.
        public_key_der: &'a [u8],
        /// The identity to certify.
        identity: &'a AssertedIdentity,
    },
}

/// An identity a front door asserts on the workload's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertedIdentity {
    /// The workload's SPIFFE ID (the leaf's URI SAN).
    pub spiffe_id: SpiffeId,
    /// dNSName SANs, if any.
    pub dns_names: Vec<String>,
}

impl AssertedIdentity {
    fn sans(&self) -> RequestedSans {
        RequestedSans {
            dns_names: self.dns_names.clone(),
            uris: vec![self.spiffe_id.as_str().to_owned()],
            ..RequestedSans::default()
        }
    }
}

impl From<Refusal> for Outcome {
    fn from(r: Refusal) -> Outcome {
        Outcome::Refused {
            reason: r.reason,
            message: r.message,
        }
    }
}

/// The core's answer: exactly one of these per request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Signed and validated.
    Issued(Issued),
    /// The request itself is at fault: fail it now (terminal).
    Refused {
        /// Short CamelCase cause from a bounded set (condition reason, metric label).
        reason: &'static str,
        /// Names the rule and the value that broke it.
        message: String,
    },
    /// Not the request's fault (no sub-CA yet, stale policies, signer failure): try again later.
    Retry {
        /// Short CamelCase cause from a bounded set.
        reason: &'static str,
        /// What is being waited for.
        message: String,
    },
}

impl Outcome {
    /// The outcome of a failed issuance. The message names the policy once: a policy denial
    /// already names it (see [`crate::policy::Denial`]), other errors get it prefixed. A malformed
    /// request is refused as [`reason::INVALID_REQUEST`].
    fn from_error(policy: &CompiledPolicy, e: &IssueError) -> Outcome {
        let message = match e {
            IssueError::Denied(denial) => denial.to_string(),
            other => format!("policy {:?}: {other}", policy.name()),
        };
        match e {
            IssueError::BadRequest(_) => Outcome::Refused {
                reason: reason::INVALID_REQUEST,
                message,
            },
            e if e.is_request_error() => Outcome::Refused {
                reason: e.reason(),
                message,
            },
            e => Outcome::Retry {
                reason: e.reason(),
                message,
            },
        }
    }
}

/// Whether a signer can sign now, and why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// True when a valid sub-CA is active and nothing blocks issuance.
    pub ready: bool,
    /// One line for `/readyz`, the issuer's Ready message and logs.
    pub message: String,
}

/// The issuance audit settings of the upstream configuration (TLSPC `advancedSettings`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditSettings {
    /// One structured audit line per issuance.
    pub enabled: bool,
    /// Include the issued certificate's PEM in that line.
    pub include_raw_cert: bool,
}

/// Authorizes, decides and, when allowed, signs one request with `sub_ca` under `policy`.
///
/// # Guarantees
/// Nothing is decoded before the scope allows the requester and the policy; nothing reaches the
/// policy unless its identities pass the scope's namespace rule; nothing is signed unless the key
/// and identity passed every policy and SPIFFE rule; nothing signed is returned unless it passed the
/// post-sign checks. For [`Subject::AssertedKey`] only the key comes from the caller.
pub fn issue(
    sub_ca: &SubCa,
    policy: &CompiledPolicy,
    request: &IssuanceRequest<'_>,
    opts: &IssueOptions,
    now: SystemTime,
) -> Outcome {
    if let Err(refused) = request.scope.authorize(request.policy) {
        return refused.into();
    }
    let (decoded, identities_annotation) = match request.subject {
        Subject::Csr {
            pem,
            identities_annotation,
        } => (csr::decode_pem(pem), identities_annotation),
        Subject::AssertedKey {
            public_key_der,
            identity,
        } => (csr::from_public_key(public_key_der, identity.sans()), None),
    };
    let csr = match decoded {
        Ok(csr) => csr,
        Err(e) => return Outcome::from_error(policy, &IssueError::from(e)),
    };
    if let Err(refused) = request.scope.check_identities(&csr) {
        return refused.into();
    }
    let result = policy
        .evaluate(
            &Request {
                csr: &csr,
                duration: request.duration,
                usages: request.usages,
                is_ca: request.is_ca,
                identities_annotation,
                trust_domain: request.trust_domain,
                minimum_duration: opts.minimum_duration,
            },
            false,
        )
        .into_result()
        .map_err(IssueError::from)
        .and_then(|profile| ca::sign_profile(sub_ca, &csr, profile, opts, now));
    match result {
        Ok(issued) => Outcome::Issued(issued),
        Err(e) => Outcome::from_error(policy, &e),
    }
}

/// What a front door needs from whatever holds the sub-CA and the policies (the bootstrap).
///
/// Implementations must not block: signing is CPU work well under a millisecond, and no network
/// call happens on this path.
pub trait Signer: Send + Sync + 'static {
    /// Whether signing is possible now (for `/readyz` and the issuers' Ready condition).
    fn readiness(&self) -> Readiness;
    /// Resolves `request.policy` and answers the request with the active sub-CA.
    fn issue(&self, request: &IssuanceRequest<'_>, opts: &IssueOptions, now: SystemTime)
    -> Outcome;
    /// The active chain, root first, down to the sub-CA's issuer; `None` without a sub-CA.
    fn chain_pems(&self) -> Option<Vec<String>>;
    /// NotAfter of the active sub-CA.
    fn sub_ca_not_after(&self) -> Option<SystemTime>;
    /// The issuance audit settings of the current configuration.
    fn audit(&self) -> AuditSettings;
    /// Counts an issued certificate for the usage report; never blocks.
    fn record_issued(&self, issued: &Issued);
    /// The usable policy named `name`, for front doors that judge what a policy can ever serve
    /// (the PodCertificateRequest door: key types, lifetime floor); `None` when it is unknown,
    /// stale or not allowed (the default, for signers that resolve policies only in
    /// [`Signer::issue`]).
    fn policy(&self, name: &str) -> Option<std::sync::Arc<CompiledPolicy>> {
        let _ = name;
        None
    }
}

/// The options a front door passes when it only sets the minimum lifetime.
pub fn options_with_minimum(minimum_duration: Duration) -> IssueOptions {
    IssueOptions {
        minimum_duration,
        ..IssueOptions::default()
    }
}

#[cfg(test)]
mod tests;
