//! One reconcile of a CertificateRequest: [`decide`](crate::issuer::decide) on the cached request
//! and issuer (or `InternalError` once its reconciles kept panicking), the signature it asks for,
//! then the computed status change handed to [`apply`](super::apply) — guarded by the cached
//! copy's resourceVersion — and [`report`](super::report); it builds no status itself. A 409
//! means the copy was stale: the request is decided again from the fresh copy the watch
//! delivers (or after a backoff), and a certificate signed for the stale copy is audited as
//! signed-not-delivered.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use kube::ResourceExt;
use kube::runtime::controller::Action;

use super::apply::{Applied, FRONT_DOOR};
use super::report::issue_counted;
use super::{Context, ControllerError, retries};
use crate::crd::CertificateRequest;
use crate::issuer::authority::Issued;
use crate::issuer::decide::{self, Decision, IssuerKind, IssuerState, SignPlan};
use firefly_core::issuance::{Outcome, options_with_minimum};

/// Why one reconcile asks to be retried.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReconcileFailed {
    /// The status write failed.
    #[error(transparent)]
    Write(#[from] ControllerError),
    /// The status write got 409: the request changed since the decision. Not a failure: it is
    /// decided again from the fresh copy.
    #[error("the request changed since it was decided (409 Conflict); deciding again")]
    Conflict,
    /// The cached copy is one a status write was already sent for (accepted, or refused with
    /// 409): it is not decided (nor signed for) again. Not a failure: the watch brings the newer
    /// copy, which triggers a reconcile.
    #[error("the cached copy was already answered; waiting for the newer one")]
    StaleCopy,
    /// The reconcile task panicked (a bug; retried with backoff, then `InternalError`).
    #[error("reconcile task failed: {0}")]
    Panicked(String),
}

impl ReconcileFailed {
    /// The API server's `Retry-After` (`details.retryAfterSeconds` of a 429 or 503), if any.
    fn retry_after(&self) -> Option<std::time::Duration> {
        let ReconcileFailed::Write(ControllerError::StatusWrite { source, .. }) = self else {
            return None;
        };
        retries::server_retry_after(source)
    }
}

/// The applier's retry policy for a failed reconcile: per request, exponential with jitter and
/// never sooner than the API server's `Retry-After` (see [`decide::retry`]).
pub(super) fn error_policy(
    cr: Arc<CertificateRequest>,
    err: &ReconcileFailed,
    ctx: Arc<Context>,
) -> Action {
    let uid = cr.uid().unwrap_or_default();
    if let ReconcileFailed::StaleCopy = err {
        // Not counted: the newer copy's watch event normally comes first; this is the fallback.
        return Action::requeue(decide::AFTER_CONFLICT);
    }
    let panicked = matches!(err, ReconcileFailed::Panicked(_));
    let failures = ctx.retries.failed(&uid, panicked);
    let retry_after = match err {
        ReconcileFailed::Conflict => Some(decide::AFTER_CONFLICT),
        _ => err.retry_after(),
    };
    let delay =
        decide::retry_after_failed_reconcile(failures.total, retries::jitter(), retry_after);
    let (namespace, name) = (cr.namespace().unwrap_or_default(), cr.name_any());
    match err {
        ReconcileFailed::Conflict => {
            tracing::debug!(
                namespace,
                request_name = name,
                ?delay,
                "deciding again after a conflict"
            );
        }
        ReconcileFailed::StaleCopy => {}
        ReconcileFailed::Panicked(_) => tracing::error!(
            namespace,
            request_name = name,
            error = %err,
            panics = failures.panics,
            max_panics = decide::MAX_PANICS,
            ?delay,
            "reconcile panicked; retrying, then failing the request with InternalError"
        ),
        ReconcileFailed::Write(_) => tracing::warn!(
            namespace,
            request_name = name,
            error = %err,
            failures = failures.total,
            ?retry_after,
            ?delay,
            "reconcile failed; retrying"
        ),
    }
    Action::requeue(delay)
}

