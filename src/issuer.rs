//! The CertificateRequest reconciler and Issuer/ClusterIssuer status: [`decide`] computes every
//! status change without I/O; the controller applies it against the API server.

pub mod authority;
pub mod controller;
pub mod decide;
pub mod signer_authority;
pub mod signing;

pub use authority::{AuditSettings, Authority, Issuance, Readiness};
pub use controller::{Clock, ControllerError, ControllerSettings};
