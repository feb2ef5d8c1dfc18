//! Turns one [`SignPlan`] into the issuing core's [`IssuanceRequest`] and the core's [`Outcome`]
//! back into the request failure taxonomy; CPU only, performs no I/O.

use std::time::{Duration, SystemTime};

use firefly_core::issuance::{
    IssuanceRequest, Outcome, Scope, Signer, Subject, options_with_minimum,
};
use firefly_core::spiffe::TrustDomain;

use super::authority::Issuance;
use super::decide::{SignFailure, SignPlan};

/// Asks `signer` to answer `plan`, a CertificateRequest's PKCS#10 request (the claimed identity
/// is the CSR's SANs).
///
/// # Errors
/// A [`SignFailure`] with `request_error` set when the core refused the request (bad CSR, policy
/// or SPIFFE denial listing every broken rule, unknown policy) and for an unusable issuer trust
/// domain; transient otherwise (no sub-CA, stale policies, signer failure).
pub fn sign_with(
    signer: &impl Signer,
    plan: &SignPlan,
    minimum_duration: Duration,
    now: SystemTime,
) -> Result<Issuance, SignFailure> {
    let trust_domain = match plan.trust_domain.as_deref().map(str::parse::<TrustDomain>) {
        None => None,
        Some(Ok(td)) => Some(td),
        Some(Err(e)) => {
            return Err(SignFailure {
                request_error: true,
                reason: "IssuerTrustDomainInvalid",
                message: format!(
                    "the issuer's spec.trustDomain {:?} is not a valid trust domain: {e}",
                    plan.trust_domain
                ),
            });
        }
    };
    let request = IssuanceRequest {
        subject: Subject::Csr {
            pem: &plan.csr_pem,
            identities_annotation: plan.identities_annotation.as_deref(),
        },
        // decide() has already applied the requester lists (controller.allowedRequesters and the
        // issuer's spec.allowedRequesters) with the same rule; nothing narrows it further here.
        scope: Scope::Requester {
            username: None,
            controller_allowed: &[],
            issuer_allowed: &[],
        },
        policy: &plan.policy_name,
        duration: plan.duration.as_deref(),
        usages: plan.usages.as_deref(),
        is_ca: plan.is_ca,
        trust_domain: trust_domain.as_ref(),
    };
    match signer.issue(&request, &options_with_minimum(minimum_duration), now) {
        Outcome::Issued(issued) => Ok(issued),
        Outcome::Refused { reason, message } => Err(SignFailure {
            request_error: true,
            reason,
            message,
        }),
        Outcome::Retry { reason, message } => Err(SignFailure {
            request_error: false,
            reason,
            message,
        }),
    }
}