/// One reconcile, inside a span naming the request (namespace, name, uid) for every log line.
pub(super) async fn reconcile(
    cr: Arc<CertificateRequest>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileFailed> {
    use tracing::Instrument as _;
    // `request_name`, not `name`: JSON log lines already use `span.name` for the span's own name.
    let span = tracing::info_span!(
        "certificaterequest",
        namespace = %cr.namespace().unwrap_or_default(),
        request_name = %cr.name_any(),
        uid = %cr.uid().unwrap_or_default()
    );
    reconcile_in_span(cr, ctx).instrument(span).await
}

async fn reconcile_in_span(
    cr: Arc<CertificateRequest>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileFailed> {
    let started = Instant::now();
    let now = ctx.clock.now();
    let namespace = cr.namespace();
    let uid = cr.uid().unwrap_or_default();
    if ctx
        .answered
        .is_answered(&uid, cr.resource_version().as_deref())
    {
        return Err(ReconcileFailed::StaleCopy);
    }
    let panics = ctx.retries.panics(&uid);
    // The cached copy is decided as it is: the status write carries its resourceVersion, so a
    // copy the API server has moved past is refused (409) rather than answered twice.
    let decision = if panics >= decide::MAX_PANICS {
        decide::internal_error(&cr, &ctx.settings.decide, panics, now)
    } else {
        decide::decide(
            &cr,
            |kind, name| ctx.issuer_state(kind, namespace.as_deref(), name),
            &ctx.settings.decide,
            now,
        )
    };
    let (decision, issuance) = match decision {
        Decision::Sign(plan) => ctx.sign(&cr, &plan, now),
        other => (other, None),
    };
    let action = match decision {
        Decision::Ignore(_) => Action::await_change(),
        Decision::Retry(after) => Action::requeue(after),
        Decision::Sign(_) => {
            // after_sign never asks to sign again.
            Action::await_change()
        }
        Decision::Update(update) => {
            // A reconcile of this copy triggered while the answer is in flight, or before the
            // watch delivers it, signs nothing.
            let applied = ctx
                .answered
                .write(
                    &uid,
                    cr.resource_version().as_deref(),
                    ctx.apply_status(&cr, &update),
                )
                .await;
            // A certificate the API server refused to take was never handed out.
            if let Some(issued) = &issuance {
                let refused = match &applied {
                    Ok(Applied::Written) => None,
                    Ok(Applied::Gone) => Some(404),
                    Ok(Applied::Conflict) => Some(409),
                    Err(ControllerError::StatusWrite {
                        source: kube::Error::Api(status),
                        ..
                    }) => Some(status.code),
                    // No answer: the write may have been stored and the certificate handed
                    // out. Audited as such (its retry signs no second one unless the API server
                    // did not store it).
                    Err(_) => Some(0),
                };
                if let Some(code) = refused {
                    ctx.not_delivered(&cr, issued, code);
                }
            }
            let action = match applied? {
                Applied::Written => {
                    ctx.report(&cr, &update, issuance.as_ref()).await;
                    match update.requeue_after {
                        Some(after) => Action::requeue(after),
                        None => Action::await_change(),
                    }
                }
                // istio-csr deletes requests as soon as it has an answer; nothing left to do.
                Applied::Gone => Action::await_change(),
                Applied::Conflict => return Err(ReconcileFailed::Conflict),
            };
            ctx.metrics
                .reconcile_duration
                .with_label_values(&[update.outcome])
                .observe(started.elapsed().as_secs_f64());
            action
        }
    };
    Ok(action)
}

impl Context {
    /// The cached issuer `name` of `kind`, as the state machine sees it.
    fn issuer_state(&self, kind: IssuerKind, namespace: Option<&str>, name: &str) -> IssuerState {
        self.issuers.lookup(kind, namespace, name).0
    }

    /// Asks the issuing core (through the authority) to answer `plan`, and lets the state
    /// machine turn its answer into the next decision; the issuance comes back too, for the
    /// audit line after the write.
    fn sign(
        &self,
        cr: &CertificateRequest,
        plan: &SignPlan,
        now: SystemTime,
    ) -> (Decision, Option<Issued>) {
        let request = plan.issuance_request(&self.settings.decide);
        let opts = options_with_minimum(self.settings.minimum_duration);
        let outcome = issue_counted(
            self.authority.as_ref(),
            &self.metrics,
            FRONT_DOOR,
            &request,
            &opts,
            now,
        );
        let decision = decide::after_issue(cr, &outcome, &self.settings.decide, now);
        let issuance = match outcome {
            Outcome::Issued(i) => Some(i),
            Outcome::Refused { .. } | Outcome::Retry { .. } => None,
        };
        (decision, issuance)
    }
}
