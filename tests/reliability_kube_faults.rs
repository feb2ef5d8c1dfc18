//! Reliability: kube-sim misbehaves during a burst of istio-csr requests — watches dropped,
//! history compacted so re-watches get 410 Gone, 409 Conflict and 500 answers on the status
//! writes, 500s on lists and watches — and every request still reaches a terminal state, each
//! signed at most once.

use support::e2e;

use std::time::Duration;

use kube_sim::FaultRule;

/// Requests in the burst.
const BURST: usize = 200;
/// Pace of the burst (2.5 s), so the faults land while requests are in flight.
const PER_SECOND: u64 = 80;
/// Bound of every wait; the machine is shared and a debug build is slow.
const PATIENCE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_server_faults_during_a_burst_leave_every_request_terminal() {
    let stack = e2e::Stack::start().await.unwrap();
    let config = stack
        .write_config("faults", &e2e::ControllerKnobs::default())
        .unwrap();
    let (boot, controller) = stack.start_controller(&config, "faults").await.unwrap();
    stack.create_issuer().await.unwrap();
    stack.wait_issuer_ready(PATIENCE).await.unwrap();

    let pool = e2e::KeyPool::generate(4, 4).unwrap();
    let csrs = e2e::workload_csrs(&pool, BURST).unwrap();
    let api = stack.requests();
    let tracker = e2e::ReadyTracker::start(api.clone()).await.unwrap();
    let status_patches_before = stack
        .sim
        .request_count("patch", "certificaterequests/status");
    let burst = {
        let api = api.clone();
        tokio::spawn(async move { e2e::paced_burst(&api, &csrs, PER_SECOND).await })
    };

    let faults = stack.sim.faults();
    // Conflicts and server errors on status writes (the controller's one write per request,
    // and the approver's, which retries), then on the requests' lists and watches.
    faults.inject(
        FaultRule::error(409)
            .verb("patch")
            .resource("certificaterequests/status")
            .probability(0.2)
            .times(40),
    );
    faults.inject(
        FaultRule::error(500)
            .verb("patch")
            .resource("certificaterequests/status")
            .probability(0.2)
            .times(40),
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    faults.drop_watches();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Forget the history, then end the watches: every re-watch from a known resourceVersion gets
    // 410 Gone and must relist.
    faults.compact_history();
    faults.drop_watches();
    faults.inject(
        FaultRule::error(500)
            .verb("list")
            .resource("certificaterequests")
            .times(3),
    );
    faults.inject(
        FaultRule::error(500)
            .verb("watch")
            .resource("certificaterequests")
            .times(3),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    faults.drop_watches();

    let approvals = burst.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    faults.clear();
    tracker
        .wait_terminal(BURST, PATIENCE, |_, _| {})
        .await
        .unwrap();

    let mut issued = 0;
    let mut failed = Vec::new();
    for (name, _) in &approvals {
        let t = tracker.get(name).expect("request never seen by the watch");
        assert!(
            t.certificates_seen <= 1,
            "{name} carried {} distinct certificates",
            t.certificates_seen
        );
        match (&t.issued_at, &t.failed) {
            (Some(_), None) => issued += 1,
            (None, Some((reason, message))) => failed.push(format!("{name}: {reason}: {message}")),
            other => panic!("{name} is not terminal: {other:?}"),
        }
    }
    // kube-sim counts a call before deciding its fault: answered-with-a-fault patches show up as
    // patches beyond one approval and one controller write per request.
    let status_patches = stack
        .sim
        .request_count("patch", "certificaterequests/status")
        - status_patches_before;
    assert!(
        status_patches > 2 * BURST as u64,
        "no status write met an injected fault ({status_patches} patches for {BURST} requests)"
    );
    println!(
        "{} status patches beyond one approval and one write per request were answered 409/500 and retried",
        status_patches - 2 * BURST as u64
    );
    println!(
        "{issued} issued, {} failed of {BURST} under 409/500 status writes, 500 lists/watches, dropped watches and 410s",
        failed.len()
    );
    // Transient API faults are retried: nothing may fail because of them.
    assert!(failed.is_empty(), "requests failed: {failed:?}");
    controller.shutdown().await;
    drop(boot);
}
