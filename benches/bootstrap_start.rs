//! Start → first sub-CA active against the local mock TLSPC (in process, loopback HTTP): login,
//! configuration fetch, key generation in locked memory, CSR, request + poll, validation, activation.
//! Prints each run and the median.

use std::sync::Arc;
use std::time::{Duration, Instant};

use firefly::bootstrap::{Bootstrap, SystemClock};
use firefly::config::Config;
use firefly::tlspc_mock::{MockServer, Seed};

const RUNS: usize = 15;

#[tokio::main]
async fn main() {
    firefly::crypto::install_default_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let seed_text = support::SHIPPED_SEED;
    let state = dir.path().join("mock");
    let mock = MockServer::start(
        Seed::from_yaml_str(seed_text).expect("seed"),
        Some(&state),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("mock");
    let config = Config::from_yaml_str(&format!(
        "bootstrap:\n  vaas:\n    url: {}\n    auth:\n      clientID: {}\n      privateKeyFile: {}\n    csr:\n      instanceNaming: bench-node\n",
        mock.base_url(),
        mock.client_id(),
        state.join("svc-acct.key").display()
    ))
    .expect("config");
    let mut runs: Vec<Duration> = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        let started = Instant::now();
        let bootstrap = Bootstrap::start(&config, Arc::new(SystemClock))
            .await
            .expect("bootstrap");
        let elapsed = started.elapsed();
        assert!(bootstrap.signer().current().is_some());
        println!(
            "run {i:2}: start -> sub-CA active {:7.1} ms",
            elapsed.as_secs_f64() * 1e3
        );
        runs.push(elapsed);
        drop(bootstrap);
    }
    runs.sort();
    let median = runs[RUNS / 2];
    println!(
        "start -> sub-CA active: median {:.1} ms, min {:.1} ms, max {:.1} ms (goal <= 1000 ms) ratio goal/median = {:.0}",
        median.as_secs_f64() * 1e3,
        runs[0].as_secs_f64() * 1e3,
        runs[RUNS - 1].as_secs_f64() * 1e3,
        1.0 / median.as_secs_f64()
    );
}
