//! Every fault knob of the mock TLSPC, driven over loopback HTTP, produces exactly the defect it documents.

use std::time::Duration;

use firefly::tlspc::paths;
use firefly::tlspc_mock::{BadSubCa, ErrorBody, Faults, Route, RouteError};
use rcgen::PublicKeyData;
use reqwest::Method;
use serde_json::{Value, json};
use support::tlspc_mock::{Auth, SHIPPED_SEED, assert_api_error, csr, der, openssl_verify};
use x509_parser::prelude::*;

async fn put_faults(mock: &support::tlspc_mock::Mock, faults: Value) -> (u16, Value) {
    mock.admin(Method::PUT, "/mock/faults", Some(faults)).await
}

async fn issue_with(bad: BadSubCa) -> (support::tlspc_mock::Mock, rcgen::KeyPair, Value) {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let (s, body) = put_faults(&mock, json!({ "badSubCa": bad })).await;
    assert_eq!(s, 200, "{body}");
    let (kp, csr_pem) = csr(&rcgen::PKCS_ECDSA_P256_SHA256, "bad");
    let issued = mock.issue(&csr_pem).await;
    assert_eq!(issued["status"], "ISSUED", "{issued}");
    (mock, kp, issued)
}

fn parse(issued: &Value) -> Vec<u8> {
    der(issued["certificate"].as_str().unwrap())
}

fn chain(issued: &Value) -> Vec<String> {
    serde_json::from_value(issued["issuerCertificates"].clone()).unwrap()
}

#[tokio::test]
async fn requested_polls_answer_requested_that_many_times_then_issue() {
    let seed = format!("{SHIPPED_SEED}\nfaults:\n  requestedPolls: 3\n");
    let mock = support::tlspc_mock::start(&seed).await;
    let token = mock.login().await;
    let config = mock.configuration(&token).await;
    let (_, csr_pem) = csr(&rcgen::PKCS_ECDSA_P256_SHA256, "slow");
    let (s, created) = mock
        .request_sub_ca(&token, config["id"].as_str().unwrap(), &csr_pem)
        .await;
    assert_eq!(s, 201);
    let id = created["id"].as_str().unwrap();
    let statuses: Vec<Value> = futures::future::join_all((0..4).map(|_| mock.poll(&token, id)))
        .await
        .into_iter()
        .map(|v| v["status"].clone())
        .collect();
    let requested = statuses.iter().filter(|s| *s == "REQUESTED").count();
    assert_eq!(requested, 3, "{statuses:?}");
    assert_eq!(mock.poll(&token, id).await["status"], "ISSUED");
}

#[tokio::test]
async fn fail_issuance_ends_failed_with_error_information_for_the_counted_requests_only() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let (s, _) = put_faults(
        &mock,
        json!({"failIssuance": "CA connector unavailable", "issuanceFaultCount": 1}),
    )
    .await;
    assert_eq!(s, 200);
    let (_, csr_pem) = csr(&rcgen::PKCS_ECDSA_P256_SHA256, "f");
    let failed = mock.issue(&csr_pem).await;
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(
        failed["errorInformation"]["message"],
        "CA connector unavailable"
    );
    assert!(failed.get("certificate").is_none());
    assert_eq!(mock.issue(&csr_pem).await["status"], "ISSUED");
}

#[tokio::test]
async fn not_ca_fault_issues_ca_false() {
    let (_, _, issued) = issue_with(BadSubCa::NotCa).await;
    let d = parse(&issued);
    let (_, cert) = X509Certificate::from_der(&d).unwrap();
    assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
}

#[tokio::test]
async fn no_key_cert_sign_fault_drops_key_cert_sign() {
    let (_, _, issued) = issue_with(BadSubCa::NoKeyCertSign).await;
    let d = parse(&issued);
    let (_, cert) = X509Certificate::from_der(&d).unwrap();
    assert!(!cert.key_usage().unwrap().unwrap().value.key_cert_sign());
    assert!(cert.basic_constraints().unwrap().unwrap().value.ca);
}

#[tokio::test]
async fn wrong_key_fault_certifies_a_key_that_is_not_the_csrs() {
    let (mock, kp, issued) = issue_with(BadSubCa::WrongKey).await;
    let d = parse(&issued);
    let (_, cert) = X509Certificate::from_der(&d).unwrap();
    assert_ne!(
        cert.public_key().raw,
        kp.subject_public_key_info().as_slice()
    );
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = openssl_verify(
        dir.path(),
        mock.server.root_pem(),
        &chain(&issued)[..2],
        issued["certificate"].as_str().unwrap(),
    );
    assert!(ok, "still chains to the root: {out}");
}

