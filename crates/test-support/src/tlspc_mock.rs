//! The mock TLSPC as every environment starts it ([`serve`]), and the helpers of the tlspc_mock_*
//! suites that speak its HTTP API: a hand-moved clock, assertions, logins, CSRs.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use firefly::tlspc::{TOKEN_AUDIENCE, paths};
use firefly::tlspc_mock::{MockServer, Seed};
use serde_json::Value;

pub use crate::SHIPPED_SEED;
pub use crate::verifiers::openssl_verify_parts as openssl_verify;

/// Starts the mock TLSPC on a loopback port from `seed_yaml`, keeping its state (the generated
/// service-account key among it) in `state_dir` when given.
///
/// # Errors
/// The seed refused, or the server failing to start.
pub async fn serve(seed_yaml: &str, state_dir: Option<&Path>) -> anyhow::Result<MockServer> {
    serve_with_clock(seed_yaml, state_dir, Arc::new(SystemTime::now)).await
}

/// [`serve`] with an injected clock.
///
/// # Errors
/// As [`serve`].
pub async fn serve_with_clock(
    seed_yaml: &str,
    state_dir: Option<&Path>,
    clock: firefly::tlspc_mock::Clock,
) -> anyhow::Result<MockServer> {
    firefly::crypto::install_default_provider();
    let seed = Seed::from_yaml_str(seed_yaml).map_err(|e| anyhow::anyhow!("the seed: {e}"))?;
    let server = MockServer::start_with_clock(seed, state_dir, "127.0.0.1:0".parse()?, clock)
        .await
        .context("starting the mock TLSPC")?;
    Ok(server)
}

/// A clock the test moves forward by hand.
#[derive(Clone, Default)]
pub struct TestClock(Arc<AtomicU64>);

impl TestClock {
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_secs(), Ordering::SeqCst);
    }
    pub fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
    pub fn as_clock(&self) -> firefly::tlspc_mock::Clock {
        let me = self.clone();
        Arc::new(move || me.now())
    }
}

/// A running mock plus an HTTP client.
pub struct Mock {
    pub server: MockServer,
    pub http: reqwest::Client,
    pub clock: TestClock,
}

pub async fn start(seed_yaml: &str) -> Mock {
    start_in(seed_yaml, None).await
}

pub async fn start_in(seed_yaml: &str, state_dir: Option<&Path>) -> Mock {
    let clock = TestClock::default();
    let server = serve_with_clock(seed_yaml, state_dir, clock.as_clock())
        .await
        .expect("mock starts");
    Mock {
        server,
        http: reqwest::Client::new(),
        clock,
    }
}

/// Claims of an assertion, editable by tests.
/// Asserts an answer in the API error shape: `want` status, and a first error message containing
/// `fragment`.
pub fn assert_api_error(status: u16, body: &Value, want: u16, fragment: &str) {
    assert_eq!(status, want, "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains(fragment), "{body}");
}

pub fn claims(client_id: &str, now: SystemTime) -> Value {
    let iat = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    serde_json::json!({
        "iss": client_id, "sub": client_id, "aud": TOKEN_AUDIENCE,
        "iat": iat, "exp": iat + 300, "jti": uuid::Uuid::new_v4().to_string(),
    })
}

/// Signs claims with a PKCS#8 PEM key of any supported type.
pub fn sign(claims: &Value, key_pem: &str) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let kp = rcgen::KeyPair::from_pem(key_pem).expect("key parses");
    let (alg, key) = if kp.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
        (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(key_pem.as_bytes()).unwrap(),
        )
    } else if kp.is_compatible(&rcgen::PKCS_ECDSA_P384_SHA384) {
        (
            Algorithm::ES384,
            EncodingKey::from_ec_pem(key_pem.as_bytes()).unwrap(),
        )
    } else if kp.is_compatible(&rcgen::PKCS_ED25519) {
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(key_pem.as_bytes()).unwrap(),
        )
    } else {
        (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap(),
        )
    };
    jsonwebtoken::encode(&Header::new(alg), claims, &key).expect("signs")
}

impl Mock {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    pub fn key_pem(&self) -> String {
        self.server
            .service_account_key_pem()
            .expect("generated key")
            .to_string()
    }

