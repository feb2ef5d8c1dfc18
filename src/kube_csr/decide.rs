//! The pure CertificateSigningRequest decision: which CSRs are ours and signable (the gate), the
//! issuer and access checks, the issuing core's request, and the one status answer (certificate
//! or `Failed`) with its event; performs no I/O and reads no clock (time is passed in).

use std::time::{Duration, SystemTime};

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};

use firefly_core::issuance::{IdentityNamespaces, Outcome, Scope};
use firefly_core::spiffe::TrustDomain;

use super::signer_name::{self, IssuerTarget, SignerName};
use crate::crd::POLICY_NAME_ANNOTATION;
use crate::issuer::decide::{
    EventNote, IssuerState, Settings, SignPlan, object_age, retry_backoff,
};

/// Annotation asking for a lifetime (Go duration); wins over `spec.expirationSeconds`.
pub const REQUEST_DURATION_ANNOTATION: &str = "experimental.cert-manager.io/request-duration";
/// Annotation asking for a CA certificate (`"true"`): always refused.
pub const REQUEST_IS_CA_ANNOTATION: &str = "experimental.cert-manager.io/request-is-ca";

/// `Failed` reasons (DESIGN §9, a contract).
pub mod reason {
    /// A signer name of ours that names no issuer.
    pub const INVALID_SIGNER_NAME: &str = "InvalidSignerName";
    /// The issuer does not exist (after the retry window).
    pub const ISSUER_NOT_FOUND: &str = "IssuerNotFound";
    /// The issuer (or the signer behind it) is not ready (after the retry window).
    pub const ISSUER_NOT_READY: &str = "IssuerNotReady";
    /// `spec.username` is not an allowed requester.
    pub const REQUESTER_NOT_ALLOWED: &str = "RequesterNotAllowed";
    /// The SubjectAccessReview for `reference` on the namespaced issuer was denied.
    pub const DENIED_REFERENCE: &str = "DeniedReference";
    /// The identity lies outside the namespaces the issuer may sign for.
    pub const IDENTITY_OUTSIDE_NAMESPACE: &str = "IdentityOutsideNamespace";
    /// The policy refused the request.
    pub const POLICY_DENIED: &str = "PolicyDenied";
    /// The request does not decode or breaks a request rule.
    pub const INVALID_REQUEST: &str = "InvalidRequest";
    /// A CA certificate was asked for.
    pub const CA_REQUESTED: &str = "CARequested";
}

/// Condition types.
const APPROVED: &str = "Approved";
const DENIED: &str = "Denied";
const FAILED: &str = "Failed";

/// Why a CSR is left untouched (bounded set; a metrics label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Its signer name is another signer's.
    NotOurs,
    /// Not approved (yet).
    NotApproved,
    /// Denied by an approver.
    Denied,
    /// Already Failed or already carrying a certificate.
    Terminal,
}

/// What the gate says about a CSR before any issuer is looked up.
#[derive(Debug, PartialEq)]
pub enum Gate {
    /// Leave it untouched.
    Ignore(Ignored),
    /// Ours and signable: decide it against this issuer.
    Serve(IssuerTarget),
    /// Ours but unanswerable as addressed: fail it.
    Fail(Answer),
}

/// The gate: ours? approved, not denied, not failed, no certificate? a well-formed name?
///
/// # Guarantees
/// Only an Approved CSR that is neither Denied nor Failed and has no certificate is served or
/// failed; the API server does not check this before accepting a certificate, so this must.
pub fn gate(csr: &CertificateSigningRequest, group: &str) -> Gate {
    let parsed = signer_name::parse(&csr.spec.signer_name, group);
    if parsed == SignerName::NotOurs {
        return Gate::Ignore(Ignored::NotOurs);
    }
    if has_certificate(csr) || condition_true(csr, FAILED) {
        return Gate::Ignore(Ignored::Terminal);
    }
    if condition_true(csr, DENIED) {
        return Gate::Ignore(Ignored::Denied);
    }
    if !condition_true(csr, APPROVED) {
        return Gate::Ignore(Ignored::NotApproved);
    }
    match parsed {
        SignerName::Ours(target) => Gate::Serve(target),
        SignerName::Malformed(message) => {
            Gate::Fail(Answer::failed(reason::INVALID_SIGNER_NAME, message))
        }
        SignerName::NotOurs => Gate::Ignore(Ignored::NotOurs),
    }
}

