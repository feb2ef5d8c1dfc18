//! The mock TLSPC over real loopback HTTP: login rules, configuration per caller, sub-CA profile, admin CRUD, error shapes.

use std::time::Duration;

use firefly::tlspc::paths;
use rcgen::PublicKeyData;
use reqwest::Method;
use serde_json::json;
use support::tlspc_mock::{Auth, SHIPPED_SEED, assert_api_error, csr, der, openssl_verify, sign};
use x509_parser::prelude::*;

#[tokio::test]
async fn shipped_seed_issues_a_sub_ca_with_the_provider_profile_that_openssl_verifies() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let (kp, csr_pem) = csr(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        "pod-1 firefly-istio.mock.tlspc",
    );
    let issued = mock.issue(&csr_pem).await;
    assert_eq!(issued["status"], "ISSUED", "{issued}");
    let cert_pem = issued["certificate"].as_str().unwrap();
    let chain: Vec<String> = serde_json::from_value(issued["issuerCertificates"].clone()).unwrap();
    let [root, int1, int2] = mock.server.hierarchy_pems();
    assert_eq!(
        chain,
        vec![int2.clone(), int1.clone(), root.clone()],
        "issuerCertificates = [int2, int1, root]"
    );

    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = openssl_verify(dir.path(), mock.server.root_pem(), &chain[..2], cert_pem);
    assert!(ok, "openssl verify: {out}");

    let cert_der = der(cert_pem);
    let (_, cert) = X509Certificate::from_der(&cert_der).unwrap();
    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca && bc.value.path_len_constraint == Some(0));
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.critical && ku.value.key_cert_sign() && ku.value.digital_signature());
    assert!(
        cert.name_constraints().unwrap().is_none(),
        "no name constraints"
    );
    assert!(
        cert.extended_key_usage().unwrap().is_none(),
        "no EKU on the sub-CA"
    );
    assert_eq!(
        cert.public_key().raw,
        kp.subject_public_key_info().as_slice(),
        "certifies the CSR's key"
    );
    let subject = cert.subject();
    assert_eq!(
        subject.iter_common_name().next().unwrap().as_str().unwrap(),
        "pod-1 firefly-istio.mock.tlspc"
    );
    assert_eq!(
        subject
            .iter_organization()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "Firefly Mock"
    );
    assert_eq!(
        subject
            .iter_organizational_unit()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "Mesh"
    );
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert!(
        (7 * 86400..=7 * 86400 + 60).contains(&lifetime),
        "P7D from the provider, got {lifetime}s"
    );
    let int2_der = der(&int2);
    let (_, int2_cert) = X509Certificate::from_der(&int2_der).unwrap();
    let ski = int2_cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        });
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        });
    assert!(
        ski.is_some() && ski == aki,
        "AKI equals intermediate2's SKI"
    );
    assert!(
        cert.extensions().iter().any(|e| matches!(
            e.parsed_extension(),
            ParsedExtension::SubjectKeyIdentifier(_)
        )),
        "SKI present"
    );
    assert!(issued["validityStart"].is_string() && issued["validityEnd"].is_string());
    assert!(
        issued["fingerprint"]
            .as_str()
            .is_some_and(|f| f.len() == 64)
    );
}

#[tokio::test]
async fn configuration_embeds_provider_and_istio_mtls_policy_for_the_attached_account() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let token = mock.login().await;
    let config = mock.configuration(&token).await;
    assert_eq!(config["name"], "firefly-istio");
    assert_eq!(config["subCaProvider"]["keyAlgorithm"], "EC_P256");
    assert_eq!(config["subCaProvider"]["validityPeriod"], "P7D");
    assert_eq!(config["policies"][0]["name"], "istio-mtls");
    assert_eq!(config["policies"][0]["validityPeriod"], "PT1H");
    assert_eq!(config["serviceAccountIds"][0], mock.server.client_id());
}

