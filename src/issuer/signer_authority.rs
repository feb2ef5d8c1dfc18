//! The bootstrap's [`Signer`] as the reconciler's [`Authority`]: policy lookup, the active sub-CA
//! and readiness mapped onto the request failure taxonomy; CPU only, performs no I/O.

use std::time::{Duration, SystemTime};

use super::authority::{AuditSettings, Authority, Issuance, Readiness};
use super::decide::{SignFailure, SignPlan};
use super::signing::sign_with;
use crate::bootstrap::Signer;

impl Authority for Signer {
    fn readiness(&self) -> Readiness {
        self.ready()
    }

    fn sign(
        &self,
        plan: &SignPlan,
        minimum_duration: Duration,
        now: SystemTime,
    ) -> Result<Issuance, SignFailure> {
        // Policy first: an unknown or disallowed policy is the request's fault even while no
        // sub-CA is active, and must fail at once rather than wait.
        let policy = self.policy(&plan.policy_name).map_err(|e| SignFailure {
            request_error: !e.is_transient(),
            reason: e.reason(),
            message: e.to_string(),
        })?;
        let Some(sub_ca) = self.current() else {
            return Err(SignFailure {
                request_error: false,
                reason: "SignerNotReady",
                message: format!("cannot sign now: {}", self.ready().message),
            });
        };
        sign_with(&sub_ca, &policy, plan, minimum_duration, now)
    }

    fn chain_pems(&self) -> Option<Vec<String>> {
        self.current().map(|ca| ca.chain_pems())
    }

    fn sub_ca_not_after(&self) -> Option<SystemTime> {
        self.current().map(|ca| ca.not_after())
    }

    fn audit(&self) -> AuditSettings {
        Signer::audit(self)
    }

    fn record_issued(&self, issuance: &Issuance) {
        Signer::record_issued(self, issuance.not_before, issuance.not_after);
    }
}
