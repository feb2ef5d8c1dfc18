//! kube-sim binary: `kube-sim --listen ADDR --kubeconfig FILE [--tls]`; prints its base URL first, then serves until interrupted.

use clap::Parser;
use std::io::Write as _;
use std::path::PathBuf;

/// An in-memory Kubernetes API server for tests and demos (not a cluster).
#[derive(Debug, Parser)]
#[command(name = "kube-sim", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Where to write the kubeconfig (atomically, once the port is bound).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Serve HTTPS with a generated CA (its certificate is embedded in the kubeconfig).
    #[arg(long)]
    tls: bool,
    /// Accept bearer token TOKEN as user USER (repeatable); the kubeconfig uses the first one.
    #[arg(long = "token", value_name = "TOKEN=USER")]
    tokens: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let args = Args::parse();
    // `RUST_LOG=kube_sim=debug` logs every request's method, path, Content-Type and Accept to stderr.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    let mut tokens = Vec::new();
    for t in &args.tokens {
        let Some((tok, user)) = t.split_once('=') else {
            anyhow::bail!("--token must be TOKEN=USER (got a value without '=')");
        };
        tokens.push((tok.to_string(), user.to_string()));
    }
    let mut opts = kube_sim::SimOptions::default();
    opts.tls = args.tls;
    opts.listen = args.listen;
    opts.kubeconfig = Some(args.kubeconfig.clone());
    opts.tokens = tokens;
    let sim = kube_sim::KubeSim::start(opts).await?;
    let mut out = std::io::stdout();
    writeln!(out, "{}", sim.base_url())?;
    out.flush()?;
    eprintln!(
        "kube-sim: serving {} (kubeconfig {})",
        sim.base_url(),
        sim.kubeconfig_path().display()
    );
    tokio::signal::ctrl_c().await?;
    Ok(std::process::ExitCode::SUCCESS)
}
