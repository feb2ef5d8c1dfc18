//! The PodCertificateRequest controller: discovery of `certificates.k8s.io` (v1 when served,
//! v1beta1 otherwise, both when both are), one watch per signer and served version with the
//! `spec.signerName` field selector, the decision of [`decide`](super::decide) and the issuing
//! core under a panic bound, and the one answer of [`apply`].
//!
//! When both versions are served, a request is served through exactly one view: the v1 view
//! serves requests with a stub PKCS#10, the v1beta1 view those without (1.35 kubelets send only
//! `pkixPublicKey`, which the v1 view cannot show). A watch answered 404 for its GroupVersion
//! (the API was switched off or upgraded away) runs discovery again.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource};
use kube::core::{DynamicResourceScope, ObjectMeta};
use kube::runtime::controller::{Action, Config as ApplierConfig};
use kube::runtime::{WatchStreamExt, applier, reflector, watcher};
use kube::{Resource, ResourceExt};
use serde::Deserialize;
use tokio::sync::Notify;

use super::decide::{
    self, BACKDATE, Decision, MIN_LIFETIME, PcrSpec, PcrStatus, PodLookup, RETRY_AFTER,
    SignerSettings, View,
};
use super::pods::PodCache;
use crate::admin::ReadinessDetails;
use crate::config::PodCertificatesConfig;
use crate::events::EventRecorder;
use crate::issuer::authority::{Authority, Issued};
use crate::issuer::controller::Clock;
use crate::issuer::controller::report::{issue_counted, publish_event};
use crate::issuer::decide::EventNote;
use crate::metrics::Metrics;
use crate::queue::retries::{RetryLog, server_retry_after};
use crate::queue::{
    ANSWER_SETTLE, AnsweredCopies, first_list_as_it_arrives, in_own_task, touched_after_lists,
    triggers_from,
};
use crate::rbac::{CERTIFICATES, KubeCall, Needs};
use firefly_core::ca::IssueOptions;
use firefly_core::issuance::{IssuanceRequest, Outcome, Scope, Subject};

pub mod apply;

/// The API calls this module makes (see [`crate::rbac`]): list and watch of
/// PodCertificateRequests (one watch per signer; the watch's store answers every read, no
/// `get`), only with the door enabled. The status write is [`apply`]'s.
pub const KUBE_CALLS: &[KubeCall] = &[
    KubeCall::cluster(CERTIFICATES, "podcertificaterequests", "", "list")
        .when(Needs::PodCertificates),
    KubeCall::cluster(CERTIFICATES, "podcertificaterequests", "", "watch")
        .when(Needs::PodCertificates),
    KubeCall::cluster(CERTIFICATES, "podcertificaterequests", "status", "patch")
        .when(Needs::PodCertificates),
    KubeCall::cluster(CERTIFICATES, "signers", "", "sign").when(Needs::PodCertificates),
];

/// The front-door label of this door's metrics (`front_door`, `type`).
pub const FRONT_DOOR: &str = "PodCertificateRequest";
/// The `/readyz` component of this door.
pub const READINESS_COMPONENT: &str = "podCertificates";
const GROUP: &str = "certificates.k8s.io";
/// How long in-flight answers may take to finish once a watch is stopped.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often discovery is retried while the API is absent.
const REDISCOVER_AFTER: Duration = Duration::from_secs(30);
/// With both versions served, how long the v1beta1 watches stay open after the last unanswered
/// request without a stub was seen (kube-controller-manager deletes requests at 15 minutes).
const LEGACY_IDLE: Duration = Duration::from_secs(15 * 60);
/// How often, at most, the door looks whether the v1beta1 watches have been idle that long (a
/// fifteenth of the idle time when that is shorter).
const LEGACY_CHECK: Duration = Duration::from_secs(60);

/// The door's settings (from `controller.podCertificates`).
#[derive(Clone, Debug)]
pub struct PodCertSettings {
    /// The signers served.
    pub signers: Vec<SignerSettings>,
    /// Where `/readyz` detail goes.
    pub details: ReadinessDetails,
    /// With both versions served, how long the v1beta1 watches stay open after the last
    /// unanswered request without a stub was seen: 15 minutes (tests shorten it).
    pub stubless_idle: Duration,
}

