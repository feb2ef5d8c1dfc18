//! Bootstrap: the locked sub-CA key, the TLSPC client and the sub-CA lifecycle; the only module that talks to TLSPC.
//!
//! [`Bootstrap::start`] logs in, fetches the configuration, obtains and validates the first sub-CA
//! and returns once it is active; background tasks then refresh the configuration and policies,
//! rotate the sub-CA at 2/3 of its lifetime (keeping the current one through outages), and send
//! usage reports, each under a supervisor that restarts it after a panic and reports not ready
//! while it keeps failing. The controller reads everything through the cheap [`Signer`] handle.

pub mod client;
#[allow(unsafe_code)] // the one module that may: madvise, prctl, rlimits, mlockall, AWS-LC EC keys
pub mod locked_key;
pub mod signer;
pub mod subca;
mod supervisor;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rand::Rng as _;

use self::client::{ClientError, ClientSettings, RetryPolicy, ServiceAccountKey, TlspcClient};
use self::locked_key::LockMode;
use self::locked_key::{LockedKey, LockedKeyError};
use self::signer::{ActiveSubCa, Blockers, Shared, read, write};
pub use self::signer::{AuditSettings, Readiness, Signer};
use self::subca::SubCaError;
pub use self::supervisor::SupervisedTask;
use self::supervisor::{SupervisionPolicy, TaskHealth, spawn_supervised};
use crate::policy_cache::PolicyCache;
use crate::wire::{
    ExtendedConfigurationInformation, IntermediateCertificateRequest, SubCaProviderInformation,
};
use firefly_core::KeyAlgorithm;
pub use firefly_core::clock::{Clock, SystemClock};

/// Everything the bootstrap reads from the product's configuration (`bootstrap.vaas.*`,
/// `signer.lockMode`), already validated.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `bootstrap.vaas.url`.
    pub url: String,
    /// `bootstrap.vaas.auth.clientID`.
    pub client_id: String,
    /// `bootstrap.vaas.auth.privateKeyFile`.
    pub private_key_file: PathBuf,
    /// `bootstrap.vaas.trustAnchorFile`: one or more CA certificates; the sub-CA's chain must
    /// contain one of them.
    pub trust_anchor_file: Option<PathBuf>,
    /// `bootstrap.vaas.requestTimeout`.
    pub request_timeout: Duration,
    /// `bootstrap.vaas.policyRefreshInterval`.
    pub policy_refresh_interval: Duration,
    /// `bootstrap.vaas.policyMaxStaleness`.
    pub policy_max_staleness: Duration,
    /// `bootstrap.vaas.subCaRequestDeadline`.
    pub sub_ca_request_deadline: Duration,
    /// The instance name (`bootstrap.vaas.csr.instanceNaming` with `{ENV}` substituted).
    pub instance_name: String,
    /// `signer.lockMode`.
    pub lock_mode: LockMode,
    /// Remaining life the sub-CA rotation keeps (zero: none, rotation at 2/3 of the lifetime).
    /// With pod certificates enabled: [`subca::POD_CERTIFICATE_ROTATION_FLOOR`]. Readiness says
    /// when the active sub-CA has less.
    pub rotation_floor: Duration,
}

/// A configuration the bootstrap can start from: the product's `Config` implements it, so the
/// TLSPC side never depends on the product's configuration format.
pub trait BootstrapConfig {
    /// The bootstrap's settings, reading `{ENV}` substitutions through `env`.
    ///
    /// # Errors
    /// When a setting cannot be derived (an `{ENV}` variable is unset); the message names the key.
    fn bootstrap_settings(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, Box<dyn std::error::Error + Send + Sync>>;
}

impl BootstrapConfig for Settings {
    fn bootstrap_settings(
        &self,
        _env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.clone())
    }
}

