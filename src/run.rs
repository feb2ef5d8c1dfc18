//! `firefly run`: the controller process — configuration, logging, admin endpoints, bootstrap,
//! leader election and the CertificateRequest controller, with graceful shutdown on SIGTERM.
//! Decides no certificate outcome itself.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{AdminAddresses, AdminServer};
use crate::bootstrap::{Bootstrap, SystemClock};
use crate::config::Config;
use crate::issuer::Authority;
use crate::issuer::controller::{self as cr_controller, Clock, ControllerSettings};
use crate::issuer::decide::Settings;
use crate::leader::{LeaderHandle, LeaseSettings, leading};
use crate::metrics::Metrics;

/// Errors of starting or running the controller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// Metrics could not be set up.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// An admin endpoint could not listen.
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    /// `controller.maxConcurrentReconciles` is outside 1..=65535.
    #[error("controller.maxConcurrentReconciles is {value}; it must be between 1 and 65535")]
    Concurrency {
        /// The configured value.
        value: usize,
    },
    /// The Kubernetes client could not be configured.
    #[error("Kubernetes client: {0}")]
    Kube(String),
    /// A `controller.podCertificates` signer names a policy the TLSPC configuration lacks.
    #[error("{0}")]
    PodCertificates(String),
}

/// Arguments of `firefly run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Path of the configuration file.
    #[arg(short = 'c', long = "config", env = "FIREFLY_CONFIG")]
    pub config: PathBuf,
}

/// Options of [`Controller::start_with`] beyond the configuration.
#[derive(Clone, Default)]
pub struct StartOptions {
    /// This replica's identity on the Lease and on events; default: `$HOSTNAME` (or `firefly`)
    /// plus a random suffix.
    pub identity: Option<String>,
    /// Wall clock; default: the system clock.
    pub clock: Option<Clock>,
    /// Metrics registry to use (to share with the bootstrap); default: a fresh one.
    pub metrics: Option<Metrics>,
    /// How long the PodCertificateRequest door keeps its v1beta1 watches open after the last
    /// request without a stub; default: 15 minutes (tests shorten it).
    pub pod_certificates_stubless_idle: Option<std::time::Duration>,
    /// How long one answer's status write may wait for the API server; default:
    /// [`STATUS_WRITE_TIMEOUT`](crate::issuer::controller::apply::STATUS_WRITE_TIMEOUT) (tests
    /// shorten it).
    pub status_write_timeout: Option<std::time::Duration>,
}

/// The in-process entry point: the controller with its admin endpoints and leader election.
pub struct Controller;

impl Controller {
    /// Starts the admin endpoints, leader election and — while leading — the controller, against
    /// `client`, signing with `authority`.
    ///
    /// # Errors
    /// [`RunError`] when metrics, the admin listeners or the settings cannot be set up.
    pub async fn start(
        config: &Config,
        client: kube::Client,
        authority: Arc<dyn Authority>,
    ) -> Result<ControllerHandle, RunError> {
        Self::start_with(config, client, authority, StartOptions::default()).await
    }

    /// [`Controller::start`] with explicit identity, clock, metrics and pod-certificate watch
    /// timing.
    ///
    /// # Errors
    /// As [`Controller::start`].
    pub async fn start_with(
        config: &Config,
        client: kube::Client,
        authority: Arc<dyn Authority>,
        mut options: StartOptions,
    ) -> Result<ControllerHandle, RunError> {
        let metrics = match options.metrics.take() {
            Some(m) => m,
            None => Metrics::new()?,
        };
        let admin = AdminServer::start(&config.admin, metrics.clone()).await?;
        admin.set_authority(authority.clone());
        Self::start_with_admin(config, client, authority, admin, metrics, options)
    }

