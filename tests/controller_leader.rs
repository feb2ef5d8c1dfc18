//! High availability end to end: two replicas, each with its own sub-CA from the mock TLSPC,
//! electing a leader on a Lease in kube-sim; failover under a burst and on a clean shutdown.
//!
//! A takeover is judged as a liveness property (every request ends Issued within the test's
//! patience) and as exactly-once delivery; how fast the standby takes over is a latency figure
//! for a benchmark (none measures it yet), printed here, never bounded.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use support::controller::*;

const WORKLOAD: &str = "spiffe://cluster.local/ns/sandbox/sa/httpbin";

fn leader_options() -> Options {
    Options {
        leader_election: true,
        ..Options::default()
    }
}

async fn create_approved_burst(env: &Env, n: usize) -> Vec<String> {
    let mut names = Vec::with_capacity(n);
    for _ in 0..n {
        let (_key, csr) = CsrSpec::workload(KeyKind::P256, WORKLOAD).build();
        let name = env
            .create_request(&RequestBuilder::istio("firefly-istio", &csr, WORKLOAD))
            .await;
        env.approve(NS, &name).await;
        names.push(name);
    }
    names
}

fn issued_count(env: &Env, names: &[String]) -> usize {
    names
        .iter()
        .filter(|n| {
            env.request(NS, n)
                .is_some_and(|o| ready_reason(&o).as_deref() == Some("Issued"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_signs_and_the_standby_waits_with_its_own_sub_ca() {
    let env = Env::start_with(leader_options()).await;
    env.wait_lease_holder("replica-a", "replica-a leads").await;
    let (standby_bootstrap, standby) = env.start_replica("replica-b").await;
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    let names = create_approved_burst(&env, 10).await;
    for n in &names {
        env.wait_ready_reason(NS, n, "Issued").await;
    }
    assert!(!standby.is_leader());
    assert_eq!(requests_signed(&standby), 0, "the standby never signs");
    let standby_ca = standby_bootstrap
        .signer()
        .current()
        .expect("standby holds a valid sub-CA");
    let leader_ca = env.authority.current().unwrap();
    assert_ne!(
        standby_ca.certificate_der(),
        leader_ca.certificate_der(),
        "each replica has its own sub-CA"
    );
    standby.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_during_a_burst_still_issues_every_request_exactly_once() {
    let mut env = Env::start_with(leader_options()).await;
    env.wait_lease_holder("replica-a", "replica-a leads").await;
    let (_standby_bootstrap, standby) = env.start_replica("replica-b").await;
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    let writes_before = env.status_writes();
    let first = create_approved_burst(&env, 20).await;
    kube_sim::wait_for(PATIENCE, || async { issued_count(&env, &first) >= 5 })
        .await
        .expect("leader issuing");
    env.controller.take().expect("leader handle").abort();
    // Each request created after the kill is issued (by the standby, once it has taken the
    // lease) within the test's patience; how long the slowest waited is printed, not bounded.
    let mut second = Vec::new();
    for _ in 0..20 {
        let created_at = Instant::now();
        let name = create_approved_burst(&env, 1).await.remove(0);
        second.push((name, created_at));
    }
    let mut slowest = std::time::Duration::ZERO;
    for (name, created_at) in &second {
        env.wait_ready_reason(NS, name, "Issued").await;
        slowest = slowest.max(created_at.elapsed());
    }
    eprintln!("after the kill, the slowest request was Issued within {slowest:?} of its creation");
    for n in &first {
        env.wait_ready_reason(NS, n, "Issued").await;
    }
    assert!(standby.is_leader(), "the standby took over");
    assert_eq!(env.lease_holder().as_deref(), Some("replica-b"));
    // A shutdown lets the reconciles in flight finish: no write is still on its way.
    standby.shutdown().await;
    let all = first.len() + second.len();
    let ours = env.status_writes() - writes_before - all as u64;
    assert_eq!(
        ours, all as u64,
        "exactly one status write per issued request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_shutdown_releases_the_lease_so_the_standby_takes_over() {
    let mut env = Env::start_with(leader_options()).await;
    env.wait_lease_holder("replica-a", "replica-a leads").await;
    let (_standby_bootstrap, standby) = env.start_replica("replica-b").await;
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    env.stop_controller().await;
    let lease = env
        .sim
        .object(
            "coordination.k8s.io",
            "leases",
            "venafi",
            "firefly-controller",
        )
        .unwrap();
    let holder = lease["spec"]["holderIdentity"].as_str().unwrap_or("");
    assert_ne!(holder, "replica-a", "released on shutdown: {lease:#}");
    env.wait_lease_holder("replica-b", "replica-b takes over")
        .await;
    let names = create_approved_burst(&env, 5).await;
    for n in &names {
        env.wait_ready_reason(NS, n, "Issued").await;
    }
    assert_eq!(standby.metrics().leader.get(), 1);
    standby.shutdown().await;
}

/// A stop can come at any moment of a controller's start-up (a lost lease, SIGTERM during a
/// rollout): before its caches have listed, while issuers settle, once it reconciles. Every such
/// stop finishes each shutdown step in time instead of being abandoned at the step limit (kube's
/// applier used to wait for ever for the first list of a watch it no longer polled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_stopped_at_any_moment_of_its_start_stops_cleanly() {
    for opts in [Options::default(), leader_options()] {
        let mut env = Env::start_with(opts.clone()).await;
        env.stop_controller().await;
        // Stops 0, 3, 6 … 57 ms after the start: the window of the watches' first lists.
        for delay_ms in (0..60).step_by(3) {
            let (_bootstrap, handle) = env.start_replica("replica-a").await;
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            let outcome = handle.shutdown().await;
            assert!(
                outcome.clean(),
                "stop {delay_ms} ms after the start (leader election {}): {outcome:?}",
                opts.leader_election
            );
        }
        if opts.leader_election {
            assert_eq!(
                env.lease_holder().as_deref(),
                Some(""),
                "the lease is released by the last stop"
            );
        }
    }
}

/// A leader that cannot sign hands the Lease to a standby that can once it has been unable for a
/// lease duration (4 s here), not on a blip; the standby then issues every request, and the
/// first replica, able to sign again, does not take the Lease back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_sign_hands_the_lease_to_a_standby_that_can() {
    let mut env = Env::start_with(leader_options()).await;
    env.wait_lease_holder("replica-a", "replica-a leads").await;
    // Replaced by a replica whose readiness the test controls.
    env.stop_controller().await;
    let mut observed = None;
    let (_b_bootstrap, b) = env
        .start_replica_with("replica-b", |inner| {
            let signer = Observed::new(inner);
            observed = Some(signer.clone());
            signer
        })
        .await;
    let can_sign = &observed.expect("replica-b's signer").can_sign;
    env.wait_lease_holder("replica-b", "replica-b leads").await;
    let (_c_bootstrap, c) = env.start_replica("replica-c").await;
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    // Two seconds unable (half the lease duration) are a blip: replica-b keeps leading.
    can_sign.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    can_sign.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.lease_holder().as_deref(),
        Some("replica-b"),
        "kept over a blip"
    );
    assert!(b.is_leader() && !c.is_leader());
    can_sign.store(false, Ordering::SeqCst);
    let switched = Instant::now();
    env.wait_lease_holder(
        "replica-c",
        "replica-c, which can sign, takes the lease over",
    )
    .await;
    let after = switched.elapsed();
    println!("replica-c leads {after:?} after replica-b stopped being able to sign");
    assert!(
        after >= Duration::from_secs(4),
        "handed over only after a whole lease duration unable to sign, not after {after:?}"
    );
    assert!(!b.is_leader());
    let names = create_approved_burst(&env, 5).await;
    for n in &names {
        env.wait_ready_reason(NS, n, "Issued").await;
    }
    assert_eq!(
        requests_signed(&c),
        5,
        "the new leader signed every request"
    );
    assert_eq!(
        requests_signed(&b),
        0,
        "the replica that cannot sign signed none"
    );
    // Able to sign again, replica-b stays a standby: nothing takes a healthy leader's lease.
    can_sign.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.lease_holder().as_deref(), Some("replica-c"));
    assert_eq!(b.metrics().leader.get(), 0);
    b.shutdown().await;
    c.shutdown().await;
}