impl PodCertSettings {
    /// The settings of an enabled door; `None` when it is off.
    pub fn from_config(config: &PodCertificatesConfig, details: ReadinessDetails) -> Option<Self> {
        if !config.enabled {
            return None;
        }
        let signers = config
            .signers
            .iter()
            .filter_map(|s| {
                // Validated at load: an unparsable trust domain never gets here.
                let trust_domain = s.trust_domain.parse().ok()?;
                Some(SignerSettings {
                    signer_name: s.signer_name.clone(),
                    policy_name: s.policy_name.clone(),
                    trust_domain,
                    namespaces: s.namespaces().to_vec(),
                    verify_pod: s.verify_pod,
                })
            })
            .collect();
        Some(PodCertSettings {
            signers,
            details,
            stubless_idle: LEGACY_IDLE,
        })
    }
}

/// What the door shares with the controller that starts it.
pub struct PcrDoor {
    /// The API client.
    pub client: kube::Client,
    /// The door's settings.
    pub settings: PodCertSettings,
    /// Field manager of the status writes.
    pub field_manager: String,
    /// How long one status write may wait for its answer.
    pub status_write_timeout: std::time::Duration,
    /// The issuing core's signer.
    pub authority: Arc<dyn Authority>,
    /// The process's metrics.
    pub metrics: Metrics,
    /// Publishes events on the requests.
    pub recorder: EventRecorder,
    /// The clock decisions read.
    pub clock: Clock,
}

/// Errors of one reconcile (retried after a short pause).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PcrError {
    /// The status write failed (other than 404 and 409).
    #[error("status write of PodCertificateRequest {namespace}/{name} failed: {source}")]
    StatusWrite {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The client's error.
        source: kube::Error,
    },
    /// The reconcile task panicked outside the guarded decision (a bug; retried).
    #[error("PodCertificateRequest reconcile task failed: {0}")]
    Panicked(String),
}

struct Shared {
    door: PcrDoor,
    pods: PodCache,
    /// Panics of a request's decision, by UID.
    panics: Mutex<HashMap<String, u32>>,
    /// The copies a status write was sent for (not decided again until the newer one arrives).
    answered: AnsweredCopies,
    /// Failed reconciles per request (status write errors), for the backoff of the next one.
    retries: RetryLog,
    /// Requests without a stub seen through v1 while v1beta1 is served too.
    legacy: LegacySightings,
}

/// With both versions served the door watches v1, and v1beta1 only while requests without a stub
/// (from kubelets older than 1.36, which fill `pkixPublicKey`) appear: a v1 view sees them with
/// no key at all, records them here, and the door opens its v1beta1 watches to serve them.
#[derive(Default)]
struct LegacySightings {
    seen: Notify,
    last: Mutex<Option<std::time::Instant>>,
}

impl LegacySightings {
    fn saw_one(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now());
        self.seen.notify_one();
    }

    /// Whether none was seen for `idle`.
    fn idle_for(&self, idle: Duration) -> bool {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none_or(|at| at.elapsed() >= idle)
    }
}

/// A PodCertificateRequest of either served version, decoded straight into the fields the
/// decision reads (the version is the watch's [`ApiResource`]; nothing else is kept).
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct PodCertificateRequest {
    #[serde(deserialize_with = "crate::lean_meta::deserialize")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<PcrSpec>,
    #[serde(default)]
    status: Option<PcrStatus>,
}

impl Resource for PodCertificateRequest {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

struct WatchCtx {
    shared: Arc<Shared>,
    signer: usize,
    view: View,
    resource: ApiResource,
}

fn resource(version: &str) -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: version.into(),
        api_version: format!("{GROUP}/{version}"),
        kind: "PodCertificateRequest".into(),
        plural: "podcertificaterequests".into(),
    }
}

