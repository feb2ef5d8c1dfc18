//! cert-manager.md §2 end to end: kube-sim and the mock TLSPC over loopback HTTP, the real
//! controller, and openssl as the judge of every chain issued.

use support::verifiers;

use serde_json::json;
use support::controller::*;

const WORKLOAD: &str = "spiffe://cluster.local/ns/sandbox/sa/httpbin";
const CERT_MANAGER_SA: &str = "system:serviceaccount:cert-manager:cert-manager";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_istio_workload_request_is_issued_with_a_chain_openssl_and_python_verify() {
    let env = Env::start().await;
    let (_name, obj) = env.issue_workload(WORKLOAD).await;
    assert_eq!(kube_sim::condition_status(&obj, "Ready"), Some("True"));
    assert_eq!(
        kube_sim::condition_status(&obj, "Approved"),
        Some("True"),
        "Approved survives our write"
    );
    let chain = decoded(&obj, "certificate");
    let root = decoded(&obj, "ca");
    assert_eq!(root.trim(), env.root_pem().trim());
    let Verdict { ok, output: out } = openssl_verify(&chain, &root, "any");
    assert!(ok, "openssl verify: {out}");
    let verdict = verifiers::python_verify(&chain, &root, WORKLOAD);
    assert!(verdict.ok, "Python cryptography: {}", verdict.output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_for_another_issuer_group_is_left_untouched() {
    let env = Env::start().await;
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    let (_key, csr) = CsrSpec::workload(KeyKind::P256, WORKLOAD).build();
    let mut req = RequestBuilder::istio("firefly-istio", &csr, WORKLOAD);
    req.issuer_group = Some("cert-manager.io".into());
    let foreign = env.create_request(&req).await;
    env.approve(NS, &foreign).await;
    // A request of ours created afterwards is answered; by then the foreign one was seen too.
    env.issue_through_ready_issuer(WORKLOAD).await;
    let obj = env.request(NS, &foreign).unwrap();
    assert!(
        condition(&obj, "Ready").is_none(),
        "no Ready on a foreign request: {obj:#}"
    );
    assert!(env.events_for(NS, &foreign).await.is_empty());
}

/// Issuer `firefly-istio` Ready in istio-system, and an approved workload request for `spiffe`.
async fn env_with_issuer() -> Env {
    let env = Env::start().await;
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    env
}

async fn approved(env: &Env, req: &RequestBuilder) -> String {
    let name = env.create_request(req).await;
    env.approve(&req.namespace, &name).await;
    name
}

fn workload_request(spiffe: &str) -> RequestBuilder {
    let (_key, csr) = CsrSpec::workload(KeyKind::P256, spiffe).build();
    RequestBuilder::istio("firefly-istio", &csr, spiffe)
}

fn leaf_of(obj: &serde_json::Value) -> x509_parser::certificate::X509Certificate<'static> {
    let chain = decoded(obj, "certificate");
    let first = split_pem(&chain)[0].to_owned();
    let der = pem::parse(first).unwrap().into_contents();
    let der: &'static [u8] = Box::leak(der.into_boxed_slice());
    x509_parser::parse_x509_certificate(der).unwrap().1
}

/// Waits for a Warning event with `reason` on request `name`.
async fn wait_warning_event(env: &Env, name: &str, reason: &str) {
    kube_sim::wait_for(PATIENCE, || async {
        env.events_for(NS, name)
            .await
            .iter()
            .any(|e| e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some(reason))
    })
    .await
    .unwrap_or_else(|_| panic!("a Warning event with reason {reason}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unapproved_request_is_untouched_until_approved_then_issued_once() {
    let env = env_with_issuer().await;
    let waiting = env.create_request(&workload_request(WORKLOAD)).await;
    // Barrier: a later request is answered, so the unapproved one has been seen and left alone.
    let barrier = approved(&env, &workload_request(WORKLOAD)).await;
    env.wait_ready_reason(NS, &barrier, "Issued").await;
    let obj = env.request(NS, &waiting).unwrap();
    assert!(
        condition(&obj, "Ready").is_none(),
        "unapproved request touched: {obj:#}"
    );
    let writes_before = env.status_writes();
    env.approve(NS, &waiting).await;
    env.wait_ready_reason(NS, &waiting, "Issued").await;
    assert_eq!(env.signed(), 2);
    assert_eq!(
        env.status_writes() - writes_before,
        2,
        "the approval and exactly one write of ours"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_request_fails_as_denied_with_a_warning_event_and_nothing_signed() {
    let env = env_with_issuer().await;
    let name = env.create_request(&workload_request(WORKLOAD)).await;
    env.set_approval(NS, &name, "Denied").await;
    let obj = env.wait_ready_reason(NS, &name, "Denied").await;
    assert_eq!(kube_sim::condition_status(&obj, "Ready"), Some("False"));
    assert_eq!(
        kube_sim::condition_status(&obj, "Denied"),
        Some("True"),
        "Denied kept"
    );
    assert!(obj["status"]["failureTime"].is_string(), "{obj:#}");
    assert!(obj["status"].get("certificate").is_none());
    assert_eq!(env.signed(), 0);
    wait_warning_event(&env, &name, "Denied").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_already_failed_by_someone_else_is_never_signed() {
    let env = env_with_issuer().await;
    let name = env.create_request(&workload_request(WORKLOAD)).await;
    let body = json!({
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": name, "namespace": NS},
        "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Failed", "message": "failed elsewhere",
            "lastTransitionTime": jiff::Timestamp::now().to_string()}]},
    });
    let api: kube::Api<firefly::crd::CertificateRequest> =
        kube::Api::namespaced(env.client.clone(), NS);
    api.patch_status(
        &name,
        &kube::api::PatchParams::apply("another-issuer").force(),
        &kube::api::Patch::Apply(&body),
    )
    .await
    .unwrap();
    env.approve(NS, &name).await;
    let barrier = approved(&env, &workload_request(WORKLOAD)).await;
    env.wait_ready_reason(NS, &barrier, "Issued").await;
    let obj = env.request(NS, &name).unwrap();
    assert_eq!(
        ready_message(&obj),
        "failed elsewhere",
        "terminal request rewritten: {obj:#}"
    );
    assert_eq!(env.signed(), 1, "only the barrier was signed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_issuer_leaves_the_request_pending_until_the_issuer_is_created() {
    let env = Env::start().await;
    let name = approved(&env, &workload_request(WORKLOAD)).await;
    let obj = env.wait_ready_reason(NS, &name, "Pending").await;
    let message = ready_message(&obj);
    assert!(
        message.contains("istio-system/firefly-istio") && message.contains("not found"),
        "{message}"
    );
    assert!(obj["status"].get("failureTime").is_none());
    env.create_issuer(Some(NS), "firefly-istio", json!({}))
        .await;
    let obj = env.wait_ready_reason(NS, &name, "Issued").await;
    let Verdict { ok, output: out } =
        openssl_verify(&decoded(&obj, "certificate"), &decoded(&obj, "ca"), "any");
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlspc_outage_beyond_policy_staleness_keeps_requests_pending_until_it_ends() {
    let env = Env::start_with(Options {
        policy_refresh_interval: "200ms",
        policy_max_staleness: "1s",
        ..Options::default()
    })
    .await;
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    let outage = firefly::tlspc_mock::Faults {
        route_errors: vec![firefly::tlspc_mock::RouteError {
            route: firefly::tlspc_mock::Route::Configurations,
            status: 503,
            count: None,
            probability: None,
            body: firefly::tlspc_mock::ErrorBody::Real,
        }],
        ..Default::default()
    };
    env.mock.set_faults(outage).unwrap();
    kube_sim::wait_for(PATIENCE, || async {
        env.sim
            .object(GROUP, "issuers", NS, "firefly-istio")
            .is_some_and(|o| kube_sim::condition_status(&o, "Ready") == Some("False"))
    })
    .await
    .expect("issuer reported not Ready once the policies are stale");
    let name = approved(&env, &workload_request(WORKLOAD)).await;
    let obj = env.wait_ready_reason(NS, &name, "Pending").await;
    assert!(ready_message(&obj).contains("not ready"), "{obj:#}");
    assert_eq!(env.signed(), 0);
    env.mock.set_faults(Default::default()).unwrap();
    let obj = env.wait_ready_reason(NS, &name, "Issued").await;
    let Verdict { ok, output: out } =
        openssl_verify(&decoded(&obj, "certificate"), &decoded(&obj, "ca"), "any");
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_workload_and_istio_csr_serving_requests_are_issued_and_verify() {
    let env = env_with_issuer().await;
    let (_key, csr) = CsrSpec::workload(KeyKind::Rsa2048, WORKLOAD).build();
    let rsa = approved(
        &env,
        &RequestBuilder::istio("firefly-istio", &csr, WORKLOAD),
    )
    .await;
    let (_key, csr) = CsrSpec::serving(&["cert-manager-istio-csr.cert-manager.svc"]).build();
    let mut serving = RequestBuilder::istio("firefly-istio", &csr, "istio-csr-serving");
    serving.usages = Some(vec!["server auth".into()]);
    let serving = approved(&env, &serving).await;
    for name in [&rsa, &serving] {
        let obj = env.wait_ready_reason(NS, name, "Issued").await;
        let Verdict { ok, output: out } =
            openssl_verify(&decoded(&obj, "certificate"), &decoded(&obj, "ca"), "any");
        assert!(ok, "{name}: {out}");
    }
    let rsa_obj = env.request(NS, &rsa).unwrap();
    let verdict = verifiers::python_verify(
        &decoded(&rsa_obj, "certificate"),
        &decoded(&rsa_obj, "ca"),
        WORKLOAD,
    );
    assert!(
        verdict.ok,
        "Python cryptography on the RSA leaf: {}",
        verdict.output
    );
    let leaf = leaf_of(&env.request(NS, &serving).unwrap());
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert!(
        format!("{:?}", san.value.general_names)
            .contains("cert-manager-istio-csr.cert-manager.svc")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istiod_certificate_shaped_request_from_cert_manager_is_issued() {
    // cert-manager's own service account is listed: it acts for istiod's Certificate, made in
    // istio-system (a mesh issuer namespace, so istiod's identity may be issued there).
    let env = Env::start_with(Options {
        allowed_requesters: vec![ISTIO_CSR_SA.into(), CERT_MANAGER_SA.into()],
        ..Options::default()
    })
    .await;
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    let spiffe = "spiffe://cluster.local/ns/istio-system/sa/istiod-service-account";
    let spec = CsrSpec {
        key: KeyKind::Rsa2048,
        uris: vec![spiffe.into()],
        dns: vec!["istiod.istio-system.svc".into()],
        common_name: Some("istiod.istio-system.svc".into()),
        empty_org: false,
    };
    let (_key, csr) = spec.build();
    let mut req = RequestBuilder::istio("firefly-istio", &csr, spiffe)
        .annotation("istio.cert-manager.io/identities", None);
    req.username = Some(CERT_MANAGER_SA.into());
    req.usages = Some(vec![
        "digital signature".into(),
        "key encipherment".into(),
        "server auth".into(),
        "client auth".into(),
    ]);
    req.duration = Some("2160h0m0s".into());
    let name = approved(&env, &req).await;
    let obj = env.wait_ready_reason(NS, &name, "Issued").await;
    let Verdict { ok, output: out } =
        openssl_verify(&decoded(&obj, "certificate"), &decoded(&obj, "ca"), "any");
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_duration_is_clamped_to_the_policy_validity() {
    let env = env_with_issuer().await;
    let mut req = workload_request(WORKLOAD);
    req.duration = Some("2160h0m0s".into());
    let name = approved(&env, &req).await;
    let obj = env.wait_ready_reason(NS, &name, "Issued").await;
    let leaf = leaf_of(&obj);
    let lifetime = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
    // The shipped policy's validityPeriod is PT1H; NotBefore is backdated for clock skew.
    assert!(
        lifetime <= 3600 + 60,
        "lifetime {lifetime}s not clamped to 1h"
    );
    assert!(
        lifetime >= 3600,
        "lifetime {lifetime}s shorter than the policy's hour"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_policy_fails_at_once_naming_it() {
    let env = env_with_issuer().await;
    let req = workload_request(WORKLOAD)
        .annotation("firefly.venafi.com/policy-name", Some("no-such-policy"));
    let name = approved(&env, &req).await;
    let obj = env.wait_ready_reason(NS, &name, "Failed").await;
    assert!(ready_message(&obj).contains("no-such-policy"), "{obj:#}");
    assert!(obj["status"]["failureTime"].is_string());
    assert_eq!(env.signed(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_policy_fails_and_issuer_default_policy_fills_in() {
    let env = env_with_issuer().await;
    env.ready_issuer(
        Some(NS),
        "with-default",
        json!({"defaultPolicyName": POLICY}),
    )
    .await;
    let bare = workload_request(WORKLOAD).annotation("firefly.venafi.com/policy-name", None);
    let failing = approved(&env, &bare).await;
    let mut defaulted = bare.clone();
    defaulted.issuer_name = "with-default".into();
    let defaulted = approved(&env, &defaulted).await;
    let obj = env.wait_ready_reason(NS, &failing, "Failed").await;
    assert!(ready_message(&obj).contains("defaultPolicyName"), "{obj:#}");
    env.wait_ready_reason(NS, &defaulted, "Issued").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requester_not_allowed_fails_with_a_warning_event() {
    let env = Env::start().await;
    env.ready_issuer(
        Some(NS),
        "firefly-istio",
        json!({"allowedRequesters": [ISTIO_CSR_SA]}),
    )
    .await;
    let mut req = workload_request(WORKLOAD);
    req.username = Some("system:serviceaccount:sandbox:intruder".into());
    let name = approved(&env, &req).await;
    let obj = env.wait_ready_reason(NS, &name, "Failed").await;
    assert!(
        ready_message(&obj).contains("system:serviceaccount:sandbox:intruder"),
        "{obj:#}"
    );
    wait_warning_event(&env, &name, "RequesterNotAllowed").await;
    // As an operator reads it (docs/operations.md, Events).
    let events = env.kubectl(
        &[
            "events",
            "-n",
            NS,
            "--for",
            &format!("certificaterequest/{name}"),
        ],
        None,
    );
    assert!(
        events.contains("Warning") && events.contains("RequesterNotAllowed"),
        "{events}"
    );
    let allowed = approved(&env, &workload_request(WORKLOAD)).await;
    env.wait_ready_reason(NS, &allowed, "Issued").await;
    assert_eq!(env.signed(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_annotation_that_differs_from_the_csr_fails() {
    let env = env_with_issuer().await;
    let req = workload_request(WORKLOAD).annotation(
        "istio.cert-manager.io/identities",
        Some("spiffe://cluster.local/ns/sandbox/sa/other"),
    );
    let name = approved(&env, &req).await;
    let obj = env.wait_ready_reason(NS, &name, "Failed").await;
    assert!(
        ready_message(&obj).contains("spiffe://cluster.local/ns/sandbox/sa/other"),
        "{obj:#}"
    );
    assert_eq!(env.signed(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csr_outside_the_policy_fails_naming_the_rule() {
    let env = env_with_issuer().await;
    let foreign = "spiffe://evil.example/ns/sandbox/sa/httpbin";
    let name = approved(&env, &workload_request(foreign)).await;
    let obj = env.wait_ready_reason(NS, &name, "Failed").await;
    let message = ready_message(&obj);
    assert!(message.contains("evil.example"), "{message}");
    let mut garbage = workload_request(WORKLOAD);
    garbage.csr_pem =
        "-----BEGIN CERTIFICATE REQUEST-----\nnot a csr\n-----END CERTIFICATE REQUEST-----\n"
            .into();
    let garbage = approved(&env, &garbage).await;
    env.wait_ready_reason(NS, &garbage, "Failed").await;
    assert_eq!(env.signed(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_ca_request_fails_without_signing() {
    let env = env_with_issuer().await;
    let mut req = workload_request(WORKLOAD);
    req.is_ca = Some(true);
    let name = approved(&env, &req).await;
    env.wait_ready_reason(NS, &name, "Failed").await;
    assert_eq!(env.signed(), 0);
}

/// cert-manager.md §2 step 1: istio-csr deletes each request as soon as it has its answer, so
/// a 404 on our status write is a normal end. The API server answers the write with a 404 (the
/// object itself is left in place, so a retry would show as a second write and an Issued status).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_deleted_before_its_answer_is_not_an_error() {
    // Without checkApproval no approver writes the status, so our write is the only status patch.
    let env = Env::start_with(Options {
        check_approval: false,
        ..Options::default()
    })
    .await;
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    let writes_before = env.status_writes();
    env.sim.faults().inject(
        kube_sim::FaultRule::error(404)
            .verb("patch")
            .resource("certificaterequests/status")
            .times(1),
    );
    let gone = env.create_request(&workload_request(WORKLOAD)).await;
    kube_sim::wait_for(PATIENCE, || async { env.status_writes() > writes_before })
        .await
        .expect("the controller answers the request (and meets the 404)");
    // A retry would come at most retry_after_failed_reconcile(1, 1.0, None) after the failed write.
    tokio::time::sleep(4 * firefly::issuer::decide::retry_after_failed_reconcile(1, 1.0, None))
        .await;
    let barrier = env.create_request(&workload_request(WORKLOAD)).await;
    env.wait_ready_reason(NS, &barrier, "Issued").await;

    let obj = env
        .request(NS, &gone)
        .expect("the 404 was injected, not a deletion");
    assert!(
        condition(&obj, "Ready").is_none(),
        "the write that met the 404 is not retried: {obj:#}"
    );
    assert_eq!(
        env.status_writes() - writes_before,
        2,
        "one write per request: the one that met the 404 and the barrier's"
    );
    let metrics = env.controller.as_ref().unwrap().metrics();
    let errors: u64 = ["404", "409", "500", "transport"]
        .iter()
        .map(|c| metrics.write_errors.with_label_values(&[c]).get())
        .sum();
    assert_eq!(errors, 0, "a 404 after deletion is not a write error");
    assert_eq!(
        metrics.outcomes.with_label_values(&["Issued"]).get(),
        1,
        "only the barrier's answer was written; the deleted request's is not counted as written"
    );
    assert_eq!(
        env.signed(),
        2,
        "the deleted request was signed once, not again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_issuer_serves_requests_of_any_namespace() {
    let env = Env::start().await;
    env.ready_issuer(None, "firefly-cluster", json!({})).await;
    let mut req = workload_request(WORKLOAD);
    req.namespace = "sandbox".into();
    req.issuer_name = "firefly-cluster".into();
    req.issuer_kind = Some("ClusterIssuer".into());
    let name = approved(&env, &req).await;
    kube_sim::wait_for(PATIENCE, || async {
        env.sim
            .object("cert-manager.io", "certificaterequests", "sandbox", &name)
            .is_some_and(|o| ready_reason(&o).as_deref() == Some("Issued"))
    })
    .await
    .expect("ClusterIssuer request issued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_issuer_does_not_serve_other_namespaces() {
    let env = env_with_issuer().await;
    let mut req = workload_request(WORKLOAD);
    req.namespace = "sandbox".into();
    let name = approved(&env, &req).await;
    kube_sim::wait_for(PATIENCE, || async {
        env.sim
            .object("cert-manager.io", "certificaterequests", "sandbox", &name)
            .is_some_and(|o| ready_reason(&o).as_deref() == Some("Pending"))
    })
    .await
    .expect("pending: no Issuer firefly-istio in sandbox");
    let obj = env.request("sandbox", &name).expect("request");
    let message = ready_message(&obj);
    assert!(
        message.starts_with("IssuerNotFound:"),
        "Pending for another cause: {obj:#}"
    );
    assert!(obj["status"].get("certificate").is_none(), "{obj:#}");
    // Control: a request the issuer does serve, in its own namespace, is signed; the one in
    // sandbox still is not (the counter is the signer's own).
    let control = approved(&env, &workload_request(WORKLOAD)).await;
    env.wait_ready_reason(NS, &control, "Issued").await;
    assert_eq!(env.signed(), 1, "only the istio-system request was signed");
    let obj = env.request("sandbox", &name).expect("request");
    assert_eq!(ready_reason(&obj).as_deref(), Some("Pending"), "{obj:#}");
    assert!(obj["status"].get("certificate").is_none(), "{obj:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_events_are_off_by_default_and_published_when_enabled() {
    let quiet = env_with_issuer().await;
    let name = approved(&quiet, &workload_request(WORKLOAD)).await;
    quiet.wait_ready_reason(NS, &name, "Issued").await;
    assert!(
        quiet.events_for(NS, &name).await.is_empty(),
        "no event for a success by default"
    );

    let loud = Env::start_with(Options {
        success_events: true,
        ..Options::default()
    })
    .await;
    loud.ready_issuer(Some(NS), "firefly-istio", json!({}))
        .await;
    let name = approved(&loud, &workload_request(WORKLOAD)).await;
    loud.wait_ready_reason(NS, &name, "Issued").await;
    kube_sim::wait_for(PATIENCE, || async {
        loud.events_for(NS, &name)
            .await
            .iter()
            .any(|e| e.type_.as_deref() == Some("Normal") && e.reason.as_deref() == Some("Issued"))
    })
    .await
    .expect("a Normal Issued event with controller.successEvents");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_trust_domain_refuses_identities_of_another_domain() {
    let env = Env::start().await;
    env.ready_issuer(
        Some(NS),
        "other-domain",
        json!({"trustDomain": "mesh.example"}),
    )
    .await;
    let mut req = workload_request(WORKLOAD);
    req.issuer_name = "other-domain".into();
    let name = approved(&env, &req).await;
    let obj = env.wait_ready_reason(NS, &name, "Failed").await;
    assert!(ready_message(&obj).contains("mesh.example"), "{obj:#}");
    assert_eq!(env.signed(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_check_approval_unapproved_requests_are_signed() {
    let env = Env::start_with(Options {
        check_approval: false,
        ..Options::default()
    })
    .await;
    env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    let name = env.create_request(&workload_request(WORKLOAD)).await;
    let obj = env.wait_ready_reason(NS, &name, "Issued").await;
    assert!(
        condition(&obj, "Approved").is_none(),
        "no approval was needed: {obj:#}"
    );
}

/// The controller's event recorder (every door's events go through it) against kube-sim: a
/// repeat on the same object is a series of the first Event, another object gets its own Event,
/// and a repeat whose Event is gone from the server creates a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_events_form_a_series_and_a_deleted_event_is_created_again() {
    use firefly::events::EventRecorder;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use kube::api::{Api, DeleteParams, ListParams};
    use kube::runtime::events::{Event, EventType, Reporter};

    let sim = support::cluster::start_sim(&["apps"]).await.unwrap();
    let client = sim.client().await.unwrap();
    let recorder = EventRecorder::new(
        client.clone(),
        Reporter {
            controller: "firefly".into(),
            instance: Some("firefly-0".into()),
        },
    );
    let refusal = Event {
        type_: EventType::Warning,
        reason: "RequesterNotAllowed".into(),
        note: Some("requester not in controller.allowedRequesters".into()),
        action: "Sign".into(),
        secondary: None,
    };
    let request = |name: &str| ObjectReference {
        api_version: Some("cert-manager.io/v1".into()),
        kind: Some("CertificateRequest".into()),
        namespace: Some("apps".into()),
        name: Some(name.into()),
        uid: Some(format!("uid-{name}")),
        ..ObjectReference::default()
    };
    let events: Api<K8sEvent> = Api::namespaced(client, "apps");
    let about = |name: &'static str| {
        let events = events.clone();
        async move {
            let mut found: Vec<K8sEvent> = events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
                .collect();
            found.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
            found
        }
    };

    for _ in 0..3 {
        recorder.publish(&refusal, &request("a")).await.unwrap();
    }
    recorder.publish(&refusal, &request("b")).await.unwrap();
    let on_a = about("a").await;
    assert_eq!(on_a.len(), 1, "one Event for three refusals: {on_a:#?}");
    let series = on_a[0].series.as_ref().expect("a series");
    assert_eq!(series.count, 3);
    assert_eq!(on_a[0].reporting_controller.as_deref(), Some("firefly"));
    assert_eq!(on_a[0].reporting_instance.as_deref(), Some("firefly-0"));
    assert_eq!(on_a[0].type_.as_deref(), Some("Warning"));
    let on_b = about("b").await;
    assert_eq!(on_b.len(), 1);
    assert!(on_b[0].series.is_none(), "b's first event is not a series");
    assert_eq!(recorder.remembered(), 2);

    let gone = on_a[0].metadata.name.clone().unwrap();
    events
        .delete(&gone, &DeleteParams::default())
        .await
        .unwrap();
    recorder.publish(&refusal, &request("a")).await.unwrap();
    let on_a = about("a").await;
    assert_eq!(on_a.len(), 1, "{on_a:#?}");
    assert_ne!(on_a[0].metadata.name.as_deref(), Some(gone.as_str()));
    assert!(on_a[0].series.is_none(), "a new Event, not a series");
    recorder.publish(&refusal, &request("a")).await.unwrap();
    let on_a = about("a").await;
    assert_eq!(on_a[0].series.as_ref().map(|s| s.count), Some(2));

    // A request named with 250 characters: its Event's name still fits the 253 kube-sim (as
    // kube-apiserver) accepts.
    let long: &'static str = Box::leak("r".repeat(250).into_boxed_str());
    recorder.publish(&refusal, &request(long)).await.unwrap();
    let on_long = about(long).await;
    assert_eq!(on_long.len(), 1);
    assert!(on_long[0].metadata.name.as_ref().unwrap().len() <= 253);
}

/// A group other than the default, as a chart installed with `crd.groupName: example.org`
/// serves the issuers (tests/helm_config.rs renders the same value).
const OTHER_GROUP: &str = "example.org";

/// The environment with the controller configured for `controller.cert-manager.groupName:
/// group`, and the Issuer and ClusterIssuer CRDs also served under that group as the chart
/// renders them for `crd.groupName` (only `spec.group` and the CRD's name change). The default
/// group's CRDs stay installed, so nothing here passes by reading the default group.
async fn env_with_group(group: &str) -> Env {
    let mut env = Env::start().await;
    env.stop_controller().await;
    for mut crd in firefly::crd::crds() {
        crd.metadata.name = Some(format!("{}.{group}", crd.spec.names.plural));
        crd.spec.group = group.to_owned();
        let doc = serde_json::to_string(&crd).expect("the CRD serializes");
        env.sim
            .install_crds_yaml(&doc)
            .await
            .expect("the issuer CRDs of the other group are installed");
    }
    env.config.controller.cert_manager.group_name = group.to_owned();
    env.start_controller().await;
    env
}

/// Creates an Issuer (in `ns`) or ClusterIssuer (`ns` None) of `group` with `spec` (none at all
/// when `None`) and waits until its status carries Ready=True.
async fn ready_issuer_of_group(
    env: &Env,
    group: &str,
    ns: Option<&str>,
    name: &str,
    spec: Option<serde_json::Value>,
) {
    use kube::api::{Api, ApiResource, DynamicObject, PostParams};
    let (kind, plural) = match ns {
        Some(_) => ("Issuer", "issuers"),
        None => ("ClusterIssuer", "clusterissuers"),
    };
    let resource = ApiResource {
        group: group.into(),
        version: "v1alpha1".into(),
        api_version: format!("{group}/v1alpha1"),
        kind: kind.into(),
        plural: plural.into(),
    };
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(env.client.clone(), ns, &resource),
        None => Api::all_with(env.client.clone(), &resource),
    };
    let mut manifest = json!({
        "apiVersion": resource.api_version,
        "kind": kind,
        "metadata": {"name": name},
    });
    if let Some(spec) = spec {
        manifest["spec"] = spec;
    }
    let obj: DynamicObject = serde_json::from_value(manifest).unwrap();
    if let Err(e) = api.create(&PostParams::default(), &obj).await {
        panic!("{kind} {name} of group {group} refused: {e}");
    }
    kube_sim::wait_for(PATIENCE, || async {
        env.sim
            .object(group, plural, ns.unwrap_or(""), name)
            .is_some_and(|o| kube_sim::condition_status(&o, "Ready") == Some("True"))
    })
    .await
    .unwrap_or_else(|_| panic!("{kind} {name} of group {group} never became Ready"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_issuer_group_is_watched_written_and_served() {
    let env = env_with_group(OTHER_GROUP).await;
    let api_version = format!("{OTHER_GROUP}/v1alpha1");
    ready_issuer_of_group(
        &env,
        OTHER_GROUP,
        Some(NS),
        "firefly-istio",
        Some(json!({})),
    )
    .await;
    ready_issuer_of_group(&env, OTHER_GROUP, None, "firefly-cluster", Some(json!({}))).await;
    assert!(
        env.sim
            .object(GROUP, "issuers", NS, "firefly-istio")
            .is_none(),
        "nothing was written under the default group"
    );

    for (kind, issuer) in [
        ("Issuer", "firefly-istio"),
        ("ClusterIssuer", "firefly-cluster"),
    ] {
        let mut req = workload_request(WORKLOAD);
        req.issuer_name = issuer.into();
        req.issuer_kind = Some(kind.into());
        req.issuer_group = Some(OTHER_GROUP.into());
        let name = approved(&env, &req).await;
        let obj = env.wait_ready_reason(NS, &name, "Issued").await;
        assert_eq!(kube_sim::condition_status(&obj, "Ready"), Some("True"));
        assert!(
            decoded(&obj, "certificate").contains("BEGIN CERTIFICATE"),
            "a certificate for the {kind}'s request: {obj:#}"
        );
        assert_eq!(decoded(&obj, "ca").trim(), env.root_pem().trim());
    }

    // The issuers' Ready events name the configured group (a ClusterIssuer's go to `default`).
    for (ns, issuer) in [(NS, "firefly-istio"), ("default", "firefly-cluster")] {
        kube_sim::wait_for(PATIENCE, || async {
            !env.events_for(ns, issuer).await.is_empty()
        })
        .await
        .unwrap_or_else(|_| panic!("no event about issuer {issuer}"));
        for event in env.events_for(ns, issuer).await {
            let regarding = event.regarding.expect("the event names its object");
            assert_eq!(
                regarding.api_version.as_deref(),
                Some(api_version.as_str()),
                "event about {issuer}: {regarding:?}"
            );
        }
    }
}

/// The environment with `controller.maxRetryDuration: max_retry`, issuer `firefly-istio`
/// created Ready in istio-system when `issuer` is set, then a TLSPC outage that outlasts
/// `policyMaxStaleness`: the signer (and every issuer) turns not Ready and stays so.
async fn env_in_outage(max_retry: &'static str, issuer: bool) -> Env {
    let env = Env::start_with(Options {
        policy_refresh_interval: "200ms",
        policy_max_staleness: "1s",
        max_retry_duration: max_retry,
        ..Options::default()
    })
    .await;
    if issuer {
        env.ready_issuer(Some(NS), "firefly-istio", json!({})).await;
    }
    let outage = firefly::tlspc_mock::Faults {
        route_errors: vec![firefly::tlspc_mock::RouteError {
            route: firefly::tlspc_mock::Route::Configurations,
            status: 503,
            count: None,
            probability: None,
            body: firefly::tlspc_mock::ErrorBody::Real,
        }],
        ..Default::default()
    };
    env.mock.set_faults(outage).unwrap();
    kube_sim::wait_for(PATIENCE, || async { !env.authority.ready().ready })
        .await
        .expect("the signer reported not ready once the policies are stale");
    if issuer {
        kube_sim::wait_for(PATIENCE, || async {
            env.sim
                .object(GROUP, "issuers", NS, "firefly-istio")
                .is_some_and(|o| kube_sim::condition_status(&o, "Ready") == Some("False"))
        })
        .await
        .expect("issuer reported not Ready once the policies are stale");
    }
    env
}

/// cert-manager.md §2.8: an issuer that is not Ready is a transient cause, so its requests are
/// Pending, then Failed once older than `controller.maxRetryDuration` — not Pending forever
/// (istio-csr only gives up on `Failed`), even though the issuer never changes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_for_an_issuer_never_ready_fails_issuer_not_ready_after_max_retry_duration() {
    let env = env_in_outage("2s", true).await;
    let name = approved(&env, &workload_request(WORKLOAD)).await;
    let obj = env.wait_ready_reason(NS, &name, "Failed").await;
    let message = ready_message(&obj);
    for part in [
        "istio-system/firefly-istio",
        "not ready",
        "controller.maxRetryDuration 2s",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    assert!(obj["status"]["failureTime"].is_string(), "{obj:#}");
    assert!(obj["status"].get("certificate").is_none(), "{obj:#}");
    assert_eq!(env.signed(), 0);
    wait_warning_event(&env, &name, "IssuerNotReady").await;
}

/// A request Pending on a missing issuer says why it waits now, not why it waited first: once
/// the issuer exists but is not Ready, the message and a new Warning event say "not ready";
/// once it is Ready, the request is signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_request_tells_its_new_cause_when_the_missing_issuer_exists_but_is_not_ready() {
    let env = env_in_outage("5m", false).await;
    let name = approved(&env, &workload_request(WORKLOAD)).await;
    let obj = env.wait_ready_reason(NS, &name, "Pending").await;
    assert!(ready_message(&obj).contains("not found"), "{obj:#}");
    env.create_issuer(Some(NS), "firefly-istio", json!({}))
        .await;
    let said_not_ready = kube_sim::wait_for(PATIENCE, || async {
        env.request(NS, &name)
            .is_some_and(|o| ready_message(&o).contains("not ready"))
    })
    .await;
    let obj = env.request(NS, &name).unwrap_or_default();
    assert!(
        said_not_ready.is_ok(),
        "the Pending message still names the first cause: {obj:#}"
    );
    assert_eq!(ready_reason(&obj).as_deref(), Some("Pending"));
    assert!(!ready_message(&obj).contains("not found"), "{obj:#}");
    wait_warning_event(&env, &name, "IssuerNotReady").await;
    env.mock.set_faults(Default::default()).unwrap();
    let obj = env.wait_ready_reason(NS, &name, "Issued").await;
    let Verdict { ok, output: out } =
        openssl_verify(&decoded(&obj, "certificate"), &decoded(&obj, "ca"), "any");
    assert!(ok, "{out}");
}

/// cert-manager.md §3: Firefly's Issuer and ClusterIssuer have an empty spec and every field we
/// add is optional, so a manifest with metadata only is valid (the API server checks it against
/// the CRD's schema), becomes Ready and serves requests with the defaults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_and_a_cluster_issuer_without_spec_are_accepted_become_ready_and_sign() {
    let env = Env::start().await;
    for (kind, ns, name) in [
        ("Issuer", Some(NS), "firefly-istio"),
        ("ClusterIssuer", None, "firefly-cluster"),
    ] {
        ready_issuer_of_group(&env, GROUP, ns, name, None).await;
        let mut req = workload_request(WORKLOAD);
        req.issuer_name = name.into();
        req.issuer_kind = Some(kind.into());
        let request = approved(&env, &req).await;
        let obj = env.wait_ready_reason(NS, &request, "Issued").await;
        assert_eq!(decoded(&obj, "ca").trim(), env.root_pem().trim(), "{kind}");
    }
}
