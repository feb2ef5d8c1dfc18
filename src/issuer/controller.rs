//! The CertificateRequest controller's wiring: starts the issuer and request watches, the issuer
//! status loop and the work queue, and stops them on shutdown; it decides nothing and writes no
//! status itself (see [`reconcile`], [`apply`] and [`issuer_status`]).

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt as _, future, stream};
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

crate::lean_meta::lean_watched!(
    /// A CertificateRequest as the door watches it: without its managedFields.
    WatchedRequest => CertificateRequest {
        spec: crate::crd::CertificateRequestSpec,
        status: crate::crd::CertificateRequestStatus,
        scope: kube::core::NamespaceResourceScope
    }
);
pub use request_cache::{cached_requests, slim_for_cache};

pub use issuer_cache::IssuerCaches;
use issuer_watch::{IssuerChange, requests_naming, watch_issuers};
use reconcile::{ReconcileFailed, error_policy, reconcile};
use retries::RetryLog;

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
    /// A front door's main task ended before the controller was stopped (a panic in its main
    /// loop): the controller was stopped with it, so that it is started again whole.
    #[error("the {door} front door stopped on its own: {cause}")]
    DoorStopped {
        /// The door (`CertificateSigningRequest`, `PodCertificateRequest`).
        door: &'static str,
        /// The panic's message, or that it returned.
        cause: String,
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
    /// How long one answer's status write may wait for the API server
    /// ([`apply::STATUS_WRITE_TIMEOUT`] unless a test shortens it).
    pub status_write_timeout: Duration,
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
/// [`ControllerError::CacheStopped`] when the issuer caches end before their first list;
/// [`ControllerError::DoorStopped`] when a front door's main task ends before `shutdown` (the
/// rest of the controller is then stopped as on `shutdown`, in-flight reconciles finishing).
pub async fn run(
    client: kube::Client,
    settings: ControllerSettings,
    authority: Arc<dyn Authority>,
    metrics: Metrics,
    clock: Clock,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    // `halt` stops everything as `shutdown` does, when a front door ends on its own.
    let (halt, mut halted) = tokio::sync::watch::channel(false);
    let shutdown = futures::FutureExt::shared(Box::pin(async move {
        tokio::select! {
            () = shutdown => {}
            _ = halted.wait_for(|h| *h) => {}
        }
    }));
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

    let recorder = EventRecorder::counted(
        client.clone(),
        Reporter {
            controller: "firefly".into(),
            instance: Some(settings.instance.clone()),
        },
        metrics.events_dropped.clone(),
    );
    // Kept to publish, once everything has stopped, the events still queued and the repeats
    // counted since the last series write (see crate::events).
    let events = recorder.clone();
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
    let mut doors: Vec<DoorTask> = Vec::new();
    if settings.certificate_signing_requests {
        let task = OwnedTask(tokio::spawn(crate::kube_csr::controller::run(
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
        )));
        doors.push(("CertificateSigningRequest", task));
    }

    // The PodCertificateRequest front door needs no issuer; it starts with the CSR door.
    if let Some(pod_settings) = settings.pod_certificates.clone() {
        let task = OwnedTask(tokio::spawn(crate::pod_certs::controller::run(
            crate::pod_certs::controller::PcrDoor {
                client: client.clone(),
                settings: pod_settings,
                field_manager: settings.field_manager.clone(),
                status_write_timeout: settings.status_write_timeout,
                authority: ctx.authority.clone(),
                metrics: ctx.metrics.clone(),
                recorder: ctx.recorder.clone(),
                clock: ctx.clock.clone(),
            },
            shutdown.clone(),
        )));
        doors.push(("PodCertificateRequest", task));
    }

    // The request watch runs in its own task (see crate::queue).
    let forget = ctx.clone();
    let request_events = cached_requests(
        watcher(
            Api::<WatchedRequest>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .map_ok(crate::lean_meta::convert_event),
        group.clone(),
        request_writer,
        // The answered copies are not forgotten here: a reconcile may already hold the copy
        // this removal supersedes (see crate::queue::AnsweredCopies).
        move |cr| forget.retries.forget(cr.uid().as_deref().unwrap_or("")),
    );
    let (trigger_rx, watch_task) = triggers_from(request_events, shutdown.clone());
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
    let drained = async {
        if drain_until_stopped(drained, &requests, shutdown.clone()).await {
            tracing::debug!("stopped before the first list of CertificateRequests");
        }
    };
    let result = supervise_doors(drained, doors, &shutdown, &halt).await;
    let _ = watch_task.await;
    let _ = tokio::join!(issuer_task, cluster_task, status_task);
    if tokio::time::timeout(EVENT_FLUSH_LIMIT, events.flush())
        .await
        .is_err()
    {
        tracing::warn!(
            limit_s = EVENT_FLUSH_LIMIT.as_secs(),
            "events still queued were not all published in time; the rest is dropped"
        );
    }
    result
}

/// Longest wait, once the doors have stopped, for the queued events and counted repeats to be
/// written: within the shutdown step that waits for the controller (see `crate::run`).
const EVENT_FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// A front door's main task, with the door's name.
type DoorTask = (&'static str, OwnedTask<()>);

/// Drives `requests` (the CertificateRequest door's applier) to its end while watching the
/// other doors' main tasks.
///
/// # Guarantees
/// A door that ends before `shutdown` resolved (a panic in its main loop, or a return) sends
/// `halt`, which stops everything else as `shutdown` would: `requests` and the other doors are
/// still driven to their end, so in-flight reconciles finish their writes. Once `shutdown`
/// resolved, doors ending is expected.
///
/// # Errors
/// [`ControllerError::DoorStopped`] naming the first door that ended on its own.
async fn supervise_doors<S>(
    requests: impl std::future::Future<Output = ()>,
    doors: Vec<DoorTask>,
    shutdown: &future::Shared<S>,
    halt: &tokio::sync::watch::Sender<bool>,
) -> Result<(), ControllerError>
where
    S: std::future::Future<Output = ()>,
{
    let mut doors: stream::FuturesUnordered<_> = doors
        .into_iter()
        .map(|(door, task)| async move { (door, task.await) })
        .collect();
    futures::pin_mut!(requests);
    let mut requests_done = false;
    let mut failure = None;
    while !(requests_done && doors.is_empty()) {
        tokio::select! {
            () = &mut requests, if !requests_done => requests_done = true,
            Some((door, ended)) = doors.next(), if !doors.is_empty() => {
                if shutdown.peek().is_some() || failure.is_some() {
                    continue;
                }
                let cause = match ended {
                    Ok(()) => "its main loop returned".to_owned(),
                    Err(e) => e.to_string(),
                };
                tracing::error!(door, cause, "front door stopped on its own; stopping the controller to start it again");
                failure = Some(ControllerError::DoorStopped { door, cause });
                let _ = halt.send(true);
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, Ordering};

    type Stop = future::Shared<Pin<Box<dyn std::future::Future<Output = ()> + Send>>>;

    /// The controller's stop as `run` builds it: the caller's `shutdown`, or `halt`.
    fn stop_with(
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> (tokio::sync::watch::Sender<bool>, Stop) {
        let (halt, mut halted) = tokio::sync::watch::channel(false);
        let stop: Pin<Box<dyn std::future::Future<Output = ()> + Send>> = Box::pin(async move {
            tokio::select! {
                () = shutdown => {}
                _ = halted.wait_for(|h| *h) => {}
            }
        });
        (halt, futures::FutureExt::shared(stop))
    }

    /// A door whose main loop ends with the controller's stop.
    fn healthy_door(name: &'static str, stop: &Stop) -> DoorTask {
        (name, OwnedTask(tokio::spawn(stop.clone())))
    }

    #[tokio::test]
    async fn a_door_that_panics_stops_the_controller_after_the_rest_drained() {
        let (halt, stop) = stop_with(future::pending());
        let drained = Arc::new(AtomicBool::new(false));
        let requests = {
            let (stop, drained) = (stop.clone(), drained.clone());
            async move {
                stop.await;
                drained.store(true, Ordering::SeqCst);
            }
        };
        let doors = vec![
            healthy_door("PodCertificateRequest", &stop),
            (
                "CertificateSigningRequest",
                OwnedTask(tokio::spawn(async { panic!("door main loop broke") })),
            ),
        ];
        let result = supervise_doors(requests, doors, &stop, &halt).await;
        match result {
            Err(ControllerError::DoorStopped { door, cause }) => {
                assert_eq!(door, "CertificateSigningRequest");
                assert!(cause.contains("door main loop broke"), "{cause}");
            }
            other => panic!("expected DoorStopped, got {other:?}"),
        }
        assert!(
            drained.load(Ordering::SeqCst),
            "the CertificateRequest door was stopped and drained, not dropped"
        );
    }

    #[tokio::test]
    async fn a_door_whose_main_loop_returns_early_stops_the_controller() {
        let (halt, stop) = stop_with(future::pending());
        let doors = vec![("PodCertificateRequest", OwnedTask(tokio::spawn(async {})))];
        let result = supervise_doors(stop.clone(), doors, &stop, &halt).await;
        assert!(
            matches!(
                result,
                Err(ControllerError::DoorStopped {
                    door: "PodCertificateRequest",
                    ..
                })
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn doors_ending_on_shutdown_are_no_failure() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (halt, stop) = stop_with(async move {
            let _ = rx.await;
        });
        let doors = vec![
            healthy_door("CertificateSigningRequest", &stop),
            healthy_door("PodCertificateRequest", &stop),
        ];
        let _ = tx.send(());
        let result = supervise_doors(stop.clone(), doors, &stop, &halt).await;
        assert!(result.is_ok(), "{result:?}");
        assert!(!*halt.borrow(), "a requested stop halts nothing itself");
    }
}