/// Whether `version` of `certificates.k8s.io` serves PodCertificateRequests.
async fn served(client: &kube::Client, version: &str) -> Result<bool, kube::Error> {
    match client
        .list_api_group_resources(&format!("{GROUP}/{version}"))
        .await
    {
        Ok(list) => Ok(list
            .resources
            .iter()
            .any(|r| r.name == "podcertificaterequests")),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

fn is_not_found(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 404,
        watcher::Error::WatchError(s) => s.code == 404,
        _ => false,
    }
}

/// Runs the door until `shutdown` resolves.
pub async fn run<S>(door: PcrDoor, shutdown: S)
where
    S: std::future::Future<Output = ()> + Clone + Send + Sync + 'static,
{
    let details = door.settings.details.clone();
    let shared = Arc::new(Shared {
        door,
        pods: PodCache::default(),
        panics: Mutex::default(),
        answered: AnsweredCopies::default(),
        retries: RetryLog::default(),
        legacy: LegacySightings::default(),
    });
    let pod_task = shared
        .door
        .settings
        .signers
        .iter()
        .any(|s| s.verify_pod)
        .then(|| {
            AbortOnDrop(tokio::spawn(
                shared.pods.clone().run(shared.door.client.clone()),
            ))
        });
    let mut shutdown_now = Box::pin(shutdown.clone());
    loop {
        let client = &shared.door.client;
        let (v1, v1beta1) = match (served(client, "v1").await, served(client, "v1beta1").await) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "discovery of certificates.k8s.io failed; retrying");
                if wait_or_stop(&mut shutdown_now, RETRY_AFTER).await {
                    break;
                }
                continue;
            }
        };
        if !v1 && !v1beta1 {
            let detail = "the PodCertificateRequest API (certificates.k8s.io v1 or v1beta1) is not served: enable the feature gate PodCertificateRequest (and on 1.35/1.36 --runtime-config=certificates.k8s.io/v1beta1=true); CertificateRequests are served as usual".to_owned();
            tracing::warn!("{detail}");
            details.set(READINESS_COMPONENT, detail);
            if wait_or_stop(&mut shutdown_now, REDISCOVER_AFTER).await {
                break;
            }
            continue;
        }
        let names: Vec<&str> = shared
            .door
            .settings
            .signers
            .iter()
            .map(|s| s.signer_name.as_str())
            .collect();
        let versions = match (v1, v1beta1) {
            (true, true) => "v1 (and v1beta1 while requests without a stub appear)",
            (true, false) => "v1",
            _ => "v1beta1",
        };
        let serving = format!(
            "serving signers {} through certificates.k8s.io/{versions}",
            names.join(", ")
        );
        details.set(READINESS_COMPONENT, serving.clone());
        tracing::info!(signers = ?names, versions, "PodCertificateRequest door serving");
        let gone = Arc::new(Notify::new());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut watches = futures::stream::FuturesUnordered::new();
        // One watch per signer of `version`, each ended by `stop` (or the door's stop).
        let open = |version: &'static str, view: View, stop: tokio::sync::watch::Receiver<bool>| {
            (0..shared.door.settings.signers.len())
                .map(|signer| {
                    let (mut stop, mut stop_all) = (stop.clone(), stop_rx.clone());
                    let stop = async move {
                        tokio::select! {
                            _ = stop.wait_for(|s| *s) => {}
                            _ = stop_all.wait_for(|s| *s) => {}
                        }
                    };
                    watch_one(
                        Arc::new(WatchCtx {
                            shared: shared.clone(),
                            signer,
                            view,
                            resource: resource(version),
                        }),
                        gone.clone(),
                        stop,
                    )
                })
                .collect::<Vec<_>>()
        };
        if v1 {
            watches.extend(open(
                "v1",
                View::V1 {
                    v1beta1_served: v1beta1,
                },
                stop_rx.clone(),
            ));
        } else {
            watches.extend(open(
                "v1beta1",
                View::V1beta1 { v1_served: false },
                stop_rx.clone(),
            ));
        }
        // Both served: the v1beta1 watches open when a request without a stub is seen, and
        // close once none has been seen for `stubless_idle`.
        let on_demand = v1 && v1beta1;
        let idle = shared.door.settings.stubless_idle;
        let check_every = (idle / 15).clamp(Duration::from_millis(10), LEGACY_CHECK);
        let mut legacy_stop: Option<tokio::sync::watch::Sender<bool>> = None;
        let stopped = loop {
            let drained = async { while watches.next().await.is_some() {} };
            futures::pin_mut!(drained);
            tokio::select! {
                _ = &mut shutdown_now => break true,
                _ = gone.notified() => break false,
                _ = &mut drained => break false,
                _ = shared.legacy.seen.notified(), if on_demand && legacy_stop.is_none() => {
                    // A sighting while the watches were open leaves a stored wake-up behind;
                    // once they have closed for idleness that wake-up is stale, not a new request.
                    if shared.legacy.idle_for(idle) {
                        continue;
                    }
                    tracing::info!("a PodCertificateRequest without a stub: watching v1beta1 too");
                    details.set(
                        READINESS_COMPONENT,
                        format!(
                            "{serving}; watching v1beta1 now: a request without a stub was seen less than {} s ago",
                            idle.as_secs()
                        ),
                    );
                    let (tx, rx) = tokio::sync::watch::channel(false);
                    legacy_stop = Some(tx);
                    watches.extend(open("v1beta1", View::V1beta1 { v1_served: true }, rx));
                }
                _ = tokio::time::sleep(check_every), if legacy_stop.is_some() => {
                    if shared.legacy.idle_for(idle) {
                        tracing::info!(idle_s = idle.as_secs(), "no PodCertificateRequest without a stub lately: closing the v1beta1 watches");
                        if let Some(tx) = legacy_stop.take() {
                            let _ = tx.send(true);
                        }
                        details.set(READINESS_COMPONENT, serving.clone());
                    }
                }
            }
        };
        let _ = stop_tx.send(true);
        while watches.next().await.is_some() {}
        if stopped {
            break;
        }
        tracing::info!("a PodCertificateRequest watch answered 404: discovering again");
    }
    drop(pod_task);
}

