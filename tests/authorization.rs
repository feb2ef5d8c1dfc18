//! DESIGN §8 end to end: who may obtain which identity, through kube-sim, the mock TLSPC and the
//! real controller. Every refusal is `Ready=False/Failed` with a Warning event naming the rule,
//! and nothing is signed.

use serde_json::json;
use support::controller::*;

const TEAM_A: &str = "team-a";
const AUTHOR: &str = "system:serviceaccount:team-a:author";
const CERT_MANAGER_SA: &str = "system:serviceaccount:cert-manager:cert-manager";
const ISTIOD: &str = "spiffe://cluster.local/ns/istio-system/sa/istiod-service-account";
const TEAM_A_WORKLOAD: &str = "spiffe://cluster.local/ns/team-a/sa/web";

/// An approved request in `team-a` for `spec` on the Issuer `team-a/firefly`, made by `username`.
async fn team_a_request(env: &Env, spec: CsrSpec, username: &str) -> String {
    team_a_request_to(env, spec, username, "Issuer", "firefly").await
}

/// An approved request in `team-a` for `spec` on the `kind` named `issuer`, made by `username`.
async fn team_a_request_to(
    env: &Env,
    spec: CsrSpec,
    username: &str,
    kind: &str,
    issuer: &str,
) -> String {
    let (_key, csr) = spec.build();
    let spiffe = spec.uris.first().cloned().unwrap_or_default();
    let mut req = RequestBuilder::istio(issuer, &csr, &spiffe);
    req.issuer_kind = Some(kind.into());
    if spec.uris.is_empty() {
        req = req.annotation("istio.cert-manager.io/identities", None);
    }
    req.namespace = TEAM_A.into();
    req.username = Some(username.into());
    let name = env.create_request(&req).await;
    env.approve(TEAM_A, &name).await;
    name
}

/// The Warning event reasons about a request, once one has been published.
async fn warning_reasons(env: &Env, name: &str) -> Vec<String> {
    let reasons = || async {
        env.events_for(TEAM_A, name)
            .await
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter_map(|e| e.reason)
            .collect::<Vec<_>>()
    };
    kube_sim::wait_for(PATIENCE, || async { !reasons().await.is_empty() })
        .await
        .expect("a Warning event about the request");
    reasons().await
}

