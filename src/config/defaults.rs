//! Every default of the configuration file, stated once. The `Default` impls of the config
//! structs and serde's fill-in of absent keys read these; `docs/configuration.md`'s complete
//! example is checked against them by a unit test, and the Helm chart renders a key only when a
//! value overrides it. Performs no I/O.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// `bootstrap.vaas.csr.instanceNaming`: the pod's name, as Kubernetes sets `HOSTNAME` (the
/// system host name where that variable is not exported).
pub const INSTANCE_NAMING: &str = "{HOSTNAME}";
/// `bootstrap.vaas.allowInsecureHTTP`: `http://` only for loopback hosts.
pub const ALLOW_INSECURE_HTTP: bool = false;
/// `bootstrap.vaas.policyRefreshInterval`.
pub const POLICY_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// `bootstrap.vaas.policyMaxStaleness`: 30 refreshes may fail before issuance fails closed.
pub const POLICY_MAX_STALENESS: Duration = Duration::from_secs(30 * 60);
/// `bootstrap.vaas.requestTimeout`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// `bootstrap.vaas.subCaRequestDeadline`.
pub const SUB_CA_REQUEST_DEADLINE: Duration = Duration::from_secs(5 * 60);
/// `signer.inMemory`: Firefly's key; the only supported value.
pub const IN_MEMORY: bool = true;
/// `controller.leaderElectionNamespace`.
pub const LEADER_ELECTION_NAMESPACE: &str = "venafi";
/// `controller.leaderElection.enabled`.
pub const LEADER_ELECTION_ENABLED: bool = true;
/// `controller.leaderElection.leaseName`.
pub const LEASE_NAME: &str = "firefly-controller";
/// `controller.leaderElection.leaseDuration` (client-go's default).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// `controller.leaderElection.renewDeadline` (client-go's default).
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// `controller.leaderElection.retryPeriod` (client-go's default).
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);
/// `controller.cert-manager.groupName`.
pub const GROUP_NAME: &str = "firefly.venafi.com";
/// `controller.cert-manager.checkApproval`.
pub const CHECK_APPROVAL: bool = true;
/// `controller.cert-manager.caRootChainPopulation`.
pub const CA_ROOT_CHAIN_POPULATION: bool = true;
/// `controller.meshIssuerNamespaces`: where istio-csr creates its requests for the whole mesh.
pub const MESH_ISSUER_NAMESPACES: &[&str] = &["istio-system"];
/// `controller.maxRetryDuration`.
pub const MAX_RETRY_DURATION: Duration = Duration::from_secs(5 * 60);
/// `controller.minimumLeafDuration` (DESIGN §3: one minute).
pub const MINIMUM_LEAF_DURATION: Duration = Duration::from_secs(60);
/// `controller.successEvents`.
pub const SUCCESS_EVENTS: bool = false;
/// `controller.maxConcurrentReconciles`.
pub const MAX_CONCURRENT_RECONCILES: usize = 256;
/// `admin.readinessAddress`.
pub const READINESS_ADDRESS: SocketAddr = any_interface(8080);
/// `admin.metricsAddress` (cert-manager's metrics port).
pub const METRICS_ADDRESS: SocketAddr = any_interface(9402);
/// `admin.chainAddress`.
pub const CHAIN_ADDRESS: SocketAddr = any_interface(8008);
/// `logging.level`.
pub const LOG_LEVEL: &str = "info";

const fn any_interface(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
}

// serde's `default = "..."` takes a function path; these serve the keys of structs that also have
// required keys (and so cannot default as a whole).

pub(super) fn allow_insecure_http() -> bool {
    ALLOW_INSECURE_HTTP
}
pub(super) fn policy_refresh_interval() -> Duration {
    POLICY_REFRESH_INTERVAL
}
pub(super) fn policy_max_staleness() -> Duration {
    POLICY_MAX_STALENESS
}
pub(super) fn request_timeout() -> Duration {
    REQUEST_TIMEOUT
}
pub(super) fn sub_ca_request_deadline() -> Duration {
    SUB_CA_REQUEST_DEADLINE
}