#[tokio::test]
async fn foreign_chain_fault_does_not_verify_to_the_mock_root() {
    let (mock, _, issued) = issue_with(BadSubCa::ForeignChain).await;
    let chain = chain(&issued);
    assert_ne!(chain.last().unwrap(), mock.server.root_pem());
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = openssl_verify(
        dir.path(),
        mock.server.root_pem(),
        &chain,
        issued["certificate"].as_str().unwrap(),
    );
    assert!(!ok, "must not verify: {out}");
    let (ok, out) = openssl_verify(
        dir.path(),
        chain.last().unwrap(),
        &chain[..2],
        issued["certificate"].as_str().unwrap(),
    );
    assert!(ok, "verifies to its own foreign root: {out}");
}

#[tokio::test]
async fn expired_and_short_lived_faults_set_the_validity() {
    let (_, _, issued) = issue_with(BadSubCa::Expired).await;
    let d = parse(&issued);
    let (_, cert) = X509Certificate::from_der(&d).unwrap();
    assert!(cert.validity().not_after.timestamp() < jiff::Timestamp::now().as_second());
    let (_, _, issued) = issue_with(BadSubCa::ShortLived).await;
    let d = parse(&issued);
    let (_, cert) = X509Certificate::from_der(&d).unwrap();
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert!(lifetime <= 20, "{lifetime}");
}

#[tokio::test]
async fn parent_path_len_fault_puts_a_path_length_zero_ca_above_the_sub_ca() {
    let (_, _, issued) = issue_with(BadSubCa::ParentPathLen).await;
    let chain = chain(&issued);
    assert_eq!(chain.len(), 4, "one extra intermediate");
    let parent = der(&chain[0]);
    let (_, parent) = X509Certificate::from_der(&parent).unwrap();
    let bc = parent
        .basic_constraints()
        .unwrap()
        .expect("basicConstraints");
    assert!(bc.value.ca);
    assert_eq!(bc.value.path_len_constraint, Some(0));
    let sub_ca = parse(&issued);
    let (_, sub_ca) = X509Certificate::from_der(&sub_ca).unwrap();
    assert!(
        sub_ca.is_ca(),
        "the sub-CA below a pathLen 0 CA is itself a CA"
    );
    assert_eq!(sub_ca.issuer(), parent.subject());
    sub_ca.verify_signature(Some(parent.public_key())).unwrap();
}

#[tokio::test]
async fn uri_name_constraints_fault_adds_a_critical_permitted_uri_subtree() {
    let (_, _, issued) = issue_with(BadSubCa::UriNameConstraints).await;
    let d = parse(&issued);
    let (_, cert) = X509Certificate::from_der(&d).unwrap();
    let nc = cert
        .name_constraints()
        .unwrap()
        .expect("nameConstraints present");
    assert!(nc.critical);
    let permitted = nc.value.permitted_subtrees.as_ref().unwrap();
    assert!(matches!(
        permitted[0].base,
        GeneralName::URI("cluster.local")
    ));
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "nameConstraints"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(issued["certificate"].as_str().unwrap().as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("URI:cluster.local"),
        "openssl reads it: {text}"
    );
}

#[tokio::test]
async fn huge_malformed_and_empty_chain_faults_break_the_answer_as_documented() {
    let (_, _, issued) = issue_with(BadSubCa::HugePem).await;
    assert!(issued["certificate"].as_str().unwrap().len() > 4_000_000);
    let (_, _, issued) = issue_with(BadSubCa::MalformedPem).await;
    let text = issued["certificate"].as_str().unwrap();
    assert!(::pem::parse(text).is_err() || X509Certificate::from_der(&der(text)).is_err());
    let (_, _, issued) = issue_with(BadSubCa::EmptyChain).await;
    assert!(chain(&issued).is_empty());
    assert!(
        X509Certificate::from_der(&parse(&issued)).is_ok(),
        "certificate itself is fine"
    );
}

#[tokio::test]
async fn route_error_burst_answers_html_then_recovers() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let token = mock.login().await;
    mock.server
        .set_faults(Faults {
            route_errors: vec![RouteError {
                route: Route::Configurations,
                status: 502,
                count: Some(2),
                probability: None,
                body: ErrorBody::Html,
            }],
            ..Faults::default()
        })
        .unwrap();
    for _ in 0..2 {
        let r = mock
            .http
            .get(mock.url(paths::CONFIGURATIONS))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(r.text().await.unwrap().contains("<html>"));
    }
    assert_eq!(mock.configuration(&token).await["name"], "firefly-istio");
    assert_eq!(
        mock.server.faults().route_errors[0].count,
        Some(0),
        "burst used up"
    );
}