    /// Starts with an admin server started earlier (so `/livez` answers during bootstrap).
    /// `options.metrics` is not read: `metrics` is the registry `admin` serves.
    ///
    /// # Errors
    /// [`RunError::Concurrency`] for an unusable `maxConcurrentReconciles`.
    pub fn start_with_admin(
        config: &Config,
        client: kube::Client,
        authority: Arc<dyn Authority>,
        admin: AdminServer,
        metrics: Metrics,
        options: StartOptions,
    ) -> Result<ControllerHandle, RunError> {
        let StartOptions {
            identity,
            clock,
            metrics: _,
            pod_certificates_stubless_idle: stubless_idle,
            status_write_timeout,
        } = options;
        admin.set_authority(authority.clone());
        let c = &config.controller;
        let concurrency = u16::try_from(c.max_concurrent_reconciles)
            .ok()
            .filter(|v| *v > 0)
            .ok_or(RunError::Concurrency {
                value: c.max_concurrent_reconciles,
            })?;
        let mut pod_certificates = crate::pod_certs::controller::PodCertSettings::from_config(
            &c.pod_certificates,
            admin.details(),
        );
        if let (Some(pod), Some(idle)) = (pod_certificates.as_mut(), stubless_idle) {
            pod.stubless_idle = idle;
        }
        if let Some(pod) = &pod_certificates {
            let warnings = crate::pod_certs::decide::check_policies(&pod.signers, |name| {
                authority.policy(name)
            })
            .map_err(RunError::PodCertificates)?;
            for w in warnings {
                tracing::warn!("{w}");
            }
        }
        let identity = identity.unwrap_or_else(default_identity);
        let clock: Clock = clock.unwrap_or_else(|| Arc::new(SystemTime::now));
        let settings = ControllerSettings {
            decide: Settings {
                group_name: c.cert_manager.group_name.clone(),
                check_approval: c.cert_manager.check_approval,
                allowed_requesters: c.allowed_requesters.clone(),
                mesh_issuer_namespaces: c.mesh_issuer_namespaces.clone(),
                max_retry_duration: c.max_retry_duration,
                ca_root_chain_population: c.cert_manager.ca_root_chain_population,
                success_events: c.success_events,
            },
            minimum_duration: c.minimum_leaf_duration,
            max_concurrent_reconciles: concurrency,
            field_manager: "firefly".to_owned(),
            status_write_timeout: status_write_timeout
                .unwrap_or(crate::issuer::controller::apply::STATUS_WRITE_TIMEOUT),
            instance: identity.clone(),
            certificate_signing_requests: c.certificate_signing_requests.enabled,
            pod_certificates,
        };
        let le = &c.leader_election;
        let leader = if le.enabled {
            LeaderHandle::spawn(
                client.clone(),
                LeaseSettings {
                    namespace: c.leader_election_namespace.clone(),
                    name: le.lease_name.clone(),
                    identity: identity.clone(),
                    lease_duration: le.lease_duration,
                    renew_deadline: le.renew_deadline,
                    retry_period: le.retry_period,
                },
                {
                    let authority = authority.clone();
                    Arc::new(move || authority.readiness())
                },
                Some(metrics.clone()),
            )
        } else {
            LeaderHandle::always_leader(Some(metrics.clone()))
        };
        let (stop, stop_rx) = watch::channel(false);
        let task = Some(tokio::spawn(lead_and_control(
            client,
            settings,
            authority,
            metrics.clone(),
            clock,
            leader.subscribe(),
            stop_rx,
        )));
        tracing::info!(identity = %identity, "controller started");
        Ok(ControllerHandle {
            admin,
            leader,
            metrics,
            stop,
            task,
            identity,
        })
    }
}

/// A running controller. [`ControllerHandle::shutdown`] stops it gracefully.
pub struct ControllerHandle {
    admin: AdminServer,
    leader: LeaderHandle,
    metrics: Metrics,
    stop: watch::Sender<bool>,
    /// The controller task; `None` once [`ControllerHandle::stopped`] saw it end.
    task: Option<JoinHandle<Ended>>,
    identity: String,
}

/// Why a controller stopped without being asked to (see [`ControllerHandle::stopped`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stopped {
    /// The leader election ended (its task died): with no lease renewed any more, the controller
    /// stopped working rather than act beside a standby that takes the lease over.
    ElectionEnded,
    /// The controller task panicked (the panic's message) or ended in another unexpected way.
    Failed(String),
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stopped::ElectionEnded => f.write_str("the leader election ended"),
            Stopped::Failed(why) => write!(f, "the controller task failed: {why}"),
        }
    }
}

/// How `lead_and_control` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// Asked to stop (or its handle was dropped).
    Stopped,
    /// The leadership channel closed: the election is over.
    ElectionEnded,
}

