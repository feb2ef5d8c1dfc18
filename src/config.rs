//! The configuration file of `firefly run -c`: one typed, validated `Config`; reads only the file it is given.
//!
//! Layout: Venafi Firefly's own keys where they exist (`bootstrap.vaas.*`, `signer.inMemory`,
//! `controller.*`), plus our extensions, all documented in `docs/configuration.md`. Unknown keys
//! are refused with their full path; every error names the key it is about.

pub mod defaults;
mod fields;
pub mod pod_certificates;

pub use pod_certificates::{PodCertificatesConfig, PodSignerConfig};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Errors of loading and validating the configuration file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key is unknown, missing, or its value has the wrong type or syntax.
    #[error("configuration key `{key}`: {message}")]
    Parse {
        /// Full dotted path of the key (`bootstrap.vaas.url`); empty for the document itself.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A value parsed but breaks a rule.
    #[error("configuration key `{key}` = {value:?}: {rule}")]
    Invalid {
        /// Full dotted path of the key.
        key: String,
        /// The offending value.
        value: String,
        /// The rule it breaks.
        rule: String,
    },
    /// `{NAME}` in `instanceNaming` names an environment variable that is not set.
    #[error(
        "configuration key `bootstrap.vaas.csr.instanceNaming` = {template:?}: environment variable {variable} is not set"
    )]
    MissingEnv {
        /// The template.
        template: String,
        /// The missing variable.
        variable: String,
    },
}

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// TLSPC connection, credentials and our policy/sub-CA timings.
    pub bootstrap: BootstrapConfig,
    /// The sub-CA key holder.
    #[serde(default)]
    pub signer: SignerConfig,
    /// The CertificateRequest controller.
    #[serde(default)]
    pub controller: ControllerConfig,
    /// Admin HTTP listeners (ours).
    #[serde(default)]
    pub admin: AdminConfig,
    /// Log output (ours).
    #[serde(default)]
    pub logging: LoggingConfig,
}

/// `bootstrap`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapConfig {
    /// `bootstrap.vaas`: the TLSPC tenant.
    pub vaas: VaasConfig,
}

/// `bootstrap.vaas`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VaasConfig {
    /// Base URL of TLSPC (`https://api.venafi.cloud`); `http://` only for a loopback host or with
    /// `allowInsecureHTTP`, and then with a warning.
    pub url: String,
    /// (ours) Allows an `http://` URL whose host is not a loopback address (the in-cluster mock).
    #[serde(
        default = "defaults::allow_insecure_http",
        rename = "allowInsecureHTTP"
    )]
    pub allow_insecure_http: bool,
    /// Service-account credentials.
    pub auth: AuthConfig,
    /// Sub-CA CSR settings.
    #[serde(default)]
    pub csr: CsrConfig,
    /// (ours) PEM file of the trust anchor every sub-CA must chain to; absent → the root at the
    /// end of the first sub-CA's `issuerCertificates` is pinned for the life of the process.
    #[serde(default, deserialize_with = "fields::empty_path_is_none")]
    pub trust_anchor_file: Option<PathBuf>,
    /// (ours) How often the configuration and policies are refreshed.
    #[serde(
        default = "defaults::policy_refresh_interval",
        with = "fields::go_duration"
    )]
    pub policy_refresh_interval: Duration,
    /// (ours) After this long without a successful refresh, issuance fails closed.
    #[serde(
        default = "defaults::policy_max_staleness",
        with = "fields::go_duration"
    )]
    pub policy_max_staleness: Duration,
    /// (ours) Timeout of one TLSPC HTTP call.
    #[serde(default = "defaults::request_timeout", with = "fields::go_duration")]
    pub request_timeout: Duration,
    /// (ours) Deadline for requesting and polling one sub-CA.
    #[serde(
        default = "defaults::sub_ca_request_deadline",
        with = "fields::go_duration"
    )]
    pub sub_ca_request_deadline: Duration,
}

/// `bootstrap.vaas.auth`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Service-account client ID (a UUID).
    #[serde(rename = "clientID")]
    pub client_id: String,
    /// PEM file of the service-account private key (PKCS#8, `EC PRIVATE KEY` or `RSA PRIVATE KEY`).
    #[serde(rename = "privateKeyFile")]
    pub private_key_file: PathBuf,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only names, never key material: the file path is not a secret, its content is.
        f.debug_struct("AuthConfig")
            .field("client_id", &self.client_id)
            .field("private_key_file", &self.private_key_file)
            .finish()
    }
}

