//! Process-wide crypto provider set-up: aws-lc-rs is the one provider; performs no other work.

/// Installs aws-lc-rs as rustls' process-level provider.
///
/// # Guarantees
/// Idempotent: a second call (or a provider installed earlier by a test) is not an error.
/// Call it at the start of `main` and of every test that builds a TLS client, so that a build
/// with mixed features never panics with "Could not automatically determine the process-level
/// CryptoProvider".
pub fn install_default_provider() {
    // An Err means a provider is already installed; that is the state we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
