//! The real TLSPC client against the real mock over loopback HTTP: login with every key type, token refresh, revocation, wrong keys, detached accounts, and the three error shapes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use firefly::bootstrap::client::{
    CallObserver, ClientError, ClientSettings, RetryPolicy, ServiceAccountKey, TlspcClient,
    UpstreamDetail,
};
use firefly::bootstrap::{Clock, SystemClock};
use firefly::tlspc_mock::{MockServer, Seed};
use serde_json::Value;
use serde_json::json;
use support::bootstrap::{API_KEY, SHIPPED_SEED};

const ACCOUNTS: [(&str, &str); 4] = [
    ("rsa", "RSA_2048"),
    ("p256", "EC_P256"),
    ("p384", "EC_P384"),
    ("ed25519", "EC_ED25519"),
];

fn client_id(i: usize) -> String {
    format!("7d3e2c10-0000-4000-8000-00000000000{i}")
}

/// The shipped seed with one attached account per key type, plus a detached one and one whose
/// registered public key belongs to another key.
async fn start_mock(wrong_public_key_pem: &str) -> MockServer {
    start_mock_on(wrong_public_key_pem, Arc::new(SystemClock)).await
}

/// [`start_mock`] on `clock` (token expiry and assertion times).
async fn start_mock_on(wrong_public_key_pem: &str, clock: Arc<dyn Clock>) -> MockServer {
    firefly::crypto::install_default_provider();
    let mut seed: Value = serde_saphyr::from_str(SHIPPED_SEED).expect("seed");
    let mut accounts = Vec::new();
    let mut attached = Vec::new();
    for (i, (name, alg)) in ACCOUNTS.iter().enumerate() {
        accounts.push(
            serde_saphyr::from_str::<Value>(&format!(
                "{{name: {name}, clientId: {}, keyAlgorithm: {alg}}}",
                client_id(i)
            ))
            .unwrap(),
        );
        attached.push(Value::from(*name));
    }
    accounts.push(
        serde_saphyr::from_str(&format!("{{name: detached, clientId: {}}}", client_id(8))).unwrap(),
    );
    accounts.push(serde_json::json!({
        "name": "wrong",
        "clientId": client_id(9),
        "publicKey": wrong_public_key_pem,
    }));
    attached.push("wrong".into());
    seed["serviceAccounts"] = Value::Array(accounts);
    seed["configurations"][0]["serviceAccounts"] = Value::Array(attached);
    let seed = Seed::from_yaml_str(&serde_saphyr::to_string(&seed).unwrap()).expect("seed valid");
    MockServer::start_with_clock(seed, None, "127.0.0.1:0".parse().unwrap(), clock)
        .await
        .expect("mock starts")
}

fn client(mock: &MockServer, id: &str, key: ServiceAccountKey) -> TlspcClient {
    client_on(mock, id, key, Arc::new(SystemClock))
}

/// [`client`] on `clock` (when a token is refreshed, login assertion times).
fn client_on(
    mock: &MockServer,
    id: &str,
    key: ServiceAccountKey,
    clock: Arc<dyn Clock>,
) -> TlspcClient {
    let settings = ClientSettings {
        base_url: mock.base_url().to_string(),
        client_id: id.to_string(),
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(20),
            cap: Duration::from_millis(100),
        },
    };
    TlspcClient::new(settings, key, clock).expect("client")
}

fn key_of(mock: &MockServer, id: &str) -> ServiceAccountKey {
    let pem = mock.service_account_key_pem_for(id).expect("generated key");
    ServiceAccountKey::from_pem(pem.as_bytes()).expect("key parses")
}

fn other_key() -> rcgen::KeyPair {
    rcgen::KeyPair::generate().expect("key")
}

/// An admin POST with the API key; panics on a non-2xx answer; returns the JSON answer (`null`
/// when empty).
async fn admin(mock: &MockServer, path: &str, body: serde_json::Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", mock.base_url()))
        .header("tppl-api-key", API_KEY)
        .json(&body)
        .send()
        .await
        .expect("admin call");
    let status = resp.status();
    let text = resp.text().await.expect("admin body");
    assert!(status.is_success(), "{path}: {status} {text}");
    if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("admin answer is JSON")
    }
}

