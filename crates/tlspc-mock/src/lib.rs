//! `firefly tlspc-mock`: the mock TLS Protect Cloud service (CLI, [`MockServer`] and its state dir); it never talks to the real service.
//!
//! The mock serves the wire contract of `src/tlspc.rs` over plain HTTP: the service-account JWT
//! bearer grant, the caller's configuration, intermediate (sub-CA) request + poll + usage report,
//! and the `/v1/distributedissuers/*` admin CRUD behind `tppl-api-key`. Its built-in CA is a real
//! hierarchy `root → intermediate1 → intermediate2`; intermediate2 signs instance CSRs as sub-CAs
//! (CA:true pathLen 0 critical, KU keyCertSign + cRLSign + digitalSignature critical, SKI/AKI, no
//! name constraints, subject CN from the CSR and O/OU/L/ST/C from the provider, validity from the
//! provider's `validityPeriod`, so `PT30S` compresses it). `issuerCertificates` =
//! `[intermediate2, intermediate1, root]`. A CSR whose key algorithm differs from the provider's is
//! refused with 400.
//!
//! # Starting it
//! - CLI: `firefly tlspc-mock --listen 127.0.0.1:0 --seed deploy/tlspc-mock/seed.yaml [--state-dir DIR]`.
//!   The first stdout line is exactly the base URL. The state dir (default: a new directory under
//!   the system temp dir, named on stderr) receives `root.pem`, `client-id` (the seed's first
//!   service account) and, when that account has no `publicKey`, `svc-acct.key` (PKCS#8 PEM). The
//!   CA keys live in `ca/`, generated account keys in `accounts/`; an existing state dir is
//!   reloaded so the CA hierarchy and generated account keys survive restarts. Objects changed
//!   through the admin API are kept in memory only.
//! - Library: [`MockServer::start`] with [`Seed::from_yaml_str`] (for instance
//!   `include_str!("../deploy/tlspc-mock/seed.yaml")`); `state_dir` `None` keeps everything in
//!   memory. The server stops when the [`MockServer`] is dropped.
//!
//! # Errors on the wire
//! Token endpoint: OAuth `{"error","error_description"}` (a signature that does not match the
//! registered key → 400 `invalid_grant` whose description contains
//! `token_signature_verification_error`; unknown or revoked client → 401 `invalid_client`; replayed
//! `jti`, wrong `aud`/`iss`/`sub`, expired or over-long assertion → 400 `invalid_grant`).
//! API: `{"errors":[{"code","message","args"}]}` with 400/401/403/404/409/412 (405 for a wrong
//! method). A bad `tppl-api-key` → 401 with the plain-text body `Invalid api key`. A service-account
//! token on an admin-only endpoint → 403.
//!
//! # Admin API (`tppl-api-key: <key>`)
//! - `GET|POST /v1/distributedissuers/{policies,subcaproviders,configurations}`,
//!   `GET|PATCH|DELETE .../{id}`. PATCH merges top-level fields into the object and validates the
//!   result (policies: shape rules of tlspc.md §2). Change a policy:
//!   `PATCH /v1/distributedissuers/policies/{id}` `{"validityPeriod":"PT5S"}`. Detach an account:
//!   `PATCH /v1/distributedissuers/configurations/{id}` `{"serviceAccountIds":[]}` (the account then
//!   gets 404 on its configuration). Remove a policy from a configuration: PATCH its `policyIds`.
//!   Deleting a policy or provider still used by a configuration → 409.
//!   An unknown field in a create/update body → 400 naming it; server-managed fields (`id`,
//!   dates, embedded objects, counters) are ignored, so a GET-modify-PATCH round trip works.
//! - `GET /v1/distributedissuers/intermediatecertificates`: every request with its usage counters.
//! - `GET /mock/root.pem` (no authentication: the root is public) and `GET /mock/ca`
//!   (`{"root","intermediate1","intermediate2"}` PEMs) for trust bundles at any level.
//! - `GET|PUT|PATCH /mock/faults`: read, replace, or merge top-level fields into (`null` resets
//!   a field) the [`Faults`] (JSON, same fields as the seed's `faults:`). `/mock/*` itself is never
//!   faulted.
//! - `POST /mock/tokens/revoke` `{}` or `{"clientId": "..."}`: revokes access tokens (the next call
//!   with one gets 401, the client re-authenticates).
//! - `POST /mock/serviceaccounts/{clientId}/revoke` and `/restore`: a revoked account cannot log
//!   in (401 `invalid_client`) and its tokens get 401. `GET /mock/serviceaccounts` lists accounts.
//!
//! # Fault knobs ([`Faults`]; seed `faults:`, `PUT|PATCH /mock/faults` or [`MockServer::set_faults`])
//! - `latencyMs`, `routeLatencyMs: [{route, ms}]`: delay before answering.
//! - `routeErrors: [{route, status, count?, probability?, body?}]`: injected answers; routes `token`,
//!   `configurations`, `intermediateRequest`, `intermediatePoll`, `usageReport`, `admin`; `count`
//!   uses the rule up (a 5xx burst), `probability` makes it random; `body` is `real` (the route's
//!   real error shape), `plainText`, `html` (a load balancer's error page), `empty` or
//!   `malformedJson` (with `status: 200` this is a successful answer that does not parse).
//!   A `status: 401, body: real` rule on an API route looks like a token revoked again right
//!   after re-authentication (the "second 401" case).
//! - `tokenExpiresIn`: `expires_in` of new access tokens (tokens expiring early).
//! - `requestedPolls`: polls answered `REQUESTED` before the outcome.
//! - `failIssuance: "<message>"`: new requests end `FAILED` with `errorInformation`.
//! - `badSubCa`: new requests are answered `ISSUED` with a broken sub-CA: `notCa`, `noKeyCertSign`,
//!   `wrongKey` (not the CSR's key), `foreignChain` (signed by an unrelated hierarchy with the
//!   same names), `expired`, `shortLived` (10 s), `uriNameConstraints`, `parentPathLen` (under
//!   an extra pathLen-0 CA), `hugePem` (~4 MiB), `malformedPem`, `emptyChain`.
//! - `issuanceFaultCount`: how many new requests `failIssuance`/`badSubCa` apply to (absent → all).
//!
//! Service accounts can also be seeded `revoked: true`, with `scopes` lacking
//! `distributed-issuance` (403 on every call), or with a `keyAlgorithm` (`RSA_2048`, `EC_P256`,
//! `EC_P384`, `EC_ED25519`, ...) for the generated pair, whose private PEM tests read with
//! [`MockServer::service_account_key_pem_for`].

