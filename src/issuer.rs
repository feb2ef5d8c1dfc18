//! The CertificateRequest reconciler and Issuer/ClusterIssuer status: [`decide`] computes every
//! status change without I/O; the controller applies it against the API server.

pub mod decide;