#[tokio::test]
async fn login_and_configuration_work_with_rsa_ec_and_ed25519_accounts() {
    let mock = start_mock(&other_key().public_key_pem()).await;
    for (i, (name, _)) in ACCOUNTS.iter().enumerate() {
        let id = client_id(i);
        let key = key_of(&mock, &id);
        let expected = match *name {
            "rsa" => jsonwebtoken::Algorithm::RS256,
            "p256" => jsonwebtoken::Algorithm::ES256,
            "p384" => jsonwebtoken::Algorithm::ES384,
            _ => jsonwebtoken::Algorithm::EdDSA,
        };
        assert_eq!(key.algorithm(), expected, "{name}");
        let c = client(&mock, &id, key);
        c.login().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        let configuration = c
            .configuration()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(configuration.name, "firefly-istio", "{name}");
        assert!(configuration.sub_ca_provider.is_some(), "{name}");
        assert_eq!(configuration.policies[0].name, "istio-mtls", "{name}");
    }
}

#[tokio::test]
async fn an_sec1_ec_private_key_is_converted_and_logs_in() {
    let mock = start_mock(&other_key().public_key_pem()).await;
    let id = client_id(1);
    let pkcs8 = mock.service_account_key_pem_for(&id).expect("key");
    // openssl, an independent tool, writes the SEC1 form administrators often have.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pkcs8.pem");
    std::fs::write(&input, pkcs8.as_bytes()).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["ec", "-in"])
        .arg(&input)
        .args(["-outform", "PEM"])
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sec1 = String::from_utf8(out.stdout).unwrap();
    assert!(
        sec1.contains("BEGIN EC PRIVATE KEY"),
        "openssl wrote {sec1:.40}"
    );
    let path = dir.path().join("sec1.pem");
    std::fs::write(&path, &sec1).unwrap();
    let c = client(
        &mock,
        &id,
        ServiceAccountKey::load(&path).expect("SEC1 loads"),
    );
    c.configuration().await.expect("SEC1 key logs in");
}

#[tokio::test]
async fn a_wrong_key_surfaces_token_signature_verification_error_clearly() {
    let registered = other_key();
    let mock = start_mock(&registered.public_key_pem()).await;
    let impostor = other_key();
    let key = ServiceAccountKey::from_pem(impostor.serialize_pem().as_bytes()).unwrap();
    let err = client(&mock, &client_id(9), key)
        .login()
        .await
        .expect_err("wrong key");
    let text = err.to_string();
    assert!(matches!(err, ClientError::LoginRefused { .. }), "{err:?}");
    assert!(
        text.contains("token_signature_verification_error"),
        "{text}"
    );
    assert!(text.contains("privateKeyFile is not the key"), "{text}");
    assert!(
        !text.contains(&impostor.serialize_pem()[30..70]),
        "no key material in errors"
    );
    // And the right key for the same account works (sanity of the registered public key).
    let ok = ServiceAccountKey::from_pem(registered.serialize_pem().as_bytes()).unwrap();
    client(&mock, &client_id(9), ok)
        .login()
        .await
        .expect("registered key logs in");
}

