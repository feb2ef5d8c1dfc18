//! Custom resource types and `firefly crds`; placeholder until it lands.

use std::process::ExitCode;

/// Prints the CRDs.
pub fn print_crds() -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
