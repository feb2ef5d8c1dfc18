//! The configuration file of `firefly run -c`: one typed, validated `Config`; reads only the file it is given.
//!
//! Layout: Venafi Firefly's own keys where they exist (`bootstrap.vaas.*`, `signer.inMemory`,
//! `controller.*`), plus our extensions, all documented in `docs/configuration.md`. Unknown keys
//! are refused with their full path; every error names the key it is about.

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
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CsrConfig {
    /// Instance name template; `{NAME}` is replaced by environment variable `NAME`.
    #[serde(default = "defaults::instance_naming")]
    pub instance_naming: String,
}

impl Default for CsrConfig {
    fn default() -> Self {
        Self {
            instance_naming: defaults::instance_naming(),
        }
    }
}

/// `signer`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignerConfig {
    /// Firefly's key: the sub-CA key lives in memory only. Only `true` is supported.
    #[serde(default = "defaults::yes")]
    pub in_memory: bool,
    /// (ours) What is locked in memory.
    #[serde(default)]
    pub lock_mode: LockMode,
}

impl Default for SignerConfig {
    fn default() -> Self {
        Self {
            in_memory: true,
            lock_mode: LockMode::default(),
        }
    }
}

pub use firefly_tlspc::bootstrap::locked_key::LockMode;

/// `controller`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ControllerConfig {
    /// Kubeconfig file; `None` → `$KUBECONFIG` → in-cluster.
    #[serde(default, deserialize_with = "fields::empty_path_is_none")]
    pub kubeconfig_file: Option<PathBuf>,
    /// Namespace of the leader-election Lease.
    #[serde(default = "defaults::leader_election_namespace")]
    pub leader_election_namespace: String,
    /// (ours) Leader-election settings.
    #[serde(default)]
    pub leader_election: LeaderElectionConfig,
    /// cert-manager integration.
    #[serde(default, rename = "cert-manager")]
    pub cert_manager: CertManagerConfig,
    /// (ours) `spec.username` values allowed for every issuer; empty → everyone.
    #[serde(default)]
    pub allowed_requesters: Vec<String>,
    /// (ours) Transient failures stay Pending until the request is this old, then Failed.
    #[serde(default = "defaults::max_retry_duration", with = "fields::go_duration")]
    pub max_retry_duration: Duration,
    /// (ours) Shortest leaf lifetime issued.
    #[serde(
        default = "defaults::minimum_leaf_duration",
        with = "fields::go_duration"
    )]
    pub minimum_leaf_duration: Duration,
    /// (ours) Emit an Event for every successful issuance.
    #[serde(default)]
    pub success_events: bool,
    /// (ours) Upper bound of reconciles in flight.
    #[serde(default = "defaults::max_concurrent_reconciles")]
    pub max_concurrent_reconciles: usize,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            kubeconfig_file: None,
            leader_election_namespace: defaults::leader_election_namespace(),
            leader_election: LeaderElectionConfig::default(),
            cert_manager: CertManagerConfig::default(),
            allowed_requesters: Vec::new(),
            max_retry_duration: defaults::max_retry_duration(),
            minimum_leaf_duration: defaults::minimum_leaf_duration(),
            success_events: false,
            max_concurrent_reconciles: defaults::max_concurrent_reconciles(),
        }
    }
}

/// `controller.leaderElection` (ours).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LeaderElectionConfig {
    /// Whether to elect a leader at all (disable for a single replica in development).
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Name of the Lease.
    #[serde(default = "defaults::lease_name")]
    pub lease_name: String,
    /// How long a lease is valid without renewal.
    #[serde(default = "defaults::lease_duration", with = "fields::go_duration")]
    pub lease_duration: Duration,
    /// The leader gives up leadership when it could not renew for this long.
    #[serde(default = "defaults::renew_deadline", with = "fields::go_duration")]
    pub renew_deadline: Duration,
    /// Interval between acquire/renew attempts.
    #[serde(default = "defaults::retry_period", with = "fields::go_duration")]
    pub retry_period: Duration,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            lease_name: defaults::lease_name(),
            lease_duration: defaults::lease_duration(),
            renew_deadline: defaults::renew_deadline(),
            retry_period: defaults::retry_period(),
        }
    }
}

