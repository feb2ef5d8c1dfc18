//! The pure CertificateRequest state machine of cert-manager.md §2: from the request, the resolved
//! issuer and the signer's answer it computes the exact status change and event; issuer readiness
//! ([`issuers`]) and the retry policy ([`retry`]) are decided here too. Performs no I/O and reads
//! no clock (time is passed in).

use std::time::{Duration, SystemTime};

use base64::Engine as _;

use firefly_core::issuance::reason as refusal_reason;
use firefly_core::issuance::{IdentityNamespaces, IssuanceRequest, Outcome, Scope, Subject};
use firefly_core::spiffe::TrustDomain;

use crate::crd::{
    CertificateRequest, CertificateRequestCondition, IDENTITIES_ANNOTATION, IssuerSpec,
    POLICY_NAME_ANNOTATION,
};

pub mod issuers;
pub mod retry;

pub use issuers::{desired_issuer_condition, issuer_readiness};
pub use retry::{AFTER_CONFLICT, MAX_PANICS, retry_after_failed_reconcile, retry_backoff};

/// Condition type written by the issuer.
pub const READY: &str = "Ready";
/// Condition type written by the approver.
pub const APPROVED: &str = "Approved";
/// Condition type written by the approver.
pub const DENIED: &str = "Denied";
/// Condition type an issuer may write alongside `Ready=False/Failed`.
pub const INVALID_REQUEST: &str = "InvalidRequest";

/// `Ready` reasons, the ones istio-csr and cert-manager react to.
pub mod reason {
    /// Not decided yet: waiting for the issuer, the signer or a retry.
    pub const PENDING: &str = "Pending";
    /// Terminal failure: the request can never be signed as it is.
    pub const FAILED: &str = "Failed";
    /// Terminal: the approver denied the request.
    pub const DENIED: &str = "Denied";
    /// Terminal success: `status.certificate` holds the chain.
    pub const ISSUED: &str = "Issued";
}

/// The refusal reasons of a CertificateRequest (DESIGN §9, a contract): the event reason says
/// which rule refused it, the Ready reason is `Failed`.
pub mod refusal {
    pub use super::refusal_reason::{
        DNS_NAME_OUTSIDE_NAMESPACE, IDENTITY_OUTSIDE_NAMESPACE, INVALID_REQUEST, POLICY_DENIED,
        REQUESTER_NOT_ALLOWED, REQUESTERS_NOT_CONFIGURED,
    };

    /// Every refusal reason a CertificateRequest may carry.
    pub const ALL: [&str; 6] = [
        REQUESTERS_NOT_CONFIGURED,
        REQUESTER_NOT_ALLOWED,
        IDENTITY_OUTSIDE_NAMESPACE,
        DNS_NAME_OUTSIDE_NAMESPACE,
        POLICY_DENIED,
        INVALID_REQUEST,
    ];

    /// The policy cache's (and the pod door's) refusals of the policy a request names: not in
    /// the configuration, removed from it, outside its `controllerAllowedPolicyIds`, or unusable.
    /// Each says "this configuration does not let you use that policy", so each is a
    /// [`POLICY_DENIED`]. The transient ones (`PolicyStale`, `PolicyNotLoaded`,
    /// `PolicyUnavailable`, `SignerNotReady`) are not here: waiting helps, they are no refusal.
    pub const POLICY_REFUSALS: [&str; 5] = [
        "PolicyUnknown",
        "PolicyRemoved",
        "PolicyNotAllowed",
        "PolicyNotFound",
        "PolicyInvalid",
    ];