/// Why the bootstrap could not (or can no longer) provide a sub-CA.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    /// The settings could not be derived from the configuration.
    #[error("{0}")]
    Config(Box<dyn std::error::Error + Send + Sync>),
    /// The key could not be generated or locked, or the process hardened.
    #[error(transparent)]
    Key(#[from] LockedKeyError),
    /// A TLSPC call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// TLSPC's sub-CA answer was refused.
    #[error(transparent)]
    SubCa(#[from] SubCaError),
    /// The issuing core refused the validated sub-CA.
    #[error("the issuing core refused the sub-CA: {0}")]
    Ca(#[from] firefly_core::ca::CaError),
    /// The configured trust anchor file is unusable.
    #[error("bootstrap.vaas.trustAnchorFile={path}: {reason}")]
    TrustAnchor {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The configuration names no sub-CA provider.
    #[error("TLSPC configuration {configuration:?} has no sub-CA provider: set one in TLSPC")]
    NoProvider {
        /// Configuration name.
        configuration: String,
    },
    /// A background task failed unexpectedly.
    #[error("sub-CA key generation task failed: {0}")]
    Task(String),
}

/// The running bootstrap: owns the background tasks (stopped on drop) and hands out [`Signer`]s.
pub struct Bootstrap {
    signer: Signer,
    driver: Arc<Driver>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bootstrap")
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl Drop for Bootstrap {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Bootstrap {
    /// Starts with the process environment for `{ENV}` in `instanceNaming`.
    ///
    /// # Errors
    /// As [`Bootstrap::start_with_env`].
    pub async fn start(
        cfg: &impl BootstrapConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Bootstrap, BootstrapError> {
        Self::start_with_env(cfg, clock, |name| std::env::var(name).ok()).await
    }

    /// Hardens the process, logs in, fetches the configuration, obtains, validates and activates
    /// the first sub-CA, then starts the refresh, rotation and usage-report tasks (supervised).
    ///
    /// # Errors
    /// Every [`BootstrapError`], each naming what to fix: lock limits, credentials, a detached
    /// account, a refused or invalid sub-CA, an unusable trust anchor.
    pub async fn start_with_env(
        cfg: &impl BootstrapConfig,
        clock: Arc<dyn Clock>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Bootstrap, BootstrapError> {
        Self::start_observed(cfg, clock, env, None).await
    }

    /// [`Bootstrap::start_with_env`], reporting every TLSPC call to `observer` (metrics).
    ///
    /// # Errors
    /// As [`Bootstrap::start_with_env`].
    pub async fn start_observed(
        cfg: &impl BootstrapConfig,
        clock: Arc<dyn Clock>,
        env: impl Fn(&str) -> Option<String>,
        observer: Option<client::CallObserver>,
    ) -> Result<Bootstrap, BootstrapError> {
        Self::start_supervised(cfg, clock, env, observer, SupervisionPolicy::default()).await
    }

    async fn start_supervised(
        cfg: &impl BootstrapConfig,
        clock: Arc<dyn Clock>,
        env: impl Fn(&str) -> Option<String>,
        observer: Option<client::CallObserver>,
        supervision: SupervisionPolicy,
    ) -> Result<Bootstrap, BootstrapError> {
        let vaas = cfg
            .bootstrap_settings(&env)
            .map_err(BootstrapError::Config)?;
        locked_key::harden_process(vaas.lock_mode)?;
        let instance_name = vaas.instance_name.clone();
        let trust_anchors = match &vaas.trust_anchor_file {
            Some(path) => load_trust_anchors(path)?,
            None => Vec::new(),
        };
        let key = ServiceAccountKey::load(&vaas.private_key_file)?;
        let client = TlspcClient::new(
            ClientSettings {
                base_url: vaas.url.clone(),
                client_id: vaas.client_id.clone(),
                request_timeout: vaas.request_timeout,
                retry: RetryPolicy::default(),
            },
            key,
            clock.clone(),
        )?;
        let client = match observer {
            Some(observer) => client.with_observer(observer),
            None => client,
        };
        client.login().await?;
        let configuration = client.configuration().await?;
        let shared = Arc::new(Shared {
            clock: clock.clone(),
            active: RwLock::new(None),
            policies: RwLock::new(PolicyCache::new(vaas.policy_max_staleness)),
            audit: RwLock::new(AuditSettings::default()),
            blockers: RwLock::new(Blockers::default()),
            rotation_floor: vaas.rotation_floor,
        });
        let driver = Arc::new(Driver {
            client: Arc::new(client),
            shared: shared.clone(),
            lock_mode: vaas.lock_mode,
            instance_name,
            request_deadline: vaas.sub_ca_request_deadline,
            refresh_interval: vaas.policy_refresh_interval,
            trust_anchors: Mutex::new(trust_anchors),
            configuration: RwLock::new(ExtendedConfigurationInformation::default()),
            rotate_now: tokio::sync::Notify::new(),
            health: Arc::new(TaskHealth::default()),
        });
        driver.apply_configuration(configuration);
        let first = driver.obtain_sub_ca().await?;
        driver.activate(first);
        // A panic must not end rotation or refresh silently: each runs under a supervisor that
        // restarts it with backoff and reports not ready while it keeps failing.
        let supervised = |task, run: fn(Arc<Driver>) -> TaskFuture| {
            let d = driver.clone();
            spawn_supervised(
                task,
                supervision,
                shared.clone(),
                driver.health.clone(),
                move || run(d.clone()),
            )
        };
        let tasks = vec![
            supervised(SupervisedTask::Rotation, |d| Box::pin(d.rotation_loop())),
            supervised(SupervisedTask::Refresh, |d| Box::pin(d.refresh_loop())),
        ];
        Ok(Bootstrap {
            signer: Signer { shared },
            driver,
            tasks,
        })
    }

    /// A handle for the controller (cheap clone).
    pub fn signer(&self) -> Signer {
        self.signer.clone()
    }

    /// The trust anchor in force, DER: the first of [`Bootstrap::trust_anchors_der`].
    pub fn trust_anchor_der(&self) -> Option<Vec<u8>> {
        self.trust_anchors_der().into_iter().next()
    }

    /// The trust anchor set, DER, in file order, without duplicates: every CA certificate of
    /// `bootstrap.vaas.trustAnchorFile`, else the root pinned from the first sub-CA's chain. Fixed
    /// for the life of the process; what a ClusterTrustBundle publishes.
    pub fn trust_anchors_der(&self) -> Vec<Vec<u8>> {
        self.driver
            .trust_anchors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Asks for a new sub-CA now (as a changed provider does); the current one keeps signing.
    pub fn rotate_now(&self) {
        self.driver.rotate_now.notify_one();
    }

    /// How many times the background `task` was restarted after a panic (or an unexpected end).
    pub fn task_restarts(&self, task: SupervisedTask) -> u64 {
        self.driver.health.restarts(task)
    }
}

/// A background loop of the driver, boxed so that both fit one supervisor signature.
type TaskFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Reads `bootstrap.vaas.trustAnchorFile`: every CERTIFICATE block (other blocks and text are
/// ignored), each an X.509 CA certificate; duplicates are dropped, file order is kept.
fn load_trust_anchors(path: &std::path::Path) -> Result<Vec<Vec<u8>>, BootstrapError> {
    use x509_parser::prelude::FromDer as _;
    let bad = |reason: String| BootstrapError::TrustAnchor {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let blocks = pem::parse_many(&text).map_err(|e| bad(format!("not PEM: {e}")))?;
    let mut anchors: Vec<Vec<u8>> = Vec::new();
    for (i, block) in blocks
        .iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .enumerate()
    {
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(block.contents())
            .map_err(|e| bad(format!("certificate {i} is not an X.509 certificate: {e}")))?;
        if !cert.is_ca() {
            return Err(bad(format!(
                "certificate {i} ({}) is not a CA (basicConstraints CA:TRUE is missing): a trust anchor must be a CA certificate",
                cert.subject()
            )));
        }
        if !anchors.iter().any(|a| a.as_slice() == block.contents()) {
            anchors.push(block.contents().to_vec());
        }
    }
    if anchors.is_empty() {
        return Err(bad(
            "holds no certificate; at least one CA certificate is expected".into(),
        ));
    }
    Ok(anchors)
}

/// The background side: one TLSPC client, the shared state the [`Signer`] reads, and the timers.
struct Driver {
    client: Arc<TlspcClient>,
    shared: Arc<Shared>,
    lock_mode: LockMode,
    instance_name: String,
    request_deadline: Duration,
    refresh_interval: Duration,
    trust_anchors: Mutex<Vec<Vec<u8>>>,
    configuration: RwLock<ExtendedConfigurationInformation>,
    rotate_now: tokio::sync::Notify,
    health: Arc<TaskHealth>,
}

impl Driver {
    /// Applies a fetched configuration: policies, audit settings, FIPS requirement, provider change.
    fn apply_configuration(&self, configuration: ExtendedConfigurationInformation) {
        let now = self.shared.clock.now();
        // The cache takes the core's policy type: TLSPC's wire documents are converted here.
        let summary = write(&self.shared.policies).update(
            &configuration.core_policies(),
            &configuration.controller_allowed_policy_ids,
            now,
        );
        for (name, reason) in &summary.invalid {
            tracing::warn!(policy = %name, %reason, "TLSPC policy is invalid and will refuse every request naming it");
        }
        if !summary.added.is_empty() || !summary.changed.is_empty() || !summary.removed.is_empty() {
            tracing::info!(added = ?summary.added, changed = ?summary.changed, removed = ?summary.removed, "TLSPC policies updated");
        }
        let settings = &configuration.advanced_settings;
        *write(&self.shared.audit) = AuditSettings {
            enabled: settings.enable_issuance_audit_log,
            include_raw_cert: settings.include_raw_cert_data_in_audit_log,
        };
        write(&self.shared.blockers).fips = (settings.require_fips_compliant_build && !fips_build()).then(|| {
            format!(
                "TLSPC configuration {:?} requires a FIPS-compliant build (advancedSettings.requireFIPSCompliantBuild) and this build of firefly is not one: issuance is disabled",
                configuration.name
            )
        });
        let new_provider = provider_fingerprint(configuration.sub_ca_provider.as_ref());
        let active = read(&self.shared.active).clone();
        if let Some(active) = active
            && active.provider_fingerprint != new_provider
        {
            tracing::info!("TLSPC sub-CA provider changed; replacing the sub-CA");
            self.rotate_now.notify_one();
        }
        *write(&self.configuration) = configuration;
    }

    /// Generates a key, requests, polls and validates a sub-CA. Touches no shared state except
    /// the trust anchor, which the first success pins.
    async fn obtain_sub_ca(&self) -> Result<Arc<ActiveSubCa>, BootstrapError> {
        let (configuration_id, configuration_name, provider) = {
            let c = read(&self.configuration);
            (c.id.clone(), c.name.clone(), c.sub_ca_provider.clone())
        };
        let provider = provider.ok_or(BootstrapError::NoProvider {
            configuration: configuration_name,
        })?;
        let algorithm = provider.key_algorithm.unwrap_or(KeyAlgorithm::EcP256);
        let lock_mode = self.lock_mode;
        // RSA generation can take a second or more: keep it off the async workers.
        let key = tokio::task::spawn_blocking(move || LockedKey::generate(algorithm, lock_mode))
            .await
            .map_err(|e| BootstrapError::Task(e.to_string()))??;
        let csr = subca::build_csr(&key, &self.instance_name, &provider)?;
        let request = IntermediateCertificateRequest {
            configuration_id,
            certificate_signing_request: csr,
            instance_naming: self.instance_name.clone(),
        };
        let requested = self.client.request_intermediate(&request).await?;
        let issued = self
            .client
            .wait_for_intermediate(requested, self.request_deadline)
            .await?;
        let longest_leaf = read(&self.shared.policies).longest_leaf();
        let anchors = self
            .trust_anchors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let validated = subca::validate_issued(
            &issued,
            &key,
            &anchors,
            self.shared.clock.now(),
            longest_leaf,
        )?;
        for warning in &validated.warnings {
            tracing::warn!(sub_ca = %validated.id, "{warning}");
        }
        let root = validated.root_der().to_vec();
        let anchor = subca::anchor_in_chain(&anchors, &validated.issuer_chain_der)
            .unwrap_or(&root)
            .to_vec();
        let id = validated.id.clone();
        let key = Arc::new(key);
        let issuer_chain_der = validated.issuer_chain_der.clone();
        let sub_ca = firefly_core::ca::SubCa::new(
            validated.cert_der,
            validated.issuer_chain_der,
            key.clone(),
        )?;
        // Before activation: a probe SVID must verify to the anchor as a relying party checks it.
        subca::probe(&sub_ca, &issuer_chain_der, &anchor, self.shared.clock.now())?;
        {
            let mut pinned = self
                .trust_anchors
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if pinned.is_empty() {
                tracing::info!(
                    "pinned the root of the first sub-CA's chain as the trust anchor for the life of the process"
                );
                pinned.push(root);
            }
        }
        Ok(Arc::new(ActiveSubCa::new(
            Arc::new(sub_ca),
            key,
            id,
            provider_fingerprint(Some(&provider)),
        )))
    }

    /// Makes `next` the signing sub-CA in one pointer swap: requests never see a gap.
    fn activate(&self, next: Arc<ActiveSubCa>) {
        let not_after = next.sub_ca.not_after();
        let id = next.id.clone();
        let previous = write(&self.shared.active).replace(next);
        write(&self.shared.blockers).last_problem = None;
        tracing::info!(sub_ca = %id, not_after = %jiff_time(not_after), "sub-CA active");
        if let Some(previous) = previous {
            // A final report for the retired sub-CA; best effort, off the signing path.
            self.spawn_report(previous);
        }
    }

    fn spawn_report(&self, active: Arc<ActiveSubCa>) {
        // The report needs the client; a detached task keeps issuance independent of TLSPC.
        let usage = active.usage();
        if usage == crate::wire::UsageReport::default() {
            return;
        }
        let id = active.id.clone();
        let client = self.client.clone();
        // Bounded by the client's own timeout and retries; nothing waits for it.
        tokio::spawn(async move {
            if let Err(e) = client.report_usage(&id, &usage).await {
                tracing::warn!(sub_ca = %id, error = %e, "final usage report of the retired sub-CA failed");
            }
        });
    }

    async fn rotation_loop(self: Arc<Self>) {
        loop {
            let current = read(&self.shared.active).clone();
            let wait = current
                .as_ref()
                .map(|a| {
                    subca::renewal_time_with_floor(
                        a.sub_ca.not_before(),
                        a.sub_ca.not_after(),
                        self.shared.rotation_floor,
                    )
                })
                .and_then(|at| at.duration_since(self.shared.clock.now()).ok())
                .unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.rotate_now.notified() => {}
            }
            self.health.checkpoint(SupervisedTask::Rotation);
            let mut failures = 0u32;
            loop {
                match self.obtain_sub_ca().await {
                    Ok(next) => {
                        self.activate(next);
                        self.health.progress(SupervisedTask::Rotation);
                        break;
                    }
                    Err(err) => {
                        // An attempt ran to its end: an outage, not a broken task.
                        self.health.progress(SupervisedTask::Rotation);
                        failures += 1;
                        let now = self.shared.clock.now();
                        let left = read(&self.shared.active)
                            .as_ref()
                            .and_then(|a| a.sub_ca.not_after().duration_since(now).ok());
                        let delay = subca::retry_delay(failures, left);
                        let delay = delay.mul_f64(rand::rng().random_range(0.5..=1.0));
                        tracing::warn!(error = %err, failures, retry_in_ms = delay.as_millis() as u64, "cannot obtain the next sub-CA; the current one keeps signing");
                        write(&self.shared.blockers).last_problem = Some(err.to_string());
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
    }

    async fn refresh_loop(self: Arc<Self>) {
        let mut last_reported: Option<(String, crate::wire::UsageReport)> = None;
        loop {
            let jitter = self
                .refresh_interval
                .mul_f64(rand::rng().random_range(0.0..0.1));
            tokio::time::sleep(self.refresh_interval + jitter).await;
            self.health.checkpoint(SupervisedTask::Refresh);
            match self.client.configuration().await {
                Ok(configuration) => {
                    self.apply_configuration(configuration);
                    let mut blockers = write(&self.shared.blockers);
                    blockers.withdrawn = None;
                    if blockers
                        .last_problem
                        .as_deref()
                        .is_some_and(|p| p.starts_with("configuration refresh"))
                    {
                        blockers.last_problem = None;
                    }
                }
                Err(err) if withdraws_authorization(&err) => {
                    tracing::error!(error = %err, "TLSPC refused this instance; issuance stops until it is authorized again");
                    let mut blockers = write(&self.shared.blockers);
                    blockers.withdrawn = Some(err.to_string());
                    blockers.last_problem = Some(format!("configuration refresh failed: {err}"));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "TLSPC configuration refresh failed; serving the last-known-good policies");
                    write(&self.shared.blockers).last_problem =
                        Some(format!("configuration refresh failed: {err}"));
                }
            }
            let active = read(&self.shared.active).clone();
            if let Some(active) = active {
                let usage = active.usage();
                let changed = last_reported
                    .as_ref()
                    .is_none_or(|(id, u)| id != &active.id || u != &usage);
                if changed && usage != crate::wire::UsageReport::default() {
                    match tokio::time::timeout(
                        self.refresh_interval,
                        self.client.report_usage(&active.id, &usage),
                    )
                    .await
                    {
                        Ok(Ok(())) => last_reported = Some((active.id.clone(), usage)),
                        Ok(Err(e)) => {
                            tracing::warn!(sub_ca = %active.id, error = %e, "usage report failed")
                        }
                        Err(_) => tracing::warn!(sub_ca = %active.id, "usage report timed out"),
                    }
                }
            }
            // A whole cycle ran (whatever TLSPC answered): the task itself is healthy.
            self.health.progress(SupervisedTask::Refresh);
        }
    }
}

/// Answers that mean an administrator withdrew this instance (detached, revoked, forbidden), as
/// opposed to outages, which keep the last-known-good state. A refusal counts only when TLSPC
/// itself gave it, in its JSON error shape (`errors` for the API, the OAuth shape for the login):
/// an HTML, empty or plain-text 401/403 comes from a proxy or gateway in front of it.
fn withdraws_authorization(err: &ClientError) -> bool {
    use self::client::UpstreamDetail;
    match err {
        ClientError::NoConfiguration { .. } => true,
        ClientError::LoginRefused { status, detail, .. } => {
            matches!(status, 400 | 401 | 403)
                && matches!(
                    detail,
                    UpstreamDetail::OAuth { .. } | UpstreamDetail::Api { .. }
                )
        }
        ClientError::Status { status, detail, .. } => {
            matches!(status, 401 | 403) && matches!(detail, UpstreamDetail::Api { .. })
        }
        _ => false,
    }
}

fn provider_fingerprint(provider: Option<&SubCaProviderInformation>) -> String {
    match provider {
        None => String::new(),
        Some(p) => {
            // Server-managed dates change without the profile changing; leave them out.
            let mut p = p.clone();
            p.creation_date = None;
            p.modification_date = None;
            serde_json::to_string(&p).unwrap_or_default()
        }
    }
}

/// Whether this build runs AWS-LC in FIPS mode and rustls on its FIPS provider (a build with
/// `--features fips`).
pub fn fips_build() -> bool {
    aws_lc_rs::try_fips_mode().is_ok() && crate::crypto::provider_is_fips()
}

fn jiff_time(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{t:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// The mock seeded with `deploy/tlspc-mock/seed.yaml`, its state in `dir`, and settings for it
    /// (the product's defaults, lock mode `keyPages`).
    async fn seeded_mock(dir: &std::path::Path) -> (tlspc_mock::MockServer, Settings) {
        seeded_mock_with_sub_ca_validity(dir, "P7D", Arc::new(SystemClock)).await
    }

    /// [`seeded_mock`] with the sub-CA provider's `validityPeriod` replaced, on `clock`.
    async fn seeded_mock_with_sub_ca_validity(
        dir: &std::path::Path,
        validity: &str,
        clock: Arc<dyn Clock>,
    ) -> (tlspc_mock::MockServer, Settings) {
        let seed_text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/tlspc-mock/seed.yaml"
        ))
        .unwrap();
        assert!(seed_text.contains("validityPeriod: P7D"));
        let seed_text = seed_text.replacen(
            "validityPeriod: P7D",
            &format!("validityPeriod: {validity}"),
            1,
        );
        let seed = tlspc_mock::Seed::from_yaml_str(&seed_text).unwrap();
        let state = dir.join("mock");
        let mock = tlspc_mock::MockServer::start_with_clock(
            seed,
            Some(&state),
            "127.0.0.1:0".parse().unwrap(),
            clock,
        )
        .await
        .unwrap();
        let settings = seeded_settings(&mock, &state);
        (mock, settings)
    }

    fn seeded_settings(mock: &tlspc_mock::MockServer, state: &std::path::Path) -> Settings {
        Settings {
            url: mock.base_url().to_owned(),
            client_id: mock.client_id().to_owned(),
            private_key_file: state.join("svc-acct.key"),
            trust_anchor_file: None,
            request_timeout: Duration::from_secs(30),
            policy_refresh_interval: Duration::from_secs(60),
            policy_max_staleness: Duration::from_secs(30 * 60),
            sub_ca_request_deadline: Duration::from_secs(5 * 60),
            instance_name: "test-node".to_owned(),
            lock_mode: LockMode::KeyPages,
            rotation_floor: Duration::ZERO,
        }
    }

    /// How many different sub-CAs the signer holds over `window`, sampled every 20 ms.
    async fn sub_cas_seen(signer: &Signer, window: Duration) -> usize {
        let mut ids = std::collections::BTreeSet::new();
        let end = tokio::time::Instant::now() + window;
        while tokio::time::Instant::now() < end {
            if let Some(id) = signer.current_id() {
                ids.insert(id);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ids.len()
    }

    /// The rotation task follows the floor. The mock back-dates a sub-CA by 10 s, so a 40 s one
    /// is valid [t-10 s, t+40 s): without a floor it is kept until 2/3 of its life (t+23 s);
    /// with a 37 s floor it is replaced at NotAfter - 37 s = t+3 s, before it has less than the
    /// floor left. Judged on the certificates' times, not on how fast the machine is: the
    /// replacement is waited for with a generous deadline, and the successor's own validity
    /// tells when it was issued.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_rotation_floor_replaces_a_sub_ca_before_it_has_less_than_the_floor_left() {
        const VALIDITY: Duration = Duration::from_secs(40);
        const FLOOR: Duration = Duration::from_secs(37);
        const SECOND: Duration = Duration::from_secs(1);
        crate::crypto::install_default_provider();
        for floor in [Duration::ZERO, FLOOR] {
            let dir = tempfile::tempdir().unwrap();
            let (_mock, mut config) =
                seeded_mock_with_sub_ca_validity(dir.path(), "PT40S", Arc::new(SystemClock)).await;
            config.rotation_floor = floor;
            let bootstrap = Bootstrap::start(&config, Arc::new(SystemClock))
                .await
                .unwrap();
            let signer = bootstrap.signer();
            let first_id = signer.current_id().expect("a first sub-CA");
            let first = signer.current().expect("the first sub-CA is valid");
            let (not_before, not_after) = (first.not_before(), first.not_after());
            let usual = subca::renewal_time(not_before, not_after);
            let by_floor = subca::renewal_time_with_floor(not_before, not_after, FLOOR);
            assert!(
                by_floor + 10 * SECOND < usual,
                "the floor asks for a replacement well before 2/3 of the life"
            );
            if floor.is_zero() {
                // Kept past the time the floor would have replaced it, sampled only while the
                // sub-CA is short of 2/3 of its life: a slow machine samples less, and never
                // past the point where a replacement would be right.
                let until = (by_floor + 2 * SECOND).min(usual - SECOND);
                while SystemTime::now() < until {
                    assert_eq!(
                        signer.current_id().as_deref(),
                        Some(first_id.as_str()),
                        "without a floor the sub-CA is kept until 2/3 of its life"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                continue;
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            let next = loop {
                if signer.current_id().is_some_and(|id| id != first_id)
                    && let Some(next) = signer.current()
                {
                    break next;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "with the floor the sub-CA is replaced early; still the first one"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            // The successor is valid for VALIDITY from its issue, in whole seconds: it was issued
            // in [issued, issued + 1 s).
            let issued = next.not_after() - VALIDITY;
            assert!(
                issued + SECOND >= by_floor,
                "replaced no earlier than NotAfter - floor: issued {:?} before it",
                by_floor.duration_since(issued).unwrap_or_default()
            );
            assert!(
                issued + SECOND <= usual,
                "replaced because of the floor, before 2/3 of the life: issued {:?} after it",
                issued.duration_since(usual).unwrap_or_default()
            );
        }
    }

    /// A sub-CA whose whole lifetime is within the floor: readiness names the TLSPC setting to
    /// change, and the rotation does not replace it over and over.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sub_ca_lifetime_within_the_floor_is_reported_and_not_replaced_in_a_loop() {
        crate::crypto::install_default_provider();
        let dir = tempfile::tempdir().unwrap();
        let (_mock, mut config) =
            seeded_mock_with_sub_ca_validity(dir.path(), "PT1H", Arc::new(SystemClock)).await;
        config.lock_mode = LockMode::Disabled;
        config.rotation_floor = subca::POD_CERTIFICATE_ROTATION_FLOOR;
        let bootstrap = Bootstrap::start(&config, Arc::new(SystemClock))
            .await
            .unwrap();
        let signer = bootstrap.signer();
        assert_eq!(sub_cas_seen(&signer, Duration::from_millis(800)).await, 1);
        let ready = signer.ready();
        assert!(ready.ready, "{}", ready.message);
        assert!(
            ready
                .message
                .contains("the TLSPC sub-CA is issued for only")
                && ready.message.contains("sub-CA provider in TLSPC"),
            "{}",
            ready.message
        );
    }

    fn self_signed(cn: &str, ca: bool) -> String {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        if ca {
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        p.self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .pem()
    }

    #[test]
    fn a_trust_anchor_file_may_hold_several_cas_and_duplicates_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchors.pem");
        let (a, b) = (self_signed("Root A", true), self_signed("Root B", true));
        let der = |p: &str| pem::parse(p).unwrap().contents().to_vec();
        std::fs::write(&path, format!("Root A\n{a}\n{b}{a}")).unwrap();
        assert_eq!(load_trust_anchors(&path).unwrap(), vec![der(&a), der(&b)]);

        let leaf = self_signed("Leaf", false);
        std::fs::write(&path, format!("{a}{leaf}")).unwrap();
        let err = load_trust_anchors(&path).unwrap_err().to_string();
        assert!(
            err.contains("certificate 1 (CN=Leaf) is not a CA") && err.contains("anchors.pem"),
            "{err}"
        );
        std::fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = load_trust_anchors(&path).unwrap_err().to_string();
        assert!(err.contains("holds no certificate"), "{err}");
    }

    /// Polls `done` every 20 ms for up to 20 s.
    async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A bootstrap against a seeded mock under a supervision policy for tests (restarts from
    /// 20 ms up to `max_backoff`, not ready after 3 failures in a row, stable after 600 ms), its
    /// configuration refreshed every `refresh_interval`.
    async fn supervised(
        dir: &std::path::Path,
        refresh_interval: Duration,
        max_backoff: Duration,
    ) -> (tlspc_mock::MockServer, Bootstrap, SupervisionPolicy) {
        crate::crypto::install_default_provider();
        let (mock, mut config) = seeded_mock(dir).await;
        config.policy_refresh_interval = refresh_interval;
        config.lock_mode = LockMode::Disabled;
        let policy = SupervisionPolicy {
            first_backoff: Duration::from_millis(20),
            max_backoff,
            not_ready_after: 3,
            stable_after: Duration::from_millis(600),
        };
        let bootstrap =
            Bootstrap::start_supervised(&config, Arc::new(SystemClock), |_| None, None, policy)
                .await
                .unwrap();
        (mock, bootstrap, policy)
    }

    /// A panic injected into the rotation task restarts it (and the restarted task rotates); a
    /// refresh task that keeps panicking makes the instance not ready, saying why, until it runs
    /// again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn panicking_background_tasks_are_restarted_and_readiness_says_when_they_keep_failing() {
        let dir = tempfile::tempdir().unwrap();
        let (_mock, bootstrap, _) = supervised(
            dir.path(),
            Duration::from_millis(50),
            Duration::from_millis(80),
        )
        .await;
        let signer = bootstrap.signer();
        let active_id = || read(&signer.shared.active).as_ref().unwrap().id.clone();
        let first = active_id();
        assert!(signer.ready().ready, "{}", signer.ready().message);

        // One panic in rotation: restarted, still ready, and the new instance rotates.
        bootstrap
            .driver
            .health
            .inject_panics(SupervisedTask::Rotation, 1);
        bootstrap.rotate_now();
        eventually("the rotation task is restarted", || {
            bootstrap.task_restarts(SupervisedTask::Rotation) == 1
        })
        .await;
        assert!(signer.ready().ready, "{}", signer.ready().message);
        assert_eq!(active_id(), first, "the panic happened before any rotation");
        bootstrap.rotate_now();
        eventually("the restarted rotation task obtains a new sub-CA", || {
            active_id() != first
        })
        .await;
        assert!(signer.ready().ready, "{}", signer.ready().message);

        // A refresh task that panics on every run: not ready, and the message says why.
        bootstrap
            .driver
            .health
            .inject_panics(SupervisedTask::Refresh, u32::MAX);
        eventually("readiness turns false", || !signer.ready().ready).await;
        let message = signer.ready().message;
        assert!(
            message.contains("configuration refresh task failed")
                && message.contains("injected panic"),
            "{message}"
        );
        assert!(bootstrap.task_restarts(SupervisedTask::Refresh) >= 3);
        // Signing itself goes on: the sub-CA is valid.
        assert!(signer.current().is_some());

        // Once it runs again, readiness comes back.
        bootstrap
            .driver
            .health
            .inject_panics(SupervisedTask::Refresh, 0);
        eventually("readiness comes back", || signer.ready().ready).await;
        let restarts = bootstrap.task_restarts(SupervisedTask::Refresh);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            bootstrap.task_restarts(SupervisedTask::Refresh),
            restarts,
            "a healthy task is not restarted"
        );
    }

    /// The refresh task sleeps a refresh interval before its work. With an interval longer than
    /// `stable_after`, a task that panics on every run must still count its failures in a row
    /// (sleeping is not running stably): the instance turns not ready and the restarts back off.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refresh_task_panicking_after_a_sleep_longer_than_stable_after_still_stalls_and_backs_off()
     {
        let dir = tempfile::tempdir().unwrap();
        let (_mock, bootstrap, policy) = supervised(
            dir.path(),
            Duration::from_millis(700),
            Duration::from_millis(400),
        )
        .await;
        let signer = bootstrap.signer();
        assert!(signer.ready().ready, "{}", signer.ready().message);
        bootstrap
            .driver
            .health
            .inject_panics(SupervisedTask::Refresh, u32::MAX);
        // Each run sleeps 700–770 ms then panics: three failures take under 3 s.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        while signer.ready().ready && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let message = signer.ready().message;
        assert!(
            !signer.ready().ready,
            "after {} restarts the instance is still ready: {message}",
            bootstrap.task_restarts(SupervisedTask::Refresh)
        );
        assert!(
            message.contains("configuration refresh task failed") && message.contains("injected"),
            "{message}"
        );
        // The third failure in a row waits first·2² scaled by [0.5, 1]: at least 40 ms, more
        // than any first restart (at most 20 ms) could.
        let delay = bootstrap
            .driver
            .health
            .last_restart_delay(SupervisedTask::Refresh);
        assert!(
            delay > policy.first_backoff,
            "restarts do not back off: {delay:?}"
        );
        assert!(signer.current().is_some(), "signing goes on");
    }

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Every log line of a full bootstrap (ours, the mock's, reqwest's and hyper's, at TRACE) is
    /// searched for any 16-byte window of the sub-CA key, in raw, hex and base64 form.
    #[tokio::test]
    async fn the_sub_ca_key_never_appears_in_the_log_of_a_full_bootstrap() {
        use base64::Engine as _;
        crate::crypto::install_default_provider();
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let dir = tempfile::tempdir().unwrap();
        let (mock, config) = seeded_mock(dir.path()).await;
        let bootstrap = Bootstrap::start(&config, Arc::new(SystemClock))
            .await
            .unwrap();
        let signer = bootstrap.signer();
        tracing::debug!(
            ?signer,
            ?bootstrap,
            "debug output of the handles is logged too"
        );
        let active = read(&signer.shared.active).clone().unwrap();
        tracing::debug!(key = ?active.key, "and of the key itself");
        let secret = active.key.secret_for_tests().to_vec();
        let log = capture.0.lock().unwrap().clone();
        let log_text = String::from_utf8_lossy(&log).to_string();
        assert!(
            log_text.contains("sub-CA active"),
            "the capture holds the bootstrap log"
        );
        assert!(
            log_text.contains("redacted"),
            "the key's Debug placeholder was logged"
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(&secret);
        assert!(!log_text.contains(&b64[8..40]));
        for window in secret.windows(16) {
            assert!(
                !log.windows(16).any(|w| w == window),
                "raw key bytes in the log"
            );
            assert!(
                !log_text.contains(&firefly_core::util::hex_lower(window)),
                "hex key bytes in the log"
            );
        }
        let account_key = mock.service_account_key_pem().unwrap();
        let account_body: String = account_key
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert!(
            !log_text.contains(&account_body[10..50]),
            "service-account key in the log"
        );
        let _ = std::io::stderr().flush();
    }
}