async fn refused_with(env: &Env, name: &str, reason: &str) -> String {
    let obj = env.wait_ready_reason(TEAM_A, name, "Failed").await;
    assert!(obj["status"].get("certificate").is_none(), "{obj:#}");
    let reasons = warning_reasons(env, name).await;
    assert_eq!(reasons, [reason], "{obj:#}");
    ready_message(&obj)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_team_a_cannot_obtain_istiods_identity_even_through_cert_manager() {
    // cert-manager's own service account is allowed: it acts for every Certificate author, and
    // the namespace rule is what keeps that safe.
    let env = Env::start_with(Options {
        allowed_requesters: vec![ISTIO_CSR_SA.into(), CERT_MANAGER_SA.into()],
        ..Options::default()
    })
    .await;
    env.ready_issuer(
        Some(TEAM_A),
        "firefly",
        json!({"defaultPolicyName": POLICY}),
    )
    .await;

    let istiod = team_a_request(
        &env,
        CsrSpec::workload(KeyKind::P256, ISTIOD),
        CERT_MANAGER_SA,
    )
    .await;
    let message = refused_with(&env, &istiod, "IdentityOutsideNamespace").await;
    assert!(
        message.contains(ISTIOD) && message.contains(TEAM_A),
        "the refusal names the identity and the namespace: {message}"
    );

    let istiod_dns = team_a_request(
        &env,
        CsrSpec::serving(&["istiod.istio-system.svc"]),
        CERT_MANAGER_SA,
    )
    .await;
    let message = refused_with(&env, &istiod_dns, "DNSNameOutsideNamespace").await;
    assert!(message.contains("istiod.istio-system.svc"), "{message}");
    assert_eq!(env.signed(), 0, "nothing was signed");

    // The same requester obtains team-a's own identity from the same issuer.
    let own = team_a_request(
        &env,
        CsrSpec::workload(KeyKind::P256, TEAM_A_WORKLOAD),
        CERT_MANAGER_SA,
    )
    .await;
    env.wait_ready_reason(TEAM_A, &own, "Issued").await;
    assert_eq!(env.signed(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_listing_its_author_does_not_widen_the_global_list() {
    // The global list names istio-csr only; team-a's Issuer lists the author of team-a's requests.
    let env = Env::start().await;
    env.ready_issuer(
        Some(TEAM_A),
        "firefly",
        json!({"defaultPolicyName": POLICY, "allowedRequesters": [AUTHOR]}),
    )
    .await;
    let name = team_a_request(
        &env,
        CsrSpec::workload(KeyKind::P256, TEAM_A_WORKLOAD),
        AUTHOR,
    )
    .await;
    let message = refused_with(&env, &name, "RequesterNotAllowed").await;
    assert!(
        message.contains(AUTHOR) && message.contains("controller.allowedRequesters"),
        "{message}"
    );
    assert_eq!(env.signed(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_global_list_refuses_each_request_while_the_issuer_stays_ready() {
    let env = Env::start_with(Options {
        allowed_requesters: vec![],
        ..Options::default()
    })
    .await;
    // ready_issuer waits for Ready=True: the empty list does not make the issuer unready.
    env.ready_issuer(
        Some(TEAM_A),
        "firefly",
        json!({"defaultPolicyName": POLICY, "allowedRequesters": [AUTHOR]}),
    )
    .await;
    let name = team_a_request(
        &env,
        CsrSpec::workload(KeyKind::P256, TEAM_A_WORKLOAD),
        AUTHOR,
    )
    .await;
    let message = refused_with(&env, &name, "RequestersNotConfigured").await;
    assert!(
        message.contains("controller.allowedRequesters"),
        "{message}"
    );
    assert_eq!(env.signed(), 0);
    let issuer = env
        .sim
        .object(GROUP, "issuers", TEAM_A, "firefly")
        .expect("the issuer exists");
    assert_eq!(
        kube_sim::condition_status(&issuer, "Ready"),
        Some("True"),
        "the issuer stays Ready: {issuer:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_limiting_its_policies_refuses_another_one() {
    let env = Env::start_with(Options {
        allowed_requesters: vec!["*".into()],
        ..Options::default()
    })
    .await;
    env.ready_issuer(
        Some(TEAM_A),
        "firefly",
        json!({"defaultPolicyName": POLICY, "allowedPolicies": ["team-a-only"]}),
    )
    .await;
    let name = team_a_request(
        &env,
        CsrSpec::workload(KeyKind::P256, TEAM_A_WORKLOAD),
        AUTHOR,
    )
    .await;
    let message = refused_with(&env, &name, "PolicyDenied").await;
    assert!(
        message.contains("spec.allowedPolicies") && message.contains(POLICY),
        "{message}"
    );
    assert_eq!(env.signed(), 0);
}

/// A ClusterIssuer is bound by the same rules as an Issuer: its lists narrow the global one (`[]`
/// is nobody), `spec.allowedPolicies` limits the policy, and the namespace rule is keyed on the
/// request's namespace, whichever issuer kind signs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_issuer_narrows_requesters_and_policies_and_keeps_the_namespace_rule() {
    let env = Env::start_with(Options {
        allowed_requesters: vec![ISTIO_CSR_SA.into(), AUTHOR.into()],
        ..Options::default()
    })
    .await;
    env.ready_issuer(
        None,
        "nobody",
        json!({"defaultPolicyName": POLICY, "allowedRequesters": []}),
    )
    .await;
    env.ready_issuer(
        None,
        "istio-csr-only",
        json!({"defaultPolicyName": POLICY, "allowedRequesters": [ISTIO_CSR_SA], "allowedPolicies": ["another-policy"]}),
    )
    .await;
    env.ready_issuer(
        None,
        "mesh",
        json!({"defaultPolicyName": POLICY, "allowedRequesters": [ISTIO_CSR_SA]}),
    )
    .await;
    let workload = || CsrSpec::workload(KeyKind::P256, TEAM_A_WORKLOAD);

    let name = team_a_request_to(&env, workload(), ISTIO_CSR_SA, "ClusterIssuer", "nobody").await;
    let message = refused_with(&env, &name, "RequesterNotAllowed").await;
    assert!(message.contains(ISTIO_CSR_SA), "{message}");

    // The author is on the global list, not on this ClusterIssuer's.
    let name = team_a_request_to(&env, workload(), AUTHOR, "ClusterIssuer", "istio-csr-only").await;
    let message = refused_with(&env, &name, "RequesterNotAllowed").await;
    assert!(message.contains(AUTHOR), "{message}");

    let name = team_a_request_to(
        &env,
        workload(),
        ISTIO_CSR_SA,
        "ClusterIssuer",
        "istio-csr-only",
    )
    .await;
    let message = refused_with(&env, &name, "PolicyDenied").await;
    assert!(
        message.contains("spec.allowedPolicies") && message.contains(POLICY),
        "{message}"
    );

    let name = team_a_request_to(
        &env,
        CsrSpec::workload(KeyKind::P256, ISTIOD),
        ISTIO_CSR_SA,
        "ClusterIssuer",
        "mesh",
    )
    .await;
    let message = refused_with(&env, &name, "IdentityOutsideNamespace").await;
    assert!(
        message.contains(ISTIOD) && message.contains(TEAM_A),
        "{message}"
    );
    assert_eq!(env.signed(), 0, "nothing was signed");

    let name = team_a_request_to(&env, workload(), ISTIO_CSR_SA, "ClusterIssuer", "mesh").await;
    env.wait_ready_reason(TEAM_A, &name, "Issued").await;
    assert_eq!(env.signed(), 1);
}
