//! Reliability: kube-sim misbehaves during a burst of istio-csr requests — watches dropped,
//! history compacted so re-watches get 410 Gone, 409 Conflict and 500 answers on the status
//! writes, 500s on lists and watches — and every request still reaches a terminal state, each
//! signed at most once.

use support::{e2e, istiod, pods};

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
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
    if let Err(e) = tracker.wait_terminal(BURST, PATIENCE, |_, _| {}).await {
        // Say whether the controller or the test's watch is behind: the API server's copy of
        // every request the watch does not show terminal.
        let mut stuck = Vec::new();
        for (name, approved_at) in &approvals {
            let seen = tracker.get(name);
            if seen
                .as_ref()
                .is_some_and(|t| t.issued_at.is_some() || t.failed.is_some())
            {
                continue;
            }
            let server = api.get(name).await.map(|cr| {
                (
                    cr.metadata.resource_version,
                    cr.status.map(|s| s.conditions),
                )
            });
            stuck.push(format!(
                "{name} (approved {:?} ago; watch: {seen:?}; API server: {server:?})",
                approved_at.elapsed()
            ));
        }
        panic!("{e}; not terminal in the test's watch: {stuck:#?}");
    }

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

/// Requests answered while their watch lags.
const LAGGING: usize = 20;
/// How far the requests' watch trails the API server: as long as the controller remembers an
/// answered copy (`ANSWER_SETTLE`, 5 s), so the issuer change below lands while the answers are
/// still on their way to the controller's cache.
const WATCH_LAG: Duration = Duration::from_secs(5);

/// An issuer change re-queues every cached request naming it. When that happens after a request
/// was answered but before the watch delivered the answer, the cache still holds the copy the
/// answer was written for: deciding it again would sign a second certificate only for the
/// guarded write to get 409. The controller skips a copy it has answered instead, so exactly one
/// status write (and signature) per request reaches the API server.
///
/// The test's own watch trails the API server exactly as the controller's does (the lag is
/// kube-sim's, per event), so the requests whose answer it saw only after the issuer change
/// were stale in the controller's cache when the change re-queued them: the scenario is judged
/// on those events, not on how fast the machine is.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_queued_again_before_its_answer_is_watched_is_not_signed_again() {
    let stack = e2e::Stack::start().await.unwrap();
    let config = stack
        .write_config("lagging", &e2e::ControllerKnobs::default())
        .unwrap();
    let (boot, controller) = stack.start_controller(&config, "lagging").await.unwrap();
    stack.create_issuer().await.unwrap();
    stack.wait_issuer_ready(PATIENCE).await.unwrap();

    let faults = stack.sim.faults();
    faults.delay_watch_events("certificaterequests", WATCH_LAG);
    let pool = e2e::KeyPool::generate(2, 2).unwrap();
    // One more than the burst: the barrier sent through the same queue after the issuer change.
    let mut csrs = e2e::workload_csrs(&pool, LAGGING + 1).unwrap();
    let barrier_csr = csrs.split_off(LAGGING);
    let api = stack.requests();
    // Started before the burst, so it sees each answer when the (lagging) watch delivers it.
    let tracker = e2e::ReadyTracker::start(api.clone()).await.unwrap();
    let status_patches = || {
        stack
            .sim
            .request_count("patch", "certificaterequests/status")
    };
    let before = status_patches();
    let approvals = e2e::paced_burst(&api, &csrs, 1_000).await.unwrap();
    assert_eq!(approvals.len(), LAGGING);
    // One approval and one controller write per request.
    kube_sim::wait_for(PATIENCE, || async {
        status_patches() - before >= 2 * LAGGING as u64
    })
    .await
    .expect("the controller did not answer every request");

    // Touch the issuer (its watch is not delayed): every cached request naming it is queued
    // again while the cache still holds the copies the answers were written for.
    let issuers: kube::Api<firefly::crd::Issuer> =
        kube::Api::namespaced(stack.client.clone(), support::istio::ISTIO_CSR_NAMESPACE);
    issuers
        .patch(
            support::istio::ISSUER_NAME,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({
                "metadata": {"annotations": {"example.com/touched": "yes"}}
            })),
        )
        .await
        .unwrap();
    let touched = std::time::Instant::now();
    // The barrier: a request approved after the change, through the same watch and queue. Once
    // it is answered, every decision the change queued before it has been made.
    let barrier = e2e::paced_burst(&api, &barrier_csr, 1_000).await.unwrap();
    tracker
        .wait_terminal(LAGGING + 1, PATIENCE, |_, _| {})
        .await
        .unwrap();
    faults.clear();

    // Those whose answer the watch delivered only after the change were still stale in the
    // controller's cache when the change queued them again.
    let stale_when_touched = approvals
        .iter()
        .filter(|(name, _)| {
            tracker
                .get(name)
                .and_then(|t| t.issued_at)
                .is_some_and(|seen| seen > touched)
        })
        .count();
    println!(
        "{stale_when_touched} of {LAGGING} requests were answered but not yet watched when the \
         issuer changed"
    );
    assert!(
        stale_when_touched > 0,
        "every answer was watched before the issuer change: the scenario did not happen \
         (the test's own steps took longer than the {WATCH_LAG:?} watch lag)"
    );
    // One approval and one controller write per request, the barrier included.
    let controller_writes = status_patches() - before - (LAGGING + 1) as u64;
    assert_eq!(
        controller_writes,
        (LAGGING + 1) as u64,
        "a request was decided (and signed) again for the copy already answered"
    );
    for (name, _) in approvals.iter().chain(&barrier) {
        let t = tracker.get(name).expect("request never seen by the watch");
        assert!(t.failed.is_none(), "{name} failed: {:?}", t.failed);
        assert_eq!(t.certificates_seen, 1, "{name}");
    }
    controller.shutdown().await;
    drop(boot);
}