    /// The refusal reason for the issuing core's or the signer's reason: one of [`ALL`]. A
    /// policy the configuration does not let the request use is a policy refusal; any other
    /// finer cause is an invalid request. The finer cause stays in the message.
    pub fn named(reason: &'static str) -> &'static str {
        match reason {
            r if ALL.contains(&r) => r,
            r if POLICY_REFUSALS.contains(&r) => POLICY_DENIED,
            _ => INVALID_REQUEST,
        }
    }
}

/// Causes of a request waiting for its issuer (event and outcome reasons, the same as the
/// CertificateSigningRequest door's).
pub mod waiting {
    /// The referenced Issuer/ClusterIssuer does not exist.
    pub const ISSUER_NOT_FOUND: &str = "IssuerNotFound";
    /// It exists but is not Ready for its current generation (no active sub-CA, stale policies).
    pub const ISSUER_NOT_READY: &str = "IssuerNotReady";
}

/// The controller-wide settings the state machine depends on.
#[derive(Clone, Debug)]
pub struct Settings {
    /// API group of our issuers (`controller.cert-manager.groupName`).
    pub group_name: String,
    /// Wait for `Approved`/`Denied` before acting (`checkApproval`).
    pub check_approval: bool,
    /// `spec.username` values allowed for every issuer (`controller.allowedRequesters`): empty
    /// refuses every request, `"*"` allows every requester; an issuer's list only narrows it.
    pub allowed_requesters: Vec<String>,
    /// Namespaces whose requests may carry identities of any namespace
    /// (`controller.meshIssuerNamespaces`); requests elsewhere carry only their own namespace's.
    pub mesh_issuer_namespaces: Vec<String>,
    /// Transient errors turn into `Failed` once the request is older than this.
    pub max_retry_duration: Duration,
    /// Fill `status.ca` with the root (`caRootChainPopulation`).
    pub ca_root_chain_population: bool,
    /// Emit a Normal event for every issued certificate.
    pub success_events: bool,
}

/// Which issuer kind a request names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IssuerKind {
    /// A namespaced `Issuer` in the request's namespace.
    Issuer,
    /// A cluster-scoped `ClusterIssuer`.
    ClusterIssuer,
}

impl IssuerKind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            IssuerKind::Issuer => "Issuer",
            IssuerKind::ClusterIssuer => "ClusterIssuer",
        }
    }
}

/// The referenced issuer as the controller sees it now.
#[derive(Clone, Debug, PartialEq)]
pub enum IssuerState {
    /// No such Issuer/ClusterIssuer exists.
    Missing,
    /// It exists but its Ready condition is not True for its current generation.
    NotReady {
        /// Why (the issuer's Ready message, or that it is stale).
        message: String,
    },
    /// Ready: requests may be signed with its settings.
    Ready(IssuerSpec),
}

/// What a request needs signed: everything the issuing core reads, taken from the request and
/// its issuer; [`SignPlan::issuance_request`] lends it to the core as an [`IssuanceRequest`].
#[derive(Debug, PartialEq)]
pub struct SignPlan {
    /// The TLSPC policy to sign under.
    pub policy_name: String,
    /// The decoded `spec.request` (PEM bytes).
    pub csr_pem: Vec<u8>,
    /// `spec.duration`.
    pub duration: Option<String>,
    /// `spec.usages`.
    pub usages: Option<Vec<String>>,
    /// `spec.isCA`.
    pub is_ca: bool,
    /// The `istio.cert-manager.io/identities` annotation.
    pub identities_annotation: Option<String>,
    /// The issuer's trust domain, when it sets one.
    pub trust_domain: Option<TrustDomain>,
    /// `spec.username`: the requester the scope authorizes.
    pub requester: Option<String>,
    /// The issuer's `spec.allowedRequesters` (`None` when it sets none).
    pub issuer_allowed_requesters: Option<Vec<String>>,
    /// The issuer's `spec.allowedPolicies` (`None` when it sets none).
    pub issuer_allowed_policies: Option<Vec<String>>,
    /// The namespace whose identities the request may carry; `None` when exempt (a
    /// `controller.meshIssuerNamespaces` namespace).
    pub identity_namespaces: Option<Vec<String>>,
}

