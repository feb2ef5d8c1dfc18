//! One reconcile of a CertificateRequest: the stale-copy gate, [`decide`](crate::issuer::decide)
//! on the cached request and issuer, the signature it asks for, then the computed status change
//! handed to [`apply`](super::apply) and [`report`](super::report); it builds no status itself.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use super::apply::Applied;
use super::{Context, ControllerError};
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
    /// The reconcile task panicked (a bug; retried like a write error).
    #[error("reconcile task failed: {0}")]
    Panicked(String),
}

/// The applier's retry policy for a failed reconcile (see [`decide::retry`]).
pub(super) fn error_policy(
    _cr: Arc<CertificateRequest>,
    err: &ReconcileFailed,
    _ctx: Arc<Context>,
) -> Action {
    tracing::warn!(error = %err, "reconcile failed; retrying");
    Action::requeue(decide::retry_after_failed_reconcile())
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
    let uid = cr.uid().unwrap_or_default();
    let rv = cr.resource_version().unwrap_or_default();
    // A copy older than what the cache holds now must not be decided on: our own write may be
    // what replaced it. The log is read first: the watch applies a newer version to the cache
    // before the log forgets the write, so one of the two always sees it.
    if ctx.written.is_stale(&uid, &rv) || !ctx.is_latest(&cr) {
        return Ok(Action::await_change());
    }
    let now = ctx.clock.now();
    let namespace = cr.namespace();
    let decision = decide::decide(
        &cr,
        |kind, name| ctx.issuer_state(kind, namespace.as_deref(), name),
        &ctx.settings.decide,
        now,
    );
    let (decision, issuance) = match decision {
        Decision::Sign(plan) => ctx.sign(&cr, &plan, now),
        other => (other, None),
    };
    let action = match decision {
        Decision::Ignore(decide::Ignored::Terminal) => {
            ctx.written.forget(&uid);
            Action::await_change()
        }
        Decision::Ignore(_) => Action::await_change(),
        Decision::Retry(after) => Action::requeue(after),
        Decision::Sign(_) => {
            // after_sign never asks to sign again.
            Action::await_change()
        }
        Decision::Update(update) => {
            let action = match ctx.apply_status(&cr, &update).await? {
                Applied::Written => {
                    ctx.report(&cr, &update, issuance.as_ref()).await;
                    match update.requeue_after {
                        Some(after) => Action::requeue(after),
                        None => Action::await_change(),
                    }
                }
                // istio-csr deletes requests as soon as it has an answer; nothing left to do.
                Applied::Gone => Action::await_change(),
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
    /// Whether `cr` is the version the request cache holds now (a request no longer cached was
    /// answered or deleted).
    fn is_latest(&self, cr: &CertificateRequest) -> bool {
        self.requests
            .get(&ObjectRef::from_obj(cr))
            .is_some_and(|cached| cached.resource_version() == cr.resource_version())
    }

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
        let t = Instant::now();
        let outcome = self.authority.issue(&request, &opts, now);
        self.metrics
            .sign_duration
            .observe(t.elapsed().as_secs_f64());
        let issued = matches!(outcome, Outcome::Issued(_));
        self.metrics
            .signer_sign
            .with_label_values(&[if issued { "true" } else { "false" }, "CertificateRequest"])
            .inc();
        let decision = decide::after_issue(cr, &outcome, &self.settings.decide, now);
        let issuance = match outcome {
            Outcome::Issued(i) => Some(i),
            Outcome::Refused { .. } | Outcome::Retry { .. } => None,
        };
        (decision, issuance)
    }
}
