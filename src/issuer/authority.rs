//! The boundary between the reconciler and whatever holds the sub-CA and the policies: what the
//! controller asks of a signing authority; performs no I/O itself.

use std::time::{Duration, SystemTime};

use super::decide::{SignFailure, SignPlan};

pub use firefly_core::issuance::{AuditSettings, Readiness};

/// A signed certificate with the facts the audit line and metrics need: the core's one issuance
/// type, under the name the reconciler uses.
pub use firefly_core::issuance::Issued as Issuance;

/// What the reconciler needs from the component holding the sub-CA and policies.
///
/// The production implementation is the bootstrap's `Signer`; implementations must not block
/// (signing is CPU work of well under a millisecond; no network call happens on this path).
pub trait Authority: Send + Sync + 'static {
    /// Whether signing is possible now (for `/readyz` and the Issuer Ready condition).
    fn readiness(&self) -> Readiness;
    /// Signs `plan` under `plan.policy_name`.
    ///
    /// # Errors
    /// A [`SignFailure`] whose `request_error` says whether the request itself is at fault.
    fn sign(
        &self,
        plan: &SignPlan,
        minimum_duration: Duration,
        now: SystemTime,
    ) -> Result<Issuance, SignFailure>;
    /// The active chain, root first, down to the sub-CA's issuer (`/chain`); `None` without a sub-CA.
    fn chain_pems(&self) -> Option<Vec<String>>;
    /// NotAfter of the active sub-CA.
    fn sub_ca_not_after(&self) -> Option<SystemTime>;
    /// The issuance audit settings of the current configuration.
    fn audit(&self) -> AuditSettings;
    /// Counts an issued certificate for the usage report; never blocks.
    fn record_issued(&self, issuance: &Issuance);
}