impl ControllerHandle {
    /// Where the admin endpoints listen.
    pub fn admin_addresses(&self) -> AdminAddresses {
        self.admin.addresses()
    }
    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    /// Whether this replica leads (and so reconciles) now.
    pub fn is_leader(&self) -> bool {
        self.leader.is_leader()
    }
    /// A receiver of the leadership state.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leader.subscribe()
    }
    /// The Lease/event identity of this replica.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Resolves when the controller stops without being asked to: its task panicked, or the
    /// leader election ended (then the controller has stopped working: no lease is renewed).
    /// Never resolves while all is well, nor twice; the caller should then
    /// [`ControllerHandle::shutdown`] (which still releases a lease this replica holds) and exit
    /// non-zero, so that the process is restarted.
    ///
    /// # Caveats
    /// Cancel safe: dropping the future before it resolves loses nothing.
    pub async fn stopped(&mut self) -> Stopped {
        let Some(task) = self.task.as_mut() else {
            return std::future::pending().await;
        };
        let result = task.await;
        self.task = None;
        match result {
            Ok(Ended::ElectionEnded) => Stopped::ElectionEnded,
            Ok(Ended::Stopped) => Stopped::Failed("stopped without a stop request".to_owned()),
            Err(e) => Stopped::Failed(e.to_string()),
        }
    }

    /// Ends the leader-election task abruptly, as a crash of that task would (nothing released;
    /// the leadership channel closes). For supervision tests.
    pub fn abort_election(&self) {
        self.leader.abort_campaign();
    }

    /// Stops gracefully: no new reconcile starts, in-flight ones finish their write, the lease is
    /// released so a standby takes over at once, then the admin endpoints close. Says which steps
    /// finished within their limit.
    pub async fn shutdown(self) -> ShutdownOutcome {
        let _ = self.stop.send(true);
        // Each step is bounded so that a stuck API call can never keep the process from exiting
        // within the pod's termination grace period; an aborted step is said in the log.
        let controller_stopped = match self.task {
            // It already ended on its own (see `stopped`).
            None => true,
            Some(mut task) => {
                let stopped = tokio::time::timeout(SHUTDOWN_STEP_LIMIT, &mut task)
                    .await
                    .is_ok();
                if !stopped {
                    tracing::warn!(
                        limit_s = SHUTDOWN_STEP_LIMIT.as_secs(),
                        "controller did not stop in time; aborting it"
                    );
                    task.abort();
                }
                stopped
            }
        };
        let lease_released =
            match tokio::time::timeout(SHUTDOWN_STEP_LIMIT, self.leader.release()).await {
                Ok(released) => released,
                Err(_) => {
                    tracing::warn!(
                        limit_s = SHUTDOWN_STEP_LIMIT.as_secs(),
                        "lease release did not finish in time; it will expire on its own"
                    );
                    false
                }
            };
        let admin_closed = tokio::time::timeout(SHUTDOWN_STEP_LIMIT, self.admin.shutdown())
            .await
            .is_ok();
        if !admin_closed {
            tracing::warn!(
                limit_s = SHUTDOWN_STEP_LIMIT.as_secs(),
                "admin endpoints did not close in time"
            );
        }
        ShutdownOutcome {
            controller_stopped,
            lease_released,
            admin_closed,
        }
    }

    /// Stops abruptly, as a killed process would: nothing is released (the lease expires on its
    /// own). For failover tests.
    pub fn abort(self) {
        if let Some(task) = &self.task {
            task.abort();
        }
        self.leader.abort();
        drop(self.admin);
    }
}

/// Which steps of [`ControllerHandle::shutdown`] finished within their limit (the others were
/// abandoned, and said so in the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownOutcome {
    /// The controller finished its in-flight requests and stopped.
    pub controller_stopped: bool,
    /// The lease was released (or there was none to release).
    pub lease_released: bool,
    /// The admin endpoints closed.
    pub admin_closed: bool,
}

impl ShutdownOutcome {
    /// Every step finished in time.
    pub fn clean(&self) -> bool {
        self.controller_stopped && self.lease_released && self.admin_closed
    }
}

