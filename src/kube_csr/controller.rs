//! The CertificateSigningRequest controller: watches CSRs, runs the gate and the decision of
//! [`decide`](super::decide) against the shared issuer caches, asks the issuing core to sign,
//! and hands the one answer to [`apply`]; it builds no status itself.
//!
//! Our signer names form a family (one per issuer), and the API server's `spec.signerName` field
//! selector matches one exact name, so the watch lists every CSR and the gate filters by group.

use std::sync::Arc;
use std::time::SystemTime;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::Api;
use kube::runtime::controller::{Action, Config as ApplierConfig};
use kube::runtime::{WatchStreamExt as _, applier, reflector, watcher};
use kube::{Resource, ResourceExt};

use super::decide::{self, Decision, Gate, IssuerView, Reference};
use crate::events::EventRecorder;
use crate::issuer::authority::{Authority, Issued};
use crate::issuer::controller::report::{issue_counted, publish_event};
use crate::issuer::controller::{Clock, ControllerSettings, IssuerCaches};
use crate::issuer::decide::SignPlan;
use crate::metrics::Metrics;
use crate::queue::retries::{RetryLog, server_retry_after};
use crate::queue::{
    ANSWER_SETTLE, AnsweredCopies, drain_until_stopped, first_list_as_it_arrives, in_own_task,
    touched_after_lists, triggers_from,
};
use crate::rbac::{CERTIFICATES, KubeCall, Needs};
use firefly_core::issuance::{Outcome, options_with_minimum};

pub mod access;
pub mod apply;

use access::ReferenceCache;
use apply::Applied;

/// The API calls this module makes (see [`crate::rbac`]): kube-runtime's `Controller` lists and
/// watches every CSR (its store answers reads: no `get`). Only with the door enabled.
pub const KUBE_CALLS: &[KubeCall] = &[
    KubeCall::cluster(CERTIFICATES, "certificatesigningrequests", "", "list")
        .when(Needs::CertificateSigningRequests),
    KubeCall::cluster(CERTIFICATES, "certificatesigningrequests", "", "watch")
        .when(Needs::CertificateSigningRequests),
];

/// The front-door label of this door's metrics (`front_door`, `type`).
pub const FRONT_DOOR: &str = "CertificateSigningRequest";

/// What the CSR controller shares with the CertificateRequest controller that starts it.
pub struct CsrDoor {
    /// The API client (the controller's own identity).
    pub client: kube::Client,
    /// The controller's settings (the decision's, the minimum lifetime, the field manager).
    pub settings: ControllerSettings,
    /// The issuing core's signer.
    pub authority: Arc<dyn Authority>,
    /// The process's metrics.
    pub metrics: Metrics,
    /// Publishes events on the CSRs.
    pub recorder: EventRecorder,
    /// The issuer caches the CertificateRequest controller fills.
    pub issuers: IssuerCaches,
    /// The clock decisions read.
    pub clock: Clock,
}

/// Errors of one CSR reconcile (each is retried with a per-CSR backoff, see [`error_policy`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// The status write failed (other than 404); a 409 means the CSR changed since our read.
    #[error("status write of CertificateSigningRequest {name} failed: {source}")]
    StatusWrite {
        /// The CSR's name.
        name: String,
        /// The client's error.
        source: kube::Error,
    },
    /// The reconcile task panicked (a bug; retried).
    #[error("CSR reconcile task failed: {0}")]
    Panicked(String),
}

struct Context {
    door: CsrDoor,
    references: ReferenceCache,
    /// The copies a status write was sent for (not decided again until the newer one arrives).
    answered: AnsweredCopies,
    /// Failed reconciles per CSR, for the backoff of the next one.
    retries: RetryLog,
}

crate::lean_meta::lean_watched!(
    /// A CertificateSigningRequest as the door watches it: without its managedFields.
    WatchedCsr => CertificateSigningRequest {
        spec: k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec,
        status: k8s_openapi::api::certificates::v1::CertificateSigningRequestStatus,
        scope: kube::core::ClusterResourceScope
    }
);