mod ca;
pub mod faults;
mod jwt;
pub mod seed;
mod server;
mod state;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use zeroize::Zeroizing;

pub use faults::{BadSubCa, ErrorBody, Faults, Route, RouteError, RouteLatency};
pub use seed::Seed;
pub use state::{Clock, parse_validity};

/// Errors of the mock.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    /// The seed file cannot be read.
    #[error("cannot read seed file {path}: {source}")]
    SeedRead {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The seed's content is invalid; `field` is the path of the bad field.
    #[error("invalid seed at {field}: {message}")]
    Seed {
        /// Path of the bad field (`serviceAccounts[0].clientId`) or a line/column.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A state-dir file cannot be read, parsed or written.
    #[error("state dir file {path}: {message}")]
    StateDir {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The built-in CA or a key could not be generated.
    #[error("built-in CA: {0}")]
    Ca(String),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Arguments of `firefly tlspc-mock`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Seed YAML file (see deploy/tlspc-mock/seed.yaml).
    #[arg(long)]
    pub seed: PathBuf,
    /// State directory (CA hierarchy, root.pem, client-id, svc-acct.key); reloaded when it exists.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

/// Runs the mock until interrupted.
///
/// # Errors
/// A bad seed, an unusable state dir, or an address that cannot be bound.
pub async fn main(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        listen,
        seed,
        state_dir,
    } = args;
    // Logs go to stderr: stdout's first line is reserved for the base URL.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let seed = Seed::load(&seed)?;
    let state_dir = match state_dir {
        Some(d) => d,
        None => {
            let d =
                std::env::temp_dir().join(format!("firefly-tlspc-mock-{}", uuid::Uuid::new_v4()));
            eprintln!("tlspc-mock: state dir {}", d.display());
            d
        }
    };
    let server = MockServer::start(seed, Some(&state_dir), listen).await?;
    // Listening for SIGTERM before the URL is printed: a supervisor that stops the mock as soon
    // as it has read the URL must not kill it by the signal's default action.
    let terminated = termination()?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", server.base_url())?;
        out.flush()?;
    }
    eprintln!(
        "tlspc-mock: serving {} (root.pem and client-id in {})",
        server.base_url(),
        state_dir.display()
    );
    terminated.await?;
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM (what Kubernetes sends a pod's process, PID 1 in the mock's container,
/// which gets no default handler for it) or Ctrl-C; the handlers are installed when this is
/// called, not when it is first awaited.
fn termination() -> std::io::Result<impl std::future::Future<Output = std::io::Result<()>>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let ctrl_c = tokio::signal::ctrl_c();
    Ok(async move {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = term.recv() => Ok(()),
                r = ctrl_c => r,
            }
        }
        #[cfg(not(unix))]
        {
            ctrl_c.await
        }
    })
}