/// `controller.cert-manager`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertManagerConfig {
    /// API group of the issuers this controller serves.
    #[serde(default = "defaults::group_name")]
    pub group_name: String,
    /// Sign only approved requests.
    #[serde(default = "defaults::yes")]
    pub check_approval: bool,
    /// Fill `status.ca` with the root.
    #[serde(default = "defaults::yes")]
    pub ca_root_chain_population: bool,
}

impl Default for CertManagerConfig {
    fn default() -> Self {
        Self {
            group_name: defaults::group_name(),
            check_approval: true,
            ca_root_chain_population: true,
        }
    }
}

/// `admin` (ours): where the admin endpoints listen.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdminConfig {
    /// `/readyz` and `/livez`.
    #[serde(default = "defaults::readiness_address")]
    pub readiness_address: SocketAddr,
    /// `/metrics`.
    #[serde(default = "defaults::metrics_address")]
    pub metrics_address: SocketAddr,
    /// `/chain`.
    #[serde(default = "defaults::chain_address")]
    pub chain_address: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            readiness_address: defaults::readiness_address(),
            metrics_address: defaults::metrics_address(),
            chain_address: defaults::chain_address(),
        }
    }
}

/// `logging` (ours).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoggingConfig {
    /// Line format.
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter directive (`info`, `firefly=debug,info`).
    #[serde(default = "defaults::log_level")]
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: defaults::log_level(),
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
        let deserializer = serde_yaml::Deserializer::from_str(text);
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(parse_error)?;
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