impl SignPlan {
    /// The request in the issuing core's terms: the CSR shape (its SANs are the claimed
    /// identity), authorized by the requester against the controller's and the issuer's lists,
    /// and limited to the identities of the request's namespace.
    pub fn issuance_request<'a>(&'a self, settings: &'a Settings) -> IssuanceRequest<'a> {
        IssuanceRequest {
            subject: Subject::Csr {
                pem: &self.csr_pem,
                identities_annotation: self.identities_annotation.as_deref(),
            },
            scope: Scope::Requester {
                username: self.requester.as_deref(),
                controller_allowed: &settings.allowed_requesters,
                issuer_allowed: self.issuer_allowed_requesters.as_deref(),
                allowed_policies: self.issuer_allowed_policies.as_deref(),
                identity_namespaces: match &self.identity_namespaces {
                    Some(namespace) => IdentityNamespaces::Only(namespace),
                    None => IdentityNamespaces::Any,
                },
            },
            policy: &self.policy_name,
            duration: self.duration.as_deref(),
            usages: self.usages.as_deref(),
            is_ca: self.is_ca,
            trust_domain: self.trust_domain.as_ref(),
        }
    }
}

/// A successful signature, in the shape the status needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Signed {
    /// PEM chain: leaf first, then intermediates, no root.
    pub chain_pem: String,
    /// PEM of the root.
    pub ca_pem: String,
}

/// Why signing did not produce a certificate.
#[derive(Clone, Debug, PartialEq)]
pub struct SignFailure {
    /// True when the request itself is wrong (Failed now); false for transient causes.
    pub request_error: bool,
    /// Short CamelCase cause from a bounded set (metrics label and event reason).
    pub reason: &'static str,
    /// Human-readable message naming the rule and the offending value.
    pub message: String,
}

/// What to do with a request.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Leave the request untouched (no write, no event).
    Ignore(Ignored),
    /// Sign it (through the issuing core), then call [`after_issue`].
    Sign(Box<SignPlan>),
    /// Write this status change.
    Update(Box<StatusUpdate>),
    /// The status already says this transient state; reconcile again after the delay.
    Retry(Duration),
}

/// Why a request is left untouched (bounded set; a metrics label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Its issuerRef names another issuer.
    NotOurs,
    /// `checkApproval` is on and it is neither approved nor denied.
    NotApproved,
    /// It already has a terminal state.
    Terminal,
}

/// The status change of one request: only our `Ready` condition (and certificate, ca,
/// failureTime); `Approved`/`Denied` are never part of it.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusUpdate {
    /// The `Ready` condition to apply.
    pub ready: CertificateRequestCondition,
    /// Base64 of the PEM chain (on success).
    pub certificate: Option<String>,
    /// Base64 of the root PEM (on success with `caRootChainPopulation`).
    pub ca: Option<String>,
    /// Set when the request fails or is denied.
    pub failure_time: Option<SystemTime>,
    /// The event to publish on the request.
    pub event: Option<EventNote>,
    /// Reconcile again after this delay (transient states).
    pub requeue_after: Option<Duration>,
    /// Bounded outcome label for metrics (`Issued`, `Denied`, or a failure/pending cause).
    pub outcome: &'static str,
}

/// An event to publish on the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNote {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// The message.
    pub note: String,
}

