//! Configuration settings an instance honours, changed through the mock's admin API mid-run: removed policies, controllerAllowedPolicyIds, a changed sub-CA provider, usage reports.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use support::bootstrap::{Env, EnvBuilder, eventually};

async fn configuration_id(env: &Env) -> String {
    let all = env
        .admin(Method::GET, "/v1/distributedissuers/configurations", None)
        .await;
    all["configurations"][0]["id"]
        .as_str()
        .expect("configuration id")
        .to_string()
}

async fn fast_env() -> Env {
    EnvBuilder {
        refresh_interval: "1s".into(),
        ..Default::default()
    }
    .start()
    .await
}

#[tokio::test]
async fn a_policy_removed_from_the_configuration_fails_requests_with_that_reason() {
    let env = fast_env().await;
    let bootstrap = env.bootstrap().await.expect("starts");
    let signer = bootstrap.signer();
    assert!(signer.policy("istio-mtls").is_ok());
    let id = configuration_id(&env).await;
    env.admin(
        Method::PATCH,
        &format!("/v1/distributedissuers/configurations/{id}"),
        Some(json!({"policyIds": []})),
    )
    .await;
    let removed = eventually(Duration::from_secs(10), || {
        signer
            .policy("istio-mtls")
            .is_err_and(|e| e.reason() == "PolicyRemoved")
    })
    .await;
    assert!(removed, "{:?}", signer.policy("istio-mtls").err());
    let err = signer.policy("istio-mtls").unwrap_err().to_string();
    assert!(err.contains("removed"), "{err}");
}

#[tokio::test]
async fn controller_allowed_policy_ids_restrict_the_usable_policies() {
    let env = fast_env().await;
    let bootstrap = env.bootstrap().await.expect("starts");
    let signer = bootstrap.signer();
    let id = configuration_id(&env).await;
    // Allow another policy only: istio-mtls becomes unusable by the controller.
    let other = env
        .admin(
            Method::POST,
            "/v1/distributedissuers/policies",
            Some(json!({
                "name": "other",
                "validityPeriod": "PT1H",
                "sans": {"uniformResourceIdentifiers": {"type": "REQUIRED", "allowedValues": ["^spiffe://cluster\\.local/.*"], "minOccurrences": 1, "maxOccurrences": 1}},
                "keyUsages": ["digitalSignature"],
                "extendedKeyUsages": ["SERVER_AUTH", "CLIENT_AUTH"],
                "keyAlgorithm": {"allowedValues": ["EC_P256"], "defaultValue": "EC_P256"}
            })),
        )
        .await;
    let other_id = other["id"].as_str().expect("new policy id").to_string();
    let istio_id = env
        .admin(Method::GET, "/v1/distributedissuers/policies", None)
        .await["policies"]
        .as_array()
        .expect("policies")
        .iter()
        .find(|p| p["name"] == "istio-mtls")
        .and_then(|p| p["id"].as_str())
        .expect("istio-mtls id")
        .to_string();
    env.admin(
        Method::PATCH,
        &format!("/v1/distributedissuers/configurations/{id}"),
        Some(json!({"policyIds": [istio_id, other_id], "controllerAllowedPolicyIds": [other_id]})),
    )
    .await;
    let restricted = eventually(Duration::from_secs(10), || {
        signer
            .policy("istio-mtls")
            .is_err_and(|e| e.reason() == "PolicyNotAllowed")
            && signer.policy("other").is_ok()
    })
    .await;
    assert!(
        restricted,
        "{:?} / {:?}",
        signer.policy("istio-mtls").err(),
        signer.policy("other").err()
    );
}

#[tokio::test]
async fn a_changed_sub_ca_provider_replaces_the_sub_ca_without_a_gap() {
    let env = fast_env().await;
    let bootstrap = env.bootstrap().await.expect("starts");
    let signer = bootstrap.signer();
    let first = signer.current_id().expect("id");
    let providers = env
        .admin(Method::GET, "/v1/distributedissuers/subcaproviders", None)
        .await;
    let provider_id = providers["subCaProviders"][0]["id"]
        .as_str()
        .expect("provider id")
        .to_string();
    env.admin(
        Method::PATCH,
        &format!("/v1/distributedissuers/subcaproviders/{provider_id}"),
        Some(json!({"validityPeriod": "P6D"})),
    )
    .await;
    let mut always_signing = true;
    let replaced = eventually(Duration::from_secs(20), || {
        always_signing &= signer.current().is_some();
        signer.current_id().is_some_and(|id| id != first)
    })
    .await;
    assert!(replaced, "sub-CA not replaced after the provider changed");
    assert!(always_signing, "there was a moment without a sub-CA");
    let ca = signer.current().expect("active");
    let lifetime = ca
        .not_after()
        .duration_since(ca.not_before())
        .expect("ordered");
    assert!(
        lifetime <= Duration::from_secs(6 * 86400 + 60),
        "new provider validity applies: {lifetime:?}"
    );
}

