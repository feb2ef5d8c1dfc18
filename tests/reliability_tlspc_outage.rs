//! Reliability: TLS Protect Cloud becomes unreachable (every route of the mock answers 503)
//! while the controller holds a valid sub-CA and fresh-enough policies: issuance continues.

use support::e2e;

use std::time::Duration;

use firefly::tlspc_mock::{ErrorBody, Faults, Route, RouteError};

/// Requests before and during the outage.
const BATCH: usize = 60;
/// Bound of every wait; the machine is shared and a debug build is slow.
const PATIENCE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issuance_continues_while_tlspc_is_unavailable_and_the_sub_ca_is_valid() {
    let stack = e2e::Stack::start().await.unwrap();
    let knobs = e2e::ControllerKnobs {
        // Refresh often so the outage is really met by the controller during the test, with a
        // staleness limit far beyond it.
        policy_refresh_interval: "500ms",
        policy_max_staleness: "30m",
        ..Default::default()
    };
    let config = stack.write_config("outage", &knobs).unwrap();
    let (boot, controller) = stack.start_controller(&config, "outage").await.unwrap();
    stack.create_issuer().await.unwrap();
    stack.wait_issuer_ready(PATIENCE).await.unwrap();

    let pool = e2e::KeyPool::generate(2, 2).unwrap();
    let csrs = e2e::workload_csrs(&pool, 2 * BATCH).unwrap();
    let api = stack.requests();
    let tracker = e2e::ReadyTracker::start(api.clone()).await.unwrap();
    e2e::paced_burst(&api, &csrs[..BATCH], 200).await.unwrap();
    tracker
        .wait_terminal(BATCH, PATIENCE, |_, _| {})
        .await
        .unwrap();
    assert_eq!(tracker.counts(), (BATCH, 0), "before the outage");

    let outage = Faults {
        route_errors: [
            Route::Token,
            Route::Configurations,
            Route::IntermediateRequest,
            Route::IntermediatePoll,
            Route::UsageReport,
        ]
        .into_iter()
        .map(|route| RouteError {
            route,
            status: 503,
            count: None,
            probability: None,
            body: ErrorBody::Html,
        })
        .collect(),
        ..Default::default()
    };
    stack.mock.set_faults(outage).unwrap();
    // Wait until the controller has met the outage (a configuration refresh failed), so the
    // second batch is signed while TLSPC is known to be down.
    let signer = boot.signer();
    kube_sim::wait_for(PATIENCE, || {
        let message = signer.ready().message;
        async move { message.contains("configuration refresh failed") }
    })
    .await
    .expect("the controller never noticed the outage");
    let readiness = signer.ready();
    assert!(
        readiness.ready,
        "a valid sub-CA and fresh policies: {readiness:?}"
    );

    let during = e2e::paced_burst(&api, &csrs[BATCH..], 200).await.unwrap();
    tracker
        .wait_terminal(2 * BATCH, PATIENCE, |_, _| {})
        .await
        .unwrap();
    for (name, _) in &during {
        let t = tracker.get(name).expect("request never seen by the watch");
        assert!(
            t.issued_at.is_some(),
            "{name} was not issued during the outage: {:?}",
            t.failed
        );
    }
    let issuer = stack
        .sim
        .object(
            e2e::GROUP,
            "issuers",
            e2e::ISTIO_CSR_NAMESPACE,
            e2e::ISSUER_NAME,
        )
        .expect("issuer gone");
    assert_eq!(
        kube_sim::condition_status(&issuer, "Ready"),
        Some("True"),
        "the Issuer stays Ready while the sub-CA is valid and policies are within policyMaxStaleness: {issuer}"
    );
    println!(
        "{BATCH} issued before and {BATCH} during a TLSPC outage (every route 503); Issuer stayed Ready; \
         readiness during the outage: {}",
        readiness.message
    );
    stack.mock.set_faults(Faults::default()).unwrap();
    controller.shutdown().await;
    drop(boot);
}