/// Steps 2–6 of cert-manager.md §2 and the request-level checks that precede signing.
///
/// # Guarantees
/// Never returns [`Decision::Sign`] for a request that is not ours, not approved (with
/// `checkApproval`), denied, already terminal, or whose issuer is missing or not ready.
pub fn decide(
    cr: &CertificateRequest,
    issuer: impl FnOnce(IssuerKind, &str) -> IssuerState,
    settings: &Settings,
    now: SystemTime,
) -> Decision {
    let Some(kind) = our_issuer_kind(cr, &settings.group_name) else {
        return Decision::Ignore(Ignored::NotOurs);
    };
    let approved = condition_true(cr, APPROVED);
    let denied = condition_true(cr, DENIED);
    if settings.check_approval && !approved && !denied {
        return Decision::Ignore(Ignored::NotApproved);
    }
    if is_terminal(cr) {
        return Decision::Ignore(Ignored::Terminal);
    }
    if denied {
        let note = "the request was denied by an approver; it will never be signed".to_owned();
        return terminal(cr, reason::DENIED, "Denied", note, now);
    }
    let name = &cr.spec.issuer_ref.name;
    let issuer_name = || format!("{} {}", kind.as_str(), describe_issuer(cr, kind));
    let spec = match issuer(kind, name) {
        IssuerState::Ready(spec) => spec,
        IssuerState::Missing => {
            let problem = format!("{} not found", issuer_name());
            return wait_for_issuer(
                cr,
                waiting::ISSUER_NOT_FOUND,
                problem,
                "waiting for it to be created",
                settings,
                now,
            );
        }
        IssuerState::NotReady { message } => {
            let problem = format!("{} is not ready: {message}", issuer_name());
            return wait_for_issuer(
                cr,
                waiting::ISSUER_NOT_READY,
                problem,
                "waiting for it to become Ready",
                settings,
                now,
            );
        }
    };
    // The requester, then the policy it names, authorized before anything is decoded, as the
    // core does again (with the namespace rule) when it signs.
    let scope = |allowed_policies| Scope::Requester {
        username: cr.spec.username.as_deref(),
        controller_allowed: &settings.allowed_requesters,
        issuer_allowed: spec.allowed_requesters.as_deref(),
        allowed_policies,
        identity_namespaces: IdentityNamespaces::Any,
    };
    if let Err(refused) = scope(None).authorize("") {
        return after_issue(cr, &refused.into(), settings, now);
    }
    let policy_name = match policy_name(cr, &spec) {
        Ok(name) => name,
        Err(failure) => return failed(cr, failure, now),
    };
    if let Err(refused) = scope(spec.allowed_policies.as_deref()).authorize(&policy_name) {
        return after_issue(cr, &refused.into(), settings, now);
    }
    let csr_pem = match decode_request(&cr.spec.request) {
        Ok(pem) => pem,
        Err(failure) => return failed(cr, failure, now),
    };
    let trust_domain = match spec.trust_domain.as_deref().map(str::parse::<TrustDomain>) {
        None => None,
        Some(Ok(td)) => Some(td),
        Some(Err(e)) => {
            let failure = SignFailure {
                request_error: true,
                reason: refusal::INVALID_REQUEST,
                message: format!(
                    "the issuer's spec.trustDomain {:?} is not a valid trust domain: {e}",
                    spec.trust_domain
                ),
            };
            return failed(cr, failure, now);
        }
    };
    let annotations = cr.metadata.annotations.as_ref();
    Decision::Sign(Box::new(SignPlan {
        policy_name,
        csr_pem,
        duration: cr.spec.duration.clone(),
        usages: cr.spec.usages.clone(),
        is_ca: cr.spec.is_ca.unwrap_or(false),
        identities_annotation: annotations
            .and_then(|a| a.get(IDENTITIES_ANNOTATION))
            .cloned(),
        trust_domain,
        requester: cr.spec.username.clone(),
        issuer_allowed_requesters: spec.allowed_requesters.clone(),
        issuer_allowed_policies: spec.allowed_policies.clone(),
        identity_namespaces: identity_namespaces(cr, settings),
    }))
}

/// Step 6 with the transient rule of step 8: an issuer that is missing or not Ready is a
/// transient cause (a sub-CA not active yet, a TLSPC blip, an issuer about to be created), so the
/// request stays `Pending` until it is `max_retry_duration` old (counted from its creation), then
/// fails with the cause as its event reason. The issuer watch re-triggers the request as soon as
/// the issuer appears or turns Ready; the requeue at the deadline makes the age check run even
/// when the issuer never changes.
fn wait_for_issuer(
    cr: &CertificateRequest,
    cause: &'static str,
    problem: String,
    waiting_for: &str,
    settings: &Settings,
    now: SystemTime,
) -> Decision {
    let age = age(cr, now);
    let max = settings.max_retry_duration;
    if age >= max {
        let message = format!(
            "{problem} (still so after {}s, beyond controller.maxRetryDuration {}s); the request will not be signed",
            age.as_secs(),
            max.as_secs()
        );
        let failure = SignFailure {
            request_error: false,
            reason: cause,
            message,
        };
        return failed(cr, failure, now);
    }
    let message = format!(
        "{problem}; {waiting_for}, for at most controller.maxRetryDuration ({}s) from the request's creation",
        max.as_secs()
    );
    pending(cr, cause, message, max.saturating_sub(age), now)
}

