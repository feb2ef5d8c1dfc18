//! Delivered at most once, enforced by the API server, and robust retries: two controllers that
//! both believe they lead answer each request exactly once (the status write carries the
//! decided resourceVersion; a 409 is audited as signed-not-delivered); a reconcile that keeps
//! panicking fails the request with `InternalError`; a 429's Retry-After is honoured; a slow
//! events API does not hold a request's next decision.
//!
//! The controllers run in this test process against kube-sim over HTTP with real sub-CAs from
//! the mock TLSPC. Each controller's signer is the real bootstrap signer behind a thin wrapper
//! that counts usage records (what TLSPC is told was issued) and, for the panic test, panics
//! on one policy name before delegating.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use firefly::bootstrap::{Bootstrap, SystemClock};
use firefly::issuer::authority::Authority;
use firefly::run::{Controller, ControllerHandle, StartOptions};
use futures::StreamExt as _;
use kube_sim::FaultRule;
use serde_json::json;
use support::audit::AuditEvents;
use support::controller::*;

/// The audit message of a certificate whose status write failed in transit.
const UNKNOWN: &str = "signed-delivery-unknown: the status write failed in transit and may have been stored; the certificate may have been handed out";

const WORKLOAD: &str = "spiffe://cluster.local/ns/sandbox/sa/httpbin";
/// Requests naming this policy make the wrapped signer panic (a stand-in for a bug).
const PANIC_POLICY: &str = "trips-a-bug";

/// The real signer, observed (issue calls and usage records counted), panicking on requests that
/// name [`PANIC_POLICY`].
fn wrapped(inner: Arc<dyn Authority>) -> Arc<Observed> {
    Observed::with_before_issue(inner, |request| {
        assert_ne!(request.policy, PANIC_POLICY, "injected bug");
    })
}

async fn start(
    env: &Env,
    client: kube::Client,
    authority: Arc<Observed>,
    identity: &str,
) -> ControllerHandle {
    Controller::start_with(
        &env.config,
        client,
        authority,
        StartOptions {
            identity: Some(identity.to_owned()),
            ..StartOptions::default()
        },
    )
    .await
    .expect("controller starts")
}

