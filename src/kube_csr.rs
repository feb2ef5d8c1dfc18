//! The Kubernetes CertificateSigningRequest front door (`certificates.k8s.io/v1`), off by default
//! (`controller.certificateSigningRequests.enabled`): signer names in cert-manager's convention
//! for external issuers ([`signer_name`]), the pure decision ([`decide`]), and the controller
//! that applies it ([`controller`]) with one status write per CSR.

pub mod controller;
pub mod decide;
pub mod signer_name;
