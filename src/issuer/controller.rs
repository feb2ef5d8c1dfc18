//! The CertificateRequest controller's I/O: watches requests and issuers into slim caches, runs
//! [`decide`](super::decide) with many requests in flight, and applies each decision with one
//! server-side-apply status write plus an event; Issuer/ClusterIssuer status is kept in step with
//! the authority's readiness.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::{StreamExt, TryStreamExt, future, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ApplierConfig, ReconcileRequest, trigger_self};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, applier, watcher};
use kube::{Resource, ResourceExt};
use tokio::sync::Notify;

use super::authority::{Authority, Issuance};
use super::decide::{
    self, Decision, IssuerKind, IssuerState, Settings, SignFailure, Signed, StatusUpdate,
    is_terminal, our_issuer_kind,
};
use crate::crd::{CertificateRequest, ClusterIssuer, Issuer, IssuerSpec, IssuerStatus};
use crate::metrics::Metrics;

/// The source of wall-clock time (injected so tests and decisions agree on "now").
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

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
}

/// State shared by every reconcile.
struct Context {
    settings: ControllerSettings,
    authority: Arc<dyn Authority>,
    metrics: Metrics,
    recorder: Recorder,
    client: kube::Client,
    issuers: Store<Issuer>,
    cluster_issuers: Store<ClusterIssuer>,
    /// The request cache the reconciles are dispatched from (requests in flight only).
    requests: Store<CertificateRequest>,
    written: WrittenLog,
    clock: Clock,
}

/// Runs the controller until `shutdown` resolves, then lets in-flight reconciles finish.
///
/// # Guarantees
/// Each request is reconciled by at most one task at a time; a request this controller already
/// answered is never signed again, even when a stale cached copy triggers another reconcile.
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
    let wc = watcher::Config::default();

    // Issuers: small objects, cached whole. Their changes re-trigger the requests naming them.
    let issuer_changed = Arc::new(Notify::new());
    let (issuer_refs_tx, issuer_refs_rx) = futures::channel::mpsc::unbounded::<IssuerChange>();
    let (issuers, issuer_writer) = reflector::store::<Issuer>();
    let (cluster_issuers, cluster_writer) = reflector::store::<ClusterIssuer>();
    let issuer_task = watch_issuers(
        Api::<Issuer>::all(client.clone()),
        issuer_writer,
        IssuerKind::Issuer,
        issuer_refs_tx.clone(),
        issuer_changed.clone(),
        shutdown.clone(),
    );
    let cluster_task = watch_issuers(
        Api::<ClusterIssuer>::all(client.clone()),
        cluster_writer,
        IssuerKind::ClusterIssuer,
        issuer_refs_tx,
        issuer_changed.clone(),
        shutdown.clone(),
    );
    let issuer_task = Owned(tokio::spawn(issuer_task));
    let cluster_task = Owned(tokio::spawn(cluster_task));
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

    let recorder = Recorder::new(
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
        issuers: issuers.clone(),
        cluster_issuers: cluster_issuers.clone(),
        requests: requests.clone(),
        written: WrittenLog::default(),
        clock: clock.clone(),
    });

    let status_task = Owned(tokio::spawn(issuer_status_loop(
        client.clone(),
        issuers,
        cluster_issuers,
        authority,
        metrics,
        recorder,
        settings.field_manager.clone(),
        issuer_changed,
        clock,
        shutdown.clone(),
    )));

    // Bounded by the shutdown too: a stop during start-up must not wait for issuers to settle.
    let stopped_while_settling = {
        let settled = settle_issuers(&ctx, &*ctx.authority);
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

    // Requests: cached slim (bodies of answered requests dropped) so memory does not grow with
    // the size of CSRs and certificates kept around.
    // Requests the controller will never act on again (answered, or for another issuer) leave
    // the cache altogether: memory then grows with the requests in flight, not with those
    // retained in the cluster, and their watch events trigger no reconcile.
    let written = ctx.clone();
    let slim_group = group.clone();
    let filter_group = group.clone();
    let request_events = watcher(Api::<CertificateRequest>::all(client.clone()), wc)
        .default_backoff()
        .try_filter_map(move |ev| future::ready(Ok(keep_actionable(ev, &filter_group))))
        .modify(move |cr| slim_for_cache(cr, &slim_group))
        .reflect(request_writer)
        .inspect_ok(move |ev| {
            if let watcher::Event::Delete(cr) = ev {
                written.written.forget(cr.uid().as_deref().unwrap_or(""));
            }
        })
        .applied_objects();
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
    // kube-runtime's applier starts no reconcile before the request cache has listed once, and
    // once its queue has ended it waits for that first list for ever: the watch feeding the cache
    // is no longer polled. A shutdown before the first list would hang; nothing can be in flight
    // then, so the applier is dropped instead.
    let never_listed = {
        let requests = requests.clone();
        let shutdown = shutdown.clone();
        async move {
            shutdown.await;
            if futures::FutureExt::now_or_never(requests.wait_until_ready()).is_none() {
                return;
            }
            future::pending::<()>().await;
        }
    };
    let queue =
        stream::select(trigger_self(request_events, ()), issuer_triggers).take_until(shutdown);
    let config = ApplierConfig::default().concurrency(settings.max_concurrent_reconciles);
    let drained = applier(
        |cr, ctx: Arc<Context>| {
            Box::pin(async move {
                Owned(tokio::spawn(reconcile(cr, ctx)))
                    .await
                    .unwrap_or_else(|e| Err(ReconcileFailed::Panicked(e.to_string())))
            })
        },
        error_policy,
        ctx,
        requests,
        queue,
        config,
    )
    .for_each(|result| {
        if let Err(e) = result {
            tracing::debug!(error = %e, "reconcile queue");
        }
        future::ready(())
    });
    futures::pin_mut!(drained, never_listed);
    if let future::Either::Right(_) = future::select(drained, never_listed).await {
        tracing::debug!("stopped before the first list of CertificateRequests");
    }
    let _ = tokio::join!(issuer_task, cluster_task, status_task);
    Ok(())
}

