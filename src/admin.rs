//! The admin HTTP endpoints: `/livez` (never depends on TLSPC), `/readyz` ("can sign now"),
//! `/metrics` and `/chain`; reads state, never changes it.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::AdminConfig;
use crate::issuer::Authority;
use crate::metrics::Metrics;

/// Errors of the admin server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// A configured address could not be bound.
    #[error("admin endpoint {endpoints} could not listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// Which endpoints were to be served there.
        endpoints: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The addresses the endpoints actually listen on (ports resolved when configured as 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminAddresses {
    /// `/readyz`, `/livez`.
    pub readiness: SocketAddr,
    /// `/metrics`.
    pub metrics: SocketAddr,
    /// `/chain`.
    pub chain: SocketAddr,
}

/// The running admin server; stops on [`AdminServer::shutdown`] or drop.
pub struct AdminServer {
    addresses: AdminAddresses,
    authority: Arc<RwLock<Option<Arc<dyn Authority>>>>,
    details: ReadinessDetails,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Clone)]
struct AdminState {
    authority: Arc<RwLock<Option<Arc<dyn Authority>>>>,
    details: ReadinessDetails,
    metrics: Metrics,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Readiness,
    Metrics,
    Chain,
}

impl AdminServer {
    /// Binds every configured address (equal addresses share one listener) and starts serving.
    /// Until [`AdminServer::set_authority`] is called, `/readyz` and `/chain` answer 503.
    ///
    /// # Errors
    /// [`AdminError::Bind`] naming the address and endpoints that could not listen.
    pub async fn start(config: &AdminConfig, metrics: Metrics) -> Result<AdminServer, AdminError> {
        let mut groups: Vec<(SocketAddr, Vec<Endpoint>)> = Vec::new();
        for (addr, ep) in [
            (config.readiness_address, Endpoint::Readiness),
            (config.metrics_address, Endpoint::Metrics),
            (config.chain_address, Endpoint::Chain),
        ] {
            match groups.iter_mut().find(|(a, _)| *a == addr) {
                Some((_, eps)) => eps.push(ep),
                None => groups.push((addr, vec![ep])),
            }
        }
        let authority: Arc<RwLock<Option<Arc<dyn Authority>>>> = Arc::default();
        let details = ReadinessDetails::default();
        let state = AdminState {
            authority: authority.clone(),
            details: details.clone(),
            metrics,
        };
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut bound = AdminAddresses {
            readiness: config.readiness_address,
            metrics: config.metrics_address,
            chain: config.chain_address,
        };
        for (addr, endpoints) in groups {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| AdminError::Bind {
                    address: addr,
                    endpoints: describe(&endpoints),
                    source,
                })?;
            let local = listener.local_addr().map_err(|source| AdminError::Bind {
                address: addr,
                endpoints: describe(&endpoints),
                source,
            })?;
            let mut router = Router::new();
            for ep in &endpoints {
                router = match ep {
                    Endpoint::Readiness => {
                        bound.readiness = local;
                        router
                            .route("/livez", get(livez))
                            .route("/readyz", get(readyz))
                    }
                    Endpoint::Metrics => {
                        bound.metrics = local;
                        router.route("/metrics", get(metrics_text))
                    }
                    Endpoint::Chain => {
                        bound.chain = local;
                        router.route("/chain", get(chain))
                    }
                };
            }
            let app = router.with_state(state.clone());
            let mut rx = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                let stopped = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
                {
                    tracing::error!(error = %e, "admin server stopped");
                }
            }));
        }
        tracing::info!(
            readiness = %bound.readiness,
            metrics = %bound.metrics,
            chain = %bound.chain,
            "admin endpoints listening"
        );
        Ok(AdminServer {
            addresses: bound,
            authority,
            details,
            stop,
            tasks,
        })
    }

    /// Where the endpoints listen.
    pub fn addresses(&self) -> AdminAddresses {
        self.addresses
    }

    /// The extra lines `/readyz` shows (front doors report what they serve, or why not).
    pub fn details(&self) -> ReadinessDetails {
        self.details.clone()
    }

    /// Connects `/readyz` and `/chain` to the signing authority once it exists.
    pub fn set_authority(&self, authority: Arc<dyn Authority>) {
        let mut slot = self
            .authority
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Some(authority);
    }

    /// Stops serving and waits for the listeners to close.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Detail lines of `/readyz` by component (`podCertificates`): information for operators, not a
/// readiness condition (the CertificateRequest path serves whatever they say).
#[derive(Clone, Debug, Default)]
pub struct ReadinessDetails(Arc<RwLock<std::collections::BTreeMap<&'static str, String>>>);

impl ReadinessDetails {
    /// Sets the line of `component`.
    pub fn set(&self, component: &'static str, detail: String) {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(component, detail);
    }

    /// Every line, by component.
    pub fn snapshot(&self) -> Vec<(&'static str, String)> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }
}

fn describe(endpoints: &[Endpoint]) -> String {
    endpoints
        .iter()
        .map(|e| match e {
            Endpoint::Readiness => "/readyz,/livez",
            Endpoint::Metrics => "/metrics",
            Endpoint::Chain => "/chain",
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn current(state: &AdminState) -> Option<Arc<dyn Authority>> {
    state
        .authority
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Liveness: the process answers. Never consults TLSPC, so an outage never restarts the pod
/// (a restart would destroy the only sub-CA key).
async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> Response {
    match current(&state) {
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: bootstrap has not finished\n".to_owned(),
        )
            .into_response(),
        Some(a) => {
            let r = a.readiness();
            let code = if r.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let mut text = format!(
                "{}: {}\n",
                if r.ready { "ready" } else { "not ready" },
                r.message
            );
            for (component, detail) in state.details.snapshot() {
                text.push_str(&format!("{component}: {detail}\n"));
            }
            (code, text).into_response()
        }
    }
}

/// `/metrics`. The sub-CA expiry gauge is read from the authority at each scrape, so that every
/// replica, leader or standby, reports the sub-CA it holds (0 before bootstrap has finished).
async fn metrics_text(State(state): State<AdminState>) -> Response {
    state
        .metrics
        .set_sub_ca_not_after(current(&state).and_then(|a| a.sub_ca_not_after()));
    match state.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn chain(State(state): State<AdminState>) -> Response {
    match current(&state).and_then(|a| a.chain_pems()) {
        Some(certificates) => {
            axum::Json(serde_json::json!({ "certificates": certificates })).into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "no active sub-CA\n").into_response(),
    }
}
