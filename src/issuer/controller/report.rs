//! What follows a CertificateRequest status write: once written, the outcome metric, the log
//! line, the issuance audit line and usage record, and the request's event (queued, never
//! waited for: [`crate::events`]); once refused with 409 after signing, the signed-not-delivered
//! audit line (no usage record). It writes no status.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

use super::Context;
use super::apply::FRONT_DOOR;
use crate::crd::CertificateRequest;
use crate::events::EventRecorder;
use crate::issuer::authority::{Authority, Issued};
use crate::issuer::decide::{self, EventNote, StatusUpdate};
use crate::rbac::{KubeCall, RECORDER_CALLS};

/// The API calls this module makes (see [`crate::rbac`]): the request's event, through the
/// recorder.
pub const KUBE_CALLS: &[KubeCall] = RECORDER_CALLS;

/// Longest event note: the API server limits an event's note to 1 KiB.
const MAX_NOTE: usize = 1000;

impl Context {
    /// Reports a status change the API server accepted: counted, logged (with the audit line
    /// for an issuance) and, when the decision carries one, published as an event.
    pub(super) async fn report(
        &self,
        cr: &CertificateRequest,
        update: &StatusUpdate,
        issuance: Option<&Issued>,
    ) {
        self.metrics
            .outcomes
            .with_label_values(&[update.outcome])
            .inc();
        self.metrics
            .issuance_outcomes
            .with_label_values(&["CertificateRequest", update.outcome])
            .inc();
        let reason = update.ready.reason.as_deref().unwrap_or("");
        let message = update.ready.message.as_deref().unwrap_or("");
        if let Some(issued) = issuance.filter(|_| update.certificate.is_some()) {
            self.record_issuance(cr, issued);
        } else if reason == decide::reason::PENDING {
            tracing::info!(reason = update.outcome, message, "request pending");
        } else {
            tracing::warn!(
                reason = update.outcome,
                ready_reason = reason,
                message,
                "request not signed"
            );
        }
        if let Some(note) = &update.event {
            publish_event(&self.recorder, note, &cr.object_ref(&())).await;
        }
    }

    /// A certificate whose status write the API server refused with `code` (409: signed for a
    /// copy of `cr` it had moved past; 404: the request is gone; 429/5xx: refused for now):
    /// never delivered, so never reported to TLSPC as issued; audited with its serial whatever
    /// the audit settings, since a signed certificate exists that nobody received.
    pub(super) fn not_delivered(&self, cr: &CertificateRequest, issued: &Issued, code: u16) {
        let request_uid = cr.uid().unwrap_or_default();
        audit_not_delivered(&self.metrics, FRONT_DOOR, issued, &request_uid, code);
    }

    /// The usage record, issue latency and audit line of an issued certificate.
    fn record_issuance(&self, cr: &CertificateRequest, issued: &Issued) {
        self.authority.record_issued(issued);
        if let Some(created) = cr.metadata.creation_timestamp.as_ref() {
            let created = SystemTime::UNIX_EPOCH
                + Duration::from_secs(u64::try_from(created.0.as_second()).unwrap_or(0));
            if let Ok(age) = SystemTime::now().duration_since(created) {
                self.metrics.issue_latency.observe(age.as_secs_f64());
                self.metrics
                    .issuance_latency
                    .with_label_values(&["CertificateRequest"])
                    .observe(age.as_secs_f64());
            }
        }
        let requester = cr.spec.username.as_deref().unwrap_or("");
        let request_uid = cr.uid().unwrap_or_default();
        log_issued(self.authority.as_ref(), issued, requester, "", &request_uid);
    }
}

