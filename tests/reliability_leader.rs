//! Reliability: two controller replicas with leader election on a Lease in kube-sim, each with
//! its own sub-CA from the mock TLSPC; the leader is killed (aborted, lease not released) during a
//! burst of istio-csr requests. Every request must still end Issued, exactly once.
//!
//! The takeover is judged as a liveness property: every request approved after the kill ends
//! Issued within the test's patience, however slow the shared machine. How fast the standby
//! takes over is a latency figure, for a benchmark (none measures it yet), not for this test:
//! the time each request approved after the kill waited is printed, not bounded.

use support::e2e;

use std::time::{Duration, Instant};

/// Requests in the burst.
const BURST: usize = 240;
/// Requests created once the leader is dead, whatever the burst's progress on a slow machine:
/// the takeover's liveness is judged on them (and on any of the burst approved after the kill).
const AFTER_KILL: usize = 20;
/// Every request of the test.
const TOTAL: usize = BURST + AFTER_KILL;
/// Pace of the burst: long enough (3 s) for the kill to land in the middle of it.
const PER_SECOND: u64 = 80;
/// Bound of every wait; the machine is shared and a debug build is slow.
const PATIENCE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_mid_burst_leaves_every_request_issued_exactly_once() {
    // Writes are recorded so a count off by one names the request and the answers it got.
    let mut sim_options = kube_sim::SimOptions::default();
    sim_options.record_writes = true;
    let stack = e2e::Stack::start_with(sim_options).await.unwrap();
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
    let mut csrs = e2e::workload_csrs(&pool, TOTAL).unwrap();
    let csrs_after_kill = csrs.split_off(BURST);
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
    let after_kill_approvals = e2e::paced_burst(&api, &csrs_after_kill, PER_SECOND)
        .await
        .unwrap();

    let mut leading_b = replica_b.leadership();
    tokio::time::timeout(PATIENCE, leading_b.wait_for(|l| *l))
        .await
        .expect("replica-b never took over")
        .unwrap();
    let mut approvals = burst.await.unwrap().unwrap();
    approvals.extend(after_kill_approvals);
    tracker
        .wait_terminal(TOTAL, PATIENCE, |_, _| {})
        .await
        .unwrap();

    let mut failures = Vec::new();
    let mut after_kill = 0;
    let mut slowest_after_kill = Duration::ZERO;
    for (name, approved_at) in &approvals {
        let t = tracker.get(name).expect("request never seen by the watch");
        if let Some((reason, message)) = &t.failed {
            failures.push(format!("{name}: {reason}: {message}"));
        }
        assert_eq!(
            t.certificates_seen, 1,
            "{name} carried {} distinct certificates",
            t.certificates_seen
        );
        // Liveness: a request approved after the kill was issued (by the new leader) within
        // the test's patience; how long it waited is reported, not bounded.
        if *approved_at > killed_at {
            after_kill += 1;
            let issued_at = t
                .issued_at
                .unwrap_or_else(|| panic!("{name}, approved after the kill, never issued: {t:?}"));
            slowest_after_kill =
                slowest_after_kill.max(issued_at.saturating_duration_since(*approved_at));
        }
    }
    assert!(failures.is_empty(), "requests failed: {failures:?}");
    assert!(
        after_kill >= AFTER_KILL,
        "{after_kill} requests approved after the kill"
    );
    // A shutdown lets the reconciles in flight finish: no write is still on its way.
    replica_b.shutdown().await;
    let controller_writes = stack
        .sim
        .request_count("patch", "certificaterequests/status")
        - status_writes_before
        - TOTAL as u64;
    assert_eq!(
        controller_writes,
        TOTAL as u64,
        "exactly one controller status write per request across both replicas; requests written \
         more than once (approval first, then each write's HTTP status): {:?}",
        written_more_than_once(&stack.sim)
    );
    println!(
        "leader killed after {issued_at_kill}/{BURST} issued; {after_kill} requests approved after \
         the kill, the slowest Ready {slowest_after_kill:?} after its approval; all {TOTAL} issued \
         exactly once"
    );
    drop(boot_b);
}

/// The requests with more than one write to their status besides the approval, each with the
/// HTTP status of every status write it got, in order.
fn written_more_than_once(sim: &kube_sim::KubeSim) -> Vec<(String, Vec<u16>)> {
    let mut by_request = std::collections::BTreeMap::<String, Vec<u16>>::new();
    for w in sim.writes() {
        if w.resource == "certificaterequests" && w.subresource.as_deref() == Some("status") {
            by_request.entry(w.name).or_default().push(w.code);
        }
    }
    by_request
        .into_iter()
        .filter(|(_, codes)| codes.len() > 2)
        .collect()
}
