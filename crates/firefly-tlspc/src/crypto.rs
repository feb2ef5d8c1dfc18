//! Process-wide crypto provider set-up: aws-lc-rs is the one provider (its FIPS provider in a
//! `--features fips` build); performs no other work.

/// Installs aws-lc-rs as rustls' process-level provider: the FIPS provider in a build with
/// `--features fips`, the default one otherwise.
///
/// # Guarantees
/// Idempotent: a second call (or a provider installed earlier by a test) is not an error.
/// Call it at the start of `main` and of every test that builds a TLS client, so that a build
/// with mixed features never panics with "Could not automatically determine the process-level
/// CryptoProvider".
pub fn install_default_provider() {
    // An Err means a provider is already installed; that is the state we want.
    let _ = provider().install_default();
}

#[cfg(feature = "fips")]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::default_fips_provider()
}

#[cfg(not(feature = "fips"))]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// Whether the process-level rustls provider is in FIPS mode (false before one is installed).
pub fn provider_is_fips() -> bool {
    rustls::crypto::CryptoProvider::get_default().is_some_and(|p| p.fips())
}

#[cfg(test)]
mod tests {
    /// Built and run only with `--features fips` (outside CI: docs/fips.md); the default build's
    /// refusal is tested in tests/bootstrap_lifecycle.rs.
    #[cfg(feature = "fips")]
    #[test]
    fn the_fips_build_runs_aws_lc_in_fips_mode_under_the_fips_provider() {
        super::install_default_provider();
        assert!(
            aws_lc_rs::try_fips_mode().is_ok(),
            "AWS-LC is not in FIPS mode"
        );
        assert!(super::provider_is_fips(), "the rustls provider is not FIPS");
        assert!(crate::bootstrap::fips_build());
    }

    #[cfg(not(feature = "fips"))]
    #[test]
    fn the_default_build_is_not_a_fips_build() {
        super::install_default_provider();
        assert!(!super::provider_is_fips());
        assert!(!crate::bootstrap::fips_build());
    }
}
