//! The CertificateRequest controller's wiring: starts the issuer and request watches, the issuer
//! status loop and the work queue, and stops them on shutdown; it decides nothing and writes no
//! status itself (see [`reconcile`], [`apply`] and [`issuer_status`]).

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, future, stream};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Config as ApplierConfig, ReconcileRequest};
use kube::runtime::events::Reporter;
use kube::runtime::reflector;
use kube::runtime::{WatchStreamExt, applier, watcher};
use tokio::sync::Notify;

use super::authority::Authority;
use super::decide::{IssuerKind, Settings};
use crate::crd::{CertificateRequest, ClusterIssuer, Issuer};
use crate::events::EventRecorder;
use crate::metrics::Metrics;
use crate::queue::{OwnedTask, drain_until_stopped, in_own_task, triggers_from};
use crate::rbac::{CERT_MANAGER, KubeCall};

pub mod apply;
pub mod issuer_cache;
pub mod issuer_status;
pub mod issuer_watch;
pub mod reconcile;
pub mod report;
pub mod request_cache;
pub(crate) use crate::queue::retries;

pub use apply::{Applied, ApplyMetadata, apply_guarded};
pub use request_cache::{cached_requests, slim_for_cache};

pub use issuer_cache::IssuerCaches;
use issuer_watch::{IssuerChange, requests_naming, watch_issuers};
use reconcile::{ReconcileFailed, error_policy, reconcile};
use retries::RetryLog;

/// Longest wait for one event to be published (issuer and request events alike): events are
/// reports, and a slow events API must not hold a decision behind it.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The API calls this module makes (see [`crate::rbac`]): the request watch (kube-runtime's
/// `watcher` on `Api::<CertificateRequest>::all`: a list, then a watch; the cache answers every
/// read, so no `get`).
pub const KUBE_CALLS: &[KubeCall] = &[
    KubeCall::cluster(CERT_MANAGER, "certificaterequests", "", "list"),
    KubeCall::cluster(CERT_MANAGER, "certificaterequests", "", "watch"),
];

/// The source of wall-clock time (injected so tests and decisions agree on "now"): the issuing
/// core's one clock type; any `Fn() -> SystemTime` closure is one.
pub type Clock = Arc<dyn firefly_core::Clock>;

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControllerError {
    /// The status write of a CertificateRequest failed (other than 404).
    #[error("status write of CertificateRequest {namespace}/{name} failed: {source}")]
    StatusWrite {
        /// Request namespace.
        namespace: String,
        /// Request name.
        name: String,
        /// The client's error.
        source: kube::Error,
    },
    /// The issuer caches stopped before they were filled.
    #[error("the {kind} cache stopped before its first list completed")]
    CacheStopped {
        /// Issuer kind.
        kind: &'static str,
    },
}

/// Settings of the controller (from `controller.*` in the configuration).
#[derive(Clone, Debug)]
pub struct ControllerSettings {
    /// The state machine's settings.
    pub decide: Settings,
    /// Leaf durations below this fail (`controller.minimumLeafDuration`).
    pub minimum_duration: Duration,
    /// Requests reconciled at once (`controller.maxConcurrentReconciles`).
    pub max_concurrent_reconciles: u16,
    /// Field manager of our server-side-apply status writes.
    pub field_manager: String,
    /// Identity reported on events (the replica's name).
    pub instance: String,
    /// Also serve Kubernetes CertificateSigningRequests addressed to our issuers
    /// (`controller.certificateSigningRequests.enabled`).
    pub certificate_signing_requests: bool,
    /// The PodCertificateRequest front door, when `controller.podCertificates.enabled`.
    pub pod_certificates: Option<crate::pod_certs::controller::PodCertSettings>,
}

/// State shared by every reconcile.
struct Context {
    settings: ControllerSettings,
    authority: Arc<dyn Authority>,
    metrics: Metrics,
    recorder: EventRecorder,
    client: kube::Client,
    issuers: IssuerCaches,
    /// Consecutive failed reconciles per request (backoff, panic bound).
    retries: RetryLog,
    /// The copies a status write was sent for (not decided again until the newer one arrives).
    answered: crate::queue::AnsweredCopies,
    clock: Clock,
}