/// Requests created during each watch outage below: more than the 500 a list page holds, so the
/// re-list takes two pages.
const DURING_OUTAGE: usize = 520;

/// Requests of one front door created (and approved, where the door has approvals) while the
/// door's watch is down, long enough for the API server's history to move past it, are all
/// answered after its re-list, each once. kube-runtime's reflector swaps a re-list into the cache
/// only at the list's end, and its applier drops a trigger whose object the cache lacks:
/// triggers handed on as the list arrived (while its second page was still being fetched) found
/// none of these requests, and they were never answered (`queue::touched_after_lists`).
///
/// `create(i)` creates (and approves) request `i` and returns its name; request 0 is answered
/// before the outage, so the door is watching when it starts.
async fn answered_after_the_relist<K, F, Fut>(
    stack: &e2e::Stack,
    answers: kube::Api<K>,
    resource: &str,
    create: F,
) where
    K: e2e::Trackable,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let tracker = e2e::ReadyTracker::start(answers).await.unwrap();
    create(0).await.unwrap();
    tracker.wait_terminal(1, PATIENCE, |_, _| {}).await.unwrap();
    let lists_before = stack.sim.request_count("list", resource);

    // The watches end and cannot be opened again.
    let faults = stack.sim.faults();
    faults.inject(FaultRule::error(500).verb("watch").resource(resource));
    faults.drop_watches();
    let names: Vec<String> = futures::stream::iter(1..=DURING_OUTAGE)
        .map(&create)
        .buffer_unordered(16)
        .try_collect()
        .await
        .unwrap();
    // The history moves past the watches' resourceVersion (410 Gone: they must list again), and
    // each list page takes a while, so the first page's requests are handed to the door's queue
    // well before the list ends.
    faults.clear();
    faults.inject(
        FaultRule::latency(Duration::from_millis(500))
            .verb("list")
            .resource(resource),
    );
    faults.compact_history();

    tracker
        .wait_terminal(DURING_OUTAGE + 1, PATIENCE, |_, _| {})
        .await
        .unwrap();
    faults.clear();
    let lists = stack.sim.request_count("list", resource) - lists_before;
    assert!(
        lists >= 2,
        "the watch was not listed again ({lists} list pages after the outage)"
    );
    for name in &names {
        let t = tracker.get(name).expect("request never seen by the watch");
        assert!(t.issued_at.is_some(), "{name} was not issued: {t:?}");
        assert_eq!(t.certificates_seen, 1, "{name}");
    }
}