#[tokio::test]
async fn assertion_signed_by_another_key_reports_token_signature_verification_error() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let (other, _) = csr(&rcgen::PKCS_ECDSA_P256_SHA256, "x");
    let assertion = sign(
        &support::tlspc_mock::claims(mock.server.client_id(), mock.clock.now()),
        &other.serialize_pem(),
    );
    let (status, body) = mock.post_assertion(&assertion).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("token_signature_verification_error"),
        "{body}"
    );
}

#[tokio::test]
async fn replayed_jti_is_refused() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let assertion = sign(
        &support::tlspc_mock::claims(mock.server.client_id(), mock.clock.now()),
        &mock.key_pem(),
    );
    assert_eq!(mock.post_assertion(&assertion).await.0, 200);
    let (status, body) = mock.post_assertion(&assertion).await;
    assert_eq!(status, 400);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );
}

#[tokio::test]
async fn assertion_with_wrong_audience_issuer_or_lifetime_is_refused() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let id = mock.server.client_id().to_owned();
    let key = mock.key_pem();
    let now = mock.clock.now();
    let cases = [
        ("aud", json!("api.venafi.cloud/v1/other"), "aud"),
        ("sub", json!("someone-else"), "sub"),
        (
            "exp",
            json!(
                support::tlspc_mock::claims(&id, now)["iat"]
                    .as_u64()
                    .unwrap()
                    + 3 * 3600
            ),
            "30 minutes",
        ),
        (
            "exp",
            json!(
                support::tlspc_mock::claims(&id, now)["iat"]
                    .as_u64()
                    .unwrap()
                    - 3600
            ),
            "expired",
        ),
    ];
    for (claim, value, needle) in cases {
        let mut c = support::tlspc_mock::claims(&id, now);
        c[claim] = value;
        let (status, body) = mock.post_assertion(&sign(&c, &key)).await;
        assert_eq!(status, 400, "{claim}: {body}");
        assert_eq!(body["error"], "invalid_grant");
        assert!(
            body["error_description"].as_str().unwrap().contains(needle),
            "{claim}: {body}"
        );
    }
    let mut c = support::tlspc_mock::claims(&id, now);
    c["iss"] = json!("00000000-0000-0000-0000-000000000000");
    c["sub"] = c["iss"].clone();
    let (status, body) = mock.post_assertion(&sign(&c, &key)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, body) = mock.post_assertion("not.a.jwt").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
}

#[tokio::test]
async fn token_endpoint_answers_oauth_errors_for_bad_forms() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let r = mock
        .http
        .post(mock.url(paths::TOKEN))
        .json(&json!({"assertion": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    let r = mock
        .http
        .post(mock.url(paths::TOKEN))
        .form(&[("grant_type", "password"), ("assertion", "x")])
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn expired_access_token_gets_401_in_the_api_error_shape() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let token = mock.login().await;
    mock.clock.advance(Duration::from_secs(901));
    let (status, body) = mock
        .call_json(
            Method::GET,
            paths::CONFIGURATIONS,
            Auth::Bearer(&token),
            None,
        )
        .await;
    assert_api_error(status, &body, 401, "expired");
}

#[tokio::test]
async fn token_expires_in_fault_shortens_new_tokens() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    mock.server
        .set_faults(firefly::tlspc_mock::Faults {
            token_expires_in: Some(5),
            ..Default::default()
        })
        .unwrap();
    let (status, body) = mock
        .post_assertion(&sign(
            &support::tlspc_mock::claims(mock.server.client_id(), mock.clock.now()),
            &mock.key_pem(),
        ))
        .await;
    assert_eq!((status, body["expires_in"].as_u64()), (200, Some(5)));
    let token = body["access_token"].as_str().unwrap().to_owned();
    mock.clock.advance(Duration::from_secs(6));
    assert_eq!(
        mock.call(
            Method::GET,
            paths::CONFIGURATIONS,
            Auth::Bearer(&token),
            None
        )
        .await
        .0,
        401
    );
}

#[tokio::test]
async fn bad_api_key_gets_plain_text_and_missing_credentials_get_the_errors_shape() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let (status, text) = mock
        .call(Method::GET, paths::POLICIES, Auth::ApiKey("wrong"), None)
        .await;
    assert_eq!((status, text.as_str()), (401, "Invalid api key"));
    let (status, body) = mock
        .call_json(Method::GET, paths::CONFIGURATIONS, Auth::None, None)
        .await;
    assert_eq!(status, 401);
    assert!(body["errors"][0]["code"].is_i64());
    let token = mock.login().await;
    let (status, body) = mock
        .call_json(Method::GET, paths::POLICIES, Auth::Bearer(&token), None)
        .await;
    assert_eq!(
        status, 403,
        "service-account token on an admin endpoint: {body}"
    );
    let (status, body) = mock.admin(Method::GET, paths::CONFIGURATIONS, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["configurations"].as_array().unwrap().len(), 1);
    let (status, body) = mock
        .call_json(Method::GET, "/v1/nothing/here", Auth::None, None)
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = mock
        .call_json(Method::DELETE, paths::TOKEN, Auth::None, None)
        .await;
    assert_eq!(status, 405, "{body}");
}