/// The namespaces whose identities a request may carry (DESIGN §8): its own, or any when it was
/// made in a `controller.meshIssuerNamespaces` namespace (istio-csr asks there for the whole
/// mesh). A request without a namespace (never served by the API) may carry none.
fn identity_namespaces(cr: &CertificateRequest, settings: &Settings) -> Option<Vec<String>> {
    let namespace = cr.metadata.namespace.as_deref().unwrap_or_default();
    if !namespace.is_empty()
        && settings
            .mesh_issuer_namespaces
            .iter()
            .any(|m| m == namespace)
    {
        return None;
    }
    Some(
        Some(namespace)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .into_iter()
            .collect(),
    )
}

/// Steps 7–8 for the issuing core's answer: [`Outcome::Issued`] is a success, `Refused` fails
/// the request now, `Retry` is a transient failure (see [`after_sign`]).
pub fn after_issue(
    cr: &CertificateRequest,
    outcome: &Outcome,
    settings: &Settings,
    now: SystemTime,
) -> Decision {
    let result = match outcome {
        Outcome::Issued(issued) => Ok(Signed {
            chain_pem: issued.chain_pem.clone(),
            ca_pem: issued.ca_pem.clone(),
        }),
        Outcome::Refused { reason, message } => Err(SignFailure {
            request_error: true,
            reason,
            message: message.clone(),
        }),
        Outcome::Retry { reason, message } => Err(SignFailure {
            request_error: false,
            reason,
            message: message.clone(),
        }),
    };
    after_sign(cr, result, settings, now)
}

/// Step 7–8: the status change after a signing attempt.
///
/// # Guarantees
/// A success is one update carrying certificate, ca and `Ready=True/Issued` together. A request
/// error fails at once; a transient error stays `Pending` with a backoff until the request is
/// older than `max_retry_duration`, then fails.
pub fn after_sign(
    cr: &CertificateRequest,
    result: Result<Signed, SignFailure>,
    settings: &Settings,
    now: SystemTime,
) -> Decision {
    match result {
        Ok(signed) => {
            let engine = base64::engine::general_purpose::STANDARD;
            let event = settings.success_events.then(|| EventNote {
                warning: false,
                reason: reason::ISSUED,
                note: "certificate issued".to_owned(),
            });
            Decision::Update(Box::new(StatusUpdate {
                ready: condition(
                    cr,
                    "True",
                    reason::ISSUED,
                    "Certificate fetched from issuer successfully".to_owned(),
                    now,
                ),
                certificate: Some(engine.encode(signed.chain_pem.as_bytes())),
                ca: settings
                    .ca_root_chain_population
                    .then(|| engine.encode(signed.ca_pem.as_bytes())),
                failure_time: None,
                event,
                requeue_after: None,
                outcome: reason::ISSUED,
            }))
        }
        Err(failure) if failure.request_error => {
            let failure = SignFailure {
                reason: refusal::named(failure.reason),
                ..failure
            };
            failed(cr, failure, now)
        }
        Err(failure) => {
            let age = age(cr, now);
            if age >= settings.max_retry_duration {
                let message = format!(
                    "{} (still failing after {}s, beyond controller.maxRetryDuration {}s)",
                    failure.message,
                    age.as_secs(),
                    settings.max_retry_duration.as_secs()
                );
                return failed(cr, SignFailure { message, ..failure }, now);
            }
            pending(cr, failure.reason, failure.message, retry_backoff(age), now)
        }
    }
}