/// Whether the door will never act on `csr`, whatever happens to it later: another signer's
/// (the signer name is immutable), already carrying a certificate or Failed, or Denied (none of
/// which the API server lets anyone undo). Such CSRs are kept out of the door's cache.
pub fn never_served(csr: &CertificateSigningRequest, group: &str) -> bool {
    matches!(
        gate(csr, group),
        Gate::Ignore(Ignored::NotOurs | Ignored::Terminal | Ignored::Denied)
    )
}

/// The answer of the SubjectAccessReview a namespaced issuer needs (cert-manager's `reference`
/// check), as the controller obtained it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// Not needed (a ClusterIssuer).
    NotRequired,
    /// The requester may reference the issuer.
    Allowed,
    /// The review said no (the message names user, verb and issuer).
    Denied(String),
    /// The review could not be made (API error): transient.
    Unknown(String),
}

/// The selected issuer as the CSR decision needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct IssuerView {
    /// Missing, not ready, or ready with its settings.
    pub state: IssuerState,
    /// The namespaces whose identities it may sign: the Issuer's namespace, or a ClusterIssuer's
    /// `spec.identityNamespaces` (`None` when it sets none: refused).
    pub identity_namespaces: Option<Vec<String>>,
}

/// The one status answer of a CSR.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// `status.certificate`: the leaf, then the intermediates, PEM.
    Certificate(String),
    /// A `Failed` condition.
    Failed {
        /// A §9 reason.
        reason: &'static str,
        /// Names the rule and the value that broke it.
        message: String,
    },
}

impl Answer {
    fn failed(reason: &'static str, message: String) -> Answer {
        Answer::Failed { reason, message }
    }
}

/// The status write of one CSR, with its event.
#[derive(Clone, Debug, PartialEq)]
pub struct CsrUpdate {
    /// What to write.
    pub answer: Answer,
    /// The event to publish on the CSR.
    pub event: Option<EventNote>,
    /// Bounded outcome label (`Issued` or the Failed reason).
    pub outcome: &'static str,
}

/// What to do with a served CSR.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Leave it untouched.
    Ignore(Ignored),
    /// Sign (through the issuing core), then call [`after_issue`].
    Sign(Box<SignPlan>),
    /// Write this answer.
    Update(Box<CsrUpdate>),
    /// Nothing to write yet: publish the event and decide again after the delay.
    Wait {
        /// Why it waits.
        event: EventNote,
        /// When to look again.
        requeue_after: Duration,
    },
}

impl From<Answer> for Decision {
    fn from(answer: Answer) -> Decision {
        Decision::Update(Box::new(update(answer, None)))
    }
}

