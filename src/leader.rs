//! Leader election on a `coordination.k8s.io/v1` Lease with client-go's semantics (acquire,
//! renew, give up after the renew deadline, release on shutdown); decides nothing else.
//!
//! As in client-go, expiry is judged on this replica's own clock: a lease held by another replica
//! is taken over only when its record has not changed for `leaseDurationSeconds` *as observed
//! here*, so clock skew between replicas cannot make two leaders.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::rbac::{COORDINATION, KubeCall, Needs};

/// The API calls this module makes (see [`crate::rbac`]), in the controller's own namespace and
/// only with leader election on: `get` of the Lease, `create` when it is absent, and `update`
/// (a replace carrying the resourceVersion read) to take, renew or release it.
pub const KUBE_CALLS: &[KubeCall] = &[
    KubeCall::cluster(COORDINATION, "leases", "", "get").in_own_namespace(Needs::LeaderElection),
    KubeCall::cluster(COORDINATION, "leases", "", "create").in_own_namespace(Needs::LeaderElection),
    KubeCall::cluster(COORDINATION, "leases", "", "update").in_own_namespace(Needs::LeaderElection),
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
    /// The renew deadline elapsed before the API server answered.
    #[error("lease {namespace}/{name}: no answer within the renew deadline")]
    Timeout {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
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

/// A running election. Drop or [`LeaderHandle::release`] to stop campaigning.
pub struct LeaderHandle {
    leader: watch::Receiver<bool>,
    /// Keeps the leadership channel open when no campaign task owns the sender.
    _fixed: Option<watch::Sender<bool>>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl LeaderHandle {
    /// Starts campaigning for the lease in the background.
    pub fn spawn(
        client: kube::Client,
        settings: LeaseSettings,
        metrics: Option<Metrics>,
    ) -> LeaderHandle {
        let (leader_tx, leader) = watch::channel(false);
        let (stop, stop_rx) = watch::channel(false);
        let elector = Elector {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
        };
        let task = tokio::spawn(campaign(elector, leader_tx, stop_rx, metrics));
        LeaderHandle {
            leader,
            _fixed: None,
            stop,
            task: Some(task),
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
        }
    }

    /// A receiver of the leadership state (true while leading).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Stops at once without releasing the lease, as a killed process would (the lease expires on
    /// its own after its duration). For failover tests.
    pub fn abort(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Stops campaigning and, when leading, releases the lease so a standby takes over at once.
    pub async fn release(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
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

async fn campaign(
    mut elector: Elector,
    leader: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
    metrics: Option<Metrics>,
) {
    let set_leader = |v: bool| {
        leader.send_replace(v);
        if let Some(m) = &metrics {
            m.leader.set(i64::from(v));
        }
    };
    loop {
        // Candidate: try until acquired or stopped.
        loop {
            if *stop.borrow() {
                return;
            }
            match elector.try_acquire_or_renew().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election: acquire attempt failed"),
            }
            if sleep_or_stop(elector.settings.retry_period, &mut stop).await {
                return;
            }
        }
        tracing::info!(identity = %elector.settings.identity, lease = %elector.settings.name, "became leader");
        set_leader(true);
        let mut last_renew = Instant::now();
        // Leader: renew every retry period; give up once the renew deadline passes without success.
        loop {
            if sleep_or_stop(elector.settings.retry_period, &mut stop).await {
                set_leader(false);
                if let Err(e) = elector.release().await {
                    tracing::warn!(error = %e, "leader election: release failed; the lease expires on its own");
                } else {
                    tracing::info!("released the leader lease");
                }
                return;
            }
            let left = elector
                .settings
                .renew_deadline
                .saturating_sub(last_renew.elapsed());
            let renewed = match tokio::time::timeout(left, elector.try_acquire_or_renew()).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "leader election: renew failed");
                    false
                }
                Err(_) => false,
            };
            if renewed {
                last_renew = Instant::now();
            } else if last_renew.elapsed() >= elector.settings.renew_deadline {
                tracing::warn!("lost leadership: lease not renewed within the renew deadline");
                set_leader(false);
                break;
            }
        }
    }
}

/// Sleeps for `d` unless stopped first; true when stopped.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    /// The last lease record seen and when (on our clock) it was first seen.
    observed: Option<(LeaseSpec, Instant)>,
}

impl Elector {
    fn err(&self, verb: &'static str, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            namespace: self.settings.namespace.clone(),
            name: self.settings.name.clone(),
            verb,
            source,
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.settings.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// One client-go `tryAcquireOrRenew`: true when this replica holds the lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let now = MicroTime(jiff::Timestamp::now());
        let current = match self.api.get_opt(&self.settings.name).await {
            Ok(v) => v,
            Err(e) => return Err(self.err("get", e)),
        };
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.settings.identity.clone()),
                    lease_duration_seconds: Some(self.duration_seconds()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(created.spec.unwrap_or_default());
                    Ok(true)
                }
                // Another replica created it first.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(self.err("create", e)),
            };
        };
        let record = lease.spec.clone().unwrap_or_default();
        self.observe(record.clone());
        let holder = record.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.settings.identity;
        if !holder.is_empty() && !ours && !self.observed_expired(&record) {
            return Ok(false);
        }
        let mut spec = record;
        if !ours {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.holder_identity = Some(self.settings.identity.clone());
        spec.lease_duration_seconds = Some(self.duration_seconds());
        spec.renew_time = Some(now);
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(updated.spec.unwrap_or_default());
                Ok(true)
            }
            // Someone else wrote in between: not ours this round.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(self.err("update", e)),
        }
    }

    fn observe(&mut self, record: LeaseSpec) {
        match &self.observed {
            Some((seen, _)) if *seen == record => {}
            _ => self.observed = Some((record, Instant::now())),
        }
    }

    /// Whether the observed record has stayed unchanged for its lease duration on our clock.
    fn observed_expired(&self, record: &LeaseSpec) -> bool {
        let Some((_, since)) = &self.observed else {
            return false;
        };
        let secs = u64::try_from(record.lease_duration_seconds.unwrap_or(0).max(0)).unwrap_or(0);
        since.elapsed() >= Duration::from_secs(secs)
    }

    /// Gives the lease up (client-go's ReleaseOnCancel): empty holder, 1 s duration.
    async fn release(&mut self) -> Result<(), LeaderError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.settings.name)
            .await
            .map_err(|e| self.err("get", e))?
        else {
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
        self.api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
            .map_err(|e| self.err("update", e))?;
        Ok(())
    }
}