/// Watches one issuer kind into `writer`'s cache until `shutdown`; each change wakes the issuer
/// status loop (`notify`) and re-triggers the requests naming the issuer (`tx`).
fn watch_issuers<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    kind: IssuerKind,
    tx: futures::channel::mpsc::UnboundedSender<IssuerChange>,
    notify: Arc<Notify>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> impl std::future::Future<Output = ()> + Send + 'static
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .take_until(shutdown)
        .for_each(move |r| {
            if let Ok(issuer) = r {
                notify.notify_one();
                let _ = tx.unbounded_send(IssuerChange {
                    kind,
                    // A ClusterIssuer has no namespace.
                    namespace: issuer.namespace(),
                    name: issuer.name_any(),
                });
            }
            future::ready(())
        })
}

/// Longest wait at start for issuer conditions to reflect the authority's readiness.
const ISSUER_SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits (bounded) until every cached issuer carries the Ready condition the status loop is
/// about to write: deciding requests before that would write a Pending (`IssuerNotReady`) on
/// requests that would be signed a moment later — a second write per request after every start.
async fn settle_issuers(ctx: &Context, authority: &dyn Authority) {
    let deadline = Instant::now() + ISSUER_SETTLE_TIMEOUT;
    while Instant::now() < deadline {
        let readiness = authority.readiness();
        let now = (ctx.clock)();
        let pending = ctx.issuers.state().iter().any(|i| {
            desired_issuer_condition(i.status.as_ref(), i.metadata.generation, &readiness, now)
                .is_some()
        }) || ctx.cluster_issuers.state().iter().any(|i| {
            desired_issuer_condition(i.status.as_ref(), i.metadata.generation, &readiness, now)
                .is_some()
        });
        if !pending {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!(
        "issuer conditions not settled within {ISSUER_SETTLE_TIMEOUT:?}; deciding requests anyway"
    );
}

/// A spawned task aborted when its owner is dropped: a controller dropped mid-flight (lost lease,
/// killed process) leaves nothing running behind it. Awaiting it yields the task's result.
struct Owned<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for Owned<T> {
    type Output = Result<T, tokio::task::JoinError>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// Why one reconcile asks to be retried.
#[derive(Debug, thiserror::Error)]
enum ReconcileFailed {
    /// The status write failed.
    #[error(transparent)]
    Write(#[from] ControllerError),
    /// The reconcile task panicked (a bug; retried like a write error).
    #[error("reconcile task failed: {0}")]
    Panicked(String),
}

fn error_policy(_cr: Arc<CertificateRequest>, err: &ReconcileFailed, _ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

struct IssuerChange {
    kind: IssuerKind,
    namespace: Option<String>,
    name: String,
}

/// The unanswered requests that name `change`'s issuer.
fn requests_naming(
    requests: &Store<CertificateRequest>,
    change: &IssuerChange,
    group: &str,
) -> Vec<ObjectRef<CertificateRequest>> {
    requests
        .state_filter(|cr| {
            our_issuer_kind(cr, group) == Some(change.kind)
                && cr.spec.issuer_ref.name == change.name
                && (change.kind == IssuerKind::ClusterIssuer
                    || cr.metadata.namespace == change.namespace)
                && !is_terminal(cr)
        })
        .iter()
        .map(|cr| ObjectRef::from_obj(cr.as_ref()))
        .collect()
}

/// Whether the controller may still act on `cr`: it names one of our issuers and has no
/// terminal state. Neither can change back (spec is immutable, terminal states are final).
fn actionable(cr: &CertificateRequest, group: &str) -> bool {
    our_issuer_kind(cr, group).is_some() && !is_terminal(cr)
}

/// Rewrites a watch event so the cache holds only actionable requests: a request that became
/// terminal (typically through our own write) is removed as if deleted, and one listed already
/// terminal is never added.
fn keep_actionable(
    ev: watcher::Event<CertificateRequest>,
    group: &str,
) -> Option<watcher::Event<CertificateRequest>> {
    match ev {
        watcher::Event::Apply(cr) if !actionable(&cr, group) => Some(watcher::Event::Delete(cr)),
        watcher::Event::InitApply(cr) if !actionable(&cr, group) => None,
        other => Some(other),
    }
}

/// A marker that stands for a certificate whose bytes were dropped from the cache: only its
/// presence matters to the state machine.
const DROPPED_CERTIFICATE: &str = "-";

/// Drops from a cached request everything the controller will never read again: managed fields
/// and kubectl's last-applied copy always; for requests that are not ours or already answered,
/// the CSR, the certificate bytes, the user info and condition messages too.
pub fn slim_for_cache(cr: &mut CertificateRequest, group: &str) {
    cr.metadata.managed_fields = None;
    if let Some(a) = cr.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    if our_issuer_kind(cr, group).is_some() && !is_terminal(cr) {
        return;
    }
    cr.metadata.annotations = None;
    cr.metadata.labels = None;
    cr.metadata.owner_references = None;
    cr.spec.request = String::new();
    cr.spec.usages = None;
    cr.spec.groups = None;
    cr.spec.extra = None;
    cr.spec.uid = None;
    cr.spec.username = None;
    cr.spec.duration = None;
    cr.metadata.creation_timestamp = None;
    if let Some(status) = cr.status.as_mut() {
        if status.certificate.as_deref().is_some_and(|c| !c.is_empty()) {
            status.certificate = Some(DROPPED_CERTIFICATE.to_owned());
        }
        status.ca = None;
        status.failure_time = None;
        if let Some(conditions) = status.conditions.as_mut() {
            // Only what makes the request terminal is read again.
            conditions.retain(|c| c.type_ == decide::READY || c.type_ == decide::INVALID_REQUEST);
            conditions.shrink_to_fit();
            for c in conditions.iter_mut() {
                c.message = None;
                c.last_transition_time = None;
            }
        }
    }
}

/// Requests this controller answered, with the resourceVersion it answered: a reconcile of that
/// same (now stale) cached version must not sign again before the watch delivers our write.
#[derive(Default)]
struct WrittenLog {
    inner: Mutex<HashMap<String, (String, Instant)>>,
}

/// How long an answered request is remembered when its deletion is never observed.
const WRITTEN_LOG_TTL: Duration = Duration::from_secs(600);

impl WrittenLog {
    fn is_stale(&self, uid: &str, resource_version: &str) -> bool {
        let log = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.get(uid).is_some_and(|(rv, _)| rv == resource_version)
    }
    fn record(&self, uid: String, resource_version: String) {
        let mut log = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if log.len() >= 4096 && log.len().is_power_of_two() {
            log.retain(|_, (_, at)| at.elapsed() < WRITTEN_LOG_TTL);
        }
        log.insert(uid, (resource_version, Instant::now()));
    }
    fn forget(&self, uid: &str) {
        let mut log = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.remove(uid);
    }
}

/// One reconcile, inside a span naming the request (namespace, name, uid) for every log line.
async fn reconcile(
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
    let now = (ctx.clock)();
    let namespace = cr.namespace();
    let decision = decide::decide(
        &cr,
        |kind, name| ctx.issuer_state(kind, namespace.as_deref(), name),
        &ctx.settings.decide,
        now,
    );
    let mut issuance = None;
    let decision = match decision {
        Decision::Sign(plan) => {
            let t = Instant::now();
            let result = ctx
                .authority
                .sign(&plan, ctx.settings.minimum_duration, now);
            ctx.metrics.sign_duration.observe(t.elapsed().as_secs_f64());
            ctx.metrics
                .signer_sign
                .with_label_values(&[
                    if result.is_ok() { "true" } else { "false" },
                    "CertificateRequest",
                ])
                .inc();
            let signed: Result<Signed, SignFailure> = match result {
                Ok(i) => {
                    let s = Signed {
                        chain_pem: i.chain_pem.clone(),
                        ca_pem: i.ca_pem.clone(),
                    };
                    issuance = Some(i);
                    Ok(s)
                }
                Err(f) => Err(f),
            };
            decide::after_sign(&cr, signed, &ctx.settings.decide, now)
        }
        other => other,
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
            let action = ctx.apply(&cr, &update, issuance.as_ref()).await?;
            ctx.metrics
                .reconcile_duration
                .with_label_values(&[update.outcome])
                .observe(started.elapsed().as_secs_f64());
            action
        }
    };
    Ok(action)
}

/// The server-side-apply body of a request status write, serialized straight from borrowed
/// parts (no JSON tree, no copy of the certificate chain).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusApply<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: ApplyMetadata<'a>,
    status: ApplyStatus<'a>,
}

#[derive(Debug, serde::Serialize)]
struct ApplyMetadata<'a> {
    name: &'a str,
    namespace: &'a str,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ApplyStatus<'a> {
    conditions: [&'a crate::crd::CertificateRequestCondition; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

impl Context {
    /// Whether `cr` is the version the request cache holds now (a request no longer cached was
    /// answered or deleted).
    fn is_latest(&self, cr: &CertificateRequest) -> bool {
        self.requests
            .get(&ObjectRef::from_obj(cr))
            .is_some_and(|cached| cached.resource_version() == cr.resource_version())
    }

    fn issuer_state(&self, kind: IssuerKind, namespace: Option<&str>, name: &str) -> IssuerState {
        let found = match kind {
            IssuerKind::Issuer => {
                let Some(ns) = namespace else {
                    return IssuerState::Missing;
                };
                self.issuers
                    .get(&ObjectRef::new(name).within(ns))
                    .map(|i| (i.spec.clone(), i.status.clone(), i.metadata.generation))
            }
            IssuerKind::ClusterIssuer => self.cluster_issuers.get(&ObjectRef::new(name)).map(|i| {
                (
                    IssuerSpec::from(&i.spec),
                    i.status.clone(),
                    i.metadata.generation,
                )
            }),
        };
        let Some((spec, status, generation)) = found else {
            return IssuerState::Missing;
        };
        issuer_readiness(spec, status.as_ref(), generation)
    }

    /// Writes one decision: a server-side apply of our `Ready` condition (plus certificate, ca,
    /// failureTime) on `/status`, then the event.
    async fn apply(
        &self,
        cr: &CertificateRequest,
        update: &StatusUpdate,
        issuance: Option<&Issuance>,
    ) -> Result<Action, ControllerError> {
        let namespace = cr.namespace().unwrap_or_default();
        let name = cr.name_any();
        let uid = cr.uid().unwrap_or_default();
        let api: Api<CertificateRequest> = Api::namespaced(self.client.clone(), &namespace);
        let body = StatusApply {
            api_version: "cert-manager.io/v1",
            kind: "CertificateRequest",
            metadata: ApplyMetadata {
                name: &name,
                namespace: &namespace,
            },
            status: ApplyStatus {
                conditions: [&update.ready],
                certificate: update.certificate.as_deref(),
                ca: update.ca.as_deref(),
                failure_time: update.failure_time.map(decide::time),
            },
        };
        // Recorded before the write is sent, so the watch event of our write (which forgets it)
        // can never arrive before the record and leave it behind.
        self.written
            .record(uid.clone(), cr.resource_version().unwrap_or_default());
        let params = PatchParams::apply(&self.settings.field_manager).force();
        match api.patch_status(&name, &params, &Patch::Apply(&body)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {
                // istio-csr deletes requests as soon as it has an answer; nothing left to do.
                self.written.forget(&uid);
                tracing::debug!("request deleted before its status was written");
                return Ok(Action::await_change());
            }
            Err(source) => {
                self.written.forget(&uid);
                let code = match &source {
                    kube::Error::Api(s) => s.code.to_string(),
                    _ => "transport".to_owned(),
                };
                self.metrics
                    .write_errors
                    .with_label_values(&[code.as_str()])
                    .inc();
                return Err(ControllerError::StatusWrite {
                    namespace,
                    name,
                    source,
                });
            }
        }
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
                note: Some(truncate(&note.note, 1000)),
                action: "Sign".to_owned(),
                secondary: None,
            };
            if let Err(e) = self.recorder.publish(&event, &cr.object_ref(&())).await {
                tracing::warn!(error = %e, "event could not be published");
            }
        }
        Ok(match update.requeue_after {
            Some(after) => Action::requeue(after),
            None => Action::await_change(),
        })
    }

    fn record_issuance(&self, cr: &CertificateRequest, issued: &Issuance) {
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
            let spiffe_id = issued.spiffe_id.as_deref().unwrap_or("");
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

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// An issuer's readiness as the request state machine sees it: Ready=True for its current
/// generation, or why not.
pub fn issuer_readiness(
    spec: IssuerSpec,
    status: Option<&IssuerStatus>,
    generation: Option<i64>,
) -> IssuerState {
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    match ready {
        None => IssuerState::NotReady {
            message: "it has no Ready condition yet".to_owned(),
        },
        Some(c) if c.status != "True" => IssuerState::NotReady {
            message: format!("{}: {}", c.reason, c.message),
        },
        Some(c) if c.observed_generation != generation => IssuerState::NotReady {
            message: format!(
                "its Ready condition is for generation {:?}, not the current {:?}",
                c.observed_generation, generation
            ),
        },
        Some(_) => IssuerState::Ready(spec),
    }
}

/// Longest wait for an event write: events are best effort and must never stall status work.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often issuer conditions are compared with the authority's readiness when nothing else
/// happens (a sub-CA can expire or a policy go stale without any API event).
const ISSUER_STATUS_INTERVAL: Duration = Duration::from_secs(1);

#[allow(clippy::too_many_arguments)]
async fn issuer_status_loop(
    client: kube::Client,
    issuers: Store<Issuer>,
    cluster_issuers: Store<ClusterIssuer>,
    authority: Arc<dyn Authority>,
    metrics: Metrics,
    recorder: Recorder,
    field_manager: String,
    changed: Arc<Notify>,
    clock: Clock,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        let readiness = authority.readiness();
        tracing::trace!(
            ready = readiness.ready,
            issuers = issuers.len(),
            "issuer status pass"
        );
        metrics.set_sub_ca_not_after(authority.sub_ca_not_after());
        let now = clock();
        let mut ready_count = 0;
        for issuer in issuers.state() {
            let api: Api<Issuer> =
                Api::namespaced(client.clone(), &issuer.namespace().unwrap_or_default());
            let current = issuer.status.as_ref();
            ready_count += i64::from(readiness.ready);
            if let Some(cond) =
                desired_issuer_condition(current, issuer.metadata.generation, &readiness, now)
            {
                write_issuer_status(&api, issuer.as_ref(), cond, &field_manager, &recorder).await;
            }
        }
        metrics
            .issuers_ready
            .with_label_values(&["Issuer"])
            .set(ready_count);
        let mut ready_count = 0;
        for issuer in cluster_issuers.state() {
            let api: Api<ClusterIssuer> = Api::all(client.clone());
            ready_count += i64::from(readiness.ready);
            if let Some(cond) = desired_issuer_condition(
                issuer.status.as_ref(),
                issuer.metadata.generation,
                &readiness,
                now,
            ) {
                write_issuer_status(&api, issuer.as_ref(), cond, &field_manager, &recorder).await;
            }
        }
        metrics
            .issuers_ready
            .with_label_values(&["ClusterIssuer"])
            .set(ready_count);
        tokio::select! {
            () = &mut shutdown => return,
            () = changed.notified() => {}
            () = tokio::time::sleep(ISSUER_STATUS_INTERVAL) => {}
        }
    }
}

/// The Ready condition an issuer should carry, or `None` when it already does.
pub fn desired_issuer_condition(
    current: Option<&IssuerStatus>,
    generation: Option<i64>,
    readiness: &super::authority::Readiness,
    now: SystemTime,
) -> Option<Condition> {
    let (status, reason) = if readiness.ready {
        ("True", "Ready")
    } else {
        ("False", "NotReady")
    };
    let previous = current
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    // While Ready, only a change of state is worth a write: the readiness message carries a
    // countdown ("valid for ...") that would otherwise rewrite every issuer every second, and each
    // write re-triggers the issuer's pending requests. While not Ready the message says why, and
    // a new reason is worth telling.
    if let Some(p) = previous
        && p.status == status
        && p.reason == reason
        && p.observed_generation == generation
        && (readiness.ready || p.message == readiness.message)
    {
        return None;
    }
    let last_transition_time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => decide::time(now),
    };
    Some(Condition {
        type_: "Ready".to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: readiness.message.clone(),
        last_transition_time,
        observed_generation: generation,
    })
}

async fn write_issuer_status<K>(
    api: &Api<K>,
    issuer: &K,
    cond: Condition,
    field_manager: &str,
    recorder: &Recorder,
) where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = issuer.name_any();
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": { "name": name },
        "status": { "conditions": [cond] },
    });
    let params = PatchParams::apply(field_manager).force();
    match api.patch_status(&name, &params, &Patch::Apply(&body)).await {
        Ok(_) => {
            let warning = cond.status != "True";
            let event = Event {
                type_: if warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: cond.reason.clone(),
                note: Some(truncate(&cond.message, 1000)),
                action: "UpdateStatus".to_owned(),
                secondary: None,
            };
            tracing::info!(kind = %K::kind(&()), issuer = %name, ready = %cond.status, message = %cond.message, "issuer status updated");
            match tokio::time::timeout(
                EVENT_TIMEOUT,
                recorder.publish(&event, &issuer.object_ref(&())),
            )
            .await
            {
                Ok(Ok(())) => tracing::debug!("issuer event published"),
                Ok(Err(e)) => tracing::warn!(error = %e, "issuer event could not be published"),
                Err(_) => tracing::warn!("issuer event not published within {EVENT_TIMEOUT:?}"),
            }
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => tracing::warn!(error = %e, issuer = %name, "issuer status write failed"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::crd::{
        CertificateRequestCondition, CertificateRequestSpec, CertificateRequestStatus, IssuerRef,
    };

    fn request(ready: Option<&str>) -> CertificateRequest {
        let mut annotations = BTreeMap::new();
        annotations.insert(
            "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
            "x".repeat(4000),
        );
        annotations.insert(
            crate::crd::POLICY_NAME_ANNOTATION.to_owned(),
            "istio-mtls".to_owned(),
        );
        CertificateRequest {
            metadata: ObjectMeta {
                name: Some("r".into()),
                namespace: Some("istio-system".into()),
                annotations: Some(annotations),
                ..Default::default()
            },
            spec: CertificateRequestSpec {
                request: "Q1NS".repeat(1000),
                issuer_ref: IssuerRef {
                    name: "i".into(),
                    kind: None,
                    group: Some("firefly.venafi.com".into()),
                },
                ..Default::default()
            },
            status: ready.map(|r| CertificateRequestStatus {
                conditions: Some(vec![CertificateRequestCondition {
                    type_: "Ready".into(),
                    status: if r == "Issued" {
                        "True".into()
                    } else {
                        "False".into()
                    },
                    reason: Some(r.into()),
                    message: Some("a long message".repeat(50)),
                    ..Default::default()
                }]),
                certificate: (r == "Issued").then(|| "Q0VSVA==".repeat(1000)),
                ca: (r == "Issued").then(|| "Q0E=".repeat(500)),
                failure_time: None,
            }),
        }
    }

    #[test]
    fn answered_requests_are_cached_without_their_bodies() {
        let mut cr = request(Some("Issued"));
        slim_for_cache(&mut cr, "firefly.venafi.com");
        assert!(cr.spec.request.is_empty());
        let status = cr.status.as_ref().unwrap();
        assert_eq!(status.certificate.as_deref(), Some(DROPPED_CERTIFICATE));
        assert!(status.ca.is_none());
        assert!(cr.metadata.annotations.is_none());
        assert!(
            is_terminal(&cr),
            "a slimmed answered request must still read as terminal"
        );
        assert!(serde_json::to_vec(&cr).unwrap().len() < 600);
    }

    #[test]
    fn unanswered_requests_keep_what_signing_needs_but_not_kubectl_copies() {
        let mut cr = request(None);
        slim_for_cache(&mut cr, "firefly.venafi.com");
        assert_eq!(cr.spec.request.len(), 4000);
        let annotations = cr.metadata.annotations.as_ref().unwrap();
        assert!(annotations.contains_key(crate::crd::POLICY_NAME_ANNOTATION));
        assert!(!annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
    }

    #[test]
    fn answered_requests_leave_the_cache_and_are_never_listed_into_it() {
        let group = "firefly.venafi.com";
        let answered = request(Some("Issued"));
        assert!(matches!(
            keep_actionable(watcher::Event::Apply(answered.clone()), group),
            Some(watcher::Event::Delete(_))
        ));
        assert!(keep_actionable(watcher::Event::InitApply(answered), group).is_none());
        let waiting = request(None);
        assert!(matches!(
            keep_actionable(watcher::Event::Apply(waiting.clone()), group),
            Some(watcher::Event::Apply(_))
        ));
        assert!(matches!(
            keep_actionable(watcher::Event::InitApply(waiting.clone()), group),
            Some(watcher::Event::InitApply(_))
        ));
        let mut other = waiting;
        other.spec.issuer_ref.group = Some("cert-manager.io".into());
        assert!(matches!(
            keep_actionable(watcher::Event::Apply(other), group),
            Some(watcher::Event::Delete(_))
        ));
    }

    #[test]
    fn status_apply_body_carries_only_our_fields() {
        let ready = CertificateRequestCondition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: Some("Issued".into()),
            ..Default::default()
        };
        let body = StatusApply {
            api_version: "cert-manager.io/v1",
            kind: "CertificateRequest",
            metadata: ApplyMetadata {
                name: "r",
                namespace: "ns",
            },
            status: ApplyStatus {
                conditions: [&ready],
                certificate: Some("Q0VSVA=="),
                ca: None,
                failure_time: None,
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({
                "apiVersion": "cert-manager.io/v1",
                "kind": "CertificateRequest",
                "metadata": { "name": "r", "namespace": "ns" },
                "status": {
                    "conditions": [{ "type": "Ready", "status": "True", "reason": "Issued" }],
                    "certificate": "Q0VSVA==",
                },
            })
        );
    }

    #[test]
    fn requests_for_other_issuers_are_cached_without_bodies() {
        let mut cr = request(None);
        cr.spec.issuer_ref.group = Some("cert-manager.io".into());
        slim_for_cache(&mut cr, "firefly.venafi.com");
        assert!(cr.spec.request.is_empty());
    }

    #[test]
    fn issuer_is_ready_only_for_its_current_generation() {
        let status = |generation: i64, s: &str| IssuerStatus {
            conditions: Some(vec![Condition {
                type_: "Ready".into(),
                status: s.into(),
                reason: "Ready".into(),
                message: "m".into(),
                last_transition_time: decide::time(SystemTime::UNIX_EPOCH),
                observed_generation: Some(generation),
            }]),
        };
        assert!(matches!(
            issuer_readiness(IssuerSpec::default(), Some(&status(2, "True")), Some(2)),
            IssuerState::Ready(_)
        ));
        assert!(matches!(
            issuer_readiness(IssuerSpec::default(), Some(&status(1, "True")), Some(2)),
            IssuerState::NotReady { .. }
        ));
        assert!(matches!(
            issuer_readiness(IssuerSpec::default(), Some(&status(2, "False")), Some(2)),
            IssuerState::NotReady { .. }
        ));
        assert!(matches!(
            issuer_readiness(IssuerSpec::default(), None, Some(2)),
            IssuerState::NotReady { .. }
        ));
    }

    #[test]
    fn issuer_condition_is_rewritten_only_when_something_changed() {
        let readiness = crate::issuer::Readiness {
            ready: true,
            message: "sub-CA active".into(),
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let first = desired_issuer_condition(None, Some(1), &readiness, now).unwrap();
        let status = IssuerStatus {
            conditions: Some(vec![first.clone()]),
        };
        assert_eq!(
            desired_issuer_condition(Some(&status), Some(1), &readiness, now),
            None
        );
        let countdown = crate::issuer::Readiness {
            ready: true,
            message: "sub-CA active, valid for 1h".into(),
        };
        assert_eq!(
            desired_issuer_condition(Some(&status), Some(1), &countdown, now),
            None,
            "a new message alone does not rewrite a Ready issuer"
        );
        let bumped = desired_issuer_condition(
            Some(&status),
            Some(2),
            &readiness,
            now + Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(bumped.observed_generation, Some(2));
        assert_eq!(
            bumped.last_transition_time, first.last_transition_time,
            "status unchanged: time kept"
        );
        let down = crate::issuer::Readiness {
            ready: false,
            message: "policy stale".into(),
        };
        let c =
            desired_issuer_condition(Some(&status), Some(1), &down, now + Duration::from_secs(5))
                .unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "NotReady")
        );
        assert_ne!(c.last_transition_time, first.last_transition_time);
    }
}