#[tokio::test]
async fn detached_account_gets_404_on_its_configuration_and_cannot_request_a_sub_ca() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let token = mock.login().await;
    let config_id = mock.configuration(&token).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, body) = mock
        .admin(
            Method::PATCH,
            &format!("{}/{config_id}", paths::CONFIGURATIONS),
            Some(json!({"serviceAccountIds": []})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = mock
        .call_json(
            Method::GET,
            paths::CONFIGURATIONS,
            Auth::Bearer(&token),
            None,
        )
        .await;
    assert_api_error(s, &body, 404, "not attached");
    let (_, csr_pem) = csr(&rcgen::PKCS_ECDSA_P256_SHA256, "x");
    assert_eq!(
        mock.request_sub_ca(&token, &config_id, &csr_pem).await.0,
        404
    );
    // Re-attaching restores service.
    let client_id = mock.server.client_id().to_owned();
    let (s, _) = mock
        .admin(
            Method::PATCH,
            &format!("{}/{config_id}", paths::CONFIGURATIONS),
            Some(json!({"serviceAccountIds": [client_id]})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(mock.configuration(&token).await["id"], config_id.as_str());
}

#[tokio::test]
async fn policy_changed_through_the_admin_api_is_served_and_bad_shapes_are_refused() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let (_, list) = mock.admin(Method::GET, paths::POLICIES, None).await;
    let policy = &list["policies"][0];
    assert_eq!(policy["configurations"][0]["name"], "firefly-istio");
    let id = policy["id"].as_str().unwrap();
    let path = format!("{}/{id}", paths::POLICIES);
    let (s, body) = mock
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"validityPeriod": "PT5S"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    // A change keeps the object's creation date and moves its modification date.
    assert!(policy["creationDate"].is_string(), "{policy}");
    assert_eq!(body["creationDate"], policy["creationDate"], "{body}");
    assert!(body["modificationDate"].is_string(), "{body}");
    assert_ne!(body["modificationDate"], policy["modificationDate"]);
    let token = mock.login().await;
    assert_eq!(
        mock.configuration(&token).await["policies"][0]["validityPeriod"],
        "PT5S"
    );

    let bad = json!({"sans": {"ipAddresses": {"type": "FORBIDDEN", "allowedValues": [".*"]}}});
    let (s, body) = mock.admin(Method::PATCH, &path, Some(bad)).await;
    assert_api_error(s, &body, 400, "sans.ipAddresses");
    let (s, body) = mock
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"keyUsages": ["keyCertSign"]})),
        )
        .await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(
        mock.configuration(&token).await["policies"][0]["validityPeriod"],
        "PT5S",
        "refused patch left it"
    );

    let (s, body) = mock
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"validityPeriodd": "PT1H"})),
        )
        .await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("validityPeriodd"),
        "unknown field named: {body}"
    );
    let long_name = "n".repeat(65);
    let (s, body) = mock
        .admin(Method::PATCH, &path, Some(json!({"name": long_name})))
        .await;
    assert_eq!(s, 400, "{body}");
    let (s, body) = mock.admin(Method::DELETE, &path, None).await;
    assert_eq!(s, 409, "policy in use: {body}");
}