/// Sleeps `d`; true when `shutdown` resolved first.
async fn wait_or_stop<F: std::future::Future<Output = ()> + Unpin>(
    shutdown: &mut F,
    d: Duration,
) -> bool {
    tokio::select! {
        _ = shutdown => true,
        _ = tokio::time::sleep(d) => false,
    }
}

async fn watch_one(
    ctx: Arc<WatchCtx>,
    gone: Arc<Notify>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let signer_name = &ctx.shared.door.settings.signers[ctx.signer].signer_name;
    let api = Api::<PodCertificateRequest>::all_with(ctx.shared.door.client.clone(), &ctx.resource);
    let config = watcher::Config::default().fields(&format!("spec.signerName={signer_name}"));
    let writer = reflector::store::Writer::new(ctx.resource.clone());
    let reader = writer.as_reader();
    let stream = reflector(
        writer,
        first_list_as_it_arrives(watcher(api, config).default_backoff()),
    )
        .inspect(move |event| {
            if let Err(e) = event {
                if is_not_found(e) {
                    gone.notify_one();
                } else {
                    tracing::warn!(error = %e, "PodCertificateRequest watch failed; retrying with backoff");
                }
            }
        });
    let stream = touched_after_lists(stream, ctx.resource.clone());
    // kube-runtime's applier waits for the store's first list before deciding anything, and
    // once its queue has ended it waits for that list for ever: a stop before the first list
    // is given a short grace instead of being awaited.
    let stop = futures::FutureExt::shared(Box::pin(stop));
    // The watch is read in its own task and each reconcile runs as its own task (see
    // crate::queue): the cache follows our writes and signing uses every worker thread.
    let (queue, _watch_task) = triggers_from(stream, stop.clone());
    let drained = applier(
        |obj, ctx| {
            Box::pin(async move {
                let uid = obj.uid().unwrap_or_default();
                let result = in_own_task(reconcile(obj, ctx.clone()))
                    .await
                    .unwrap_or_else(|e| Err(PcrError::Panicked(e)));
                if result.is_ok() {
                    ctx.shared.retries.forget(&uid);
                }
                result
            })
        },
        error_policy,
        ctx,
        reader,
        queue,
        ApplierConfig::default().concurrency(64),
    )
    .for_each(|r| {
        if let Err(e) = r {
            tracing::debug!(error = %e, "PodCertificateRequest reconcile queue");
        }
        futures::future::ready(())
    });
    tokio::select! {
        _ = drained => {}
        _ = async {
            stop.await;
            tokio::time::sleep(STOP_GRACE).await;
        } => {}
    }
}