/// `bootstrap.vaas.csr`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CsrConfig {
    /// Instance name template; `{NAME}` is replaced by environment variable `NAME`.
    pub instance_naming: String,
}

impl Default for CsrConfig {
    fn default() -> Self {
        Self {
            instance_naming: defaults::INSTANCE_NAMING.to_owned(),
        }
    }
}

/// `signer`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SignerConfig {
    /// Firefly's key: the sub-CA key lives in memory only. Only `true` is supported.
    pub in_memory: bool,
    /// (ours) What is locked in memory.
    pub lock_mode: LockMode,
}

impl Default for SignerConfig {
    fn default() -> Self {
        Self {
            in_memory: defaults::IN_MEMORY,
            lock_mode: LockMode::default(),
        }
    }
}

pub use firefly_tlspc::bootstrap::locked_key::LockMode;

/// `controller`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ControllerConfig {
    /// Kubeconfig file; `None` → `$KUBECONFIG` → in-cluster.
    #[serde(deserialize_with = "fields::empty_path_is_none")]
    pub kubeconfig_file: Option<PathBuf>,
    /// Namespace of the leader-election Lease.
    pub leader_election_namespace: String,
    /// (ours) Leader-election settings.
    pub leader_election: LeaderElectionConfig,
    /// cert-manager integration.
    #[serde(rename = "cert-manager")]
    pub cert_manager: CertManagerConfig,
    /// (ours) `spec.username` values allowed to obtain certificates (DESIGN §8): empty refuses
    /// every request, `"*"` allows every requester; an issuer's `spec.allowedRequesters` narrows it.
    pub allowed_requesters: Vec<String>,
    /// (ours) Namespaces whose CertificateRequests may carry identities of any namespace (where
    /// the mesh's CA client, istio-csr, asks for every workload); elsewhere a request carries only
    /// its own namespace's SPIFFE IDs and `.svc` names.
    pub mesh_issuer_namespaces: Vec<String>,
    /// (ours) Transient failures stay Pending until the request is this old, then Failed.
    #[serde(with = "fields::go_duration")]
    pub max_retry_duration: Duration,
    /// (ours) Shortest leaf lifetime issued.
    #[serde(with = "fields::go_duration")]
    pub minimum_leaf_duration: Duration,
    /// (ours) Emit an Event for every successful issuance.
    pub success_events: bool,
    /// (ours) Upper bound of reconciles in flight.
    pub max_concurrent_reconciles: usize,
    /// (ours) The Kubernetes CertificateSigningRequest front door.
    pub certificate_signing_requests: CertificateSigningRequestsConfig,
    /// (ours) The PodCertificateRequest front door (DESIGN §9).
    pub pod_certificates: PodCertificatesConfig,
}

/// `controller.certificateSigningRequests` (ours): the Kubernetes CSR signer, serving the signer
/// names `issuers.<group>/<namespace>.<name>` and `clusterissuers.<group>/<name>`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificateSigningRequestsConfig {
    /// Off by default.
    pub enabled: bool,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            kubeconfig_file: None,
            leader_election_namespace: defaults::LEADER_ELECTION_NAMESPACE.to_owned(),
            leader_election: LeaderElectionConfig::default(),
            cert_manager: CertManagerConfig::default(),
            allowed_requesters: Vec::new(),
            mesh_issuer_namespaces: defaults::MESH_ISSUER_NAMESPACES
                .iter()
                .map(|n| (*n).to_owned())
                .collect(),
            max_retry_duration: defaults::MAX_RETRY_DURATION,
            minimum_leaf_duration: defaults::MINIMUM_LEAF_DURATION,
            success_events: defaults::SUCCESS_EVENTS,
            max_concurrent_reconciles: defaults::MAX_CONCURRENT_RECONCILES,
            certificate_signing_requests: CertificateSigningRequestsConfig::default(),
            pod_certificates: PodCertificatesConfig::default(),
        }
    }
}