/// The CertificateRequest door (istio-csr's requests).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_created_while_the_watch_was_down_are_answered_after_the_relist() {
    let stack = e2e::Stack::start().await.unwrap();
    let config = stack
        .write_config("outage", &e2e::ControllerKnobs::default())
        .unwrap();
    let (boot, controller) = stack.start_controller(&config, "outage").await.unwrap();
    stack.create_issuer().await.unwrap();
    stack.wait_issuer_ready(PATIENCE).await.unwrap();
    let api = stack.requests();
    let pool = e2e::KeyPool::generate(4, 4).unwrap();
    let csrs = e2e::workload_csrs(&pool, DURING_OUTAGE + 1).unwrap();
    answered_after_the_relist(&stack, api.clone(), "certificaterequests", |i| {
        let (id, _, pem_text, _) = &csrs[i];
        let request = e2e::istio_csr_request(pem_text, id, e2e::ISSUER_NAME);
        let api = api.clone();
        async move { Ok(e2e::create_and_approve(&api, &request).await?.0) }
    })
    .await;
    controller.shutdown().await;
    drop(boot);
}

/// The CertificateSigningRequest door (istiod as registration authority).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn csrs_created_while_the_watch_was_down_are_signed_after_the_relist() {
    let stack = e2e::Stack::start_with(kube_sim::SimOptions::authenticating())
        .await
        .unwrap();
    let knobs = e2e::ControllerKnobs {
        certificate_signing_requests: true,
        ..e2e::ControllerKnobs::default()
    };
    let config = stack.write_config("outage", &knobs).unwrap();
    let (boot, controller) = stack.start_controller(&config, "outage").await.unwrap();
    stack.ready_mesh_cluster_issuer(PATIENCE).await.unwrap();
    let api = istiod::istiod_client(&stack.sim).await.unwrap();
    let pool = e2e::KeyPool::generate(4, 4).unwrap();
    let csrs = e2e::workload_csrs(&pool, DURING_OUTAGE + 1).unwrap();
    answered_after_the_relist(&stack, api.clone(), "certificatesigningrequests", |i| {
        let request = istiod::csr(
            istiod::CLUSTER_SIGNER,
            &csrs[i].2,
            &istiod::WORKLOAD_USAGES,
            Some(86400),
        );
        let api = api.clone();
        async move { Ok(istiod::create_and_approve(&api, &request).await?.0) }
    })
    .await;
    controller.shutdown().await;
    drop(boot);
}

/// The PodCertificateRequest door (kubelets asking for their pods).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pod_certificate_requests_created_while_the_watch_was_down_are_issued_after_the_relist() {
    const NODES: usize = 4;
    let stack = e2e::Stack::start_with(kube_sim::SimOptions::authenticating())
        .await
        .unwrap();
    let knobs = e2e::ControllerKnobs {
        pod_certificates: Some(pods::signer_config()),
        ..e2e::ControllerKnobs::default()
    };
    let config = stack.write_config("outage", &knobs).unwrap();
    let (boot, controller) = stack.start_controller(&config, "outage").await.unwrap();
    pods::put_pods(&stack.sim, 0..DURING_OUTAGE + 1, NODES).unwrap();
    let kubelets = pods::kubelets(&stack.sim, NODES).await.unwrap();
    let answers = kube::Api::namespaced(stack.client.clone(), pods::NAMESPACE);
    answered_after_the_relist::<pods::PodCertificateRequest, _, _>(
        &stack,
        answers,
        "podcertificaterequests",
        |i| {
            let kubelet = &kubelets[i % NODES];
            async move { Ok(pods::request(kubelet, i).await?.name) }
        },
    )
    .await;
    controller.shutdown().await;
    drop(boot);
}
