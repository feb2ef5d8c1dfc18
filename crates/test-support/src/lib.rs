//! The one test harness of the workspace, shared by every suite under `tests/`, the benches and
//! the examples (a dev-dependency of the `firefly` package). It drives the real components — the
//! kube-rs client against kube-sim over HTTP, the mock TLSPC on loopback, the controller, openssl
//! and Python verifiers — and never stands in for one.
//!
//! Layers, each built on the ones above it:
//! - fixtures with no I/O: [`der`], [`csr`] (PKCS#10 field by field), [`corpus`] (the bad-input
//!   corpus), [`csr_content`] (CSR content from fuzz bytes, signed with fixed keys), [`pki`] (a real CA hierarchy), [`policies`], and the istio-csr shapes in [`istio`];
//! - independent judges: [`verifiers`] (openssl, Python `cryptography`, pkilint, py-spiffe), [`schema_judge`] (a write
//!   body field by field against a published CRD schema);
//! - the running pieces: [`tlspc_mock`] (the mock TLSPC, its HTTP API and a hand-moved clock) and
//!   [`cluster`] (kube-sim with our CRDs);
//! - environments: [`bootstrap`] (mock + a `firefly run` configuration), [`controller`] (kube-sim,
//!   mock, a real sub-CA and the controller in-process) and [`e2e`] (the stack the demo, the e2e
//!   bench and the reliability suites drive, with latency and memory figures).

pub mod audit;
pub mod bootstrap;
pub mod cluster;
pub mod controller;
pub mod corpus;
pub mod csr;
pub mod csr_content;
pub mod der;
pub mod e2e;
pub mod istio;
pub mod istiod;
pub mod pki;
pub mod pods;
pub mod policies;
pub mod schema_judge;
pub mod tlspc_mock;
pub mod verifiers;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The repository's shipped seed of the mock TLSPC (`deploy/tlspc-mock/seed.yaml`).
pub const SHIPPED_SEED: &str = include_str!("../../../deploy/tlspc-mock/seed.yaml");

/// The admin API key of the shipped seed.
pub const API_KEY: &str = "firefly-mock-admin-api-key";

/// How long any wait in the suites may take before it fails (generous: the machine is shared).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The repository's root directory (where `Cargo.toml` of the `firefly` package is).
pub fn repo_root() -> &'static Path {
    // This crate is `<root>/crates/test-support`.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("crates/test-support sits two levels below the repository root")
}

/// A helper script of this crate (`crates/test-support/scripts/<name>`).
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// Polls `f` every 50 ms until it returns true or `limit` passes; false on timeout.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}
