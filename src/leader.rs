//! Leader election on a `coordination.k8s.io/v1` Lease with client-go's semantics (acquire,
//! renew, give up after the renew deadline, release on shutdown); decides nothing else.
//!
//! As in client-go, expiry is judged on this replica's own clock: a lease held by another replica
//! is taken over only when its record has not changed for `leaseDurationSeconds` *as observed
//! here*, so clock skew between replicas cannot make two leaders.
//!
//! Unlike client-go, the election looks at whether this replica can sign (its
//! [`ReadinessProbe`]): a leader that has not been able to for a whole lease duration hands the
//! Lease over, once per spell of unreadiness, and then holds back from taking it again for one
//! lease duration, so that a standby that can sign leads instead (see [`NotReadySpell`]); and a
//! candidate that cannot sign takes a free or expired lease one lease duration later than one
//! that can, so that a standby that can sign wins a dead leader's lease.
//!
//! Unlike client-go too, a candidate also watches the Lease: when a leader releases it (a clean
//! shutdown, a rolling update, a hand-over), a standby tries at once instead of at its next
//! `retryPeriod` (see [`watch_releases`]). The watch only wakes the candidate early; the
//! attempts, their checks and their timing are the same without it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::issuer::authority::Readiness;
use crate::metrics::Metrics;
use crate::rbac::{COORDINATION, KubeCall, Needs};

/// The API calls this module makes (see [`crate::rbac`]), in the controller's own namespace and
/// only with leader election on: `get` of the Lease, `create` when it is absent, `update` (a
/// replace carrying the resourceVersion read) to take, renew or release it, and `watch` (of that
/// one Lease, by name) to see a release at once.
pub const KUBE_CALLS: &[KubeCall] = &[
    KubeCall::cluster(COORDINATION, "leases", "", "get").in_own_namespace(Needs::LeaderElection),
    KubeCall::cluster(COORDINATION, "leases", "", "create").in_own_namespace(Needs::LeaderElection),
    KubeCall::cluster(COORDINATION, "leases", "", "update").in_own_namespace(Needs::LeaderElection),
    KubeCall::cluster(COORDINATION, "leases", "", "watch").in_own_namespace(Needs::LeaderElection),
];

/// Errors of one election round.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaderError {
    /// The API server refused or failed a Lease call.
    #[error("lease {namespace}/{name}: {verb} failed: {source}")]
    Api {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// The verb (`get`, `create`, `update`).
        verb: &'static str,
        /// The client's error.
        source: kube::Error,
    },
    /// The API server did not answer a Lease call within its limit (see
    /// [`LeaseSettings::call_timeout`]).
    #[error("lease {namespace}/{name}: {verb} not answered within {limit:?}")]
    Timeout {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// The verb (`get`, `create`, `update`).
        verb: &'static str,
        /// The limit that passed.
        limit: Duration,
    },
}

/// Lease election settings (from `controller.leaderElection`).
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Namespace of the Lease (`controller.leaderElectionNamespace`).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (the pod name plus a random suffix by default).
    pub identity: String,
    /// How long a non-leader waits after the last observed change before taking over.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leadership.
    pub renew_deadline: Duration,
    /// Interval between acquire/renew attempts.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// The limit of one Lease call (`get`, `create`, `update`): client-go's
    /// `max(1 s, renewDeadline / 2)`, so that a call the API server never answers cannot hold a
    /// candidate for ever nor use up a leader's whole renew deadline.
    pub fn call_timeout(&self) -> Duration {
        (self.renew_deadline / 2).max(MIN_CALL_TIMEOUT)
    }

    /// `leaseDurationSeconds` as recorded on the Lease: whole seconds, rounded *up* (a standby
    /// waits at least the configured duration, never less), and at least 1.
    pub fn lease_duration_seconds(&self) -> i32 {
        let d = self.lease_duration;
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        i32::try_from(secs.max(1)).unwrap_or(i32::MAX)
    }
}

