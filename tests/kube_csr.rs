//! The Kubernetes CertificateSigningRequest front door end to end (issue 16): kube-sim with
//! authentication and RBAC, the mock TLSPC, the real controller, a test that plays istiod as a
//! registration authority with its own ServiceAccount token, and openssl, Python `cryptography`,
//! pkilint and py-spiffe as the judges of every chain.

use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, DeleteParams, PostParams};
use rcgen::KeyPair;
use serde_json::{Value, json};
use support::controller::*;
use support::csr::{RawCsr, gn_dns, name, p256, rsa};
use support::istiod::{
    CLUSTER_SIGNER, ISTIOD_USERNAME, SERVING_USAGES, WORKLOAD_USAGES, csr, grant, istiod_client,
    set_approval, sign,
};
use support::verifiers;

const ISTIOD: &str = ISTIOD_USERNAME;
const WORKLOAD: &str = "spiffe://cluster.local/ns/sandbox/sa/httpbin";

fn options(max_retry: &'static str) -> Options {
    Options {
        authenticate: true,
        certificate_signing_requests: true,
        allowed_requesters: vec![ISTIOD.to_owned(), "kubernetes-admin".to_owned()],
        max_retry_duration: max_retry,
        ..Options::default()
    }
}

/// The ClusterIssuer istiod's signer names, for every namespace's identities.
async fn mesh_issuer(env: &Env) {
    env.ready_issuer(
        None,
        "istio-ca",
        json!({"defaultPolicyName": POLICY, "identityNamespaces": ["*"]}),
    )
    .await;
}

async fn istiod(env: &Env) -> Api<CertificateSigningRequest> {
    istiod_client(&env.sim)
        .await
        .expect("istiod's RBAC and token")
}

async fn apply_rbac(env: &Env, name: &str, rules: Value, subject: Value) {
    grant(&env.sim, name, rules, subject).expect("RBAC objects");
}

/// istio-agent's workload CSR: `O=`, a critical SAN with one SPIFFE URI.
fn agent_csr(key: &KeyPair, spiffe: &str) -> String {
    RawCsr::istio(key, spiffe).pem(key)
}

async fn approve(api: &Api<CertificateSigningRequest>, name: &str, type_: &str) {
    set_approval(api, name, type_).await.expect("approval");
}

/// istiod's flow; checks the name and the requester the API server recorded.
async fn istiod_sign(
    api: &Api<CertificateSigningRequest>,
    request: &CertificateSigningRequest,
) -> (String, Duration) {
    let signed = sign(api, request)
        .await
        .expect("istiod gets its certificate");
    assert!(signed.name.starts_with("csr-workload-"), "{}", signed.name);
    assert_eq!(
        signed.requester.as_deref(),
        Some(ISTIOD),
        "the API server records the requester"
    );
    (signed.chain_pem, signed.latency)
}