/// The signed-not-delivered record of any front door: counted in
/// `firefly_signed_not_delivered_total{type}` and audited with the serial whatever the audit
/// settings (a signed certificate exists that nobody received); never a usage record.
///
/// `code` 0 is a write that failed in transit (no HTTP answer): the API server may have taken
/// it, so the certificate may be in the requester's hands. It is audited as
/// `signed-delivery-unknown` with its serial, not counted as not delivered.
pub(crate) fn audit_not_delivered(
    metrics: &crate::metrics::Metrics,
    front_door: &str,
    issued: &Issued,
    request_uid: &str,
    code: u16,
) {
    if code == 0 {
        let spiffe_id = issued.spiffe_id.as_ref().map_or("", |id| id.as_str());
        tracing::info!(target: "firefly::audit", serial = %issued.serial_hex, spiffe_id, request_uid, front_door, "signed-delivery-unknown: the status write failed in transit and may have been stored; the certificate may have been handed out");
        return;
    }
    metrics
        .signed_not_delivered
        .with_label_values(&[front_door])
        .inc();
    let spiffe_id = issued.spiffe_id.as_ref().map_or("", |id| id.as_str());
    tracing::info!(target: "firefly::audit", serial = %issued.serial_hex, spiffe_id, request_uid, code, "signed-not-delivered: the API server refused the status write; the certificate was never handed out");
}

/// Asks `authority` to answer `request` for `front_door`. Every door signs through this.
///
/// # Guarantees
/// Only outcomes where a signature was attempted are counted in
/// `firefly_signer_sign{success,type}` and timed in `firefly_sign_duration_seconds`: an issued
/// certificate (`success="true"`), or a failure of signing itself or of the post-sign checks
/// (`success="false"`). Refusals (requester, namespace, policy, malformed request) and waits
/// (no sub-CA, stale policy, sub-CA expiring) sign nothing and are not counted.
pub(crate) fn issue_counted(
    authority: &dyn Authority,
    metrics: &crate::metrics::Metrics,
    front_door: &str,
    request: &firefly_core::issuance::IssuanceRequest<'_>,
    opts: &firefly_core::ca::IssueOptions,
    now: SystemTime,
) -> firefly_core::issuance::Outcome {
    let t = std::time::Instant::now();
    let outcome = authority.issue(request, opts, now);
    if let Some(success) = signature_attempted(&outcome) {
        metrics.sign_duration.observe(t.elapsed().as_secs_f64());
        metrics
            .signer_sign
            .with_label_values(&[if success { "true" } else { "false" }, front_door])
            .inc();
    }
    outcome
}

/// Whether `outcome` came from a signature attempt, and if so whether it succeeded; `None` when
/// nothing was signed. The core reports a failed attempt as a Retry with the reason of
/// [`IssueError::Signing`] or [`IssueError::PostSignCheck`] (the only errors raised once signing
/// has begun).
///
/// [`IssueError::Signing`]: firefly_core::ca::IssueError::Signing
/// [`IssueError::PostSignCheck`]: firefly_core::ca::IssueError::PostSignCheck
fn signature_attempted(outcome: &firefly_core::issuance::Outcome) -> Option<bool> {
    use firefly_core::ca::IssueError;
    use firefly_core::issuance::Outcome;
    match outcome {
        Outcome::Issued(_) => Some(true),
        Outcome::Retry { reason, .. }
            if *reason == IssueError::Signing(String::new()).reason()
                || *reason
                    == (IssueError::PostSignCheck {
                        rule: "",
                        detail: String::new(),
                    })
                    .reason() =>
        {
            Some(false)
        }
        Outcome::Refused { .. } | Outcome::Retry { .. } => None,
    }
}

/// Publishes `note` as an event on the object `regarding`: best effort, a failure is logged.
pub(crate) async fn publish_event(
    recorder: &EventRecorder,
    note: &EventNote,
    regarding: &ObjectReference,
) {
    let event = Event {
        type_: if note.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: note.reason.to_owned(),
        note: Some(truncate(&note.note, MAX_NOTE)),
        action: "Sign".to_owned(),
        secondary: None,
    };
    // Queued, never waited for: a slow events API must not hold the object's next decision.
    recorder.record(&event, regarding);
}