/// Decides a CSR the gate served, against its issuer and the reference review.
///
/// # Guarantees
/// Never signs when the reference review was denied or unknown, the issuer is missing or not
/// ready, or a CA was asked for; waits (no write) for a missing or unready issuer until the CSR
/// is older than `max_retry_duration`, then fails it.
pub fn decide(
    csr: &CertificateSigningRequest,
    target: &IssuerTarget,
    issuer: IssuerView,
    reference: &Reference,
    settings: &Settings,
    now: SystemTime,
) -> Decision {
    let username = csr.spec.username.as_deref().unwrap_or("");
    match reference {
        Reference::NotRequired | Reference::Allowed => {}
        Reference::Denied(message) => {
            return Answer::failed(reason::DENIED_REFERENCE, message.clone()).into();
        }
        Reference::Unknown(message) => {
            return wait_or_fail(
                csr,
                reason::ISSUER_NOT_READY,
                format!(
                    "could not check that {username:?} may reference {}: {message}",
                    target.describe()
                ),
                settings,
                now,
            );
        }
    }
    let spec = match issuer.state {
        IssuerState::Ready(spec) => spec,
        IssuerState::Missing => {
            let message = format!("{} not found; waiting for it", target.describe());
            return wait_or_fail(csr, reason::ISSUER_NOT_FOUND, message, settings, now);
        }
        IssuerState::NotReady { message } => {
            let message = format!("{} is not ready: {message}", target.describe());
            return wait_or_fail(csr, reason::ISSUER_NOT_READY, message, settings, now);
        }
    };
    // The requester first (DESIGN §8), as the CertificateRequest door does and the core does
    // again when it signs: a requester the lists refuse learns nothing of the issuer's other
    // settings, and an empty `controller.allowedRequesters` gets the refusal that names it.
    let requester = Scope::Requester {
        username: csr.spec.username.as_deref(),
        controller_allowed: &settings.allowed_requesters,
        issuer_allowed: spec.allowed_requesters.as_deref(),
        allowed_policies: None,
        identity_namespaces: IdentityNamespaces::Any,
    };
    if let Err(refused) = requester.authorize("") {
        return Answer::failed(refusal_reason(refused.reason), refused.message).into();
    }
    let annotation = |key: &str| {
        csr.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    };
    if annotation(REQUEST_IS_CA_ANNOTATION) == Some("true") {
        return Answer::failed(
            reason::CA_REQUESTED,
            format!("annotation {REQUEST_IS_CA_ANNOTATION}: \"true\" asks for a CA certificate; this signer issues leaf certificates only"),
        )
        .into();
    }
    // The core's namespace rule, keyed on the issuer: `None` exempts (a ClusterIssuer's `["*"]`,
    // or an Issuer in a `controller.meshIssuerNamespaces` namespace, which signs for the whole
    // mesh as istio-csr's requests there do: DESIGN §8), `Some` lists the namespaces; an absent
    // or empty list signs nothing.
    let mesh_issuer = target
        .namespace
        .as_deref()
        .is_some_and(|ns| settings.mesh_issuer_namespaces.iter().any(|m| m == ns));
    let identity_namespaces = match issuer.identity_namespaces {
        _ if mesh_issuer => None,
        Some(list) if list.iter().any(|n| n == "*") => None,
        Some(list) if !list.is_empty() => Some(list),
        _ => {
            return Answer::failed(
                reason::IDENTITY_OUTSIDE_NAMESPACE,
                format!(
                    "{} sets no spec.identityNamespaces: it signs no CertificateSigningRequest until it lists the namespaces whose identities it may sign ([\"*\"] for all)",
                    target.describe()
                ),
            )
            .into();
        }
    };
    let policy_name = match annotation(POLICY_NAME_ANNOTATION)
        .or(spec.default_policy_name.as_deref())
    {
        Some(name) if !name.trim().is_empty() => name.to_owned(),
        _ => {
            return Answer::failed(
                reason::POLICY_DENIED,
                format!("no policy: the CSR has no {POLICY_NAME_ANNOTATION} annotation and {} sets no spec.defaultPolicyName", target.describe()),
            )
            .into();
        }
    };
    let trust_domain = match spec.trust_domain.as_deref().map(str::parse::<TrustDomain>) {
        None => None,
        Some(Ok(td)) => Some(td),
        Some(Err(e)) => {
            return Answer::failed(
                reason::ISSUER_NOT_READY,
                format!(
                    "{}'s spec.trustDomain {:?} is not a valid trust domain: {e}",
                    target.describe(),
                    spec.trust_domain
                ),
            )
            .into();
        }
    };
    let duration = match annotation(REQUEST_DURATION_ANNOTATION) {
        Some(d) => Some(d.to_owned()),
        None => csr.spec.expiration_seconds.map(|s| format!("{s}s")),
    };
    Decision::Sign(Box::new(SignPlan {
        policy_name,
        csr_pem: csr.spec.request.0.clone(),
        duration,
        usages: csr.spec.usages.clone(),
        is_ca: false,
        identities_annotation: None,
        trust_domain,
        requester: csr.spec.username.clone(),
        issuer_allowed_requesters: spec.allowed_requesters.clone(),
        issuer_allowed_policies: spec.allowed_policies.clone(),
        identity_namespaces,
    }))
}