/// Runs the controller until `shutdown` resolves, then lets in-flight reconciles finish.
///
/// # Guarantees
/// Each request is reconciled by at most one task at a time, and every status write carries the
/// resourceVersion its decision read: the API server refuses (409) a write decided on a copy it
/// has moved past, so however many replicas run, a request is answered at most once. A
/// certificate signed for such a copy is audited as signed-not-delivered, never reported as
/// issued. A request whose reconcile panics [`decide::MAX_PANICS`](super::decide::MAX_PANICS)
/// times in a row is failed with `InternalError`.
///
/// # Errors
/// [`ControllerError::CacheStopped`] when the issuer caches end before their first list.
pub async fn run(
    client: kube::Client,
    settings: ControllerSettings,
    authority: Arc<dyn Authority>,
    metrics: Metrics,
    clock: Clock,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let group = settings.decide.group_name.clone();

    // Issuers: small objects, cached whole. Their changes re-trigger the requests naming them.
    let issuer_changed = Arc::new(Notify::new());
    let (issuer_refs_tx, issuer_refs_rx) = futures::channel::mpsc::unbounded::<IssuerChange>();
    let (issuers, issuer_writer) = reflector::store::<Issuer>();
    let (cluster_issuers, cluster_writer) = reflector::store::<ClusterIssuer>();
    // Every issuer call addresses the configured group, never the one the types were derived
    // with (see issuer_watch).
    let issuer_resource = issuer_watch::issuer_resource::<Issuer>(&group);
    let cluster_issuer_resource = issuer_watch::issuer_resource::<ClusterIssuer>(&group);
    let issuer_task = watch_issuers(
        Api::all_with(client.clone(), &issuer_resource),
        issuer_writer,
        IssuerKind::Issuer,
        issuer_refs_tx.clone(),
        issuer_changed.clone(),
        shutdown.clone(),
    );
    let cluster_task = watch_issuers(
        Api::all_with(client.clone(), &cluster_issuer_resource),
        cluster_writer,
        IssuerKind::ClusterIssuer,
        issuer_refs_tx,
        issuer_changed.clone(),
        shutdown.clone(),
    );
    let issuer_task = OwnedTask(tokio::spawn(issuer_task));
    let cluster_task = OwnedTask(tokio::spawn(cluster_task));
    // Deciding before the issuers are known would write a spurious IssuerNotFound.
    issuers
        .wait_until_ready()
        .await
        .map_err(|_| ControllerError::CacheStopped { kind: "Issuer" })?;
    cluster_issuers
        .wait_until_ready()
        .await
        .map_err(|_| ControllerError::CacheStopped {
            kind: "ClusterIssuer",
        })?;

    let recorder = EventRecorder::new(
        client.clone(),
        Reporter {
            controller: "firefly".into(),
            instance: Some(settings.instance.clone()),
        },
    );
    let (requests, request_writer) = reflector::store::<CertificateRequest>();
    let ctx = Arc::new(Context {
        settings: settings.clone(),
        authority: authority.clone(),
        metrics: metrics.clone(),
        recorder: recorder.clone(),
        client: client.clone(),
        issuers: IssuerCaches {
            issuers: issuers.clone(),
            cluster_issuers: cluster_issuers.clone(),
        },
        retries: RetryLog::default(),
        answered: Default::default(),
        clock: clock.clone(),
    });

    let status_task = OwnedTask(tokio::spawn(issuer_status::run_loop(
        issuer_status::IssuerStatusLoop {
            client: client.clone(),
            issuers,
            cluster_issuers,
            issuer_resource,
            cluster_issuer_resource,
            authority,
            metrics,
            recorder,
            field_manager: settings.field_manager.clone(),
            changed: issuer_changed,
            clock,
        },
        shutdown.clone(),
    )));

    // Bounded by the shutdown too: a stop during start-up must not wait for issuers to settle.
    let stopped_while_settling = {
        let settled = issuer_status::settle_issuers(&ctx);
        futures::pin_mut!(settled);
        matches!(
            future::select(settled, shutdown.clone()).await,
            future::Either::Right(_)
        )
    };
    if stopped_while_settling {
        let _ = tokio::join!(issuer_task, cluster_task, status_task);
        return Ok(());
    }

    // The CSR front door shares the issuer caches; it starts once they have settled.
    let csr_task = settings.certificate_signing_requests.then(|| {
        OwnedTask(tokio::spawn(crate::kube_csr::controller::run(
            crate::kube_csr::controller::CsrDoor {
                client: client.clone(),
                settings: settings.clone(),
                authority: ctx.authority.clone(),
                metrics: ctx.metrics.clone(),
                recorder: ctx.recorder.clone(),
                issuers: ctx.issuers.clone(),
                clock: ctx.clock.clone(),
            },
            shutdown.clone(),
        )))
    });

    // The PodCertificateRequest front door needs no issuer; it starts with the CSR door.
    let pcr_task = settings.pod_certificates.clone().map(|pod_settings| {
        OwnedTask(tokio::spawn(crate::pod_certs::controller::run(
            crate::pod_certs::controller::PcrDoor {
                client: client.clone(),
                settings: pod_settings,
                field_manager: settings.field_manager.clone(),
                authority: ctx.authority.clone(),
                metrics: ctx.metrics.clone(),
                recorder: ctx.recorder.clone(),
                clock: ctx.clock.clone(),
            },
            shutdown.clone(),
        )))
    });

    // The request watch runs in its own task (see crate::queue).
    let forget = ctx.clone();
    let request_events = cached_requests(
        watcher(
            Api::<CertificateRequest>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
        group.clone(),
        request_writer,
        // The answered copies are not forgotten here: a reconcile may already hold the copy
        // this removal supersedes (see crate::queue::AnsweredCopies).
        move |cr| forget.retries.forget(cr.uid().as_deref().unwrap_or("")),
    );
    let (trigger_rx, watch_task) = triggers_from(request_events, (), shutdown.clone());
    let requests_for_mapper = requests.clone();
    let issuer_triggers = issuer_refs_rx
        .map(move |change| {
            let refs: Vec<Result<ReconcileRequest<CertificateRequest>, watcher::Error>> =
                requests_naming(&requests_for_mapper, &change, &group)
                    .into_iter()
                    .map(|r| Ok(r.into()))
                    .collect();
            stream::iter(refs)
        })
        .flatten();
    let queue = stream::select(trigger_rx, issuer_triggers).take_until(shutdown.clone());
    let config = ApplierConfig::default().concurrency(settings.max_concurrent_reconciles);
    let drained = applier(
        |cr, ctx: Arc<Context>| {
            Box::pin(async move {
                let uid = cr.uid().unwrap_or_default();
                let result = in_own_task(reconcile(cr, ctx.clone()))
                    .await
                    .unwrap_or_else(|e| Err(ReconcileFailed::Panicked(e)));
                if result.is_ok() {
                    ctx.retries.forget(&uid);
                }
                result
            })
        },
        error_policy,
        ctx,
        requests.clone(),
        queue,
        config,
    )
    .for_each(|result| {
        if let Err(e) = result {
            tracing::debug!(error = %e, "reconcile queue");
        }
        future::ready(())
    });
    if drain_until_stopped(drained, &requests, shutdown).await {
        tracing::debug!("stopped before the first list of CertificateRequests");
    }
    let _ = watch_task.await;
    if let Some(csr_task) = csr_task {
        let _ = csr_task.await;
    }
    if let Some(pcr_task) = pcr_task {
        let _ = pcr_task.await;
    }
    let _ = tokio::join!(issuer_task, cluster_task, status_task);
    Ok(())
}
