//! istio-csr's shapes as the suites, the demo and the benches use them: its namespace, service
//! account, duration, policy and issuer names, and the key types istio-agent generates.

/// The namespace istio-csr creates its requests in.
pub const ISTIO_CSR_NAMESPACE: &str = "istio-system";
/// istio-csr's service account as cert-manager's webhook writes it into `spec.username`.
pub const ISTIO_CSR_USERNAME: &str = "system:serviceaccount:istio-system:cert-manager-istio-csr";
/// The duration istio-csr asks for (its maxCertificateDuration, 1 hour).
pub const ISTIO_CSR_DURATION: &str = "1h0m0s";
/// The policy istio-csr names through its additional annotations in the shipped seed.
pub const ISTIO_MTLS_POLICY: &str = "istio-mtls";
/// The trust domain of the default mesh.
pub const TRUST_DOMAIN: &str = "cluster.local";
/// The issuer name the demo, the bench and the tests create.
pub const ISSUER_NAME: &str = "firefly-istio";
/// Our API group.
pub const GROUP: &str = "firefly.venafi.com";

/// The key types istio-agent generates: RSA-2048 by default, ECDSA P-256 when configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA 2048 (istio-agent's default).
    Rsa2048,
    /// ECDSA P-256 (`ECC_SIGNATURE_ALGORITHM=ECDSA`).
    P256,
}

impl KeyKind {
    /// A short label for output.
    pub fn label(self) -> &'static str {
        match self {
            KeyKind::Rsa2048 => "RSA-2048",
            KeyKind::P256 => "P-256",
        }
    }
}