/// The answer to a request whose reconcile panicked `panics` times (at least [`MAX_PANICS`]):
/// `Ready=False/Failed`, event and outcome reason `InternalError`, `failureTime`. Nothing is
/// signed; the request is never tried again. The gates of [`decide`] come first: a request that
/// is not ours, not approved (with `checkApproval`) or already terminal is left untouched.
pub fn internal_error(
    cr: &CertificateRequest,
    settings: &Settings,
    panics: u32,
    now: SystemTime,
) -> Decision {
    if our_issuer_kind(cr, &settings.group_name).is_none() {
        return Decision::Ignore(Ignored::NotOurs);
    }
    if settings.check_approval && !condition_true(cr, APPROVED) && !condition_true(cr, DENIED) {
        return Decision::Ignore(Ignored::NotApproved);
    }
    if is_terminal(cr) {
        return Decision::Ignore(Ignored::Terminal);
    }
    let failure = SignFailure {
        request_error: true,
        reason: "InternalError",
        message: format!(
            "the controller failed internally {panics} times while deciding this request; it will not be signed (see the controller's log)"
        ),
    };
    failed(cr, failure, now)
}

/// Whether the request already has a final answer (step 4): never sign it again.
pub fn is_terminal(cr: &CertificateRequest) -> bool {
    let Some(status) = cr.status.as_ref() else {
        return false;
    };
    if status.certificate.as_deref().is_some_and(|c| !c.is_empty()) {
        return true;
    }
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| match c.type_.as_str() {
            READY => {
                c.status == "True"
                    || (c.status == "False"
                        && matches!(
                            c.reason.as_deref(),
                            Some(reason::FAILED) | Some(reason::DENIED)
                        ))
            }
            INVALID_REQUEST => c.status == "True",
            _ => false,
        })
}

/// The issuer kind when `issuerRef` names one of ours (step 2), `None` otherwise.
pub fn our_issuer_kind(cr: &CertificateRequest, group_name: &str) -> Option<IssuerKind> {
    let r = &cr.spec.issuer_ref;
    if r.group.as_deref() != Some(group_name) {
        return None;
    }
    match r.kind.as_deref().unwrap_or("") {
        "" | "Issuer" => Some(IssuerKind::Issuer),
        "ClusterIssuer" => Some(IssuerKind::ClusterIssuer),
        _ => None,
    }
}

/// Whether condition `type_` is `True`.
pub fn condition_true(cr: &CertificateRequest, type_: &str) -> bool {
    find_condition(cr, type_).is_some_and(|c| c.status == "True")
}

fn find_condition<'a>(
    cr: &'a CertificateRequest,
    type_: &str,
) -> Option<&'a CertificateRequestCondition> {
    cr.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn describe_issuer(cr: &CertificateRequest, kind: IssuerKind) -> String {
    match (kind, cr.metadata.namespace.as_deref()) {
        (IssuerKind::Issuer, Some(ns)) => format!("{ns}/{}", cr.spec.issuer_ref.name),
        _ => cr.spec.issuer_ref.name.clone(),
    }
}

fn policy_name(cr: &CertificateRequest, spec: &IssuerSpec) -> Result<String, SignFailure> {
    let annotated = cr
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POLICY_NAME_ANNOTATION));
    match annotated.or(spec.default_policy_name.as_ref()) {
        Some(name) if !name.trim().is_empty() => Ok(name.clone()),
        _ => Err(SignFailure {
            request_error: true,
            reason: refusal::INVALID_REQUEST,
            message: format!(
                "no policy: the request has no {POLICY_NAME_ANNOTATION} annotation and the issuer sets no spec.defaultPolicyName"
            ),
        }),
    }
}

/// Largest `spec.request` we decode, base64 included: a CSR is a few KiB, so anything larger is
/// not one and is refused before any decoding work.
const MAX_REQUEST_BASE64: usize = 96 * 1024;