/// Turns a serde error into one naming the full key path, including the unknown or missing key.
fn parse_error(err: serde_path_to_error::Error<serde_yaml::Error>) -> ConfigError {
    let mut key = err.path().to_string();
    if key == "." {
        key.clear();
    }
    let inner = err.into_inner();
    let mut message = inner.to_string();
    // serde_yaml prefixes the parent's path ("a.b: missing field `c`"); the key carries it.
    if let Some((prefix, stripped)) = message.split_once(": ")
        && !prefix.contains(' ')
        && key.starts_with(prefix)
    {
        message = stripped.to_string();
    }
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
    // serde_yaml appends " at line N column M"; keep it: it helps find the key in the file.
    ConfigError::Parse { key, message }
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

mod defaults {
    use std::net::SocketAddr;
    use std::time::Duration;

    pub fn yes() -> bool {
        true
    }
    pub fn instance_naming() -> String {
        "{HOSTNAME}".to_string()
    }
    pub fn policy_refresh_interval() -> Duration {
        Duration::from_secs(60)
    }
    pub fn policy_max_staleness() -> Duration {
        Duration::from_secs(30 * 60)
    }
    pub fn request_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn sub_ca_request_deadline() -> Duration {
        Duration::from_secs(5 * 60)
    }
    pub fn leader_election_namespace() -> String {
        "venafi".to_string()
    }
    pub fn lease_name() -> String {
        "firefly-controller".to_string()
    }
    pub fn lease_duration() -> Duration {
        Duration::from_secs(15)
    }
    pub fn renew_deadline() -> Duration {
        Duration::from_secs(10)
    }
    pub fn retry_period() -> Duration {
        Duration::from_secs(2)
    }
    pub fn group_name() -> String {
        "firefly.venafi.com".to_string()
    }
    pub fn max_retry_duration() -> Duration {
        Duration::from_secs(5 * 60)
    }
    pub fn minimum_leaf_duration() -> Duration {
        Duration::from_secs(60)
    }
    pub fn max_concurrent_reconciles() -> usize {
        256
    }
    pub fn readiness_address() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 8080))
    }
    pub fn metrics_address() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 9402))
    }
    pub fn chain_address() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 8008))
    }
    pub fn log_level() -> String {
        "info".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "bootstrap:\n  vaas:\n    url: https://api.venafi.cloud\n    auth:\n      clientID: 5b1d0c4e-0000-4000-8000-000000000001\n      privateKeyFile: /etc/firefly/key.pem\n";

    #[test]
    fn minimal_file_gets_documented_defaults() {
        let c = Config::from_yaml_str(MINIMAL).unwrap();
        assert_eq!(c.bootstrap.vaas.csr.instance_naming, "{HOSTNAME}");
        assert_eq!(
            c.bootstrap.vaas.policy_refresh_interval,
            Duration::from_secs(60)
        );
        assert_eq!(
            c.bootstrap.vaas.policy_max_staleness,
            Duration::from_secs(1800)
        );
        assert_eq!(c.bootstrap.vaas.request_timeout, Duration::from_secs(30));
        assert_eq!(
            c.bootstrap.vaas.sub_ca_request_deadline,
            Duration::from_secs(300)
        );
        assert_eq!(c.bootstrap.vaas.trust_anchor_file, None);
        assert_eq!(c.signer.lock_mode, LockMode::KeyPages);
        assert!(c.signer.in_memory);
        assert_eq!(c.controller.leader_election_namespace, "venafi");
        assert_eq!(
            c.controller.leader_election.lease_name,
            "firefly-controller"
        );
        assert_eq!(c.controller.cert_manager.group_name, "firefly.venafi.com");
        assert!(c.controller.cert_manager.check_approval);
        assert_eq!(c.controller.max_concurrent_reconciles, 256);
        assert_eq!(c.admin.readiness_address.port(), 8080);
        assert_eq!(c.admin.metrics_address.port(), 9402);
        assert_eq!(c.admin.chain_address.port(), 8008);
        assert_eq!(c.logging.format, LogFormat::Json);
    }

    #[test]
    fn unknown_key_is_named_with_its_full_path() {
        let text = MINIMAL.replace(
            "      privateKeyFile",
            "      secret: x\n      privateKeyFile",
        );
        let err = Config::from_yaml_str(&text).unwrap_err();
        match &err {
            ConfigError::Parse { key, .. } => assert_eq!(key, "bootstrap.vaas.auth.secret"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            err.to_string().contains("bootstrap.vaas.auth.secret"),
            "{err}"
        );
    }

    #[test]
    fn unknown_cert_manager_key_is_named() {
        let text = format!("{MINIMAL}controller:\n  cert-manager:\n    groupname: x\n");
        let err = Config::from_yaml_str(&text).unwrap_err();
        assert!(
            err.to_string()
                .contains("`controller.cert-manager.groupname`"),
            "{err}"
        );
    }

    #[test]
    fn missing_required_key_is_named() {
        let text = MINIMAL.replace("      clientID: 5b1d0c4e-0000-4000-8000-000000000001\n", "");
        let err = Config::from_yaml_str(&text).unwrap_err();
        assert!(
            err.to_string().contains("`bootstrap.vaas.auth.clientID`"),
            "{err}"
        );
    }

    #[test]
    fn bad_duration_names_key_and_value() {
        let text = MINIMAL.replace(
            "    auth:",
            "    policyRefreshInterval: 5 minutes\n    auth:",
        );
        let err = Config::from_yaml_str(&text).unwrap_err().to_string();
        assert!(
            err.contains("bootstrap.vaas.policyRefreshInterval"),
            "{err}"
        );
        assert!(err.contains("5 minutes"), "{err}");
    }

    #[test]
    fn full_file_of_the_reference_parses() {
        let text = "bootstrap:\n  vaas:\n    url: http://127.0.0.1:8443\n    auth:\n      clientID: c\n      privateKeyFile: k.pem\n    csr:\n      instanceNaming: \"{POD_NAME}-{NS}\"\n    trustAnchorFile: /etc/root.pem\n    policyRefreshInterval: 5s\n    policyMaxStaleness: 1m30s\n    requestTimeout: 2s\n    subCaRequestDeadline: 1m\nsigner:\n  inMemory: true\n  lockMode: disabled\ncontroller:\n  kubeconfigFile: \"\"\n  leaderElectionNamespace: ns\n  leaderElection:\n    enabled: false\n    leaseName: l\n    leaseDuration: 30s\n    renewDeadline: 20s\n    retryPeriod: 1s\n  cert-manager:\n    groupName: example.com\n    checkApproval: false\n    caRootChainPopulation: false\n  allowedRequesters: [\"system:serviceaccount:cert-manager:istio-csr\"]\n  maxRetryDuration: 10m\n  minimumLeafDuration: 2m\n  successEvents: true\n  maxConcurrentReconciles: 8\nadmin:\n  readinessAddress: 127.0.0.1:0\n  metricsAddress: 127.0.0.1:0\n  chainAddress: \"[::1]:0\"\nlogging:\n  format: text\n  level: debug\n";
        let c = Config::from_yaml_str(text).unwrap();
        assert_eq!(
            c.bootstrap.vaas.policy_max_staleness,
            Duration::from_secs(90)
        );
        assert_eq!(
            c.bootstrap.vaas.trust_anchor_file.as_deref(),
            Some(Path::new("/etc/root.pem"))
        );
        assert_eq!(c.controller.kubeconfig_file, None);
        assert_eq!(c.signer.lock_mode, LockMode::Disabled);
        assert!(!c.controller.cert_manager.check_approval);
        assert_eq!(c.controller.allowed_requesters.len(), 1);
        assert_eq!(c.admin.chain_address.port(), 0);
        assert_eq!(c.logging.format, LogFormat::Text);
        let name = c
            .instance_name(|v| match v {
                "POD_NAME" => Some("firefly-0".into()),
                "NS" => Some("venafi".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(name, "firefly-0-venafi");
        assert!(c.warnings().iter().any(|w| w.contains("plain HTTP")));
    }

    #[test]
    fn instance_naming_with_unset_variable_names_it() {
        let c = Config::from_yaml_str(MINIMAL).unwrap();
        let err = c.instance_name(|_| None).unwrap_err().to_string();
        assert!(
            err.contains("HOSTNAME") && err.contains("instanceNaming"),
            "{err}"
        );
    }

    #[test]
    fn unbalanced_brace_in_instance_naming_is_refused_at_load() {
        let text = MINIMAL.replace(
            "    auth:",
            "    csr:\n      instanceNaming: \"{HOSTNAME\"\n    auth:",
        );
        let err = Config::from_yaml_str(&text).unwrap_err().to_string();
        assert!(err.contains("unbalanced"), "{err}");
    }

    #[test]
    fn ftp_url_is_refused() {
        let err = Config::from_yaml_str(&MINIMAL.replace("https://", "ftp://"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bootstrap.vaas.url") && err.contains("ftp://"),
            "{err}"
        );
    }

    #[test]
    fn in_memory_false_is_refused() {
        let err = Config::from_yaml_str(&format!("{MINIMAL}signer:\n  inMemory: false\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("signer.inMemory"), "{err}");
    }

    #[test]
    fn unknown_lock_mode_is_named() {
        let err = Config::from_yaml_str(&format!("{MINIMAL}signer:\n  lockMode: some\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("signer.lockMode"), "{err}");
    }

    #[test]
    fn staleness_shorter_than_refresh_is_refused() {
        let text = MINIMAL.replace(
            "    auth:",
            "    policyRefreshInterval: 10m\n    policyMaxStaleness: 1m\n    auth:",
        );
        let err = Config::from_yaml_str(&text).unwrap_err().to_string();
        assert!(err.contains("policyMaxStaleness"), "{err}");
    }

    #[test]
    fn renew_deadline_not_shorter_than_lease_is_refused() {
        let text = format!(
            "{MINIMAL}controller:\n  leaderElection:\n    leaseDuration: 10s\n    renewDeadline: 10s\n"
        );
        let err = Config::from_yaml_str(&text).unwrap_err().to_string();
        assert!(err.contains("renewDeadline"), "{err}");
    }

    #[test]
    fn bad_admin_address_is_named() {
        let err = Config::from_yaml_str(&format!("{MINIMAL}admin:\n  metricsAddress: localhost\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("admin.metricsAddress"), "{err}");
    }

    #[test]
    fn empty_document_is_an_error_not_a_panic() {
        assert!(Config::from_yaml_str("").is_err());
        assert!(Config::from_yaml_str("[1, 2]").is_err());
    }
}
