//! The `firefly` command line: parses arguments and hands them to the module that owns the command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "firefly",
    version,
    about = "cert-manager external issuer for SPIFFE workload certificates, with a TLS Protect Cloud policy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (`firefly run -c config.yaml`).
    Run(firefly::run::Args),
    /// Run the mock TLS Protect Cloud service.
    TlspcMock(firefly::tlspc_mock::Args),
    /// Policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Print the project's CustomResourceDefinitions as YAML.
    Crds,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Explain, rule by rule, the decision a certificate request would get.
    Check(firefly::policy_check::Args),
}

// mimalloc: cheap allocation in a heap a large backlog has fragmented (see `prepare_allocator`).
#[global_allocator]
static ALLOCATOR: firefly_tlspc::bootstrap::locked_key::Allocator =
    firefly_tlspc::bootstrap::locked_key::Allocator;

fn main() -> ExitCode {
    // Before anything allocates: no transparent huge pages for this process (a partly used huge
    // page stays resident whole). Only a pre-3.15 kernel refuses it.
    let _ = firefly_tlspc::bootstrap::locked_key::prepare_allocator();
    firefly::crypto::install_default_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Policy {
            command: PolicyCommand::Check(args),
        } => firefly::policy_check::main(args),
        Command::Crds => firefly::crd::print_crds(),
        Command::Run(args) => block_on(firefly::run::main(args)),
        Command::TlspcMock(args) => block_on(firefly::tlspc_mock::main(args)),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn block_on(
    fut: impl std::future::Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(firefly::heap::on_worker_park)
        .on_thread_unpark(firefly::heap::on_worker_park)
        .build()?
        .block_on(fut)
}