fn decode_request(request: &str) -> Result<Vec<u8>, SignFailure> {
    let invalid = |message: String| SignFailure {
        request_error: true,
        reason: refusal::INVALID_REQUEST,
        message,
    };
    if request.is_empty() {
        return Err(invalid("spec.request is empty".to_owned()));
    }
    if request.len() > MAX_REQUEST_BASE64 {
        return Err(invalid(format!(
            "spec.request is {} bytes, over the {MAX_REQUEST_BASE64}-byte limit",
            request.len()
        )));
    }
    base64::engine::general_purpose::STANDARD
        .decode(request)
        .map_err(|e| invalid(format!("spec.request is not valid base64: {e}")))
}

fn age(cr: &CertificateRequest, now: SystemTime) -> Duration {
    object_age(&cr.metadata, now)
}

/// How long ago an object was created (zero without a creation timestamp or when it lies in
/// the future).
pub fn object_age(
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    now: SystemTime,
) -> Duration {
    let Some(created) = metadata.creation_timestamp.as_ref() else {
        return Duration::ZERO;
    };
    let created = SystemTime::UNIX_EPOCH
        + Duration::from_secs(u64::try_from(created.0.as_second()).unwrap_or(0));
    now.duration_since(created).unwrap_or(Duration::ZERO)
}

fn failed(cr: &CertificateRequest, failure: SignFailure, now: SystemTime) -> Decision {
    terminal(cr, reason::FAILED, failure.reason, failure.message, now)
}

fn terminal(
    cr: &CertificateRequest,
    ready_reason: &'static str,
    cause: &'static str,
    message: String,
    now: SystemTime,
) -> Decision {
    Decision::Update(Box::new(StatusUpdate {
        ready: condition(cr, "False", ready_reason, message.clone(), now),
        certificate: None,
        ca: None,
        failure_time: Some(now),
        event: Some(EventNote {
            warning: true,
            reason: cause,
            note: message,
        }),
        requeue_after: None,
        outcome: cause,
    }))
}

/// `Ready=False/Pending` for `cause`, looked at again after `requeue_after`.
///
/// The condition's message starts with the cause (`IssuerNotFound: …`; the event carries it as
/// its reason), the one part of the message that is compared: a request already Pending for the
/// same cause is not written again (its message embeds counters, "refresh 42s ago", that change
/// on every attempt without saying anything new, and each write would re-trigger ourselves),
/// while a new cause — the missing issuer now exists but is not Ready — is written once, with
/// its event.
fn pending(
    cr: &CertificateRequest,
    cause: &'static str,
    message: String,
    requeue_after: Duration,
    now: SystemTime,
) -> Decision {
    let cause_prefix = format!("{cause}:");
    let existing = find_condition(cr, READY);
    if existing.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some(reason::PENDING)
            && c.message
                .as_deref()
                .is_some_and(|m| m.starts_with(&cause_prefix))
    }) {
        return Decision::Retry(requeue_after);
    }
    let ready_message = format!("{cause_prefix} {message}");
    Decision::Update(Box::new(StatusUpdate {
        ready: condition(cr, "False", reason::PENDING, ready_message, now),
        certificate: None,
        ca: None,
        failure_time: None,
        event: Some(EventNote {
            warning: true,
            reason: cause,
            note: message,
        }),
        requeue_after: Some(requeue_after),
        outcome: cause,
    }))
}

/// The Ready condition; `lastTransitionTime` moves only when `status` changes.
fn condition(
    cr: &CertificateRequest,
    status: &str,
    reason: &str,
    message: String,
    now: SystemTime,
) -> CertificateRequestCondition {
    let previous = find_condition(cr, READY);
    let last_transition_time = match previous {
        Some(p) if p.status == status && p.last_transition_time.is_some() => {
            p.last_transition_time.clone()
        }
        _ => Some(time(now)),
    };
    CertificateRequestCondition {
        type_: READY.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message),
        last_transition_time,
    }
}

/// A Kubernetes timestamp (second precision, as the API server stores it).
pub fn time(t: SystemTime) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let ts = jiff::Timestamp::from_second(i64::try_from(secs).unwrap_or(i64::MAX))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts)
}

#[cfg(test)]
mod tests;