/// Runs the CSR controller until `shutdown` resolves.
pub async fn run(
    door: CsrDoor,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api = Api::<WatchedCsr>::all(door.client.clone());
    let config = ApplierConfig::default().concurrency(door.settings.max_concurrent_reconciles);
    let ctx = Arc::new(Context {
        door,
        references: ReferenceCache::default(),
        answered: AnsweredCopies::default(),
        retries: RetryLog::default(),
    });
    let (reader, writer) = reflector::store();
    // The cache holds only CSRs the door may still serve: one that gets its certificate (our
    // answer), fails or is denied leaves it as if deleted, and other signers' CSRs never enter.
    let group = ctx.door.settings.decide.group_name.clone();
    let pending = watcher(api, watcher::Config::default())
        .default_backoff()
        .map_ok(crate::lean_meta::convert_event)
        .try_filter_map(move |event| futures::future::ready(Ok(keep_servable(event, &group))));
    let touched = touched_after_lists(reflector(writer, first_list_as_it_arrives(pending)), ());
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    // The watch is read in its own task and each reconcile runs as its own task (see
    // crate::queue): the cache follows our writes and signing uses every worker thread.
    let (queue, _watch_task) = triggers_from(touched, shutdown.clone());
    let drained = applier(
        |csr, ctx| {
            Box::pin(async move {
                let uid = csr.uid().unwrap_or_default();
                let result = in_own_task(reconcile(csr, ctx.clone()))
                    .await
                    .unwrap_or_else(|e| Err(CsrError::Panicked(e)));
                if result.is_ok() {
                    ctx.retries.forget(&uid);
                }
                result
            })
        },
        error_policy,
        ctx,
        reader.clone(),
        queue,
        config,
    )
    .for_each(|r| {
        if let Err(e) = r {
            tracing::debug!(error = %e, "CSR reconcile queue");
        }
        futures::future::ready(())
    });
    if drain_until_stopped(drained, &reader, shutdown).await {
        tracing::debug!("stopped before the first list of CertificateSigningRequests");
    }
}

/// The applier's retry policy for a failed reconcile: per CSR, 250 ms doubling to 30 s with
/// jitter, never sooner than the API server's `Retry-After` (a 429 or 503). A failed write means
/// a certificate was signed and not delivered, so a write the API server keeps refusing (a
/// missing grant, an admission webhook, throttling) must not turn into a signing loop. A CSR
/// that changes meanwhile is re-triggered by its watch event at once. A reconcile that keeps
/// panicking backs off the same way: the CSR API has no reason for an internal error (DESIGN §9),
/// so it is retried, never failed.
fn error_policy(csr: Arc<CertificateSigningRequest>, err: &CsrError, ctx: Arc<Context>) -> Action {
    let retry_after = match err {
        CsrError::StatusWrite { source, .. } => server_retry_after(source),
        CsrError::Panicked(_) => None,
    };
    let panicked = matches!(err, CsrError::Panicked(_));
    let uid = csr.uid().unwrap_or_default();
    Action::requeue(ctx.retries.next_attempt(&uid, panicked, retry_after, err))
}

/// Rewrites a watch event so the door's cache holds only CSRs it may still serve (see
/// [`decide::never_served`]): such a CSR's change is a removal, and a listed one is left out.
fn keep_servable(
    event: watcher::Event<CertificateSigningRequest>,
    group: &str,
) -> Option<watcher::Event<CertificateSigningRequest>> {
    match event {
        watcher::Event::Apply(csr) if decide::never_served(&csr, group) => {
            Some(watcher::Event::Delete(csr))
        }
        watcher::Event::InitApply(csr) if decide::never_served(&csr, group) => None,
        other => Some(other),
    }
}

async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    ctx: Arc<Context>,
) -> Result<Action, CsrError> {
    use tracing::Instrument as _;
    let span = tracing::info_span!(
        "certificatesigningrequest",
        request_name = %csr.name_any(),
        uid = %csr.uid().unwrap_or_default()
    );
    reconcile_in_span(csr, ctx).instrument(span).await
}