/// The answer for the issuing core's outcome: a certificate, a `Failed` condition with the §9
/// reason, or (transient) a wait until the retry window closes.
pub fn after_issue(
    csr: &CertificateSigningRequest,
    outcome: &Outcome,
    settings: &Settings,
    now: SystemTime,
) -> Decision {
    match outcome {
        Outcome::Issued(issued) => {
            let event = settings.success_events.then(|| EventNote {
                warning: false,
                reason: "Issued",
                note: "certificate issued".to_owned(),
            });
            Decision::Update(Box::new(update(
                Answer::Certificate(issued.chain_pem.clone()),
                event,
            )))
        }
        Outcome::Refused { reason, message } => {
            Answer::failed(refusal_reason(reason), message.clone()).into()
        }
        Outcome::Retry { message, .. } => wait_or_fail(
            csr,
            reason::ISSUER_NOT_READY,
            format!("the signer cannot sign now: {message}"),
            settings,
            now,
        ),
    }
}

/// The §9 `Failed` reason of a core refusal (the core's reason stays in the message).
pub fn refusal_reason(core_reason: &str) -> &'static str {
    match core_reason {
        "RequesterNotAllowed" | "RequestersNotConfigured" => reason::REQUESTER_NOT_ALLOWED,
        "IdentityOutsideNamespace" | "DNSNameOutsideNamespace" => {
            reason::IDENTITY_OUTSIDE_NAMESPACE
        }
        r if r.starts_with("Policy") => reason::POLICY_DENIED,
        _ => reason::INVALID_REQUEST,
    }
}

fn update(answer: Answer, event: Option<EventNote>) -> CsrUpdate {
    let (outcome, event) = match &answer {
        Answer::Certificate(_) => ("Issued", event),
        Answer::Failed { reason, message } => (
            *reason,
            Some(EventNote {
                warning: true,
                reason,
                note: message.clone(),
            }),
        ),
    };
    CsrUpdate {
        answer,
        event,
        outcome,
    }
}

fn wait_or_fail(
    csr: &CertificateSigningRequest,
    reason: &'static str,
    message: String,
    settings: &Settings,
    now: SystemTime,
) -> Decision {
    let age = object_age(&csr.metadata, now);
    if age >= settings.max_retry_duration {
        let message = format!(
            "{message} (still so after {}s, beyond controller.maxRetryDuration {}s)",
            age.as_secs(),
            settings.max_retry_duration.as_secs()
        );
        return Answer::failed(reason, message).into();
    }
    Decision::Wait {
        event: EventNote {
            warning: true,
            reason,
            note: message,
        },
        requeue_after: retry_backoff(age),
    }
}

/// The `Failed` condition of an answer (`lastUpdateTime` and `lastTransitionTime` are now).
pub fn failed_condition(
    reason: &str,
    message: &str,
    now: SystemTime,
) -> CertificateSigningRequestCondition {
    let t = crate::issuer::decide::time(now);
    CertificateSigningRequestCondition {
        type_: FAILED.to_owned(),
        status: "True".to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_update_time: Some(t.clone()),
        last_transition_time: Some(t),
    }
}

fn has_certificate(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

fn condition_true(csr: &CertificateSigningRequest, type_: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

#[cfg(test)]
mod tests;