/// The floor of [`LeaseSettings::call_timeout`] (client-go's).
const MIN_CALL_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether this replica can sign now (`/readyz`'s answer): the election reads it at every
/// attempt and renewal.
pub type ReadinessProbe = Arc<dyn Fn() -> Readiness + Send + Sync>;

/// A probe that always answers "ready", for an election that should never hand the Lease over
/// on readiness.
pub fn always_ready() -> ReadinessProbe {
    Arc::new(|| Readiness {
        ready: true,
        message: String::new(),
    })
}

/// A running election. Drop or [`LeaderHandle::release`] to stop campaigning.
pub struct LeaderHandle {
    leader: watch::Receiver<bool>,
    /// Keeps the leadership channel open when no campaign task owns the sender.
    _fixed: Option<watch::Sender<bool>>,
    stop: watch::Sender<bool>,
    /// The campaign; its result says whether the lease was left unheld (see [`campaign`]).
    task: Option<JoinHandle<bool>>,
    /// What [`LeaderHandle::release`] uses when the campaign task died without releasing.
    fallback: Option<Elector>,
}

impl LeaderHandle {
    /// Starts campaigning for the lease in the background; `readiness` says whether this
    /// replica can sign (a leader that cannot for a lease duration hands the Lease over).
    pub fn spawn(
        client: kube::Client,
        settings: LeaseSettings,
        readiness: ReadinessProbe,
        metrics: Option<Metrics>,
    ) -> LeaderHandle {
        let (leader_tx, leader) = watch::channel(false);
        let (stop, stop_rx) = watch::channel(false);
        let elector = Elector::new(Api::namespaced(client, &settings.namespace), settings);
        let fallback = Elector::new(elector.api.clone(), elector.settings.clone());
        let task = tokio::spawn(campaign(elector, leader_tx, stop_rx, readiness, metrics));
        LeaderHandle {
            leader,
            _fixed: None,
            stop,
            task: Some(task),
            fallback: Some(fallback),
        }
    }

    /// A handle that is always leader (leader election disabled).
    pub fn always_leader(metrics: Option<Metrics>) -> LeaderHandle {
        if let Some(m) = metrics {
            m.leader.set(1);
        }
        let (fixed, leader) = watch::channel(true);
        let (stop, _) = watch::channel(false);
        LeaderHandle {
            leader,
            _fixed: Some(fixed),
            stop,
            task: None,
            fallback: None,
        }
    }

    /// A receiver of the leadership state (true while leading). The channel closes when the
    /// election ends: a closed channel means *not* leading, whatever value it last carried.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Whether this replica leads now (false once the election has ended).
    pub fn is_leader(&self) -> bool {
        leading(&self.leader)
    }

    /// Stops at once without releasing the lease, as a killed process would (the lease expires on
    /// its own after its duration). For failover tests.
    pub fn abort(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Ends the campaign task abruptly, as a crash of that task would: nothing is released and
    /// the leadership channel closes. The handle stays usable ([`LeaderHandle::release`] still
    /// gives the lease up). For supervision tests.
    pub fn abort_campaign(&self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }

    /// Stops campaigning and, when leading, releases the lease so a standby takes over at once.
    /// When the campaign task died (a panic) without releasing, the lease is released from here,
    /// if this replica still holds it. True when this replica no longer holds the lease (released
    /// now, or never held); false when a release was refused or not answered, and the lease
    /// expires on its own.
    pub async fn release(mut self) -> bool {
        let _ = self.stop.send(true);
        let Some(task) = self.task.take() else {
            return true;
        };
        if let Ok(released) = task.await {
            // The campaign ended on the stop, releasing the lease itself.
            return released;
        }
        let Some(mut elector) = self.fallback.take() else {
            return false;
        };
        match elector.release().await {
            Ok(()) => {
                tracing::info!("released the leader lease after the election task ended");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "leader election: release failed; the lease expires on its own");
                false
            }
        }
    }
}

impl Drop for LeaderHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            // Dropped without `release`: stop campaigning now (the lease expires on its own).
            task.abort();
        }
    }
}

/// Whether `leadership` says "leading": its value is true *and* the election that sends it is
/// still running (a closed channel keeps its last value, which no longer means anything).
pub fn leading(leadership: &watch::Receiver<bool>) -> bool {
    *leadership.borrow() && leadership.has_changed().is_ok()
}

