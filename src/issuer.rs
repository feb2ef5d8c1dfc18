//! The cert-manager CertificateRequest front door and Issuer/ClusterIssuer status: [`decide`]
//! computes every status change (and the issuing core's request) without I/O; the
//! [`controller`] applies it against the API server.

pub mod authority;
pub mod controller;
pub mod decide;

pub use authority::{AuditSettings, Authority, Issued, Readiness};
pub use controller::{Clock, ControllerError, ControllerSettings};
