//! Every signer of the issuing core (the bootstrap's in production) as the reconciler's
//! [`Authority`]: the CertificateRequest front door's [`SignPlan`] goes through the core's seam;
//! CPU only, performs no I/O.

use std::time::{Duration, SystemTime};

use firefly_core::Signer;

use super::authority::{AuditSettings, Authority, Issuance, Readiness};
use super::decide::{SignFailure, SignPlan};
use super::signing::sign_with;

impl<S: Signer> Authority for S {
    fn readiness(&self) -> Readiness {
        Signer::readiness(self)
    }

    fn sign(
        &self,
        plan: &SignPlan,
        minimum_duration: Duration,
        now: SystemTime,
    ) -> Result<Issuance, SignFailure> {
        sign_with(self, plan, minimum_duration, now)
    }

    fn chain_pems(&self) -> Option<Vec<String>> {
        Signer::chain_pems(self)
    }

    fn sub_ca_not_after(&self) -> Option<SystemTime> {
        Signer::sub_ca_not_after(self)
    }

    fn audit(&self) -> AuditSettings {
        Signer::audit(self)
    }

    fn record_issued(&self, issuance: &Issuance) {
        Signer::record_issued(self, issuance);
    }
}