/// `controller.leaderElection` (ours).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LeaderElectionConfig {
    /// Whether to elect a leader at all (disable for a single replica in development).
    pub enabled: bool,
    /// Name of the Lease.
    pub lease_name: String,
    /// How long a lease is valid without renewal.
    #[serde(with = "fields::go_duration")]
    pub lease_duration: Duration,
    /// The leader gives up leadership when it could not renew for this long.
    #[serde(with = "fields::go_duration")]
    pub renew_deadline: Duration,
    /// Interval between acquire/renew attempts.
    #[serde(with = "fields::go_duration")]
    pub retry_period: Duration,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        Self {
            enabled: defaults::LEADER_ELECTION_ENABLED,
            lease_name: defaults::LEASE_NAME.to_owned(),
            lease_duration: defaults::LEASE_DURATION,
            renew_deadline: defaults::RENEW_DEADLINE,
            retry_period: defaults::RETRY_PERIOD,
        }
    }
}

/// `controller.cert-manager`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CertManagerConfig {
    /// API group of the issuers this controller serves.
    pub group_name: String,
    /// Sign only approved requests.
    pub check_approval: bool,
    /// Fill `status.ca` with the root.
    pub ca_root_chain_population: bool,
}

impl Default for CertManagerConfig {
    fn default() -> Self {
        Self {
            group_name: defaults::GROUP_NAME.to_owned(),
            check_approval: defaults::CHECK_APPROVAL,
            ca_root_chain_population: defaults::CA_ROOT_CHAIN_POPULATION,
        }
    }
}

/// `admin` (ours): where the admin endpoints listen.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AdminConfig {
    /// `/readyz` and `/livez`.
    pub readiness_address: SocketAddr,
    /// `/metrics`.
    pub metrics_address: SocketAddr,
    /// `/chain`.
    pub chain_address: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            readiness_address: defaults::READINESS_ADDRESS,
            metrics_address: defaults::METRICS_ADDRESS,
            chain_address: defaults::CHAIN_ADDRESS,
        }
    }
}

/// `logging` (ours).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LoggingConfig {
    /// Line format.
    pub format: LogFormat,
    /// A `tracing` filter directive (`info`, `firefly=debug,info`).
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: defaults::LOG_LEVEL.to_owned(),
        }
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