/// Campaigns until stopped; returns whether the lease is left unheld by this replica (released
/// on the stop, or not held then), false when the release failed.
async fn campaign(
    mut elector: Elector,
    leader: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
    readiness: ReadinessProbe,
    metrics: Option<Metrics>,
) -> bool {
    let set_leader = |v: bool| {
        leader.send_replace(v);
        if let Some(m) = &metrics {
            m.leader.set(i64::from(v));
        }
    };
    let schedule = RenewSchedule {
        renew_deadline: elector.settings.renew_deadline,
        retry_period: elector.settings.retry_period,
    };
    // The lease may name this replica while it does not lead: after an acquisition answered too
    // late (see below), or after stepping down on a renewal that never reached the server. A
    // stop then releases it (if it still names us) rather than leave it to expire.
    let mut maybe_ours = false;
    let lease_duration = elector.settings.lease_duration;
    let mut spell = NotReadySpell::default();
    let released = Arc::new(Notify::new());
    let _watch = AbortOnDrop(tokio::spawn(watch_releases(
        elector.api.clone(),
        elector.settings.name.clone(),
        released.clone(),
        elector.settings.retry_period,
    )));
    loop {
        // Candidate: try until acquired or stopped.
        let mut last_renew = loop {
            if *stop.borrow() {
                return !maybe_ours || release_quietly(&mut elector).await;
            }
            // Taken before the attempt: the record it writes carries (about) this time, and a
            // standby starts counting the lease duration no earlier than it sees the record.
            let started = Instant::now();
            let ready = readiness().ready;
            spell.observe(ready, started);
            if spell.holds_back(started) {
                if sleep_or_stop(elector.settings.retry_period, &mut stop).await {
                    return !maybe_ours || release_quietly(&mut elector).await;
                }
                continue;
            }
            // A replica that cannot sign lets one that can take a free or expired lease first
            // (unless it already handed the lease over in this spell and held back).
            let defer = (!ready && !spell.handed_over()).then_some(lease_duration);
            match elector.try_acquire_or_renew(defer).await {
                // An acquisition answered after the renew deadline counted from its start would
                // lead on borrowed time (a standby may count the lease from the write): it is
                // renewed at the next attempt instead, which starts the clock afresh.
                Ok(Attempt::Held) if !schedule.left(started, Instant::now()).is_zero() => {
                    break started;
                }
                Ok(Attempt::Held) => {
                    tracing::debug!(
                        "leader election: acquired after the renew deadline; renewing first"
                    );
                    maybe_ours = true;
                }
                Ok(Attempt::HeldByOther) => maybe_ours = false,
                Ok(Attempt::Conflict) => {}
                Err(e) => tracing::warn!(error = %e, "leader election: acquire attempt failed"),
            }
            // The next attempt after `retryPeriod`, or at once when the Lease is seen released.
            let retry = elector.settings.retry_period;
            if sleep_or_stop_or(retry, &mut stop, released.notified()).await {
                return !maybe_ours || release_quietly(&mut elector).await;
            }
        };
        if *stop.borrow() {
            // Stopped while the acquisition was in flight: release it rather than lead (and
            // start the controllers) for a moment.
            return release_quietly(&mut elector).await;
        }
        tracing::info!(identity = %elector.settings.identity, lease = %elector.settings.name, "became leader");
        if spell.handed_over() {
            tracing::warn!(
                "leading although this replica cannot sign: no replica that can took the lease \
                 while this one held back; it keeps the lease until it can sign again"
            );
        }
        set_leader(true);
        let term_start = last_renew;
        // Leader: renew every retry period; give up the moment the renew deadline passes without
        // a successful renewal, or a renewal finds another holder; hand the lease over after a
        // lease duration unable to sign.
        loop {
            if sleep_or_stop(schedule.wait(last_renew, Instant::now()), &mut stop).await {
                set_leader(false);
                return release_quietly(&mut elector).await;
            }
            let started = Instant::now();
            let now_ready = readiness();
            spell.observe(now_ready.ready, started);
            if spell.should_hand_over(term_start, started, lease_duration) {
                tracing::warn!(
                    reason = %now_ready.message,
                    ?lease_duration,
                    "handing the lease over: this replica has not been able to sign for a lease \
                     duration; it holds back from the lease for as long, so a standby that can \
                     sign leads"
                );
                set_leader(false);
                let released = release_quietly(&mut elector).await;
                maybe_ours = !released;
                spell.hand_over(Instant::now(), lease_duration, released);
                break;
            }
            let left = schedule.left(last_renew, started);
            if left.is_zero() {
                tracing::warn!("lost leadership: lease not renewed within the renew deadline");
                set_leader(false);
                maybe_ours = true;
                break;
            }
            match tokio::time::timeout(left, elector.try_acquire_or_renew(None)).await {
                Ok(Ok(Attempt::Held)) => last_renew = started,
                Ok(Ok(Attempt::HeldByOther)) => {
                    tracing::warn!("lost leadership: another replica holds the lease");
                    set_leader(false);
                    maybe_ours = false;
                    break;
                }
                Ok(Ok(Attempt::Conflict)) => {
                    tracing::debug!("leader election: renew conflicted (409); retrying");
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "leader election: renew failed"),
                Err(_) => {
                    tracing::warn!("leader election: renew not answered before the renew deadline")
                }
            }
        }
    }
}