#[tokio::test]
async fn admin_crud_creates_a_second_configuration_for_a_new_policy_and_provider() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let (s, provider) = mock
        .admin(
            Method::POST,
            paths::SUBCA_PROVIDERS,
            Some(json!({"name": "short", "caType": "BUILTIN", "validityPeriod": "PT30S", "commonName": "short.ca",
                        "keyAlgorithm": "EC_P384", "caAccountId": "a", "caProductOptionId": "b"})),
        )
        .await;
    assert_eq!(s, 201, "{provider}");
    let tiny = json!({"name": "tiny", "validityPeriod": "PT5S", "subject": {}, "sans": {
        "uniformResourceIdentifiers": {"type": "REQUIRED", "allowedValues": ["^spiffe://cluster\\.local/.*"], "minOccurrences": 1, "maxOccurrences": 1}},
        "keyUsages": ["digitalSignature"], "extendedKeyUsages": ["SERVER_AUTH", "CLIENT_AUTH"],
        "keyAlgorithm": {"allowedValues": ["EC_P256"], "defaultValue": "EC_P256"}});
    let (s, policy) = mock
        .admin(Method::POST, paths::POLICIES, Some(tiny.clone()))
        .await;
    assert_eq!(s, 201, "{policy}");
    let (s, dup) = mock.admin(Method::POST, paths::POLICIES, Some(tiny)).await;
    assert_eq!(s, 409, "{dup}");
    let client_id = mock.server.client_id();
    let body = json!({"name": "second", "subCaProviderId": provider["id"], "policyIds": [policy["id"]], "serviceAccountIds": [client_id]});
    let (s, conflict) = mock
        .admin(Method::POST, paths::CONFIGURATIONS, Some(body.clone()))
        .await;
    assert_eq!(s, 409, "account already attached elsewhere: {conflict}");
    let mut body = body;
    body["serviceAccountIds"] = json!([]);
    let (s, created) = mock
        .admin(Method::POST, paths::CONFIGURATIONS, Some(body))
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["subCaProvider"]["validityPeriod"], "PT30S");
    assert_eq!(created["policies"][0]["name"], "tiny");
    let (s, _) = mock
        .admin(
            Method::DELETE,
            &format!(
                "{}/{}",
                paths::CONFIGURATIONS,
                created["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = mock
        .admin(
            Method::DELETE,
            &format!("{}/{}", paths::POLICIES, policy["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = mock
        .admin(
            Method::GET,
            &format!("{}/{}", paths::POLICIES, policy["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn compressed_provider_validity_shortens_the_sub_ca() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let (_, list) = mock.admin(Method::GET, paths::SUBCA_PROVIDERS, None).await;
    let id = list["subCaProviders"][0]["id"].as_str().unwrap();
    let (s, body) = mock
        .admin(
            Method::PATCH,
            &format!("{}/{id}", paths::SUBCA_PROVIDERS),
            Some(json!({"validityPeriod": "PT30S"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (_, csr_pem) = csr(&rcgen::PKCS_ECDSA_P256_SHA256, "short");
    let issued = mock.issue(&csr_pem).await;
    let d = der(issued["certificate"].as_str().unwrap());
    let (_, cert) = X509Certificate::from_der(&d).unwrap();
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert!(
        (30..=45).contains(&lifetime),
        "PT30S (+ backdate), got {lifetime}s"
    );
}

#[tokio::test]
async fn csr_whose_key_algorithm_differs_from_the_provider_is_refused() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let token = mock.login().await;
    let config_id = mock.configuration(&token).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, p384) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, "x");
    let (s, body) = mock.request_sub_ca(&token, &config_id, &p384).await;
    assert_eq!(s, 400);
    let msg = body["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("EC_P384") && msg.contains("EC_P256"), "{msg}");
    let (s, body) = mock
        .request_sub_ca(
            &token,
            &config_id,
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        )
        .await;
    assert_eq!(s, 400, "{body}");
    let (s, body) = mock
        .request_sub_ca(&token, "some-other-configuration", &p384)
        .await;
    assert_eq!(s, 403, "{body}");
}

#[tokio::test]
async fn malformed_bodies_get_the_errors_shape_and_the_server_keeps_serving() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let token = mock.login().await;
    for body in [
        "",
        "{",
        "[]",
        "{\"configurationId\": 5}",
        "\u{0}\u{1}garbage",
    ] {
        let r = mock
            .http
            .post(mock.url(paths::INTERMEDIATE_CERTIFICATES))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body:?}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["errors"][0]["message"].is_string(), "{v}");
    }
    let huge = "x".repeat(3 * 1024 * 1024);
    let r = mock
        .http
        .post(mock.url(paths::POLICIES))
        .header("tppl-api-key", mock.server.api_key().as_str())
        .body(huge)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["errors"].is_array(), "{v}");
    assert_eq!(mock.configuration(&token).await["name"], "firefly-istio");
}

#[tokio::test]
async fn revoked_tokens_and_revoked_accounts_get_401() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let token = mock.login().await;
    let (s, body) = mock
        .admin(Method::POST, "/mock/tokens/revoke", Some(json!({})))
        .await;
    assert_eq!((s, body["revoked"].as_u64()), (200, Some(1)));
    let (s, body) = mock
        .call_json(
            Method::GET,
            paths::CONFIGURATIONS,
            Auth::Bearer(&token),
            None,
        )
        .await;
    assert_eq!(s, 401, "{body}");
    let token = mock.login().await;
    assert_eq!(mock.configuration(&token).await["name"], "firefly-istio");

    let id = mock.server.client_id().to_owned();
    let (s, _) = mock
        .admin(
            Method::POST,
            &format!("/mock/serviceaccounts/{id}/revoke"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        mock.call(
            Method::GET,
            paths::CONFIGURATIONS,
            Auth::Bearer(&token),
            None
        )
        .await
        .0,
        401
    );
    let (s, body) = mock
        .post_assertion(&sign(
            &support::tlspc_mock::claims(&id, mock.clock.now()),
            &mock.key_pem(),
        ))
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    let (s, _) = mock
        .admin(
            Method::POST,
            &format!("/mock/serviceaccounts/{id}/restore"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    mock.login().await;
}

#[tokio::test]
async fn usage_report_updates_the_request_and_configuration_counters() {
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let (_, csr_pem) = csr(&rcgen::PKCS_ECDSA_P256_SHA256, "usage");
    let issued = mock.issue(&csr_pem).await;
    let token = mock.login().await;
    let id = issued["id"].as_str().unwrap();
    let report =
        json!({"longLivedCertCount": 0, "shortLivedCertCount": 7, "ultraShortLivedCertCount": 3});
    let (s, body) = mock
        .call_json(
            Method::PATCH,
            &format!("{}/{id}", paths::INTERMEDIATE_CERTIFICATES),
            Auth::Bearer(&token),
            Some(report),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["shortLivedCertCount"], 7);
    let config = mock.configuration(&token).await;
    assert_eq!(
        (
            config["shortLivedCertCount"].as_i64(),
            config["ultraShortLivedCertCount"].as_i64()
        ),
        (Some(7), Some(3))
    );
    let (_, all) = mock
        .admin(Method::GET, paths::INTERMEDIATE_CERTIFICATES, None)
        .await;
    assert_eq!(
        all["intermediateCertificates"][0]["ultraShortLivedCertCount"],
        3
    );
}

#[tokio::test]
async fn generated_rsa_ec_and_ed25519_accounts_log_in() {
    let seed = SHIPPED_SEED.replace(
        "serviceAccounts:\n",
        "serviceAccounts:\n  - {name: rsa, clientId: 11111111-1111-4111-8111-111111111111, keyAlgorithm: RSA_2048}\n  - {name: p384, clientId: 22222222-2222-4222-8222-222222222222, keyAlgorithm: EC_P384}\n  - {name: ed, clientId: 33333333-3333-4333-8333-333333333333, keyAlgorithm: EC_ED25519}\n",
    );
    let mock = support::tlspc_mock::start(&seed).await;
    for id in [
        "11111111-1111-4111-8111-111111111111",
        "22222222-2222-4222-8222-222222222222",
        "33333333-3333-4333-8333-333333333333",
    ] {
        let key = mock
            .server
            .service_account_key_pem_for(id)
            .expect("generated");
        let token = mock.login_as(id, &key).await;
        let (s, _) = mock
            .call(
                Method::GET,
                paths::CONFIGURATIONS,
                Auth::Bearer(&token),
                None,
            )
            .await;
        assert_eq!(s, 404, "{id} logs in but is attached to no configuration");
    }
}

#[tokio::test]
async fn account_with_an_openssl_generated_public_key_logs_in() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let public = dir.path().join("public.pem");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        key.to_str().unwrap(),
    ]);
    run(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    let public_pem = std::fs::read_to_string(&public).unwrap();
    let indented: String = public_pem.lines().map(|l| format!("      {l}\n")).collect();
    let seed = SHIPPED_SEED.replace(
        "    # no publicKey: the mock generates the pair and writes svc-acct.key + client-id\n",
        &format!("    publicKey: |\n{indented}"),
    );
    let mock = support::tlspc_mock::start(&seed).await;
    assert!(
        mock.server.service_account_key_pem().is_none(),
        "no private key for a registered public key"
    );
    let token = mock
        .login_as(
            mock.server.client_id(),
            &std::fs::read_to_string(&key).unwrap(),
        )
        .await;
    assert_eq!(mock.configuration(&token).await["name"], "firefly-istio");
}

#[tokio::test]
async fn corrupt_state_dir_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mock = support::tlspc_mock::start_in(SHIPPED_SEED, Some(dir.path())).await;
        assert_eq!(mock.server.state_dir(), Some(dir.path()));
    }
    std::fs::write(dir.path().join("ca/intermediate1.key"), "not a key").unwrap();
    let seed = firefly::tlspc_mock::Seed::from_yaml_str(SHIPPED_SEED).unwrap();
    let err = firefly::tlspc_mock::MockServer::start(
        seed,
        Some(dir.path()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("ca/intermediate1.key"), "{err}");
}

#[tokio::test]
async fn in_process_state_dir_keeps_the_hierarchy_and_account_key_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (root, key) = {
        let mock = support::tlspc_mock::start_in(SHIPPED_SEED, Some(dir.path())).await;
        (mock.server.root_pem().to_owned(), mock.key_pem())
    };
    let mock = support::tlspc_mock::start_in(SHIPPED_SEED, Some(dir.path())).await;
    assert_eq!(mock.server.root_pem(), root);
    assert_eq!(mock.key_pem(), key);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("svc-acct.key")).unwrap(),
        key
    );
    mock.login().await;
}

#[tokio::test]
async fn random_bodies_on_every_route_get_a_real_error_shape_and_never_stop_the_server() {
    use rand::{Rng, SeedableRng};
    let mock = support::tlspc_mock::start(SHIPPED_SEED).await;
    let token = mock.login().await;
    let key = mock.server.api_key().to_string();
    let config_id = mock.configuration(&token).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let item = format!(
        "{}/{}",
        paths::INTERMEDIATE_CERTIFICATES,
        uuid::Uuid::new_v4()
    );
    let routes: Vec<(Method, String, bool)> = vec![
        (Method::POST, paths::TOKEN.to_owned(), false),
        (
            Method::POST,
            paths::INTERMEDIATE_CERTIFICATES.to_owned(),
            false,
        ),
        (Method::PATCH, item, false),
        (Method::POST, paths::POLICIES.to_owned(), true),
        (Method::POST, paths::SUBCA_PROVIDERS.to_owned(), true),
        (Method::POST, paths::CONFIGURATIONS.to_owned(), true),
        (
            Method::PATCH,
            format!("{}/{config_id}", paths::CONFIGURATIONS),
            true,
        ),
        (Method::PUT, "/mock/faults".to_owned(), true),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for round in 0..40 {
        for (method, path, admin) in &routes {
            let len = rng.random_range(0..512);
            let mut body: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if round % 2 == 0 {
                // Half the bodies look like JSON objects with random values.
                body = serde_json::to_vec(
                    &json!({"name": String::from_utf8_lossy(&body), "x": round}),
                )
                .unwrap();
            }
            let mut req = mock.http.request(method.clone(), mock.url(path)).body(body);
            req = if *admin {
                req.header(firefly::tlspc::API_KEY_HEADER, &key)
            } else {
                req.bearer_auth(&token)
            };
            if path == paths::TOKEN {
                req = req.header("content-type", "application/x-www-form-urlencoded");
            } else {
                req = req.header("content-type", "application/json");
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let v: serde_json::Value = r
                .json()
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: body is not JSON: {e}"));
            assert!(
                (400..500).contains(&status),
                "{method} {path} answered {status}: {v}"
            );
            if path == paths::TOKEN {
                assert!(v["error"].is_string(), "OAuth shape: {v}");
            } else {
                assert!(v["errors"][0]["message"].is_string(), "errors shape: {v}");
            }
        }
    }
    assert_eq!(mock.configuration(&token).await["name"], "firefly-istio");
}

#[tokio::test]
async fn seeded_scopes_revocation_and_controller_allowed_policies_take_effect() {
    let seed = SHIPPED_SEED
        .replace(
            "serviceAccounts:\n",
            "serviceAccounts:\n  - {name: noscope, clientId: 44444444-4444-4444-8444-444444444444, scopes: [other]}\n  - {name: gone, clientId: 55555555-5555-4555-8555-555555555555, revoked: true}\n",
        )
        .replace(
            "    serviceAccounts: [firefly]\n",
            "    serviceAccounts: [firefly]\n    controllerAllowedPolicies: [istio-mtls]\n",
        );
    let mock = support::tlspc_mock::start(&seed).await;
    let noscope = "44444444-4444-4444-8444-444444444444";
    let key = mock.server.service_account_key_pem_for(noscope).unwrap();
    let token = mock.login_as(noscope, &key).await;
    let (s, body) = mock
        .call_json(
            Method::GET,
            paths::CONFIGURATIONS,
            Auth::Bearer(&token),
            None,
        )
        .await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("distributed-issuance")
    );

    let gone = "55555555-5555-4555-8555-555555555555";
    let key = mock.server.service_account_key_pem_for(gone).unwrap();
    let (s, body) = mock
        .post_assertion(&sign(
            &support::tlspc_mock::claims(gone, mock.clock.now()),
            &key,
        ))
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );

    let firefly = "3f6f2b1e-8d4c-4a7e-9b5d-2c1e0f9a7d31";
    let key = mock.server.service_account_key_pem_for(firefly).unwrap();
    let token = mock.login_as(firefly, &key).await;
    let config = mock.configuration(&token).await;
    assert_eq!(
        config["controllerAllowedPolicyIds"],
        json!([config["policies"][0]["id"]])
    );
}
