//! `firefly policy check`: explains the decision a request would get; placeholder until it lands.

use std::process::ExitCode;

/// Arguments of `firefly policy check`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs the command.
pub fn main(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
