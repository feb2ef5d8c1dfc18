//! kube-sim binary: `kube-sim --listen ADDR --kubeconfig FILE [--tls] [--token-auth-file FILE]
//! [--kubernetes-release 1.35|1.36|1.37] [--runtime-config certificates.k8s.io/v1beta1=true]`;
//! prints its base URL first, then serves until interrupted.

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
    /// Accept bearer token TOKEN as user USER, authorized for everything (repeatable; legacy,
    /// prefer --token-auth-file); without --token-auth-file the kubeconfig uses the first one.
    #[arg(long = "token", value_name = "TOKEN=USER")]
    tokens: Vec<String>,
    /// Static tokens in kube-apiserver's CSV format (`token,user,uid,"group1,group2"`); turns on
    /// authentication and RBAC (the kubeconfig then holds an admin token in system:masters).
    #[arg(long, value_name = "FILE")]
    token_auth_file: Option<PathBuf>,
    /// The emulated Kubernetes release: 1.35, 1.36 or 1.37.
    #[arg(long, value_name = "RELEASE", default_value = "1.37")]
    kubernetes_release: String,
    /// API versions to turn on; only `certificates.k8s.io/v1beta1=true` is understood.
    #[arg(long, value_name = "GROUP/VERSION=BOOL")]
    runtime_config: Vec<String>,
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
    opts.token_auth_file = args.token_auth_file.clone();
    opts.kubernetes_release = kube_sim::Release::parse(&args.kubernetes_release)?;
    opts.certificates_v1beta1 = kube_sim::parse_runtime_config(&args.runtime_config)?;
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