impl Config {
    /// Reads, parses and validates the configuration file.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when the file cannot be read; otherwise as [`Config::from_yaml_str`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml_str(&text)
    }

    /// Parses and validates a configuration document.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for unknown or missing keys and bad syntax (naming the full key
    /// path); [`ConfigError::Invalid`] for values that break a rule.
    pub fn from_yaml_str(text: &str) -> Result<Config, ConfigError> {
        let config: Config =
            firefly_core::yaml::from_str(text).map_err(|e| ConfigError::Parse {
                key: e.key,
                message: e.message,
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Whether TLSPC is reached over plain HTTP (a loopback host, or `allowInsecureHTTP`).
    pub fn insecure_http(&self) -> bool {
        self.bootstrap.vaas.url.starts_with("http://")
    }

    /// Things that are allowed but deserve a warning at start (plain-HTTP TLSPC, an empty
    /// requester allow-list, which refuses everything).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.insecure_http() {
            let why = if self.bootstrap.vaas.allow_insecure_http {
                "allowed by bootstrap.vaas.allowInsecureHTTP"
            } else {
                "allowed for a loopback host"
            };
            out.push(format!(
                "bootstrap.vaas.url {:?} is plain HTTP ({why}): the service-account assertion, the token and the sub-CA travel unencrypted (acceptable only for the mock)",
                self.bootstrap.vaas.url
            ));
        }
        if self.controller.allowed_requesters.is_empty() {
            out.push(
                "controller.allowedRequesters is empty: every CertificateRequest will be refused (RequestersNotConfigured); list the requesters (spec.username) allowed, or \"*\" for all"
                    .to_string(),
            );
        }
        if self.signer.lock_mode == LockMode::Disabled {
            out.push(
                "signer.lockMode is disabled: the sub-CA key may be swapped to disk (development only)".to_string(),
            );
        }
        out
    }

    /// The instance name: `bootstrap.vaas.csr.instanceNaming` with each `{NAME}` replaced by the
    /// value `env` gives for `NAME` (pass `|n| std::env::var(n).ok()` in production). `HOSTNAME`,
    /// which the default `{HOSTNAME}` names, falls back to the system host name when it is not
    /// exported (an ordinary shell sets it without exporting it; in a pod both are the pod name).
    ///
    /// # Errors
    /// [`ConfigError::MissingEnv`] when another named variable is unset (or `HOSTNAME` is unset
    /// and the host name cannot be read); [`ConfigError::Invalid`] when the result is empty or a
    /// brace is unbalanced.
    pub fn instance_name(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<String, ConfigError> {
        self.instance_name_with_host(env, system_host_name)
    }

    /// [`Config::instance_name`] with the system host name read through `host_name`.
    ///
    /// # Errors
    /// As [`Config::instance_name`].
    pub fn instance_name_with_host(
        &self,
        env: impl Fn(&str) -> Option<String>,
        host_name: impl Fn() -> Option<String>,
    ) -> Result<String, ConfigError> {
        substitute_env(&self.bootstrap.vaas.csr.instance_naming, |name| {
            env(name).or_else(|| {
                if name == HOST_NAME_VARIABLE {
                    host_name()
                } else {
                    None
                }
            })
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let vaas = &self.bootstrap.vaas;
        let invalid = |key: &str, value: String, rule: &str| ConfigError::Invalid {
            key: key.to_string(),
            value,
            rule: rule.to_string(),
        };
        let rest = vaas
            .url
            .strip_prefix("https://")
            .or_else(|| vaas.url.strip_prefix("http://"))
            .ok_or_else(|| {
                invalid(
                    "bootstrap.vaas.url",
                    vaas.url.clone(),
                    "must start with https:// (or http:// for the mock)",
                )
            })?;
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(invalid(
                "bootstrap.vaas.url",
                vaas.url.clone(),
                "must name a host",
            ));
        }
        if vaas.url.starts_with("http://") && !vaas.allow_insecure_http {
            let host = url::Url::parse(&vaas.url)
                .map_err(|e| {
                    invalid(
                        "bootstrap.vaas.url",
                        vaas.url.clone(),
                        &format!("not a URL: {e}"),
                    )
                })?
                .host()
                .map(|h| h.to_owned());
            if !host.as_ref().is_some_and(is_loopback) {
                return Err(invalid(
                    "bootstrap.vaas.url",
                    vaas.url.clone(),
                    "plain http:// is refused unless the host is a loopback address (127.0.0.0/8, ::1, localhost): the service-account assertion, the token and the sub-CA would travel unencrypted; use https://, or set bootstrap.vaas.allowInsecureHTTP: true for a mock inside the cluster",
                ));
            }
        }
        if vaas.auth.client_id.trim().is_empty() {
            return Err(invalid(
                "bootstrap.vaas.auth.clientID",
                vaas.auth.client_id.clone(),
                "must not be empty",
            ));
        }
        if vaas.auth.private_key_file.as_os_str().is_empty() {
            return Err(invalid(
                "bootstrap.vaas.auth.privateKeyFile",
                String::new(),
                "must name a PEM file",
            ));
        }
        check_template(&vaas.csr.instance_naming)?;
        if vaas.policy_max_staleness < vaas.policy_refresh_interval {
            return Err(invalid(
                "bootstrap.vaas.policyMaxStaleness",
                fields::format_duration(vaas.policy_max_staleness),
                &format!(
                    "must be at least policyRefreshInterval ({})",
                    fields::format_duration(vaas.policy_refresh_interval)
                ),
            ));
        }
        if !self.signer.in_memory {
            return Err(invalid(
                "signer.inMemory",
                "false".into(),
                "only true is supported: the sub-CA key is never stored",
            ));
        }
        let le = &self.controller.leader_election;
        if le.retry_period.is_zero() {
            return Err(invalid(
                "controller.leaderElection.retryPeriod",
                fields::format_duration(le.retry_period),
                "must be positive",
            ));
        }
        if le.renew_deadline >= le.lease_duration {
            return Err(invalid(
                "controller.leaderElection.renewDeadline",
                fields::format_duration(le.renew_deadline),
                &format!(
                    "must be shorter than leaseDuration ({})",
                    fields::format_duration(le.lease_duration)
                ),
            ));
        }
        if le.retry_period >= le.renew_deadline {
            return Err(invalid(
                "controller.leaderElection.retryPeriod",
                fields::format_duration(le.retry_period),
                &format!(
                    "must be shorter than renewDeadline ({})",
                    fields::format_duration(le.renew_deadline)
                ),
            ));
        }
        if (le.enabled || !le.lease_name.is_empty()) && !is_dns_subdomain(&le.lease_name) {
            return Err(invalid(
                "controller.leaderElection.leaseName",
                le.lease_name.clone(),
                "must be a Lease name: a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253, starting and ending with a letter or digit)",
            ));
        }
        if !is_namespace_name(&self.controller.leader_election_namespace) {
            return Err(invalid(
                "controller.leaderElectionNamespace",
                self.controller.leader_election_namespace.clone(),
                "must be a namespace name (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)",
            ));
        }
        if self.controller.cert_manager.group_name.is_empty() {
            return Err(invalid(
                "controller.cert-manager.groupName",
                String::new(),
                "must not be empty",
            ));
        }
        // Checked here, before a sub-CA is requested: a value the controller cannot run with,
        // refused only at start, would cost a sub-CA on every restart of a crash loop.
        let reconciles = self.controller.max_concurrent_reconciles;
        if reconciles == 0 || u16::try_from(reconciles).is_err() {
            return Err(invalid(
                "controller.maxConcurrentReconciles",
                reconciles.to_string(),
                "must be between 1 and 65535",
            ));
        }
        if self
            .controller
            .allowed_requesters
            .iter()
            .any(|r| r.trim().is_empty())
        {
            return Err(invalid(
                "controller.allowedRequesters",
                "\"\"".into(),
                "entries must not be empty",
            ));
        }
        for namespace in &self.controller.mesh_issuer_namespaces {
            if !is_namespace_name(namespace) {
                return Err(invalid(
                    "controller.meshIssuerNamespaces",
                    format!("{namespace:?}"),
                    "entries must be namespace names (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)",
                ));
            }
        }
        self.controller.pod_certificates.validate()?;
        if let Err(why) = check_log_filter(&self.logging.level) {
            return Err(invalid(
                "logging.level",
                self.logging.level.clone(),
                &format!(
                    "must be a level (error, warn, info, debug, trace, off) or a tracing filter such as `firefly=debug,info`: {why}"
                ),
            ));
        }
        Ok(())
    }
}

/// Levels a filter directive may name on its own.
const LOG_LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// A `tracing` filter the subscriber accepts, whose bare directives (no `=`, no span filter) are
/// levels: tracing would read `verbose` as "everything from the target `verbose`", which hides
/// every line of the controller's own.
fn check_log_filter(filter: &str) -> Result<(), String> {
    tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if !directive.contains(['=', '['])
            && !LOG_LEVELS.contains(&directive.to_ascii_lowercase().as_str())
        {
            return Err(format!(
                "{directive:?} is not a level (a target needs a level: `{directive}=debug`)"
            ));
        }
    }
    Ok(())
}

/// A Kubernetes object name that must be a DNS-1123 subdomain (a Lease's): at most 253
/// characters, dot-separated labels of lowercase letters, digits and '-', each starting and
/// ending with a letter or digit.
pub(crate) fn is_dns_subdomain(name: &str) -> bool {
    (1..=253).contains(&name.len())
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
                && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        })
}

