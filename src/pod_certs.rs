//! The PodCertificateRequest front door (`certificates.k8s.io/v1` on Kubernetes 1.37+,
//! `v1beta1` on 1.35/1.36), off by default (`controller.podCertificates`): the kubelet asks a
//! configured signer for a pod's certificate; the identity is asserted from the request's
//! namespace and service account, the key is the kubelet's; the pure decision ([`decide`]) and
//! the controller that applies it ([`controller`]) with one status write per request.

pub mod controller;
pub mod decide;
pub mod pods;
