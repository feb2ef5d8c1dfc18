//! What follows a CertificateRequest status write: once written, the outcome metric, the log
//! line, the issuance audit line and usage record, and the request's event (bounded by
//! [`EVENT_TIMEOUT`]); once refused with 409 after signing, the signed-not-delivered audit line
//! (no usage record). It writes no status.

use std::time::{Duration, SystemTime};

use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

use super::apply::FRONT_DOOR;
use super::{Context, EVENT_TIMEOUT};
use crate::crd::CertificateRequest;
use crate::issuer::authority::Issued;
use crate::issuer::decide::{self, StatusUpdate};
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
            // Bounded like issuer events: a slow events API must not hold the reconcile (and the
            // request's next decision) behind it.
            match tokio::time::timeout(
                EVENT_TIMEOUT,
                self.recorder.publish(&event, &cr.object_ref(&())),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "event could not be published"),
                Err(_) => tracing::warn!("request event not published within {EVENT_TIMEOUT:?}"),
            }
        }
    }

    /// A certificate whose status write the API server refused with `code` (409: signed for a
    /// copy of `cr` it had moved past; 404: the request is gone; 429/5xx: refused for now):
    /// never delivered, so never reported to TLSPC as issued; audited with its serial whatever
    /// the audit settings, since a signed certificate exists that nobody received.
    pub(super) fn not_delivered(&self, cr: &CertificateRequest, issued: &Issued, code: u16) {
        self.metrics
            .signed_not_delivered
            .with_label_values(&[FRONT_DOOR])
            .inc();
        let spiffe_id = issued.spiffe_id.as_ref().map_or("", |id| id.as_str());
        let request_uid = cr.uid().unwrap_or_default();
        tracing::info!(target: "firefly::audit", serial = %issued.serial_hex, spiffe_id, request_uid, code, "signed-not-delivered: the API server refused the status write; the certificate was never handed out");
    }

    /// The usage record, issue latency and audit line of an issued certificate.
    fn record_issuance(&self, cr: &CertificateRequest, issued: &Issued) {
        self.authority.record_issued(issued);
        if let Some(created) = cr.metadata.creation_timestamp.as_ref() {
            let created = SystemTime::UNIX_EPOCH
                + Duration::from_secs(u64::try_from(created.0.as_second()).unwrap_or(0));
            if let Ok(age) = SystemTime::now().duration_since(created) {
                self.metrics.issue_latency.observe(age.as_secs_f64());
            }
        }
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
        let audit = self.authority.audit();
        if audit.enabled {
            let requester = cr.spec.username.as_deref().unwrap_or("");
            let spiffe_id = issued.spiffe_id.as_ref().map_or("", |id| id.as_str());
            let dns_names = issued.dns_names.join(",");
            let request_uid = cr.uid().unwrap_or_default();
            if audit.include_raw_cert {
                tracing::info!(target: "firefly::audit", serial = %issued.serial_hex, spiffe_id, dns_names, requester, request_uid, not_after, certificate = %issued.chain_pem, "certificate issued");
            } else {
                tracing::info!(target: "firefly::audit", serial = %issued.serial_hex, spiffe_id, dns_names, requester, request_uid, not_after, "certificate issued");
            }
        } else {
            tracing::debug!(serial = %issued.serial_hex, not_after, "certificate issued");
        }
    }
}

/// `s` cut to at most `max` bytes at a character boundary, with an ellipsis when cut.
pub(super) use firefly_core::util::truncate_at_char_boundary as truncate;