#[tokio::test]
async fn usage_counters_reach_tlspc_on_the_refresh_tick() {
    let env = fast_env().await;
    let bootstrap = env.bootstrap().await.expect("starts");
    let signer = bootstrap.signer();
    let now = std::time::SystemTime::now();
    for _ in 0..3 {
        signer.record_issued(now, now + Duration::from_secs(3600));
    }
    signer.record_issued(now, now + Duration::from_secs(7 * 86400));
    signer.record_issued(now, now + Duration::from_secs(90 * 86400));
    let id = signer.current_id().expect("id");
    let mut reported = serde_json::Value::Null;
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        let all = env
            .admin(
                Method::GET,
                "/v1/distributedissuers/intermediatecertificates",
                None,
            )
            .await;
        if let Some(entry) = all["intermediateCertificates"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["id"] == id.as_str()))
            && entry["ultraShortLivedCertCount"] == 3
        {
            reported = entry.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(reported["ultraShortLivedCertCount"], 3, "{reported}");
    assert_eq!(reported["shortLivedCertCount"], 1, "{reported}");
    assert_eq!(reported["longLivedCertCount"], 1, "{reported}");
}

#[tokio::test]
async fn a_failing_usage_report_never_blocks_signing() {
    let env = fast_env().await;
    let bootstrap = env.bootstrap().await.expect("starts");
    let signer = bootstrap.signer();
    env.set_faults(json!({"routeErrors": [{"route": "usageReport", "status": 500}], "routeLatencyMs": [{"route": "usageReport", "ms": 3000}]}));
    let now = std::time::SystemTime::now();
    signer.record_issued(now, now + Duration::from_secs(3600));
    // Several refresh ticks with a slow, failing report: the signer stays ready and usable.
    for _ in 0..30 {
        assert!(signer.current().is_some());
        assert!(signer.policy("istio-mtls").is_ok());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(signer.ready().ready, "{}", signer.ready().message);
}

#[tokio::test]
async fn an_account_detached_mid_run_makes_the_instance_not_ready_until_reattached() {
    let env = fast_env().await;
    let bootstrap = env.bootstrap().await.expect("starts");
    let signer = bootstrap.signer();
    let id = configuration_id(&env).await;
    let accounts = env
        .admin(Method::GET, "/v1/distributedissuers/configurations", None)
        .await["configurations"][0]["serviceAccountIds"]
        .clone();
    env.admin(
        Method::PATCH,
        &format!("/v1/distributedissuers/configurations/{id}"),
        Some(json!({"serviceAccountIds": []})),
    )
    .await;
    let withdrawn = eventually(Duration::from_secs(10), || !signer.ready().ready).await;
    assert!(withdrawn, "{}", signer.ready().message);
    let message = signer.ready().message;
    assert!(message.contains("attach the service account"), "{message}");
    assert!(
        signer.current().is_none(),
        "nothing is signed without authorization"
    );
    env.admin(
        Method::PATCH,
        &format!("/v1/distributedissuers/configurations/{id}"),
        Some(json!({"serviceAccountIds": accounts})),
    )
    .await;
    let back = eventually(Duration::from_secs(10), || signer.ready().ready).await;
    assert!(back, "{}", signer.ready().message);
}

/// A 404, 401 or 403 without TLSPC's JSON `errors` body (an HTML page of a proxy or gateway) is
/// an outage: the instance keeps its sub-CA and stays ready. The same 404 with the `errors` body
/// is TLSPC saying the account is detached, and withdraws the instance.
#[tokio::test]
async fn a_proxy_error_page_is_an_outage_and_only_tlspc_errors_withdraw_the_instance() {
    let env = fast_env().await;
    let bootstrap = env.bootstrap().await.expect("starts");
    let signer = bootstrap.signer();
    for (status, body) in [(404, "html"), (403, "empty"), (401, "plainText")] {
        env.set_faults(
            json!({"routeErrors": [{"route": "configurations", "status": status, "body": body}]}),
        );
        let refreshed = eventually(Duration::from_secs(10), || {
            signer
                .ready()
                .message
                .contains(&format!("configuration fetch answered HTTP {status}"))
        })
        .await;
        assert!(refreshed, "{status} {body}: {}", signer.ready().message);
        let ready = signer.ready();
        assert!(ready.ready, "{status} {body}: {}", ready.message);
        assert!(
            ready.message.contains("proxy or gateway"),
            "{status} {body}: {}",
            ready.message
        );
        assert!(
            signer.current().is_some(),
            "{status} {body}: the last-known-good sub-CA keeps signing"
        );
        assert!(signer.policy("istio-mtls").is_ok(), "{status} {body}");
    }
    env.set_faults(
        json!({"routeErrors": [{"route": "configurations", "status": 404, "body": "real"}]}),
    );
    let withdrawn = eventually(Duration::from_secs(10), || !signer.ready().ready).await;
    assert!(withdrawn, "{}", signer.ready().message);
    assert!(
        signer
            .ready()
            .message
            .contains("attach the service account"),
        "{}",
        signer.ready().message
    );
    assert!(signer.current().is_none());
}