/// A running mock; stops serving when dropped (or through [`MockServer::shutdown`]).
pub struct MockServer {
    base_url: String,
    state_dir: Option<PathBuf>,
    shared: Arc<state::Shared>,
    client_id: String,
    first_key_pem: Option<Zeroizing<String>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for MockServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServer")
            .field("base_url", &self.base_url)
            .field("state_dir", &self.state_dir)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl MockServer {
    /// Starts the mock on `listen` with the system clock; `state_dir` `None` keeps everything in
    /// memory (a fresh CA hierarchy per start).
    ///
    /// # Errors
    /// [`MockError`] for an invalid seed (one built in code is validated like a parsed one), an
    /// unusable state dir, key generation failure, or a bind failure.
    pub async fn start(
        seed: Seed,
        state_dir: Option<&Path>,
        listen: SocketAddr,
    ) -> Result<MockServer, MockError> {
        Self::start_with_clock(seed, state_dir, listen, Arc::new(firefly_core::SystemClock)).await
    }

    /// [`MockServer::start`] with an injected clock (token expiry, assertion times, sub-CA validity).
    ///
    /// # Caveats
    /// Issued sub-CAs take their validity from this clock too: a clock moved far ahead yields
    /// certificates that a verifier on the real clock sees as not yet valid.
    ///
    /// # Errors
    /// As [`MockServer::start`].
    pub async fn start_with_clock(
        seed: Seed,
        state_dir: Option<&Path>,
        listen: SocketAddr,
        clock: Clock,
    ) -> Result<MockServer, MockError> {
        // A seed built in code has not been through `from_yaml_str`: check it the same way.
        seed.validate()?;
        let now = clock.now();
        let ca = match state_dir {
            Some(dir) => {
                state::create_dir(dir)?;
                ca::BuiltinCa::load_or_generate(dir, now)?
            }
            None => ca::BuiltinCa::generate(now)?,
        };
        let (shared, credentials) = state::Shared::from_seed(&seed, ca, clock, state_dir)?;
        let first = credentials
            .into_iter()
            .next()
            .ok_or_else(|| MockError::Seed {
                field: "serviceAccounts".into(),
                message: "at least one service account is required".into(),
            })?;
        if let Some(dir) = state_dir {
            state::write_file(&dir.join("root.pem"), shared.ca.root_pem(), false)?;
            state::write_file(
                &dir.join("client-id"),
                &format!("{}\n", first.client_id),
                false,
            )?;
            if let Some(key) = &first.private_pem {
                state::write_file(&dir.join("svc-acct.key"), key, true)?;
            }
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| MockError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| MockError::Bind {
            addr: listen,
            source,
        })?;
        let shared = Arc::new(shared);
        let app = server::router(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "tlspc-mock server stopped");
            }
        });
        Ok(MockServer {
            base_url: format!("http://{addr}"),
            state_dir: state_dir.map(Path::to_path_buf),
            shared,
            client_id: first.client_id,
            first_key_pem: first.private_pem,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The base URL (`http://127.0.0.1:PORT`), the value of `bootstrap.vaas.url`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The state dir, when one was given.
    pub fn state_dir(&self) -> Option<&Path> {
        self.state_dir.as_deref()
    }

    /// PEM of the built-in CA's self-signed root.
    pub fn root_pem(&self) -> &str {
        self.shared.ca.root_pem()
    }

    /// PEMs of root, intermediate1 and intermediate2 (top down).
    pub fn hierarchy_pems(&self) -> [String; 3] {
        self.shared.ca.hierarchy_pems().map(str::to_owned)
    }

    /// Client ID of the seed's first service account.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Private key PEM (PKCS#8) of the first service account, when the mock generated it. Test use.
    pub fn service_account_key_pem(&self) -> Option<Zeroizing<String>> {
        self.first_key_pem.clone()
    }

    /// Private key PEM of any seeded account whose key the mock generated. Test use.
    pub fn service_account_key_pem_for(&self, client_id: &str) -> Option<Zeroizing<String>> {
        self.shared.account_private_pem(client_id)
    }

    /// The seed's first API key (for `tppl-api-key`).
    pub fn api_key(&self) -> Zeroizing<String> {
        self.shared.first_api_key()
    }

    /// The current fault knobs.
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// Replaces the fault knobs (the in-process equivalent of `PUT /mock/faults`).
    ///
    /// # Errors
    /// The validation message when a value is out of range.
    pub fn set_faults(&self, faults: Faults) -> Result<(), String> {
        faults.validate()?;
        self.shared.lock().faults = faults;
        Ok(())
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
