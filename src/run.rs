//! `firefly run`: the controller process; placeholder until it lands.

use std::process::ExitCode;

/// Arguments of `firefly run`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs the controller.
pub async fn main(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
