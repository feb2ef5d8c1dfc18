//! Reliability: two controller replicas with leader election on a Lease in kube-sim, each with
//! its own sub-CA from the mock TLSPC; the leader is killed (aborted, lease not released) during a
//! burst of istio-csr requests. Every request must still end Issued, exactly once.

use support::e2e;

use std::time::{Duration, Instant};

/// Requests in the burst.
const BURST: usize = 240;
/// Pace of the burst: long enough (3 s) for the kill to land in the middle of it.
const PER_SECOND: u64 = 80;
/// Bound of every wait; the machine is shared and a debug build is slow.
const PATIENCE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_mid_burst_leaves_every_request_issued_exactly_once() {
    let stack = e2e::Stack::start().await.unwrap();
    let knobs = e2e::ControllerKnobs {
        leader_election: true,
        // Short lease so the takeover happens within the test; renew and retry scaled to it.
        lease_timings: ("2s", "1500ms", "200ms"),
        ..Default::default()
    };
    let config_a = stack.write_config("replica-a", &knobs).unwrap();
    let config_b = stack.write_config("replica-b", &knobs).unwrap();
    let (boot_a, replica_a) = stack
        .start_controller(&config_a, "replica-a")
        .await
        .unwrap();
    let mut leading_a = replica_a.leadership();
    tokio::time::timeout(PATIENCE, leading_a.wait_for(|l| *l))
        .await
        .expect("replica-a never became leader")
        .unwrap();
    // The standby bootstraps its own sub-CA before it ever leads, so a takeover signs at once.
    let (boot_b, replica_b) = stack
        .start_controller(&config_b, "replica-b")
        .await
        .unwrap();
    assert!(!replica_b.is_leader(), "two leaders at once");
    stack.create_issuer().await.unwrap();
    stack.wait_issuer_ready(PATIENCE).await.unwrap();

    let pool = e2e::KeyPool::generate(4, 4).unwrap();
    let csrs = e2e::workload_csrs(&pool, BURST).unwrap();
    let api = stack.requests();
    let tracker = e2e::ReadyTracker::start(api.clone()).await.unwrap();
    let status_writes_before = stack
        .sim
        .request_count("patch", "certificaterequests/status");

    let burst = {
        let api = api.clone();
        tokio::spawn(async move { e2e::paced_burst(&api, &csrs, PER_SECOND).await })
    };
    // Kill the leader once a third of the burst is issued: mid-flight, with more to come.
    tracker
        .wait_terminal(BURST / 3, PATIENCE, |_, _| {})
        .await
        .unwrap();
    let (issued_at_kill, _) = tracker.counts();
    let killed_at = Instant::now();
    replica_a.abort();
    drop(boot_a);

    let mut leading_b = replica_b.leadership();
    tokio::time::timeout(PATIENCE, leading_b.wait_for(|l| *l))
        .await
        .expect("replica-b never took over")
        .unwrap();
    let took_over_at = Instant::now();
    let takeover = took_over_at.saturating_duration_since(killed_at);
    let approvals = burst.await.unwrap().unwrap();
    tracker
        .wait_terminal(BURST, PATIENCE, |_, _| {})
        .await
        .unwrap();

    let mut failures = Vec::new();
    let mut first_ready_after_takeover: Option<Instant> = None;
    for (name, _) in &approvals {
        let t = tracker.get(name).expect("request never seen by the watch");
        if let Some((reason, message)) = &t.failed {
            failures.push(format!("{name}: {reason}: {message}"));
        }
        assert_eq!(
            t.certificates_seen, 1,
            "{name} carried {} distinct certificates",
            t.certificates_seen
        );
        if let Some(at) = t.issued_at.filter(|at| *at > took_over_at) {
            first_ready_after_takeover = Some(first_ready_after_takeover.map_or(at, |f| f.min(at)));
        }
    }
    assert!(failures.is_empty(), "requests failed: {failures:?}");
    let controller_writes = stack
        .sim
        .request_count("patch", "certificaterequests/status")
        - status_writes_before
        - BURST as u64;
    assert_eq!(
        controller_writes, BURST as u64,
        "exactly one controller status write per request across both replicas"
    );
    let gap = first_ready_after_takeover.map(|at| at.saturating_duration_since(killed_at));
    let mut ready: Vec<Instant> = approvals
        .iter()
        .filter_map(|(name, _)| tracker.get(name).and_then(|t| t.issued_at))
        .collect();
    ready.sort();
    let longest_pause = ready
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .max()
        .unwrap_or_default();
    println!(
        "leader killed after {issued_at_kill}/{BURST} issued; replica-b leading {:.2} s later (lease 2 s); \
         first Ready signed by replica-b {:.2} s after the kill; longest pause between two Ready requests {:.2} s; \
         all {BURST} issued exactly once",
        takeover.as_secs_f64(),
        gap.unwrap_or_default().as_secs_f64(),
        longest_pause.as_secs_f64()
    );
    replica_b.shutdown().await;
    drop(boot_b);
}