/// A Kubernetes namespace name (an RFC 1123 label).
pub(crate) fn is_namespace_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// 127.0.0.0/8, ::1 or `localhost` (which resolvers answer from the hosts file).
fn is_loopback(host: &url::Host) -> bool {
    match host {
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// The variable the default instance name uses, and the one that falls back to the host name.
const HOST_NAME_VARIABLE: &str = "HOSTNAME";

/// The kernel's host name (what `hostname` prints; a pod's is its name), std only.
fn system_host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

fn check_template(template: &str) -> Result<(), ConfigError> {
    substitute_env(template, |_| Some("x".to_string())).map(|_| ())
}

fn substitute_env(
    template: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let invalid = |rule: &str| ConfigError::Invalid {
        key: "bootstrap.vaas.csr.instanceNaming".to_string(),
        value: template.to_string(),
        rule: rule.to_string(),
    };
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(invalid("unbalanced `}`"));
        }
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| invalid("unbalanced `{`"))?;
        let name = &after[..close];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(
                "`{...}` must name an environment variable (letters, digits, `_`)",
            ));
        }
        let value = env(name).ok_or_else(|| ConfigError::MissingEnv {
            template: template.to_string(),
            variable: name.to_string(),
        })?;
        out.push_str(&value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    if out.trim().is_empty() {
        return Err(invalid("the instance name must not be empty"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