fn leaf_lifetime(chain: &str) -> Duration {
    let leaf = verifiers::split_pem(chain).remove(0);
    let (_, pem) = x509_parser::pem::parse_x509_pem(leaf.as_bytes()).expect("leaf PEM");
    let cert = pem.parse_x509().expect("leaf");
    let v = cert.validity();
    Duration::from_secs((v.not_after.timestamp() - v.not_before.timestamp()) as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istiod_as_ra_gets_workload_and_serving_certificates_through_the_csr_api() {
    let env = Env::start_with(options("5m")).await;
    mesh_issuer(&env).await;
    let api = istiod(&env).await;
    let root = env.root_pem();
    let mut latencies = Vec::new();

    for (kind, key) in [("RSA-2048", rsa(2048)), ("P-256", p256())] {
        let request = csr(
            CLUSTER_SIGNER,
            &agent_csr(&key, WORKLOAD),
            &WORKLOAD_USAGES,
            Some(86400),
        );
        let (chain, latency) = istiod_sign(&api, &request).await;
        latencies.push(latency);
        let certs = verifiers::split_pem(&chain);
        assert!(certs.len() >= 2, "{kind}: leaf then the intermediates");
        assert!(
            !certs.iter().any(|c| c.trim() == root.trim()),
            "{kind}: the root is not part of status.certificate"
        );
        let v = openssl_verify(&chain, &root, "sslclient");
        assert!(v.ok, "{kind}: openssl: {}", v.output);
        let v = openssl_verify(&chain, &root, "sslserver");
        assert!(v.ok, "{kind}: openssl: {}", v.output);
        let v = verifiers::python_verify(&chain, &root, WORKLOAD);
        assert!(v.ok, "{kind}: Python cryptography: {}", v.output);
        let v = verifiers::pkilint_verify(&chain, &root);
        assert!(v.ok, "{kind}: pkilint: {}", v.output);
        let v = verifiers::spiffe_verify(&chain, &key.serialize_pem(), WORKLOAD);
        assert!(v.ok, "{kind}: py-spiffe: {}", v.output);
        // 86400 s asked, the policy's 1 h given.
        assert!(
            leaf_lifetime(&chain) <= Duration::from_secs(3600 + 300),
            "{kind}"
        );
    }

    // istio-agent's other subject: none at all (an empty RDN sequence instead of `O=`).
    let key = p256();
    let mut empty_subject = RawCsr::istio(&key, WORKLOAD);
    empty_subject.subject = name(&[]);
    let request = csr(
        CLUSTER_SIGNER,
        &empty_subject.pem(&key),
        &WORKLOAD_USAGES,
        Some(86400),
    );
    let (chain, latency) = istiod_sign(&api, &request).await;
    latencies.push(latency);
    let v = verifiers::spiffe_verify(&chain, &key.serialize_pem(), WORKLOAD);
    assert!(v.ok, "empty subject: py-spiffe: {}", v.output);

    // istiod's own DNS serving certificate (PILOT_CERT_PROVIDER=k8s.io/<signer>).
    let key = rsa(2048);
    let serving = RawCsr::istio(&key, "unused")
        .with_sans(&[gn_dns("istiod.istio-system.svc")])
        .pem(&key);
    let request = csr(CLUSTER_SIGNER, &serving, &SERVING_USAGES, None);
    let (chain, latency) = istiod_sign(&api, &request).await;
    latencies.push(latency);
    let v = openssl_verify(&chain, &root, "sslserver");
    assert!(v.ok, "serving: openssl: {}", v.output);
    let v = verifiers::pkilint_verify(&chain, &root);
    assert!(v.ok, "serving: pkilint: {}", v.output);

    // expirationSeconds at the API minimum (600) is honoured.
    let key = p256();
    let request = csr(
        CLUSTER_SIGNER,
        &agent_csr(&key, WORKLOAD),
        &WORKLOAD_USAGES,
        Some(600),
    );
    let (chain, latency) = istiod_sign(&api, &request).await;
    latencies.push(latency);
    let lifetime = leaf_lifetime(&chain);
    assert!(
        lifetime >= Duration::from_secs(600) && lifetime <= Duration::from_secs(600 + 300),
        "{lifetime:?}"
    );

    let metrics = env.controller.as_ref().unwrap().metrics();
    assert_eq!(
        metrics
            .signer_sign
            .with_label_values(&["true", "CertificateSigningRequest"])
            .get(),
        5
    );
    // The outcome is counted once the write has been accepted, which can be just after istiod
    // sees the certificate.
    let issued_outcomes = || {
        metrics
            .issuance_outcomes
            .with_label_values(&["CertificateSigningRequest", "Issued"])
            .get()
    };
    let _ = kube_sim::wait_for(PATIENCE, || async { issued_outcomes() >= 5 }).await;
    assert_eq!(issued_outcomes(), 5);
    assert_eq!(
        env.sim
            .request_count("patch", "certificatesigningrequests/status"),
        5,
        "one status write per CSR"
    );
    println!("approval -> certificate latency, 5 CSRs: {latencies:?}");
}

/// Reads CSR `name` straight from kube-sim's storage.
fn stored(env: &Env, name: &str) -> Value {
    env.sim
        .object(
            "certificates.k8s.io",
            "certificatesigningrequests",
            "",
            name,
        )
        .unwrap_or(Value::Null)
}

/// Waits until CSR `name` carries a certificate; `why` names the expectation on failure.
async fn wait_certificate(env: &Env, name: &str, why: &str) {
    kube_sim::wait_for(PATIENCE, || async {
        stored(env, name)["status"].get("certificate").is_some()
    })
    .await
    .expect(why);
}

/// A barrier through the CSR door: a workload CSR for the mesh signer, created and approved by
/// the admin now, waited for until signed. The door reads one watch of every CSR, in order, so
/// whatever it was to do about the events before this one's has been done once it is signed
/// (a negative assertion counts after it). Returns its name.
async fn barrier(env: &Env) -> String {
    let admin: Api<CertificateSigningRequest> = Api::all(env.client.clone());
    let name = approved_workload(&admin).await;
    wait_certificate(env, &name, "the barrier CSR is signed").await;
    name
}

/// A workload CSR for the mesh signer (no expirationSeconds), created and approved through
/// `api`. Returns its name.
async fn approved_workload(api: &Api<CertificateSigningRequest>) -> String {
    let key = p256();
    let request = csr(
        CLUSTER_SIGNER,
        &agent_csr(&key, WORKLOAD),
        &WORKLOAD_USAGES,
        None,
    );
    let name = create(api, request, &[]).await;
    approve(api, &name, "Approved").await;
    name
}

fn failed(obj: &Value) -> Option<(String, String)> {
    let c = condition(obj, "Failed")?;
    Some((
        c["reason"].as_str()?.to_owned(),
        c["message"].as_str().unwrap_or("").to_owned(),
    ))
}

async fn create(
    api: &Api<CertificateSigningRequest>,
    mut request: CertificateSigningRequest,
    annotations: &[(&str, &str)],
) -> String {
    if !annotations.is_empty() {
        request.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
    }
    api.create(&PostParams::default(), &request)
        .await
        .expect("CSR created")
        .metadata
        .name
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_csrs_are_left_untouched_or_failed_with_the_section_9_reason() {
    let env = Env::start_with(options("2s")).await;
    mesh_issuer(&env).await;
    env.ready_issuer(Some("sandbox"), "sb", json!({"defaultPolicyName": POLICY}))
        .await;
    let admin: Api<CertificateSigningRequest> = Api::all(env.client.clone());
    // mallory may create CSRs but is neither an allowed requester nor allowed to reference
    // the sandbox Issuer.
    apply_rbac(
        &env,
        "csr-creator",
        json!([{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"], "verbs": ["create", "get"]}]),
        json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "mallory"}),
    )
    .await;
    let mallory: Api<CertificateSigningRequest> = Api::all(
        env.sim
            .client_with_token(&env.sim.token_for("mallory", &[]))
            .await
            .unwrap(),
    );
    let workload = |signer: &str| {
        let key = p256();
        csr(
            signer,
            &agent_csr(&key, WORKLOAD),
            &WORKLOAD_USAGES,
            Some(3600),
        )
    };
    let sandbox_signer = "issuers.firefly.venafi.com/sandbox.sb";
    // A namespaced Issuer asked for another namespace's identity.
    let other_namespace = |signer: &str| {
        let key = p256();
        let pem = agent_csr(&key, "spiffe://cluster.local/ns/other/sa/x");
        csr(signer, &pem, &WORKLOAD_USAGES, Some(3600))
    };

    // Left untouched.
    let unapproved = create(&admin, workload(CLUSTER_SIGNER), &[]).await;
    let denied = create(&admin, workload(CLUSTER_SIGNER), &[]).await;
    approve(&admin, &denied, "Denied").await;
    let foreign = create(
        &admin,
        workload("clusterissuers.cert-manager.io/istio-ca"),
        &[],
    )
    .await;
    approve(&admin, &foreign, "Approved").await;
    let preset = create(&admin, workload(CLUSTER_SIGNER), &[]).await;
    let mut obj = admin.get_status(&preset).await.unwrap();
    obj.status.get_or_insert_with(Default::default).certificate =
        Some(k8s_openapi::ByteString(env.root_pem().into_bytes()));
    admin
        .replace_status(&preset, &PostParams::default(), &obj)
        .await
        .expect("someone else's certificate");
    approve(&admin, &preset, "Approved").await;

    // Failed, with the reason of DESIGN §9 and a message naming the rule.
    let key = p256();
    let dns_csr = RawCsr::istio(&key, "unused")
        .with_sans(&[gn_dns("evil.example.com")])
        .pem(&key);
    let cases: Vec<(String, &str, &str)> = vec![
        (
            create(
                &admin,
                workload("issuers.firefly.venafi.com/no-namespace"),
                &[],
            )
            .await,
            "InvalidSignerName",
            "no '.'",
        ),
        (
            create(
                &admin,
                workload("clusterissuers.firefly.venafi.com/nope"),
                &[],
            )
            .await,
            "IssuerNotFound",
            "controller.maxRetryDuration",
        ),
        (
            create(
                &admin,
                csr(CLUSTER_SIGNER, &dns_csr, &WORKLOAD_USAGES, None),
                &[],
            )
            .await,
            "PolicyDenied",
            "evil.example.com",
        ),
        (
            create(
                &admin,
                csr(
                    CLUSTER_SIGNER,
                    &agent_csr(&p256(), WORKLOAD),
                    &["digital signature", "code signing"],
                    Some(3600),
                ),
                &[],
            )
            .await,
            "PolicyDenied",
            "CODE_SIGNING",
        ),
        (
            create(&mallory, workload(CLUSTER_SIGNER), &[]).await,
            "RequesterNotAllowed",
            "mallory",
        ),
        (
            create(&mallory, workload(sandbox_signer), &[]).await,
            "DeniedReference",
            "\"reference\"",
        ),
        (
            create(
                &admin,
                workload(CLUSTER_SIGNER),
                &[("experimental.cert-manager.io/request-is-ca", "true")],
            )
            .await,
            "CARequested",
            "request-is-ca",
        ),
        (
            create(&admin, other_namespace(sandbox_signer), &[]).await,
            "IdentityOutsideNamespace",
            "/ns/other/",
        ),
    ];
    for (name, _, _) in &cases {
        approve(&admin, name, "Approved").await;
    }
    // A namespaced Issuer signs for an allowed requester (admin passes the reference review),
    // twice: the second CSR is answered from the cached review.
    let sandbox = create(&admin, workload(sandbox_signer), &[]).await;
    approve(&admin, &sandbox, "Approved").await;
    wait_certificate(&env, &sandbox, "the namespaced Issuer signs").await;
    let reviews = || env.sim.request_count("create", "subjectaccessreviews");
    let reviews_before = reviews();
    let sandbox_again = create(&admin, workload(sandbox_signer), &[]).await;
    approve(&admin, &sandbox_again, "Approved").await;

    for (name, reason, needle) in &cases {
        kube_sim::wait_for(PATIENCE, || async { failed(&stored(&env, name)).is_some() })
            .await
            .unwrap_or_else(|_| panic!("{reason}: {name} never failed: {:#}", stored(&env, name)));
        let (got, message) = failed(&stored(&env, name)).unwrap();
        assert_eq!(&got, reason, "{name}: {message}");
        assert!(message.contains(needle), "{reason}: {message}");
        assert!(
            stored(&env, name)["status"].get("certificate").is_none(),
            "{reason}: no certificate"
        );
    }
    wait_certificate(&env, &sandbox_again, "the namespaced Issuer signs again").await;
    // A review is cached per (requester, issuer) for 30 s: admin's second CSR asks none.
    assert!(reviews_before >= 2, "admin's and mallory's reviews");
    assert_eq!(
        reviews(),
        reviews_before,
        "the second CSR used the cached review"
    );
    // The unknown issuer was waited for with an event before it failed.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(env.client.clone());
    let events = events.list(&Default::default()).await.unwrap().items;
    let waited = &cases[1].0;
    assert!(
        events
            .iter()
            .any(
                |e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(waited.as_str())
                    && e.reason.as_deref() == Some("IssuerNotFound")
            ),
        "an IssuerNotFound event on {waited}"
    );
    // Each refusal is a Warning event on its CSR, with the reason of its condition (events are
    // published just after the write, so they are waited for).
    let events_api: Api<k8s_openapi::api::events::v1::Event> = Api::all(env.client.clone());
    let missing_warnings = || async {
        let events = events_api.list(&Default::default()).await.unwrap().items;
        cases
            .iter()
            .filter(|(name, reason, _)| {
                !events.iter().any(|e| {
                    e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str())
                        && e.reason.as_deref() == Some(*reason)
                        && e.type_.as_deref() == Some("Warning")
                })
            })
            .map(|(name, reason, _)| format!("{reason} on {name}"))
            .collect::<Vec<_>>()
    };
    let _ = kube_sim::wait_for(PATIENCE, || async { missing_warnings().await.is_empty() }).await;
    let missing = missing_warnings().await;
    assert!(missing.is_empty(), "no Warning event: {missing:?}");

    // Nothing was written to the untouched ones: one status write per answered CSR, counted
    // once a barrier CSR created after all of them is signed.
    barrier(&env).await;
    for name in [&unapproved, &denied, &foreign] {
        let obj = stored(&env, name);
        assert!(failed(&obj).is_none(), "{name}: {obj:#}");
        assert!(
            obj["status"].get("certificate").is_none(),
            "{name}: {obj:#}"
        );
    }
    let preset_cert = decoded_certificate(&stored(&env, &preset));
    assert_eq!(
        preset_cert.trim(),
        env.root_pem().trim(),
        "someone else's certificate is kept"
    );
    assert_eq!(
        env.sim
            .request_count("patch", "certificatesigningrequests/status"),
        cases.len() as u64 + 3,
        "the failed cases, the sandbox Issuer's two and the barrier"
    );
}

fn decoded_certificate(obj: &Value) -> String {
    use base64::Engine as _;
    let b64 = obj["status"]["certificate"].as_str().unwrap_or("");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

/// A workload CSR created and approved through `api` while the next status patch is held
/// `delay` in the API server (a window for another writer, or a deletion, to go first).
async fn approved_with_slow_write(
    env: &Env,
    api: &Api<CertificateSigningRequest>,
    delay: Duration,
) -> String {
    env.sim.faults().inject(
        kube_sim::FaultRule::latency(delay)
            .verb("patch")
            .resource("certificatesigningrequests/status")
            .times(1),
    );
    approved_workload(api).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_set_by_someone_else_before_our_write_is_kept_and_ours_is_not_delivered() {
    let env = Env::start_with(options("5m")).await;
    mesh_issuer(&env).await;
    let admin: Api<CertificateSigningRequest> = Api::all(env.client.clone());
    // Our write waits a second in the API server: long enough for another writer to go first.
    let name = approved_with_slow_write(&env, &admin, Duration::from_secs(1)).await;
    let metrics = env.controller.as_ref().unwrap().metrics().clone();
    let signed = || {
        metrics
            .signer_sign
            .with_label_values(&["true", "CertificateSigningRequest"])
            .get()
    };
    kube_sim::wait_for(PATIENCE, || async { signed() == 1 })
        .await
        .expect("the controller signs");
    let mut obj = admin.get_status(&name).await.unwrap();
    obj.status.get_or_insert_with(Default::default).certificate =
        Some(k8s_openapi::ByteString(env.root_pem().into_bytes()));
    admin
        .replace_status(&name, &PostParams::default(), &obj)
        .await
        .expect("someone else's certificate goes first");
    kube_sim::wait_for(PATIENCE, || async {
        metrics
            .write_conflicts
            .with_label_values(&["CertificateSigningRequest"])
            .get()
            == 1
    })
    .await
    .expect("our write answered 409");
    // The re-decision (the watch brings the other writer's copy) leaves the CSR untouched:
    // judged once a barrier CSR created after that copy is signed.
    barrier(&env).await;
    assert_eq!(
        decoded_certificate(&stored(&env, &name)).trim(),
        env.root_pem().trim()
    );
    assert_eq!(
        signed(),
        2,
        "not signed again (the second is the barrier's)"
    );
    let issued_outcomes = || {
        metrics
            .issuance_outcomes
            .with_label_values(&["CertificateSigningRequest", "Issued"])
            .get()
    };
    // Counted once the barrier's write is accepted, which can be just after it is stored.
    let _ = kube_sim::wait_for(PATIENCE, || async { issued_outcomes() >= 1 }).await;
    assert_eq!(
        issued_outcomes(),
        1,
        "a certificate not delivered is not counted as issued (the barrier's is)"
    );
    assert_eq!(
        metrics
            .signed_not_delivered
            .with_label_values(&["CertificateSigningRequest"])
            .get(),
        1,
        "audited as signed-not-delivered"
    );
    assert_eq!(
        env.sim
            .request_count("patch", "certificatesigningrequests/status"),
        2,
        "our refused write and the barrier's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_answer_each_csr_once_and_a_csr_deleted_mid_flight_is_let_go() {
    let env = Env::start_with(Options {
        leader_election: true,
        ..options("5m")
    })
    .await;
    let (_standby_bootstrap, standby) = env.start_replica("replica-b").await;
    mesh_issuer(&env).await;
    let api = istiod(&env).await;
    for _ in 0..3 {
        let key = p256();
        let request = csr(
            CLUSTER_SIGNER,
            &agent_csr(&key, WORKLOAD),
            &WORKLOAD_USAGES,
            Some(86400),
        );
        istiod_sign(&api, &request).await;
    }
    let leader = env.controller.as_ref().unwrap().metrics();
    let signed = |m: &firefly::metrics::Metrics| {
        m.signer_sign
            .with_label_values(&["true", "CertificateSigningRequest"])
            .get()
    };
    assert_eq!(
        signed(leader) + signed(standby.metrics()),
        3,
        "each CSR signed once"
    );
    assert_eq!(signed(standby.metrics()), 0, "the standby never signs");
    assert_eq!(
        env.sim
            .request_count("patch", "certificatesigningrequests/status"),
        3
    );

    // Deleted between our signature and our write: the 404 ends it; nothing is counted as issued.
    let name = approved_with_slow_write(&env, &api, Duration::from_millis(700)).await;
    kube_sim::wait_for(PATIENCE, || async { signed(leader) == 4 })
        .await
        .expect("signed");
    api.delete(&name, &DeleteParams::default())
        .await
        .expect("deleted mid-flight");
    // The held write meets the 404: audited as signed-not-delivered.
    let not_delivered = || {
        leader
            .signed_not_delivered
            .with_label_values(&["CertificateSigningRequest"])
            .get()
    };
    kube_sim::wait_for(PATIENCE, || async { not_delivered() == 1 })
        .await
        .expect("the write met the 404");
    // Then a barrier through the leader's queue: a later CSR, signed.
    let key = p256();
    let request = csr(
        CLUSTER_SIGNER,
        &agent_csr(&key, WORKLOAD),
        &WORKLOAD_USAGES,
        Some(86400),
    );
    istiod_sign(&api, &request).await;
    let issued_outcomes = || {
        leader
            .issuance_outcomes
            .with_label_values(&["CertificateSigningRequest", "Issued"])
            .get()
    };
    // Counted once the barrier's write is accepted, which can be just after istiod sees it.
    let _ = kube_sim::wait_for(PATIENCE, || async { issued_outcomes() >= 4 }).await;
    assert_eq!(
        issued_outcomes(),
        4,
        "the undelivered certificate is not counted (the fourth is the barrier's)"
    );
    assert_eq!(
        signed(leader),
        5,
        "not signed again (the fifth is the barrier's)"
    );
    assert_eq!(
        leader.write_errors.with_label_values(&["404"]).get(),
        0,
        "a 404 is not an error"
    );
}

/// kube-sim and the controller with the CSR door, a ClusterIssuer Ready, then a TLSPC outage that
/// outlasts `policyMaxStaleness`: the issuer turns `Ready=False`.
async fn env_with_issuer_not_ready(max_retry: &'static str) -> Env {
    let env = Env::start_with(Options {
        policy_refresh_interval: "200ms",
        policy_max_staleness: "1s",
        ..options(max_retry)
    })
    .await;
    mesh_issuer(&env).await;
    env.mock
        .set_faults(firefly::tlspc_mock::Faults {
            route_errors: vec![firefly::tlspc_mock::RouteError {
                route: firefly::tlspc_mock::Route::Configurations,
                status: 503,
                count: None,
                probability: None,
                body: firefly::tlspc_mock::ErrorBody::Real,
            }],
            ..Default::default()
        })
        .unwrap();
    kube_sim::wait_for(PATIENCE, || async {
        env.sim
            .object(GROUP, "clusterissuers", "", "istio-ca")
            .is_some_and(|o| kube_sim::condition_status(&o, "Ready") == Some("False"))
    })
    .await
    .expect("the ClusterIssuer reported not Ready once the policies are stale");
    env
}

/// The Warning events with `reason` published on CSR `name` (cluster-scoped: they live in
/// `default`), read through the API.
async fn warnings(env: &Env, name: &str, reason: &str) -> Vec<k8s_openapi::api::events::v1::Event> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(env.client.clone());
    events
        .list(&Default::default())
        .await
        .expect("events list")
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reason.as_deref() == Some(reason)
                && e.type_.as_deref() == Some("Warning")
        })
        .collect()
}

/// How many times `events` were observed: an event repeated on its object is one Event with a
/// `series` counting the occurrences.
fn occurrences(events: &[k8s_openapi::api::events::v1::Event]) -> i32 {
    events
        .iter()
        .map(|e| e.series.as_ref().map_or(1, |s| s.count.max(1)))
        .sum()
}

/// Signatures made for the CSR door.
fn csrs_signed(env: &Env) -> u64 {
    env.controller
        .as_ref()
        .unwrap()
        .metrics()
        .signer_sign
        .with_label_values(&["true", "CertificateSigningRequest"])
        .get()
}

fn status_patches(env: &Env) -> u64 {
    env.sim
        .request_count("patch", "certificatesigningrequests/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csr_for_an_issuer_not_ready_waits_with_a_warning_and_no_write_then_is_signed() {
    let env = env_with_issuer_not_ready("5m").await;
    let api = istiod(&env).await;
    let key = p256();
    let request = csr(
        CLUSTER_SIGNER,
        &agent_csr(&key, WORKLOAD),
        &WORKLOAD_USAGES,
        Some(86400),
    );
    let name = create(&api, request, &[]).await;
    approve(&api, &name, "Approved").await;

    // Waiting: a Warning event naming the issuer and why, and nothing written on the CSR.
    kube_sim::wait_for(PATIENCE, || async {
        !warnings(&env, &name, "IssuerNotReady").await.is_empty()
    })
    .await
    .expect("an IssuerNotReady Warning event on the CSR");
    let note = warnings(&env, &name, "IssuerNotReady").await[0]
        .note
        .clone()
        .unwrap_or_default();
    assert!(
        note.contains("istio-ca") && note.contains("not ready"),
        "{note}"
    );
    // Past the first retry (1 s): decided again (its Warning repeated), still waiting, still
    // unwritten. A write or a signature any later while waiting shows in the final counts.
    kube_sim::wait_for(PATIENCE, || async {
        occurrences(&warnings(&env, &name, "IssuerNotReady").await) >= 2
    })
    .await
    .expect("the CSR decided again while the issuer is not Ready");
    let obj = stored(&env, &name);
    assert!(failed(&obj).is_none(), "{obj:#}");
    assert!(obj["status"].get("certificate").is_none(), "{obj:#}");
    assert_eq!(
        status_patches(&env),
        0,
        "no write while the issuer is not Ready"
    );
    assert_eq!(
        csrs_signed(&env),
        0,
        "nothing signed while the issuer is not Ready"
    );

    // The outage ends, the issuer is Ready again, and the waiting CSR is signed: one write.
    env.mock.set_faults(Default::default()).unwrap();
    wait_certificate(&env, &name, "signed once the issuer is Ready").await;
    let chain = decoded_certificate(&stored(&env, &name));
    let v = openssl_verify(&chain, &env.root_pem(), "sslclient");
    assert!(v.ok, "openssl: {}", v.output);
    assert!(failed(&stored(&env, &name)).is_none());
    assert_eq!(status_patches(&env), 1, "one status write");
    assert_eq!(
        csrs_signed(&env),
        1,
        "signed once, when the issuer was Ready"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csr_for_an_issuer_still_not_ready_after_max_retry_duration_fails_issuer_not_ready() {
    let env = env_with_issuer_not_ready("2s").await;
    let api = istiod(&env).await;
    let key = p256();
    let request = csr(
        CLUSTER_SIGNER,
        &agent_csr(&key, WORKLOAD),
        &WORKLOAD_USAGES,
        Some(86400),
    );
    let name = create(&api, request, &[]).await;
    approve(&api, &name, "Approved").await;
    kube_sim::wait_for(PATIENCE, || async {
        failed(&stored(&env, &name)).is_some()
    })
    .await
    .expect("Failed after controller.maxRetryDuration");
    let (reason, message) = failed(&stored(&env, &name)).unwrap();
    assert_eq!(reason, "IssuerNotReady", "{message}");
    assert!(
        message.contains("istio-ca") && message.contains("controller.maxRetryDuration 2s"),
        "{message}"
    );
    assert!(stored(&env, &name)["status"].get("certificate").is_none());
    // It waited with a Warning before it failed, and the failure is its one write.
    assert!(!warnings(&env, &name, "IssuerNotReady").await.is_empty());
    assert_eq!(
        status_patches(&env),
        1,
        "one status write: the Failed condition"
    );
    assert_eq!(csrs_signed(&env), 0);
}

/// The manual flow of docs/kubernetes-csr.md with the real kubectl: `kubectl create`, `kubectl
/// certificate approve`, and the certificate read back with `kubectl get csr -o jsonpath`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_certificate_approve_is_all_firefly_needs_to_sign() {
    let env = Env::start_with(Options {
        certificate_signing_requests: true,
        allowed_requesters: vec!["*".to_owned()],
        ..Options::default()
    })
    .await;
    mesh_issuer(&env).await;
    let key = p256();
    let mut request = csr(
        CLUSTER_SIGNER,
        &agent_csr(&key, WORKLOAD),
        &WORKLOAD_USAGES,
        Some(3600),
    );
    request.metadata.generate_name = None;
    request.metadata.name = Some("my-csr".to_owned());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("my-csr.json");
    std::fs::write(&file, serde_json::to_string(&request).unwrap()).unwrap();
    env.kubectl(&["create", "-f", file.to_str().unwrap()], None);
    // Judged once a barrier CSR created after it is signed.
    barrier(&env).await;
    assert!(
        stored(&env, "my-csr")["status"]
            .get("certificate")
            .is_none(),
        "nothing is signed before the approval"
    );
    assert_eq!(csrs_signed(&env), 1, "only the barrier is signed");
    env.kubectl(&["certificate", "approve", "my-csr"], None);
    wait_certificate(&env, "my-csr", "signed once approved").await;
    let encoded = env.kubectl(
        &[
            "get",
            "csr",
            "my-csr",
            "-o",
            "jsonpath={.status.certificate}",
        ],
        None,
    );
    use base64::Engine as _;
    let chain = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .expect("base64");
    let chain = String::from_utf8(chain).unwrap();
    let v = openssl_verify(&chain, &env.root_pem(), "sslclient");
    assert!(v.ok, "openssl: {}", v.output);
    let v = verifiers::spiffe_verify(&chain, &key.serialize_pem(), WORKLOAD);
    assert!(v.ok, "py-spiffe: {}", v.output);
}

/// A status write the API server keeps refusing (a 500 here; a fail-closed admission webhook or
/// a `sign` grant not yet propagated in a cluster) is retried with a per-CSR backoff: each retry
/// signs a certificate that is then not delivered, and a fixed 250 ms pause signed four a second
/// for as long as the refusal lasted. Once the API server takes writes again, the CSR gets its
/// certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_write_refused_again_and_again_is_retried_with_a_growing_backoff() {
    let refused = support::audit::AuditEvents::install();
    let env = Env::start_with(options("5m")).await;
    mesh_issuer(&env).await;
    let api = istiod(&env).await;
    env.sim.faults().inject(
        kube_sim::FaultRule::error(500)
            .verb("patch")
            .resource("certificatesigningrequests/status"),
    );
    let name = approved_workload(&api).await;
    // A fixed pause keeps every gap alike (the CSR door's 250 ms: ~30 attempts in 6 s).
    let gaps = refused.refused_write_gaps(6).await;
    support::audit::assert_backoff_grows(&gaps);
    env.sim.faults().clear();
    wait_certificate(&env, &name, "signed once writes are taken").await;
    assert!(
        csrs_signed(&env) <= status_patches(&env),
        "one signature per attempt: {} signed, {} writes",
        csrs_signed(&env),
        status_patches(&env)
    );
    let chain = decoded_certificate(&stored(&env, &name));
    let v = openssl_verify(&chain, &env.root_pem(), "sslclient");
    assert!(v.ok, "openssl: {}", v.output);
}