/// The applier's retry policy for a failed reconcile: per request, 250 ms doubling to 30 s with
/// jitter, never sooner than the API server's `Retry-After` (a 429 or 503). A failed write means
/// a certificate was signed and not delivered, so a write the API server keeps refusing (a
/// missing `sign` grant, an admission webhook, throttling) must not turn into a signing loop; a
/// request that changes meanwhile is re-triggered by its watch event at once.
fn error_policy(obj: Arc<PodCertificateRequest>, err: &PcrError, ctx: Arc<WatchCtx>) -> Action {
    let retry_after = match err {
        PcrError::StatusWrite { source, .. } => server_retry_after(source),
        PcrError::Panicked(_) => None,
    };
    let panicked = matches!(err, PcrError::Panicked(_));
    let uid = obj.uid().unwrap_or_default();
    let delay = ctx
        .shared
        .retries
        .next_attempt(&uid, panicked, retry_after, err);
    Action::requeue(delay)
}

async fn reconcile(
    obj: Arc<PodCertificateRequest>,
    ctx: Arc<WatchCtx>,
) -> Result<Action, PcrError> {
    use tracing::Instrument as _;
    let span = tracing::info_span!(
        "podcertificaterequest",
        namespace = %obj.namespace().unwrap_or_default(),
        request_name = %obj.name_any(),
        uid = %obj.uid().unwrap_or_default()
    );
    ctx.reconcile(obj).instrument(span).await
}