/// The log lines of an issued certificate: the clamp note and, when the configuration asks for
/// it, the `firefly::audit` line (with the PEM when `include_raw_cert`). `requester` is the
/// identity the API server recorded as the request's creator (CertificateRequests and
/// CertificateSigningRequests); a PodCertificateRequest records none, so its line has an empty
/// `requester` and the node the request names in `node` (a claim of the request, checked only
/// with `verifyPod`), empty for the other kinds.
pub(crate) fn log_issued(
    authority: &dyn Authority,
    issued: &Issued,
    requester: &str,
    node: &str,
    request_uid: &str,
) {
    let not_after = jiff::Timestamp::try_from(issued.not_after)
        .map(|t| t.to_string())
        .unwrap_or_default();
    if let Some(from) = issued.clamped_from {
        tracing::info!(
            requested_seconds = from.as_secs(),
            not_after,
            "requested duration clamped by policy"
        );
    }
    let audit = authority.audit();
    if audit.enabled {
        let spiffe_id = issued.spiffe_id.as_ref().map_or("", |id| id.as_str());
        let dns_names = issued.dns_names.join(",");
        if audit.include_raw_cert {
            tracing::info!(target: "firefly::audit", serial = %issued.serial_hex, spiffe_id, dns_names, requester, node, request_uid, not_after, certificate = %issued.chain_pem, "certificate issued");
        } else {
            tracing::info!(target: "firefly::audit", serial = %issued.serial_hex, spiffe_id, dns_names, requester, node, request_uid, not_after, "certificate issued");
        }
    } else {
        tracing::debug!(serial = %issued.serial_hex, not_after, "certificate issued");
    }
}

/// `s` cut to at most `max` bytes at a character boundary, with an ellipsis when cut.
pub(super) use firefly_core::util::truncate_at_char_boundary as truncate;

#[cfg(test)]
mod tests {
    use super::*;
    use firefly_core::ca::IssueOptions;
    use firefly_core::issuance::{IssuanceRequest, Outcome, Readiness, Scope, Subject};

    /// An authority that answers every request with `outcome`.
    struct Answers(Outcome);

    impl Authority for Answers {
        fn readiness(&self) -> Readiness {
            Readiness {
                ready: true,
                message: "ready".into(),
            }
        }
        fn issue(&self, _: &IssuanceRequest<'_>, _: &IssueOptions, _: SystemTime) -> Outcome {
            self.0.clone()
        }
        fn chain_pems(&self) -> Option<Vec<String>> {
            None
        }
        fn sub_ca_not_after(&self) -> Option<SystemTime> {
            None
        }
        fn audit(&self) -> firefly_core::issuance::AuditSettings {
            Default::default()
        }
        fn record_issued(&self, _: &Issued) {}
    }

    /// `firefly_signer_sign{success}` for each front door, after one request answered `outcome`.
    fn counted(outcome: Outcome) -> [(u64, u64); 3] {
        let metrics = crate::metrics::Metrics::new().unwrap();
        let doors = [
            "CertificateRequest",
            "CertificateSigningRequest",
            "PodCertificateRequest",
        ];
        let namespaces = ["*".to_owned()];
        let request = IssuanceRequest {
            subject: Subject::Csr {
                pem: b"",
                identities_annotation: None,
            },
            scope: Scope::Signer {
                namespace: "apps",
                namespaces: &namespaces,
            },
            policy: "istio-mtls",
            duration: None,
            usages: None,
            is_ca: false,
            trust_domain: None,
        };
        let authority = Answers(outcome);
        doors.map(|door| {
            issue_counted(
                &authority,
                &metrics,
                door,
                &request,
                &IssueOptions::default(),
                SystemTime::now(),
            );
            let sign = |success| {
                metrics
                    .signer_sign
                    .with_label_values(&[success, door])
                    .get()
            };
            (sign("true"), sign("false"))
        })
    }

    #[test]
    fn waits_and_refusals_sign_nothing_and_are_not_counted_as_signatures() {
        let retry = |reason| Outcome::Retry {
            reason,
            message: "waiting".into(),
        };
        for outcome in [
            retry("SignerNotReady"),
            retry("PolicyStale"),
            retry("SubCaNotValid"),
            retry("SubCaExpiring"),
            Outcome::Refused {
                reason: "RequesterNotAllowed",
                message: "refused".into(),
            },
            Outcome::Refused {
                reason: "PolicyDenied",
                message: "refused".into(),
            },
        ] {
            assert_eq!(counted(outcome.clone()), [(0, 0); 3], "{outcome:?}");
        }
    }

    #[test]
    fn a_failed_signature_is_counted_as_unsuccessful_by_every_door() {
        for reason in ["SigningFailed", "PostSignCheckFailed"] {
            let outcome = Outcome::Retry {
                reason,
                message: "failed".into(),
            };
            assert_eq!(counted(outcome), [(0, 1); 3], "{reason}");
        }
    }
}