/// One environment whose own controller is replaced by one signing through a [`wrapped`]
/// signer, with kube-rs's retry layer (429/503/504) on or off in its client.
async fn env_with_wrapped(opts: Options, client_retries: bool) -> (Env, Arc<Observed>) {
    let mut env = Env::start_with(opts).await;
    env.stop_controller().await;
    let wrapped = wrapped(env.authority.clone());
    let mut config = env.sim.kube_config().await.unwrap();
    config.default_retry = client_retries;
    let client = kube::Client::try_from(config).unwrap();
    env.controller = Some(start(&env, client, wrapped.clone(), "replica-a").await);
    (env, wrapped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_controllers_that_both_lead_deliver_each_request_exactly_once() {
    const REQUESTS: usize = 1000;
    let audit = AuditEvents::install();
    let mut env = Env::start_with(Options {
        check_approval: false,
        audit_log: (true, false),
        record_writes: true,
        ..Options::default()
    })
    .await;
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    env.stop_controller().await;
    // Leader election is off: both controllers act on every request, each with its own sub-CA.
    let a = wrapped(env.authority.clone());
    let b_bootstrap = Bootstrap::start(&env.config, Arc::new(SystemClock))
        .await
        .expect("second bootstrap");
    let b = wrapped(Arc::new(b_bootstrap.signer()));
    let ha = start(&env, env.client.clone(), a.clone(), "replica-a").await;
    let hb = start(
        &env,
        env.sim.client().await.unwrap(),
        b.clone(),
        "replica-b",
    )
    .await;

    let (_key, csr) = CsrSpec::workload(KeyKind::P256, WORKLOAD).build();
    let request = RequestBuilder::istio("firefly-istio", &csr, WORKLOAD);
    let started = Instant::now();
    let names: Vec<String> = futures::stream::iter(0..REQUESTS)
        .map(|_| env.create_request(&request))
        .buffer_unordered(16)
        .collect()
        .await;
    let created = started.elapsed();
    kube_sim::wait_for(PATIENCE, || async {
        names.iter().all(|n| {
            env.request(NS, n)
                .is_some_and(|o| ready_reason(&o).as_deref() == Some("Issued"))
        })
    })
    .await
    .expect("every request is issued");
    let issued = started.elapsed();
    // A shutdown lets reconciles in flight finish: every refused write has been audited.
    let (ma, mb) = (ha.metrics().clone(), hb.metrics().clone());
    ha.shutdown().await;
    hb.shutdown().await;
    eprintln!("both controllers stopped after {:?}", started.elapsed());

    let mut delivered: HashMap<String, u64> = HashMap::new();
    let mut conflicts = 0u64;
    for w in env.sim.writes() {
        if w.resource != "certificaterequests" || w.subresource.as_deref() != Some("status") {
            continue;
        }
        match w.code {
            200 => *delivered.entry(w.name).or_default() += 1,
            409 => conflicts += 1,
            other => panic!("unexpected status write answer {other} for {}", w.name),
        }
    }
    for n in &names {
        assert_eq!(
            delivered.get(n),
            Some(&1),
            "{n}: one successful status write"
        );
    }
    // The delivered chains are real (a sample: openssl per request would dominate the test).
    for n in names.iter().step_by(REQUESTS / 4) {
        let obj = env.request(NS, n).unwrap();
        let Verdict { ok, output } =
            openssl_verify(&decoded(&obj, "certificate"), &decoded(&obj, "ca"), "any");
        assert!(ok, "{n}: {output}");
    }
    assert_eq!(delivered.len(), REQUESTS);
    let not_delivered = audit.count("signed-not-delivered");
    eprintln!(
        "{REQUESTS} requests created in {created:?}, all issued after {issued:?}: \
         {conflicts} conflicts (409), {not_delivered} signed-not-delivered"
    );
    assert!(
        conflicts > 0,
        "two controllers racing on {REQUESTS} requests never met: the test proved nothing"
    );
    assert_eq!(not_delivered, conflicts, "one audit line per 409");
    assert_eq!(
        audit.count("certificate"),
        REQUESTS as u64,
        "one issued audit line per delivered certificate"
    );
    let both = |f: &dyn Fn(&firefly::metrics::Metrics) -> u64| f(&ma) + f(&mb);
    let metric_conflicts = both(&|m| {
        m.write_conflicts
            .with_label_values(&["CertificateRequest"])
            .get()
    });
    assert_eq!(metric_conflicts, conflicts, "conflicts are counted apart");
    let failures = both(&|m| {
        ["409", "500", "transport"]
            .iter()
            .map(|c| m.write_errors.with_label_values(&[c]).get())
            .sum()
    });
    assert_eq!(failures, 0, "a 409 is not a write failure");
    let usage = a.usage_records.load(Ordering::SeqCst) + b.usage_records.load(Ordering::SeqCst);
    assert_eq!(
        usage, REQUESTS as u64,
        "only delivered certificates count toward TLSPC"
    );
    let signed = both(&|m| {
        m.signer_sign
            .with_label_values(&["true", "CertificateRequest"])
            .get()
    });
    let metric_not_delivered = both(&|m| {
        m.signed_not_delivered
            .with_label_values(&["CertificateRequest"])
            .get()
    });
    assert_eq!(metric_not_delivered, not_delivered);
    assert_eq!(signed, REQUESTS as u64 + not_delivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_reconcile_keeps_panicking_fails_with_internal_error_unsigned() {
    let (env, wrapped) = env_with_wrapped(
        Options {
            check_approval: false,
            ..Options::default()
        },
        true,
    )
    .await;
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    let (_key, csr) = CsrSpec::workload(KeyKind::P256, WORKLOAD).build();
    let bug = env
        .create_request(
            &RequestBuilder::istio("firefly-istio", &csr, WORKLOAD)
                .annotation("firefly.venafi.com/policy-name", Some(PANIC_POLICY)),
        )
        .await;
    let fine = env
        .create_request(&RequestBuilder::istio("firefly-istio", &csr, WORKLOAD))
        .await;
    env.wait_ready_reason(NS, &fine, "Issued").await;
    let obj = env.wait_ready_reason(NS, &bug, "Failed").await;
    assert!(obj["status"]["certificate"].is_null(), "{obj:#}");
    assert!(obj["status"]["failureTime"].is_string(), "{obj:#}");
    assert!(ready_message(&obj).contains("failed internally"), "{obj:#}");
    // The event follows the status write.
    kube_sim::wait_for(PATIENCE, || async {
        env.events_for(NS, &bug)
            .await
            .iter()
            .any(|e| e.reason.as_deref() == Some("InternalError"))
    })
    .await
    .expect("an InternalError event on the request");
    let metrics = env.controller.as_ref().unwrap().metrics();
    assert_eq!(
        metrics.outcomes.with_label_values(&["InternalError"]).get(),
        1
    );
    // The signer was entered once per panicking reconcile (3) and once for the fine request;
    // only the fine one was signed.
    assert_eq!(wrapped.issue_calls.load(Ordering::SeqCst), 3 + 1);
    assert_eq!(env.signed(), 1);
    assert_eq!(wrapped.usage_records.load(Ordering::SeqCst), 1);
}

/// The controller's client here has kube-rs's own retry layer off, so the 429 reaches the
/// controller's retry policy (with the layer on, kube-rs retries first, honouring the same
/// header). Retry-After is 3 s; the controller's own first backoff is at most 250 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_status_write_waits_for_retry_after() {
    let (env, _wrapped) = env_with_wrapped(
        Options {
            check_approval: false,
            record_writes: true,
            ..Options::default()
        },
        false,
    )
    .await;
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    env.sim.faults().inject(
        FaultRule::error(429)
            .verb("patch")
            .resource("certificaterequests/status")
            .retry_after(3)
            .times(1),
    );
    let (_key, csr) = CsrSpec::workload(KeyKind::P256, WORKLOAD).build();
    let created = Instant::now();
    let name = env
        .create_request(&RequestBuilder::istio("firefly-istio", &csr, WORKLOAD))
        .await;
    env.wait_ready_reason(NS, &name, "Issued").await;
    let waited = created.elapsed();
    assert!(
        waited >= Duration::from_secs(3),
        "the write was retried {waited:?} after creation, before the 3 s Retry-After"
    );
    let metrics = env.controller.as_ref().unwrap().metrics();
    assert_eq!(metrics.write_errors.with_label_values(&["429"]).get(), 1);
    // The reconcile that met the 429 had signed; its retry decides the same copy again.
    assert_eq!(env.signed(), 2);
}

/// A request event stuck in a slow events API (one that never answers within the test) is
/// given up after the same 5 s bound as issuer events, so the request's next trigger (its issuer
/// turning Ready) is acted on: the request is Issued within the test's patience, which a decision
/// held by the event call could not be. A liveness property: how soon is printed, not bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_events_api_does_not_hold_the_next_decision() {
    /// Far beyond the test's patience: a decision that waited for the event would never come.
    const HUNG: Duration = Duration::from_secs(3600);
    let env = Env::start_with(Options {
        check_approval: false,
        ..Options::default()
    })
    .await;
    env.sim
        .faults()
        .inject(FaultRule::latency(HUNG).verb("create").resource("events"));
    let (_key, csr) = CsrSpec::workload(KeyKind::P256, WORKLOAD).build();
    let name = env
        .create_request(&RequestBuilder::istio("firefly-istio", &csr, WORKLOAD))
        .await;
    // IssuerNotFound: a Pending write, then its warning event, which hangs.
    env.wait_ready_reason(NS, &name, "Pending").await;
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    let ready = Instant::now();
    // PATIENCE is far short of the hung event call.
    kube_sim::wait_for(PATIENCE, || async {
        env.request(NS, &name)
            .is_some_and(|o| ready_reason(&o).as_deref() == Some("Issued"))
    })
    .await
    .unwrap_or_else(|_| {
        panic!("not issued once its issuer turned Ready: the hung event held the request")
    });
    eprintln!("issued {:?} after the issuer turned Ready", ready.elapsed());
}

/// A status write that was stored but whose answer never came back (the connection broke after
/// the API server committed it): the certificate is in the request, so in the requester's hands,
/// and the controller cannot know. It is audited with its serial as `signed-delivery-unknown`
/// (before, nothing was audited for it: no "certificate issued" line, no usage record, no
/// "signed-not-delivered" line), and not counted as not delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_write_whose_answer_is_lost_is_audited_with_its_serial() {
    let audit = AuditEvents::install();
    let (env, _wrapped) = env_with_wrapped(
        Options {
            check_approval: false,
            ..Options::default()
        },
        false,
    )
    .await;
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    env.sim.faults().inject(
        FaultRule::lost_response()
            .verb("patch")
            .resource("certificaterequests/status")
            .times(1),
    );
    let (_key, csr) = CsrSpec::workload(KeyKind::P256, WORKLOAD).build();
    let name = env
        .create_request(&RequestBuilder::istio("firefly-istio", &csr, WORKLOAD))
        .await;
    env.wait_ready_reason(NS, &name, "Issued").await;
    kube_sim::wait_for(Duration::from_secs(30), || async {
        !audit.with_message(UNKNOWN).is_empty()
    })
    .await
    .expect("the lost answer is audited");
    let lines = audit.with_message(UNKNOWN);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let chain = decoded(&env.request(NS, &name).unwrap(), "certificate");
    let leaf = ::pem::parse(chain.as_bytes()).expect("a PEM block");
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf.contents()).expect("the delivered leaf");
    assert_eq!(
        lines[0]["serial"].replace(':', "").to_ascii_lowercase(),
        cert.raw_serial_as_string()
            .replace(':', "")
            .to_ascii_lowercase(),
        "the audited serial is the delivered certificate's"
    );
    let metrics = env.controller.as_ref().unwrap().metrics();
    assert_eq!(
        metrics
            .signed_not_delivered
            .with_label_values(&["CertificateRequest"])
            .get(),
        0,
        "not counted as refused"
    );
}