#[tokio::test]
async fn injected_bodies_take_each_documented_shape() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let token = mock.login().await;
    let rule =
        |route, status, body| json!({"route": route, "status": status, "count": 1, "body": body});
    let (s, body) = put_faults(
        &mock,
        json!({"routeErrors": [
            rule("token", 503, "real"),
            rule("configurations", 200, "malformedJson"),
            rule("configurations", 500, "empty"),
            rule("configurations", 429, "plainText"),
            rule("configurations", 503, "real"),
        ]}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = mock
        .post_assertion(&support::tlspc_mock::sign(
            &support::tlspc_mock::claims(mock.server.client_id(), mock.clock.now()),
            &mock.key_pem(),
        ))
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (503, Some("temporarily_unavailable"))
    );
    let get = || {
        mock.call(
            Method::GET,
            paths::CONFIGURATIONS,
            Auth::Bearer(&token),
            None,
        )
    };
    let (s, text) = get().await;
    assert_eq!(s, 200);
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "malformed: {text}"
    );
    assert_eq!(get().await, (500, String::new()));
    let (s, text) = get().await;
    assert_eq!(s, 429);
    assert!(text.starts_with("injected fault"), "{text}");
    let (s, text) = get().await;
    assert_eq!(s, 503);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["errors"][0]["code"].is_i64());
    assert_eq!(get().await.0, 200);
}

#[tokio::test]
async fn probability_zero_never_fires_and_one_always_fires() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let token = mock.login().await;
    put_faults(
        &mock,
        json!({"routeErrors": [{"route": "configurations", "status": 500, "probability": 0.0}]}),
    )
    .await;
    for _ in 0..5 {
        assert_eq!(mock.configuration(&token).await["name"], "firefly-istio");
    }
    put_faults(
        &mock,
        json!({"routeErrors": [{"route": "configurations", "status": 500, "probability": 1.0}]}),
    )
    .await;
    for _ in 0..5 {
        assert_eq!(
            mock.call(
                Method::GET,
                paths::CONFIGURATIONS,
                Auth::Bearer(&token),
                None
            )
            .await
            .0,
            500
        );
    }
}

#[tokio::test]
async fn latency_fault_delays_answers_beyond_a_short_client_timeout() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    put_faults(
        &mock,
        json!({"routeLatencyMs": [{"route": "configurations", "ms": 5000}]}),
    )
    .await;
    let token = mock.login().await;
    let err = mock
        .http
        .get(mock.url(paths::CONFIGURATIONS))
        .bearer_auth(&token)
        .timeout(Duration::from_millis(100))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // /mock/* is never delayed or faulted, so a test can always reset the knobs.
    let (s, _) = put_faults(&mock, json!({})).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn faults_endpoint_validates_and_requires_the_api_key() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let (s, body) = put_faults(
        &mock,
        json!({"routeErrors": [{"route": "token", "status": 42}]}),
    )
    .await;
    assert_api_error(s, &body, 400, "routeErrors[0].status");
    let (s, body) = put_faults(&mock, json!({"noSuchKnob": 1})).await;
    assert_eq!(s, 400, "{body}");
    let (s, text) = mock
        .call(Method::PUT, "/mock/faults", Auth::None, Some(json!({})))
        .await;
    assert_eq!(s, 401, "{text}");
    let (s, body) = put_faults(&mock, json!({"requestedPolls": 2})).await;
    assert_eq!((s, body["requestedPolls"].as_u64()), (200, Some(2)));
    let (_, got) = mock.admin(Method::GET, "/mock/faults", None).await;
    assert_eq!(got["requestedPolls"], 2);
}

#[tokio::test]
async fn root_and_hierarchy_endpoints_export_the_ca() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let root = mock
        .http
        .get(mock.url("/mock/root.pem"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(root, mock.server.root_pem());
    let (s, ca) = mock
        .call_json(Method::GET, "/mock/ca", Auth::None, None)
        .await;
    assert_eq!(s, 200);
    let [r, i1, i2] = mock.server.hierarchy_pems();
    assert_eq!(
        (
            ca["root"].as_str(),
            ca["intermediate1"].as_str(),
            ca["intermediate2"].as_str()
        ),
        (Some(r.as_str()), Some(i1.as_str()), Some(i2.as_str()))
    );
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = openssl_verify(dir.path(), &r, std::slice::from_ref(&i1), &i2);
    assert!(ok, "{out}");
}

#[tokio::test]
async fn patching_faults_merges_fields_and_null_resets_one() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    put_faults(&mock, json!({"requestedPolls": 2, "tokenExpiresIn": 5})).await;
    let (s, body) = mock
        .admin(
            Method::PATCH,
            "/mock/faults",
            Some(json!({"badSubCa": "notCa", "tokenExpiresIn": null})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["requestedPolls"], 2);
    assert_eq!(body["badSubCa"], "notCa");
    assert!(body.get("tokenExpiresIn").is_none(), "{body}");
    let (s, body) = mock
        .admin(
            Method::PATCH,
            "/mock/faults",
            Some(json!({"requestedPolls": "many"})),
        )
        .await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(
        mock.server.faults().requested_polls,
        2,
        "refused patch changed nothing"
    );
}