    /// Posts an assertion; returns status and JSON body.
    pub async fn post_assertion(&self, assertion: &str) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(paths::TOKEN))
            .form(&[
                ("grant_type", firefly::tlspc::JWT_BEARER_GRANT),
                ("assertion", assertion),
            ])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Logs in as the first account; returns the access token.
    pub async fn login(&self) -> String {
        self.login_as(self.server.client_id(), &self.key_pem())
            .await
    }

    pub async fn login_as(&self, client_id: &str, key_pem: &str) -> String {
        let (status, body) = self
            .post_assertion(&sign(&claims(client_id, self.clock.now()), key_pem))
            .await;
        assert_eq!(status, 200, "login failed: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> (u16, String) {
        let mut req = self.http.request(method, self.url(path));
        req = match auth {
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::ApiKey(k) => req.header(firefly::tlspc::API_KEY_HEADER, k),
            Auth::None => req,
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub async fn call_json(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (s, text) = self.call(method, path, auth, body).await;
        (
            s,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({s}): {text}")),
        )
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let key = self.server.api_key();
        self.call_json(method, path, Auth::ApiKey(&key), body).await
    }

    /// The configuration the token's account sees.
    pub async fn configuration(&self, token: &str) -> Value {
        let (s, body) = self
            .call_json(
                reqwest::Method::GET,
                paths::CONFIGURATIONS,
                Auth::Bearer(token),
                None,
            )
            .await;
        assert_eq!(s, 200, "{body}");
        body["configurations"][0].clone()
    }

    /// Requests a sub-CA for `csr_pem`; returns (status, body).
    pub async fn request_sub_ca(
        &self,
        token: &str,
        configuration_id: &str,
        csr_pem: &str,
    ) -> (u16, Value) {
        let body = serde_json::json!({
            "configurationId": configuration_id, "certificateSigningRequest": csr_pem, "instanceNaming": "test-pod",
        });
        self.call_json(
            reqwest::Method::POST,
            paths::INTERMEDIATE_CERTIFICATES,
            Auth::Bearer(token),
            Some(body),
        )
        .await
    }

    pub async fn poll(&self, token: &str, id: &str) -> Value {
        let (s, body) = self
            .call_json(
                reqwest::Method::GET,
                &format!("{}/{id}", paths::INTERMEDIATE_CERTIFICATES),
                Auth::Bearer(token),
                None,
            )
            .await;
        assert_eq!(s, 200, "{body}");
        body
    }

    /// Full flow: login, configuration, request, poll until not REQUESTED (bounded).
    pub async fn issue(&self, csr_pem: &str) -> Value {
        let token = self.login().await;
        let config = self.configuration(&token).await;
        let (s, created) = self
            .request_sub_ca(&token, config["id"].as_str().unwrap(), csr_pem)
            .await;
        assert_eq!(s, 201, "{created}");
        assert_eq!(created["status"], "REQUESTED");
        let id = created["id"].as_str().unwrap().to_owned();
        for _ in 0..20 {
            let got = self.poll(&token, &id).await;
            if got["status"] != "REQUESTED" {
                return got;
            }
        }
        panic!("still REQUESTED after 20 polls");
    }
}

#[derive(Clone, Copy)]
pub enum Auth<'a> {
    Bearer(&'a str),
    ApiKey(&'a str),
    None,
}

/// A CSR for a fresh key of `alg` with CN `cn`.
pub fn csr(alg: &'static rcgen::SignatureAlgorithm, cn: &str) -> (rcgen::KeyPair, String) {
    let kp = if alg == &rcgen::PKCS_RSA_SHA256 {
        rcgen::KeyPair::generate_rsa_for(alg, rcgen::RsaKeySize::_2048).unwrap()
    } else {
        rcgen::KeyPair::generate_for(alg).unwrap()
    };
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let pem = params.serialize_request(&kp).unwrap().pem().unwrap();
    (kp, pem)
}

/// DER of the first PEM block.
pub fn der(pem_text: &str) -> Vec<u8> {
    pem::parse(pem_text).expect("PEM").into_contents()
}