/// One replica's spell of being unable to sign, as the election sees it across its terms.
///
/// A leader that has not been able to sign for a whole lease duration (counted from the later of
/// the spell's start and the start of its term, so a new leader gets that long too) hands the
/// Lease over once per spell, then holds back from taking it for one lease duration (two when
/// its release failed): a standby
/// that can sign takes it meanwhile. When none does, the replica takes it back and keeps it until
/// the spell ends; so replicas that all cannot sign (a TLSPC outage) settle on one leader after
/// at most one hand-over each, instead of trading the Lease. Being able to sign again ends the
/// spell.
#[derive(Debug, Default)]
struct NotReadySpell {
    /// When this replica was last seen unable to sign after being able to; `None` while it can.
    since: Option<Instant>,
    /// Whether the Lease was handed over during this spell.
    handed_over: bool,
    /// Until when this replica holds back from taking the Lease.
    hold_back_until: Option<Instant>,
}

impl NotReadySpell {
    /// Records whether this replica can sign at `now`.
    fn observe(&mut self, ready: bool, now: Instant) {
        if ready {
            *self = NotReadySpell::default();
        } else {
            self.since.get_or_insert(now);
        }
    }

    /// Whether a leader whose term started at `term_start` hands the Lease over at `now`.
    fn should_hand_over(
        &self,
        term_start: Instant,
        now: Instant,
        lease_duration: Duration,
    ) -> bool {
        match self.since {
            Some(since) if !self.handed_over => {
                now.saturating_duration_since(since.max(term_start)) >= lease_duration
            }
            _ => false,
        }
    }

    /// Records a hand-over at `now`: no other during this spell, and no attempt to take the
    /// Lease for a lease duration, or two when the release failed: the lease then names this
    /// replica until it expires (a lease duration after its last renewal, on the standbys'
    /// clocks), and holding back twice as long lets a standby take it before this replica would
    /// renew it.
    fn hand_over(&mut self, now: Instant, lease_duration: Duration, released: bool) {
        self.handed_over = true;
        let hold_back = if released {
            lease_duration
        } else {
            2 * lease_duration
        };
        self.hold_back_until = Some(now + hold_back);
    }

    /// Whether this spell has had its hand-over.
    fn handed_over(&self) -> bool {
        self.handed_over
    }

    /// Whether a candidate holds back from the Lease at `now`.
    fn holds_back(&self, now: Instant) -> bool {
        self.hold_back_until.is_some_and(|until| now < until)
    }
}

/// A lease record's `leaseDurationSeconds` (negative or absent: zero).
fn record_duration(record: &LeaseSpec) -> Duration {
    Duration::from_secs(
        u64::try_from(record.lease_duration_seconds.unwrap_or(0).max(0)).unwrap_or(0),
    )
}

/// Releases the lease if this replica holds it; false (logged) when the release failed.
async fn release_quietly(elector: &mut Elector) -> bool {
    match elector.release().await {
        Ok(()) => {
            tracing::info!("released the leader lease");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "leader election: release failed; the lease expires on its own");
            false
        }
    }
}

/// When a leader acts, counted from the start of its last successful renewal.
#[derive(Clone, Copy, Debug)]
struct RenewSchedule {
    renew_deadline: Duration,
    retry_period: Duration,
}