/// A status write the API server never answers (a connection that went dead after the request
/// was sent) is abandoned after the door's bound and retried on a fresh connection, so the
/// request is still answered while its requester waits. Before, the write waited for the
/// client's 300 s read timeout, holding the request's reconcile (and a concurrency slot) all that
/// time. The abandoned certificate may have been stored, so it is audited as
/// signed-delivery-unknown with its serial, and the one delivered is the retry's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_write_that_is_never_answered_is_abandoned_and_retried() {
    /// Far beyond the test's patience: without a bound of its own, the write would wait for it.
    const HUNG: Duration = Duration::from_secs(3600);
    let audit = AuditEvents::install();
    let mut env = Env::start_with(Options {
        check_approval: false,
        ..Options::default()
    })
    .await;
    env.stop_controller().await;
    let wrapped = wrapped(env.authority.clone());
    let client = kube::Client::try_from(env.sim.kube_config().await.unwrap()).unwrap();
    env.controller = Some(
        Controller::start_with(
            &env.config,
            client,
            wrapped.clone(),
            StartOptions {
                identity: Some("replica-a".to_owned()),
                status_write_timeout: Some(Duration::from_secs(1)),
                ..StartOptions::default()
            },
        )
        .await
        .expect("controller starts"),
    );
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    env.sim.faults().inject(
        FaultRule::latency(HUNG)
            .verb("patch")
            .resource("certificaterequests/status")
            .times(1),
    );
    let (_key, csr) = CsrSpec::workload(KeyKind::P256, WORKLOAD).build();
    let name = env
        .create_request(&RequestBuilder::istio("firefly-istio", &csr, WORKLOAD))
        .await;
    let request = env.wait_ready_reason(NS, &name, "Issued").await;

    let lines = audit.with_message(UNKNOWN);
    assert_eq!(lines.len(), 1, "the abandoned write is audited: {lines:?}");
    let chain = decoded(&request, "certificate");
    let leaf = ::pem::parse(chain.as_bytes()).expect("a PEM block");
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf.contents()).expect("the delivered leaf");
    let serial = |s: &str| s.replace(':', "").to_ascii_lowercase();
    assert_ne!(
        serial(&lines[0]["serial"]),
        serial(&cert.raw_serial_as_string()),
        "the delivered certificate is the retry's, not the abandoned one"
    );
    assert_eq!(
        wrapped.issue_calls.load(Ordering::SeqCst),
        2,
        "signed once for the abandoned write, once for the retry"
    );
    let metrics = env.controller.as_ref().unwrap().metrics();
    assert_eq!(
        metrics.write_errors.with_label_values(&["transport"]).get(),
        1,
        "the abandoned write is counted as a transport failure"
    );
    assert_eq!(
        metrics
            .signed_not_delivered
            .with_label_values(&["CertificateRequest"])
            .get(),
        0,
        "not counted as refused: it may have been stored"
    );
}
