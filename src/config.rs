//! The configuration file of `firefly run -c`: one typed, validated `Config`; reads only the file it is given.
//!
//! Layout: Venafi Firefly's own keys where they exist (`bootstrap.vaas.*`, `signer.inMemory`,
//! `controller.*`), plus our extensions, all documented in `docs/configuration.md`. Unknown keys
//! are refused with their full path; every error names the key it is about.

pub mod defaults;
mod fields;

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
    /// Base URL of TLSPC (`https://api.venafi.cloud`); `http://` is allowed with a warning.
    pub url: String,
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
    /// (ours) `spec.username` values allowed for every issuer; empty → everyone.
    pub allowed_requesters: Vec<String>,
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
            max_retry_duration: defaults::MAX_RETRY_DURATION,
            minimum_leaf_duration: defaults::MINIMUM_LEAF_DURATION,
            success_events: defaults::SUCCESS_EVENTS,
            max_concurrent_reconciles: defaults::MAX_CONCURRENT_RECONCILES,
            certificate_signing_requests: CertificateSigningRequestsConfig::default(),
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
        let mut options = serde_saphyr::Options::default();
        // One-line messages (the key path and the line/column), no source excerpt.
        options.with_snippet = false;
        // YAML 1.2 booleans only: `enabled: no` is an error, not `false`.
        options.strict_booleans = true;
        // serde_path_to_error wraps the deserializer to record the key path of a typed error;
        // the closure hands the error itself back, so parsing stops there.
        let mut path = None;
        let config = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
            serde_path_to_error::deserialize::<_, Config>(de).map_err(|err| {
                path = Some(err.path().to_string());
                err.into_inner()
            })
        })
        .map_err(|err| parse_error(path.as_deref(), &err))?;
        config.validate()?;
        Ok(config)
    }

    /// Things that are allowed but deserve a warning at start (plain-HTTP TLSPC, no allow-list).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.bootstrap.vaas.url.starts_with("http://") {
            out.push(format!(
                "bootstrap.vaas.url {:?} is plain HTTP: the service-account token and the sub-CA travel unencrypted (acceptable only for the local mock)",
                self.bootstrap.vaas.url
            ));
        }
        if self.controller.allowed_requesters.is_empty() {
            out.push(
                "controller.allowedRequesters is empty: any requester may obtain any identity the policy admits"
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
    /// value `env` gives for `NAME` (pass `|n| std::env::var(n).ok()` in production).
    ///
    /// # Errors
    /// [`ConfigError::MissingEnv`] when a named variable is unset; [`ConfigError::Invalid`] when
    /// the result is empty or a brace is unbalanced.
    pub fn instance_name(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<String, ConfigError> {
        substitute_env(&self.bootstrap.vaas.csr.instance_naming, env)
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
        if le.enabled && le.lease_name.is_empty() {
            return Err(invalid(
                "controller.leaderElection.leaseName",
                String::new(),
                "must not be empty",
            ));
        }
        if self.controller.leader_election_namespace.is_empty() {
            return Err(invalid(
                "controller.leaderElectionNamespace",
                String::new(),
                "must not be empty",
            ));
        }
        if self.controller.cert_manager.group_name.is_empty() {
            return Err(invalid(
                "controller.cert-manager.groupName",
                String::new(),
                "must not be empty",
            ));
        }
        if self.controller.max_concurrent_reconciles == 0 {
            return Err(invalid(
                "controller.maxConcurrentReconciles",
                "0".into(),
                "must be at least 1",
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
        if tracing_subscriber::EnvFilter::try_new(&self.logging.level).is_err() {
            return Err(invalid(
                "logging.level",
                self.logging.level.clone(),
                "must be a level (error, warn, info, debug, trace) or a tracing filter",
            ));
        }
        Ok(())
    }
}

/// Turns a parse error into one naming the full key path (`path`, recorded while deserializing;
/// none for a syntax error), including the unknown or missing key.
fn parse_error(path: Option<&str>, err: &serde_saphyr::Error) -> ConfigError {
    let mut key = path.filter(|p| *p != ".").unwrap_or_default().to_string();
    let message = one_line(&err.to_string());
    // serde reports a missing field at the path of its parent; name the field itself.
    // (An unknown field is already the last element of the path.)
    if let Some(at) = message.find("missing field `")
        && let Some(field) = message[at + "missing field `".len()..].split('`').next()
    {
        key = if key.is_empty() {
            field.to_string()
        } else {
            format!("{key}.{field}")
        };
    }
    // A key that appears twice is reported below its map, at an unnamed (`?`) element.
    if let Some(dup) = message.strip_prefix("duplicate mapping key: ")
        && let Some(name) = dup.split([',', ' ']).next()
    {
        let parent = key.trim_end_matches('?').trim_end_matches('.');
        key = if parent.is_empty() {
            name.to_string()
        } else {
            format!("{parent}.{name}")
        };
    }
    // The line and column serde-saphyr reports stay: they help find the key in the file.
    ConfigError::Parse { key, message }
}

/// serde-saphyr's messages may span lines; an error message is one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
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