/// Runs the controller while this replica leads, until stopped or the election ends.
///
/// # Guarantees
/// A closed leadership channel (the election task died) counts as *not* leading: the controller
/// is stopped at once, since no lease is renewed any more and a standby will take it over. The
/// issuers-ready gauges read 0 whenever the controller is not running.
async fn lead_and_control(
    client: kube::Client,
    settings: ControllerSettings,
    authority: Arc<dyn Authority>,
    metrics: Metrics,
    clock: Clock,
    mut leader: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) -> Ended {
    let ended = loop {
        tokio::select! {
            r = leader.wait_for(|l| *l) => if r.is_err() { break Ended::ElectionEnded },
            _ = stop.wait_for(|s| *s) => break Ended::Stopped,
        }
        if leader.has_changed().is_err() {
            // Closed while its last value said "leading": that value no longer holds.
            break Ended::ElectionEnded;
        }
        let mut lost = leader.clone();
        let mut stopping = stop.clone();
        let until = async move {
            tokio::select! {
                // An error is a closed channel: the election ended, so this replica no longer
                // leads (it renews no lease).
                _ = lost.wait_for(|l| !*l) => {}
                _ = stopping.wait_for(|s| *s) => {}
            }
        };
        tracing::info!("leading: reconciling CertificateRequests");
        let result = cr_controller::run(
            client.clone(),
            settings.clone(),
            authority.clone(),
            metrics.clone(),
            clock.clone(),
            until,
        )
        .await;
        // Only a running controller reports issuers; a stale "ready" must not outlive it.
        cr_controller::issuer_status::clear_gauges(&metrics);
        if let Err(e) = result
            && !*stop.borrow()
        {
            tracing::error!(error = %e, "controller stopped");
        }
        if *stop.borrow() {
            break Ended::Stopped;
        }
        if leading(&leader) {
            // The controller ended on its own while still leading: start it again, after a pause
            // so a persistent failure cannot spin.
            if tokio::time::timeout(RESTART_PAUSE, stop.wait_for(|s| *s))
                .await
                .is_ok()
            {
                break Ended::Stopped;
            }
            continue;
        }
        if leader.has_changed().is_err() {
            break Ended::ElectionEnded;
        }
        tracing::info!("no longer leading: controller paused, sub-CA kept for a takeover");
    };
    if ended == Ended::ElectionEnded {
        metrics.leader.set(0);
        tracing::error!("the leader election ended: controller stopped");
    }
    ended
}

/// Longest wait for each shutdown step (controller, lease release, admin endpoints): three steps
/// stay inside Kubernetes' default 30 s termination grace period.
const SHUTDOWN_STEP_LIMIT: std::time::Duration = std::time::Duration::from_secs(8);

/// Pause before restarting a controller that stopped while this replica still leads.
const RESTART_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

fn default_identity() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "firefly".to_owned());
    format!("{host}_{}", uuid::Uuid::new_v4().simple())
}

/// Sets up logging from the configuration (`json` lines carry the span fields: namespace, name,
/// uid of the request being handled).
pub fn init_logging(config: &crate::config::LoggingConfig) {
    use tracing_subscriber::EnvFilter;
    // `Config::load` refuses an invalid level; a configuration built otherwise falls back to
    // `info`, and says so once logging works.
    let (filter, refused) = match EnvFilter::try_new(&config.level) {
        Ok(filter) => (filter, None),
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.format {
        crate::config::LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        crate::config::LogFormat::Text => builder.try_init(),
    };
    if let Some(e) = refused {
        tracing::warn!(level = %config.level, error = %e, "logging.level is not a valid filter; logging at info");
    }
}

/// Builds the Kubernetes client: `controller.kubeconfigFile`, else `$KUBECONFIG`, else in-cluster.
///
/// # Errors
/// [`RunError::Kube`] naming the source that failed.
pub async fn kube_client(config: &Config) -> Result<kube::Client, RunError> {
    let kc = match &config.controller.kubeconfig_file {
        Some(path) if !path.as_os_str().is_empty() => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                RunError::Kube(format!("controller.kubeconfigFile {}: {e}", path.display()))
            })?;
            kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .map_err(|e| {
                RunError::Kube(format!("controller.kubeconfigFile {}: {e}", path.display()))
            })?
        }
        _ => kube::Config::infer().await.map_err(|e| {
            RunError::Kube(format!(
                "no kubeconfig ($KUBECONFIG) and no in-cluster config: {e}"
            ))
        })?,
    };
    let mut kc = kc;
    kc.read_timeout = Some(KUBE_READ_TIMEOUT);
    // Counted from each request, not from when its pooled connection went idle.
    kc.reset_reader_on_write = true;
    kube::Client::try_from(kc).map_err(|e| RunError::Kube(e.to_string()))
}

