//! The boundary between the CertificateRequest front door and whatever holds the sub-CA and the
//! policies: the issuing core's [`Signer`](firefly_core::Signer) (the bootstrap implements it)
//! under the name the front door uses, and the core's readiness, audit and issuance types;
//! defines nothing of its own and performs no I/O.

pub use firefly_core::issuance::{AuditSettings, Issued, Readiness};

/// What the front door needs from the component holding the sub-CA and policies: the issuing
/// core's signer trait. The production implementation is the bootstrap's `Signer`.
pub use firefly_core::issuance::Signer as Authority;