async fn reconcile_in_span(
    csr: Arc<CertificateSigningRequest>,
    ctx: Arc<Context>,
) -> Result<Action, CsrError> {
    if ctx.answered.is_answered(
        &csr.uid().unwrap_or_default(),
        csr.resource_version().as_deref(),
    ) {
        // Answered already: the watch brings the newer copy (this is the fallback).
        return Ok(Action::requeue(ANSWER_SETTLE));
    }
    let settings = &ctx.door.settings.decide;
    let target = match decide::gate(&csr, &settings.group_name) {
        Gate::Ignore(_) => return Ok(Action::await_change()),
        Gate::Fail(answer) => return ctx.answer(&csr, Decision::from(answer), None).await,
        Gate::Serve(target) => target,
    };
    let reference = match target.namespace.as_deref() {
        None => Reference::NotRequired,
        Some(ns) => {
            ctx.references
                .check(
                    &ctx.door.client,
                    &csr,
                    &settings.group_name,
                    ns,
                    &target.name,
                )
                .await
        }
    };
    let (state, identity_namespaces) =
        ctx.door
            .issuers
            .lookup(target.kind, target.namespace.as_deref(), &target.name);
    let now = ctx.door.clock.now();
    let decision = decide::decide(
        &csr,
        &target,
        IssuerView {
            state,
            identity_namespaces,
        },
        &reference,
        settings,
        now,
    );
    let (decision, issued) = match decision {
        Decision::Sign(plan) => ctx.sign(&csr, &plan, now),
        other => (other, None),
    };
    ctx.answer(&csr, decision, issued).await
}

impl Context {
    /// Asks the issuing core to answer `plan` and turns its outcome into the next decision.
    fn sign(
        &self,
        csr: &CertificateSigningRequest,
        plan: &SignPlan,
        now: SystemTime,
    ) -> (Decision, Option<Issued>) {
        let settings = &self.door.settings;
        let request = plan.issuance_request(&settings.decide);
        let opts = options_with_minimum(settings.minimum_duration);
        let outcome = issue_counted(
            self.door.authority.as_ref(),
            &self.door.metrics,
            FRONT_DOOR,
            &request,
            &opts,
            now,
        );
        let decision = decide::after_issue(csr, &outcome, &settings.decide, now);
        let issuance = match outcome {
            Outcome::Issued(i) => Some(i),
            Outcome::Refused { .. } | Outcome::Retry { .. } => None,
        };
        (decision, issuance)
    }

    /// Carries out `decision`: nothing, an event and a later look, or the one status write.
    async fn answer(
        &self,
        csr: &CertificateSigningRequest,
        decision: Decision,
        issued: Option<Issued>,
    ) -> Result<Action, CsrError> {
        match decision {
            Decision::Ignore(_) | Decision::Sign(_) => Ok(Action::await_change()),
            Decision::Wait {
                event,
                requeue_after,
            } => {
                tracing::info!(reason = event.reason, message = %event.note, "CSR waiting");
                publish_event(&self.door.recorder, &event, &csr.object_ref(&())).await;
                Ok(Action::requeue(requeue_after))
            }
            Decision::Update(update) => {
                // A reconcile of this copy triggered before the watch delivers the answer
                // signs nothing.
                let applied = self
                    .answered
                    .write(
                        &csr.uid().unwrap_or_default(),
                        csr.resource_version().as_deref(),
                        self.apply(csr, &update, issued.as_ref()),
                    )
                    .await;
                match applied? {
                    Applied::Written => self.report(csr, &update, issued.as_ref()).await,
                    // Deleted: istiod stopped waiting.
                    Applied::Gone => {}
                    // Changed since the decision: the watch delivers the newer copy, which is
                    // decided again; should none come, this copy is, once it has settled.
                    Applied::Conflict => return Ok(Action::requeue(ANSWER_SETTLE)),
                }
                Ok(Action::await_change())
            }
        }
    }
}