/// The backstop for an API call that is never answered (kube 5 sets no read timeout, so such a
/// call would wait for ever). kube's read timeout is the connection's, so it applies to watches
/// as well: kube-runtime's watcher asks the server to end each watch after 290 s
/// (`timeoutSeconds`) and itself abandons one idle for 295 s, so a limit above that never cuts a
/// healthy watch. Calls that must fail sooner carry their own limit: the Lease calls
/// ([`LeaseSettings::call_timeout`]), events, issuer status writes, and the answers' status
/// writes ([`STATUS_WRITE_TIMEOUT`](crate::issuer::controller::apply::STATUS_WRITE_TIMEOUT)).
pub const KUBE_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// `firefly run -c config.yaml`.
///
/// # Errors
/// Configuration, bootstrap, client or listener errors, each naming what to fix.
pub async fn main(args: Args) -> anyhow::Result<ExitCode> {
    let Args { config: path } = args;
    let config = Config::load(&path)?;
    init_logging(&config.logging);
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    let metrics = Metrics::new()?;
    metrics
        .tlspc_insecure_http
        .set(i64::from(config.insecure_http()));
    let admin = AdminServer::start(&config.admin, metrics.clone()).await?;
    let client = kube_client(&config).await?;
    // Every replica, leader or standby, holds its own sub-CA so that a takeover signs at once.
    let observer: crate::bootstrap::client::CallObserver = {
        let metrics = metrics.clone();
        Arc::new(move |endpoint, status, took| metrics.observe_tlspc(endpoint, status, took))
    };
    let bootstrap = Bootstrap::start_observed(
        &config,
        Arc::new(SystemClock),
        |name| std::env::var(name).ok(),
        Some(observer),
    )
    .await?;
    let authority: Arc<dyn Authority> = Arc::new(bootstrap.signer());
    let details = admin.details();
    let mut handle = Controller::start_with_admin(
        &config,
        client.clone(),
        authority,
        admin,
        metrics,
        StartOptions::default(),
    )?;
    // The roots pods trust, as ClusterTrustBundles, published while this replica leads.
    let _trust_bundles = crate::trust_bundle::publish::start_for(
        &config.controller.pod_certificates,
        client,
        bootstrap.trust_anchors_der(),
        details,
        handle.leadership(),
    );
    // After a burst (a backlog drained) the allocator's freed pages go back to the OS.
    let heap = tokio::spawn(crate::heap::release_after_bursts());
    let stopped = tokio::select! {
        () = wait_for_termination() => None,
        why = handle.stopped() => Some(why),
    };
    heap.abort();
    match &stopped {
        None => tracing::info!(
            "termination signal: finishing in-flight requests and releasing the lease"
        ),
        Some(why) => tracing::error!(
            cause = %why,
            "the controller stopped on its own: releasing the lease and exiting so that the process is restarted"
        ),
    }
    let outcome = handle.shutdown().await;
    drop(bootstrap);
    Ok(exit_code(stopped.as_ref(), &outcome))
}

/// Success only for a requested stop whose controller finished in time and whose lease (if any)
/// was released: anything else says, through the exit status, that something was abandoned.
fn exit_code(stopped: Option<&Stopped>, outcome: &ShutdownOutcome) -> ExitCode {
    if stopped.is_some() {
        return ExitCode::FAILURE;
    }
    if !outcome.controller_stopped || !outcome.lease_released {
        tracing::error!(
            controller_stopped = outcome.controller_stopped,
            lease_released = outcome.lease_released,
            "shutdown incomplete"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

async fn wait_for_termination() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "SIGTERM handler unavailable; only Ctrl-C stops the controller");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(controller_stopped: bool, lease_released: bool) -> ShutdownOutcome {
        ShutdownOutcome {
            controller_stopped,
            lease_released,
            admin_closed: true,
        }
    }

    #[test]
    fn only_a_requested_and_complete_shutdown_exits_zero() {
        assert_eq!(exit_code(None, &outcome(true, true)), ExitCode::SUCCESS);
        for incomplete in [outcome(false, true), outcome(true, false)] {
            assert_eq!(
                exit_code(None, &incomplete),
                ExitCode::FAILURE,
                "{incomplete:?}"
            );
        }
        for cause in [
            Stopped::ElectionEnded,
            Stopped::Failed("task panicked".into()),
        ] {
            assert_eq!(
                exit_code(Some(&cause), &outcome(true, true)),
                ExitCode::FAILURE,
                "{cause}"
            );
        }
    }
}
