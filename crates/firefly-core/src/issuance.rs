//! The front-door seam: an [`IssuanceRequest`] in, an [`Outcome`] out, whichever Kubernetes API the
//! request came through; authorization by [`Scope`]; the [`Signer`] trait the bootstrap implements.
//! Performs no I/O (the clock is a parameter).
//!
//! A front door owns only which objects are its own, its gate (approved? terminal? too old?),
//! turning its object into an [`IssuanceRequest`], and turning the [`Outcome`] into one status
//! write. Everything between is decided here:
//!
//! ```text
//! IssuanceRequest ─► authorize(scope) ─► decode (CSR) or check (asserted key) ─► policy
//!                 ─► leaf template ─► sign ─► post-sign validation ─► Issued | Refused | Retry
//! ```

use std::time::{Duration, SystemTime};

use crate::ca::{self, IssueError, IssueOptions, SubCa};
use crate::csr::{self, RequestedSans};
use crate::policy::{CompiledPolicy, Request};
use crate::spiffe::{SpiffeId, TrustDomain};

pub use crate::ca::Issued;

/// One request for a leaf certificate, in the core's terms.
#[derive(Debug, Clone, Copy)]
pub struct IssuanceRequest<'a> {
    /// The key and the claimed or asserted identity.
    pub subject: Subject<'a>,
    /// Who may obtain what: checked before anything is decoded.
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

/// What authorizes a request: the requester and the lists that apply to it, or a signer's
/// configuration. Never a front door's own object (a cert-manager Issuer, a signer resource).
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// A named requester (`spec.username` of a CertificateRequest or CertificateSigningRequest).
    ///
    /// When both lists are empty every requester is allowed; otherwise the requester must be on
    /// one of them.
    Requester {
        /// The requester, when the API server recorded one.
        username: Option<&'a str>,
        /// The controller-wide list (`controller.allowedRequesters`).
        controller_allowed: &'a [String],
        /// The issuer's own list (`spec.allowedRequesters`), empty when it sets none.
        issuer_allowed: &'a [String],
    },
    /// A signer's configuration (PodCertificateRequests carry no requester).
    ///
    /// The request's namespace must be listed; `"*"` lists every namespace and an empty list
    /// refuses everything.
    Signer {
        /// The namespace the request was made in.
        namespace: &'a str,
        /// The namespaces the signer serves.
        namespaces: &'a [String],
    },
}

impl Scope<'_> {
    /// Whether the scope allows the request at all.
    ///
    /// # Errors
    /// A [`Refusal`] naming the list that refused it.
    pub fn authorize(&self) -> Result<(), Refusal> {
        match *self {
            Scope::Requester {
                username,
                controller_allowed,
                issuer_allowed,
            } => {
                if controller_allowed.is_empty() && issuer_allowed.is_empty() {
                    return Ok(());
                }
                let username = username.unwrap_or("");
                if controller_allowed
                    .iter()
                    .chain(issuer_allowed)
                    .any(|a| a == username)
                {
                    return Ok(());
                }
                Err(Refusal {
                    reason: "RequesterNotAllowed",
                    message: format!(
                        "requester {username:?} (spec.username) is not in the allowed requesters of controller.allowedRequesters or the issuer's spec.allowedRequesters"
                    ),
                })
            }
            Scope::Signer {
                namespace,
                namespaces,
            } => {
                if namespaces.iter().any(|n| n == "*" || n == namespace) {
                    return Ok(());
                }
                Err(Refusal {
                    reason: "NamespaceNotServed",
                    message: format!(
                        "namespace {namespace:?} is not in the signer's namespaces {namespaces:?} (\"*\" serves every namespace)"
                    ),
                })
            }
        }
    }
}

/// Why a scope refused a request (it becomes [`Outcome::Refused`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Short CamelCase cause from a bounded set.
    pub reason: &'static str,
    /// Names the list and the value that refused the request.
    pub message: String,
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
    fn from_error(policy: &CompiledPolicy, e: &IssueError) -> Outcome {
        let message = format!("policy {:?}: {e}", policy.name());
        if e.is_request_error() {
            Outcome::Refused {
                reason: e.reason(),
                message,
            }
        } else {
            Outcome::Retry {
                reason: e.reason(),
                message,
            }
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
/// Nothing is decoded before the scope allows the request; nothing is signed unless the key and
/// identity passed every policy and SPIFFE rule; nothing signed is returned unless it passed the
/// post-sign checks. For [`Subject::AssertedKey`] only the key comes from the caller.
pub fn issue(
    sub_ca: &SubCa,
    policy: &CompiledPolicy,
    request: &IssuanceRequest<'_>,
    opts: &IssueOptions,
    now: SystemTime,
) -> Outcome {
    if let Err(refused) = request.scope.authorize() {
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
    let result = decoded.map_err(IssueError::from).and_then(|csr| {
        let profile = policy
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
            .into_result()?;
        ca::sign_profile(sub_ca, &csr, profile, opts, now)
    });
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