impl WatchCtx {
    async fn reconcile(&self, obj: Arc<PodCertificateRequest>) -> Result<Action, PcrError> {
        let Some(spec) = obj.spec.as_ref() else {
            tracing::warn!("PodCertificateRequest without a spec; ignored");
            return Ok(Action::await_change());
        };
        let status = obj.status.as_ref();
        let uid = obj.uid().unwrap_or_default();
        if let View::V1 {
            v1beta1_served: true,
        } = self.view
            && !decide::is_terminal(status)
            && decide::lacks_stub(spec)
            && spec.signer_name == self.shared.door.settings.signers[self.signer].signer_name
        {
            self.shared.legacy.saw_one();
        }
        if decide::is_terminal(status) {
            self.forget_panics(&uid);
            // The answered copy is not forgotten here: with both versions served, the other
            // view's cache may still hold the old copy (see crate::queue::AnsweredCopies).
            return Ok(Action::await_change());
        }
        if self
            .shared
            .answered
            .is_answered(&uid, obj.resource_version().as_deref())
        {
            // Answered already: the watch brings the newer copy (this is the fallback).
            return Ok(Action::requeue(ANSWER_SETTLE));
        }
        let namespace = obj.namespace().unwrap_or_default();
        let door = &self.shared.door;
        let now = door.clock.now();
        let age = crate::issuer::decide::object_age(&obj.metadata, now);
        let signer = &door.settings.signers[self.signer];
        let mut facts = signer
            .verify_pod
            .then(|| self.shared.pods.get(&namespace, &spec.pod_name));
        let mut unreadable = None;
        if let Some(cached) = &facts
            && cached.as_ref().is_none_or(|f| !f.describes(spec))
        {
            // The cache follows a watch, which may trail the kubelet's own view (a StatefulSet
            // pod recreated under the same name, a pod bound a moment ago): before denying or
            // waiting on it, the API server's copy decides. Only this path reads one pod.
            match super::pods::fetch(door.client.clone(), &namespace, &spec.pod_name).await {
                Ok(live) => facts = Some(live),
                Err(e) => unreadable = Some(e.to_string()),
            }
        }
        let pod = match (&facts, &unreadable) {
            (_, Some(error)) => PodLookup::Unavailable(error),
            (None, None) => PodLookup::NotRequired,
            (Some(None), None) => PodLookup::Missing,
            (Some(Some(f)), None) => PodLookup::Found(f),
        };
        let policy = door.authority.policy(&signer.policy_name);
        let request = decide::Request {
            namespace: &namespace,
            spec,
            status,
            age,
        };
        let decided =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                match decide::decide(&request, self.view, signer, policy.as_deref(), pod) {
                    Decision::Sign(plan) => self.sign(&namespace, signer, &plan, age),
                    other => (other, None),
                }
            }));
        let (decision, issued) = match decided {
            Ok(d) => {
                self.forget_panics(&uid);
                d
            }
            Err(_) => {
                let n = self.count_panic(&uid);
                tracing::error!(panics = n, "deciding a PodCertificateRequest panicked");
                match decide::after_panic(n) {
                    Some(failed) => (failed, None),
                    None => return Ok(Action::requeue(Duration::from_secs(1))),
                }
            }
        };
        match decision {
            Decision::Ignore(why) => {
                tracing::trace!(why, "PodCertificateRequest ignored");
                Ok(Action::await_change())
            }
            Decision::Sign(_) => Ok(Action::await_change()),
            Decision::Wait { reason, message } => {
                door.metrics
                    .issuance_retries
                    .with_label_values(&[FRONT_DOOR, reason])
                    .inc();
                tracing::info!(reason, message, "PodCertificateRequest waiting");
                let note = EventNote {
                    warning: true,
                    reason,
                    note: message,
                };
                publish_event(&door.recorder, &note, &obj.object_ref(&self.resource)).await;
                Ok(Action::requeue(RETRY_AFTER))
            }
            Decision::Answer(answer) => {
                // A reconcile of this copy triggered before the watch delivers the answer
                // signs nothing.
                let applied = self
                    .shared
                    .answered
                    .write(
                        &uid,
                        obj.resource_version().as_deref(),
                        self.apply(&obj, &namespace, &answer, issued.as_ref()),
                    )
                    .await;
                match applied? {
                    apply::Applied::Written => {
                        self.report(&obj, spec, &answer, issued.as_ref()).await;
                    }
                    apply::Applied::Gone => {}
                    // Changed since the decision: the watch delivers the newer copy, which is
                    // decided again; should none come, this copy is, once it has settled.
                    apply::Applied::Conflict => return Ok(Action::requeue(ANSWER_SETTLE)),
                }
                Ok(Action::await_change())
            }
        }
    }

    /// Asks the issuing core and turns its outcome into the next decision.
    fn sign(
        &self,
        namespace: &str,
        signer: &SignerSettings,
        plan: &decide::Plan,
        age: Duration,
    ) -> (Decision, Option<Issued>) {
        let door = &self.shared.door;
        let request = IssuanceRequest {
            subject: Subject::AssertedKey {
                public_key_der: &plan.public_key_der,
                identity: &plan.identity,
            },
            scope: Scope::Signer {
                namespace,
                namespaces: &signer.namespaces,
            },
            policy: &signer.policy_name,
            duration: None,
            usages: None,
            is_ca: false,
            trust_domain: Some(&signer.trust_domain),
        };
        let opts = IssueOptions {
            minimum_duration: MIN_LIFETIME,
            backdate: BACKDATE,
            max_window: Some(plan.max_window),
        };
        let outcome = issue_counted(
            door.authority.as_ref(),
            &door.metrics,
            FRONT_DOOR,
            &request,
            &opts,
            door.clock.now(),
        );
        let decision = decide::after_issue(&outcome, age);
        let issued = match outcome {
            Outcome::Issued(i) => Some(i),
            _ => None,
        };
        (decision, issued)
    }

    fn count_panic(&self, uid: &str) -> u32 {
        let mut panics = self
            .shared
            .panics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = panics.entry(uid.to_owned()).or_default();
        *n += 1;
        *n
    }

    fn forget_panics(&self, uid: &str) {
        self.shared
            .panics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(uid);
    }
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The v1beta1 watches close once no stub-less request has been seen for the idle time: idle
    /// before any sighting, not idle right after one, idle again once the time has passed.
    #[test]
    fn stub_less_sightings_keep_the_v1beta1_watches_open_for_the_idle_time() {
        let legacy = LegacySightings::default();
        assert!(legacy.idle_for(LEGACY_IDLE), "nothing seen yet");
        legacy.saw_one();
        assert!(!legacy.idle_for(LEGACY_IDLE), "just seen");
        assert!(!legacy.idle_for(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            legacy.idle_for(Duration::from_millis(20)),
            "seen longer ago"
        );
        assert!(!legacy.idle_for(LEGACY_IDLE));
        assert_eq!(LEGACY_IDLE, Duration::from_secs(15 * 60));
    }
}