#[tokio::test]
async fn a_detached_account_gets_a_clear_error() {
    let mock = start_mock(&other_key().public_key_pem()).await;
    let id = client_id(8);
    let err = client(&mock, &id, key_of(&mock, &id))
        .configuration()
        .await
        .expect_err("detached");
    assert!(
        matches!(err, ClientError::NoConfiguration { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&id));
}

#[tokio::test]
async fn a_revoked_token_triggers_one_reauthentication_then_success() {
    let mock = start_mock(&other_key().public_key_pem()).await;
    let id = client_id(1);
    let (c, log) = observed(client(&mock, &id, key_of(&mock, &id)));
    c.configuration().await.expect("first call");
    let before = log.lock().unwrap().len();
    let revoked = admin(&mock, "/mock/tokens/revoke", json!({"clientId": id})).await;
    assert!(
        revoked["revoked"].as_u64().is_some_and(|n| n >= 1),
        "the revoke revoked no token, so nothing below is a re-authentication: {revoked}"
    );
    c.configuration()
        .await
        .expect("re-authenticated once and succeeded");
    // The revoked token was refused once (401), the client logged in exactly once more and the
    // retried call succeeded: nothing else.
    let log = log.lock().unwrap().clone();
    let after: Vec<_> = log[before..]
        .iter()
        .map(|e| (e.endpoint, e.status))
        .collect();
    assert_eq!(
        after,
        [
            ("configuration fetch", Some(401)),
            ("service-account login", Some(200)),
            ("configuration fetch", Some(200)),
        ],
        "{log:?}"
    );
}

#[tokio::test]
async fn a_revoked_account_surfaces_the_second_refusal_as_an_error() {
    let mock = start_mock(&other_key().public_key_pem()).await;
    let id = client_id(1);
    let c = client(&mock, &id, key_of(&mock, &id));
    c.configuration().await.expect("first call");
    admin(
        &mock,
        &format!("/mock/serviceaccounts/{id}/revoke"),
        json!({}),
    )
    .await;
    let err = c.configuration().await.expect_err("revoked account");
    assert!(
        matches!(
            err,
            ClientError::LoginRefused { .. } | ClientError::Status { status: 401, .. }
        ),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

/// One HTTP exchange seen by the client's call observer.
#[derive(Clone, Debug)]
struct Exchange {
    endpoint: &'static str,
    status: Option<u16>,
    started: Instant,
    ended: Instant,
}

/// `c` reporting every exchange into the returned log.
fn observed(c: TlspcClient) -> (TlspcClient, Arc<Mutex<Vec<Exchange>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let observer: CallObserver = Arc::new(move |endpoint, status, took| {
        let ended = Instant::now();
        sink.lock().unwrap().push(Exchange {
            endpoint,
            status,
            started: ended - took,
            ended,
        });
    });
    (c.with_observer(observer), log)
}

/// Wall-clock time that moves only when the test says so, shared by the client and the mock: token
/// lifetimes and the client's early refresh are judged on it, never on how long a call takes.
#[derive(Clone)]
struct ManualClock(Arc<Mutex<SystemTime>>);

impl ManualClock {
    fn starting_now() -> ManualClock {
        ManualClock(Arc::new(Mutex::new(SystemTime::now())))
    }

    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

#[tokio::test]
async fn tokens_expiring_early_are_refreshed_transparently() {
    let clock = ManualClock::starting_now();
    let mock = start_mock_on(&other_key().public_key_pem(), Arc::new(clock.clone())).await;
    let mut faults = mock.faults();
    faults.token_expires_in = Some(2);
    mock.set_faults(faults).unwrap();
    let id = client_id(1);
    let (c, log) = observed(client_on(
        &mock,
        &id,
        key_of(&mock, &id),
        Arc::new(clock.clone()),
    ));
    // Calls 0.9 s apart over three 2 s token lifetimes (0 to 5.4 s on the shared clock): each
    // token is replaced 1 s (half its lifetime) before it expires. A token used past its expiry
    // would be refused by the mock; one never replaced early would be used at 1.8 s and refused
    // at 2.7 s.
    for _ in 0..7 {
        c.configuration()
            .await
            .expect("call succeeds across token expiry");
        clock.advance(Duration::from_millis(900));
    }
    // Success alone proves little (a 401 makes the client log in again and retry): no call may
    // have been refused, and the client logged in again before each expiry.
    let log = log.lock().unwrap().clone();
    let refused: Vec<_> = log.iter().filter(|e| e.status == Some(401)).collect();
    assert!(refused.is_empty(), "expired tokens were used: {refused:?}");
    let logins = log
        .iter()
        .filter(|e| e.endpoint == "service-account login")
        .count();
    let fetches = log
        .iter()
        .filter(|e| e.endpoint == "configuration fetch" && e.status == Some(200))
        .count();
    assert_eq!(fetches, 7, "{log:?}");
    // Logins at 0, 1.8, 3.6 and 5.4 s: a token is reused only while under 1 s old.
    assert_eq!(logins, 4, "tokens were not refreshed early: {log:?}");
}

#[tokio::test]
async fn the_three_error_shapes_and_html_become_specific_errors() {
    let mock = start_mock(&other_key().public_key_pem()).await;
    let id = client_id(1);
    let c = client(&mock, &id, key_of(&mock, &id));
    let cases = [
        ("real", 404u16),
        ("plainText", 403),
        ("html", 503),
        ("empty", 502),
    ];
    for (body, status) in cases {
        let mut faults = mock.faults();
        faults.route_errors = serde_json::from_value(
            json!([{"route": "configurations", "status": status, "body": body}]),
        )
        .unwrap();
        mock.set_faults(faults).unwrap();
        let err = c.configuration().await.expect_err(body);
        let text = err.to_string();
        match (&err, body) {
            (ClientError::NoConfiguration { .. }, "real") => {}
            (
                ClientError::Status {
                    detail: UpstreamDetail::Text(_),
                    status: 403,
                    ..
                },
                "plainText",
            ) => {}
            (
                ClientError::Status {
                    detail: UpstreamDetail::Html,
                    status: 503,
                    ..
                },
                "html",
            ) => {}
            (
                ClientError::Status {
                    detail: UpstreamDetail::Empty,
                    status: 502,
                    ..
                },
                "empty",
            ) => {}
            _ => panic!("{body}: unexpected {err:?}"),
        }
        assert!(
            !text.contains("<html") && !text.contains("<!DOCTYPE"),
            "{body}: {text}"
        );
    }
    let mut faults = mock.faults();
    faults.route_errors = serde_json::from_value(
        json!([{"route": "configurations", "status": 200, "body": "malformedJson"}]),
    )
    .unwrap();
    mock.set_faults(faults).unwrap();
    let err = c.configuration().await.expect_err("malformed");
    assert!(matches!(err, ClientError::Malformed { .. }), "{err:?}");
}

#[tokio::test]
async fn a_burst_of_5xx_is_ridden_out_with_backoff() {
    let mock = start_mock(&other_key().public_key_pem()).await;
    let id = client_id(1);
    let c = client(&mock, &id, key_of(&mock, &id));
    let mut faults = mock.faults();
    faults.route_errors = serde_json::from_value(json!([
        {"route": "configurations", "status": 503, "count": 2, "body": "html"},
        {"route": "token", "status": 429, "count": 1}
    ]))
    .unwrap();
    mock.set_faults(faults).unwrap();
    let (c, log) = observed(c);
    c.configuration().await.expect("retried past the burst");
    // Each retry waited its backoff (uniform in [d/2, d], d = 20 ms · 2^attempt): 429 login, then
    // two 503s on the fetch, the second followed by a doubled pause.
    let log = log.lock().unwrap().clone();
    let statuses: Vec<_> = log.iter().map(|e| (e.endpoint, e.status)).collect();
    assert_eq!(
        statuses,
        [
            ("service-account login", Some(429)),
            ("service-account login", Some(200)),
            ("configuration fetch", Some(503)),
            ("configuration fetch", Some(503)),
            ("configuration fetch", Some(200)),
        ],
        "{log:?}"
    );
    // 1 ms less than the shortest backoff, for the observer's own bookkeeping.
    let least = [(0, 9), (2, 9), (3, 19)];
    for (i, ms) in least {
        let pause = log[i + 1].started.saturating_duration_since(log[i].ended);
        assert!(
            pause >= Duration::from_millis(ms),
            "retry {} came {pause:?} after the failure: {log:?}",
            i + 1
        );
    }
}