impl RenewSchedule {
    /// How long to wait before the next renewal attempt: the retry period, but never past the
    /// renew deadline (a leader must not keep its flag up to a retry period too long).
    fn wait(&self, last_renew: Instant, now: Instant) -> Duration {
        self.retry_period.min(self.left(last_renew, now))
    }

    /// Time left before the renew deadline; zero once it has passed (step down).
    fn left(&self, last_renew: Instant, now: Instant) -> Duration {
        (last_renew + self.renew_deadline).saturating_duration_since(now)
    }
}

/// Sleeps for `d` unless stopped first; true when stopped.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    sleep_or_stop_or(d, stop, std::future::pending()).await
}

/// [`sleep_or_stop`] that also ends early when `wake` completes; true when stopped.
async fn sleep_or_stop_or(
    d: Duration,
    stop: &mut watch::Receiver<bool>,
    wake: impl std::future::Future<Output = ()>,
) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(d) => *stop.borrow(),
        () = wake => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// Aborts its task when dropped (the campaign's Lease watch ends with the campaign).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Watches the Lease `name` and wakes `released` each time it is seen free (no holder: its
/// leader released it), so that a candidate tries at once rather than at its next retry. A
/// watch that fails (403 without the `watch` grant, a dropped connection, an expired version)
/// is started again after `retry`; meanwhile candidates simply retry on their own schedule.
async fn watch_releases(api: Api<Lease>, name: String, released: Arc<Notify>, retry: Duration) {
    // Starting from "0" replays the current Lease first: a release made while the watch was
    // down wakes a candidate too.
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(290);
    loop {
        let started = Instant::now();
        match api.watch(&params, "0").await {
            Ok(events) => {
                let mut events = std::pin::pin!(events);
                let mut failed = false;
                while let Some(event) = events.next().await {
                    match event {
                        Ok(WatchEvent::Added(lease) | WatchEvent::Modified(lease)) => {
                            if is_free(&lease) {
                                released.notify_one();
                            }
                        }
                        Ok(WatchEvent::Deleted(_) | WatchEvent::Bookmark(_)) => {}
                        Ok(WatchEvent::Error(e)) => {
                            tracing::debug!(code = e.code, reason = %e.reason, "leader election: lease watch ended");
                            failed = true;
                            break;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "leader election: lease watch failed");
                            failed = true;
                            break;
                        }
                    }
                }
                // A watch that ends at its timeout is started again at once; one that ended
                // early waits, so a server that keeps closing it is not asked in a loop.
                if !failed && started.elapsed() >= retry {
                    continue;
                }
            }
            Err(e) => tracing::debug!(error = %e, "leader election: cannot watch the lease"),
        }
        tokio::time::sleep(retry).await;
    }
}

/// Whether `lease` names no holder (released, or never held).
fn is_free(lease: &Lease) -> bool {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .is_none_or(str::is_empty)
}

/// What one acquire-or-renew attempt found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    /// This replica holds the lease now.
    Held,
    /// Another replica holds an unexpired lease.
    HeldByOther,
    /// Someone else wrote the Lease between our read and our write (409): undecided.
    Conflict,
}

struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    /// The last lease record seen and when (on our clock) it was first seen.
    observed: Option<(LeaseSpec, Instant)>,
}

impl Elector {
    fn new(api: Api<Lease>, settings: LeaseSettings) -> Elector {
        Elector {
            api,
            settings,
            observed: None,
        }
    }

