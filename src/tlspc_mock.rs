//! `firefly tlspc-mock`: the mock TLS Protect Cloud service; placeholder until it lands.

use std::process::ExitCode;

/// Arguments of `firefly tlspc-mock`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs the mock.
pub async fn main(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
