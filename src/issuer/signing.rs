//! Signs one [`SignPlan`] with the issuing core and maps its errors onto the request failure
//! taxonomy; CPU only, performs no I/O.

use std::time::{Duration, SystemTime};

use super::authority::Issuance;
use super::decide::{SignFailure, SignPlan};
use crate::ca::{self, IssueOptions, LeafRequest, SubCa};
use crate::policy::CompiledPolicy;
use crate::spiffe::TrustDomain;

/// Evaluates `plan` against `policy` and, when allowed, signs it with `sub_ca`.
///
/// # Errors
/// A [`SignFailure`] with `request_error` set for a bad CSR or a policy/SPIFFE denial (the message
/// lists every broken rule) and for an unusable issuer trust domain; transient otherwise (sub-CA
/// not valid or about to expire, signer failure).
pub fn sign_with(
    sub_ca: &SubCa,
    policy: &CompiledPolicy,
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
    let request = LeafRequest {
        csr_pem: &plan.csr_pem,
        duration: plan.duration.as_deref(),
        usages: plan.usages.as_deref(),
        is_ca: plan.is_ca,
        identities_annotation: plan.identities_annotation.as_deref(),
        trust_domain: trust_domain.as_ref(),
    };
    let opts = IssueOptions {
        minimum_duration,
        ..IssueOptions::default()
    };
    ca::issue(sub_ca, policy, &request, &opts, now).map_err(|e| SignFailure {
        request_error: e.is_request_error(),
        reason: e.reason(),
        message: format!("policy {:?}: {e}", policy.name()),
    })
}