    fn err(&self, verb: &'static str, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            namespace: self.settings.namespace.clone(),
            name: self.settings.name.clone(),
            verb,
            source,
        }
    }

    /// Runs one Lease call within [`LeaseSettings::call_timeout`]: the outer error is the
    /// timeout, the inner one the API server's answer (which callers may accept, as a 409).
    async fn bounded<T>(
        &self,
        verb: &'static str,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<Result<T, kube::Error>, LeaderError> {
        let limit = self.settings.call_timeout();
        tokio::time::timeout(limit, call)
            .await
            .map_err(|_| LeaderError::Timeout {
                namespace: self.settings.namespace.clone(),
                name: self.settings.name.clone(),
                verb,
                limit,
            })
    }

    async fn get(&self) -> Result<Option<Lease>, LeaderError> {
        self.bounded("get", self.api.get_opt(&self.settings.name))
            .await?
            .map_err(|e| self.err("get", e))
    }

    /// One client-go `tryAcquireOrRenew`. With `defer`, a lease held by another replica (or by
    /// none) is taken only once its record has stayed unchanged for `defer` longer than it
    /// otherwise would (its lease duration when held, nothing when free): a replica that cannot
    /// sign lets one that can take it first.
    async fn try_acquire_or_renew(
        &mut self,
        defer: Option<Duration>,
    ) -> Result<Attempt, LeaderError> {
        let now = MicroTime(jiff::Timestamp::now());
        let Some(mut lease) = self.get().await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.settings.identity.clone()),
                    lease_duration_seconds: Some(self.settings.lease_duration_seconds()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self
                .bounded("create", self.api.create(&PostParams::default(), &lease))
                .await?
            {
                Ok(created) => {
                    self.observe(created.spec.unwrap_or_default());
                    Ok(Attempt::Held)
                }
                // Another replica created it first.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Conflict),
                Err(e) => Err(self.err("create", e)),
            };
        };
        let record = lease.spec.clone().unwrap_or_default();
        self.observe(record.clone());
        let holder = record.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.settings.identity;
        if !ours {
            let wait = defer.unwrap_or_default();
            let takeable = if holder.is_empty() {
                self.observed_for() >= wait
            } else {
                self.observed_for() >= record_duration(&record) + wait
            };
            if !takeable {
                return Ok(Attempt::HeldByOther);
            }
        }
        let mut spec = record;
        if !ours {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.holder_identity = Some(self.settings.identity.clone());
        spec.lease_duration_seconds = Some(self.settings.lease_duration_seconds());
        spec.renew_time = Some(now);
        lease.spec = Some(spec);
        match self
            .bounded(
                "update",
                self.api
                    .replace(&self.settings.name, &PostParams::default(), &lease),
            )
            .await?
        {
            Ok(updated) => {
                self.observe(updated.spec.unwrap_or_default());
                Ok(Attempt::Held)
            }
            // Someone else wrote in between: not ours this round.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Conflict),
            Err(e) => Err(self.err("update", e)),
        }
    }

    fn observe(&mut self, record: LeaseSpec) {
        match &self.observed {
            Some((seen, _)) if *seen == record => {}
            _ => self.observed = Some((record, Instant::now())),
        }
    }

    /// How long the observed record has stayed unchanged, on our clock.
    fn observed_for(&self) -> Duration {
        self.observed
            .as_ref()
            .map_or(Duration::ZERO, |(_, since)| since.elapsed())
    }

    /// Gives the lease up (client-go's ReleaseOnCancel): empty holder, 1 s duration. Each call
    /// is bounded by [`LeaseSettings::call_timeout`].
    async fn release(&mut self) -> Result<(), LeaderError> {
        let Some(mut lease) = self.get().await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        let now = MicroTime(jiff::Timestamp::now());
        spec.holder_identity = Some(String::new());
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now.clone());
        spec.acquire_time = Some(now);
        lease.spec = Some(spec);
        self.bounded(
            "update",
            self.api
                .replace(&self.settings.name, &PostParams::default(), &lease),
        )
        .await?
        .map_err(|e| self.err("update", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(lease: Duration, renew: Duration, retry: Duration) -> LeaseSettings {
        LeaseSettings {
            namespace: "venafi".into(),
            name: "firefly-controller".into(),
            identity: "replica-a".into(),
            lease_duration: lease,
            renew_deadline: renew,
            retry_period: retry,
        }
    }

    #[test]
    fn a_lease_call_is_bounded_by_half_the_renew_deadline_but_at_least_a_second() {
        let s = |renew_ms| {
            settings(
                Duration::from_secs(60),
                Duration::from_millis(renew_ms),
                Duration::from_millis(100),
            )
            .call_timeout()
        };
        assert_eq!(s(10_000), Duration::from_secs(5));
        assert_eq!(s(3_000), Duration::from_millis(1_500));
        assert_eq!(s(1_500), Duration::from_secs(1));
    }

    #[test]
    fn the_recorded_lease_duration_is_rounded_up_never_down() {
        let secs = |ms| {
            settings(Duration::from_millis(ms), Duration::ZERO, Duration::ZERO)
                .lease_duration_seconds()
        };
        assert_eq!(secs(15_000), 15);
        assert_eq!(secs(1_500), 2);
        assert_eq!(secs(1_001), 2);
        assert_eq!(secs(200), 1);
        assert_eq!(secs(0), 1);
    }

    /// A renewal every retry period, with the clock injected: the leader waits no longer than
    /// the time left before its renew deadline, so it acts (steps down) at the deadline and not
    /// up to a retry period after it.
    #[test]
    fn a_leader_never_sleeps_past_its_renew_deadline() {
        let schedule = RenewSchedule {
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(9),
        };
        let renewed = Instant::now();
        assert_eq!(schedule.wait(renewed, renewed), Duration::from_secs(9));
        // The attempt at +9 s failed: the next wake-up is the deadline itself.
        let failed_at = renewed + Duration::from_secs(9);
        assert_eq!(schedule.wait(renewed, failed_at), Duration::from_secs(1));
        let woke = failed_at + schedule.wait(renewed, failed_at);
        assert_eq!(woke, renewed + Duration::from_secs(10));
        assert_eq!(schedule.left(renewed, woke), Duration::ZERO, "steps down");
        // Late wake-ups (a busy machine) never wait again.
        let late = renewed + Duration::from_secs(12);
        assert_eq!(schedule.wait(renewed, late), Duration::ZERO);
        assert_eq!(schedule.left(renewed, late), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_closed_leadership_channel_is_not_leading() {
        let (tx, rx) = watch::channel(true);
        assert!(leading(&rx));
        drop(tx);
        assert!(!leading(&rx), "the last value (true) no longer counts");
    }

    #[test]
    fn a_leader_hands_over_after_a_lease_duration_unable_to_sign_counted_from_its_term() {
        let lease = Duration::from_secs(15);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut spell = NotReadySpell::default();
        spell.observe(true, at(0));
        assert!(!spell.should_hand_over(at(0), at(100), lease), "ready");
        spell.observe(false, at(10));
        assert!(!spell.should_hand_over(at(0), at(24), lease), "14 s unable");
        assert!(spell.should_hand_over(at(0), at(25), lease), "15 s unable");
        // A term that began later (it took the lease while unable) gets its own lease duration.
        assert!(!spell.should_hand_over(at(20), at(34), lease));
        assert!(spell.should_hand_over(at(20), at(35), lease));
        // A blip of readiness ends the spell: the count starts again.
        spell.observe(true, at(30));
        spell.observe(false, at(31));
        assert!(!spell.should_hand_over(at(0), at(45), lease));
        assert!(spell.should_hand_over(at(0), at(46), lease));
    }

    #[test]
    fn a_hand_over_holds_back_for_a_lease_duration_and_happens_once_per_spell() {
        let lease = Duration::from_secs(15);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut spell = NotReadySpell::default();
        spell.observe(false, at(0));
        assert!(
            !spell.holds_back(at(0)),
            "a standby that cannot sign still campaigns"
        );
        spell.hand_over(at(15), lease, true);
        assert!(spell.handed_over());
        assert!(spell.holds_back(at(29)));
        assert!(!spell.holds_back(at(30)));
        // Taken back while still unable to sign: kept, however long.
        spell.observe(false, at(31));
        assert!(!spell.should_hand_over(at(31), at(1000), lease));
        // Able to sign again: holding back ends at once, and the next spell may hand over again.
        spell.hand_over(at(40), lease, true);
        spell.observe(true, at(41));
        assert!(!spell.holds_back(at(41)));
        assert!(!spell.handed_over());
        spell.observe(false, at(42));
        assert!(spell.should_hand_over(at(0), at(57), lease));
    }

    #[test]
    fn a_hand_over_whose_release_failed_holds_back_twice_as_long() {
        let lease = Duration::from_secs(15);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut spell = NotReadySpell::default();
        spell.observe(false, at(0));
        spell.hand_over(at(15), lease, false);
        // The lease still names this replica and expires for the standbys by about 30 s.
        assert!(spell.holds_back(at(44)));
        assert!(!spell.holds_back(at(45)));
    }
}
