use super::error::MAX_TEXT_DETAIL;
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{self, EcdsaKeyPair};

use super::*;

#[test]
fn api_error_shape_becomes_code_and_message() {
    let d = parse_error_body(
        br#"{"errors":[{"code":10051,"message":"Service account not attached","args":[]}]}"#,
    );
    assert_eq!(
        d,
        UpstreamDetail::Api {
            code: 10051,
            message: "Service account not attached".into()
        }
    );
}

#[test]
fn oauth_error_shape_becomes_error_and_description() {
    let d = parse_error_body(
        br#"{"error":"invalid_grant","error_description":"token_signature_verification_error"}"#,
    );
    assert_eq!(
        d,
        UpstreamDetail::OAuth {
            error: "invalid_grant".into(),
            description: "token_signature_verification_error".into()
        }
    );
    assert!(login_hint(&d, 400).contains("privateKeyFile is not the key"));
}

#[test]
fn plain_text_empty_html_and_junk_bodies_are_described_not_dumped() {
    assert_eq!(
        parse_error_body(b"Invalid api key"),
        UpstreamDetail::Text("Invalid api key".into())
    );
    assert_eq!(parse_error_body(b"  \n"), UpstreamDetail::Empty);
    assert_eq!(
        parse_error_body(b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>"),
        UpstreamDetail::Html
    );
    assert_eq!(
        parse_error_body(b"{\"unexpected\": true}"),
        UpstreamDetail::Unrecognized { len: 20 }
    );
    assert_eq!(
        parse_error_body(&[0xff, 0xfe, 0x00]),
        UpstreamDetail::Unrecognized { len: 3 }
    );
}

#[test]
fn echoed_token_like_words_are_elided_and_long_text_truncated() {
    let token = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl";
    let d = parse_error_body(format!("bad token {token}").as_bytes());
    assert!(!d.to_string().contains(token), "{d}");
    let long = "word ".repeat(100);
    let UpstreamDetail::Text(text) = parse_error_body(long.as_bytes()) else {
        panic!()
    };
    assert!(text.len() <= MAX_TEXT_DETAIL + '…'.len_utf8());
}

#[test]
fn backoff_stays_within_jitter_bounds_and_cap() {
    let policy = RetryPolicy::default();
    for attempt in 0..10 {
        let wait = policy.backoff(attempt);
        let full = policy
            .base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(policy.cap);
        assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
    }
}

#[test]
fn sec1_p256_key_is_converted_and_signs_es256() {
    let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let sec1 = pair.private_key().as_der().unwrap();
    let pem_text = pem::encode(&pem::Pem::new("EC PRIVATE KEY", sec1.as_ref().to_vec()));
    let key = ServiceAccountKey::from_pem(pem_text.as_bytes()).unwrap();
    assert_eq!(key.algorithm(), jsonwebtoken::Algorithm::ES256);
    let jwt = key.mint_assertion("client", SystemTime::now()).unwrap();
    assert_eq!(jwt.expose().split('.').count(), 3);
    assert!(!format!("{key:?}").contains(&pem_text[40..80]));
}

#[test]
fn unsupported_pem_labels_are_refused_by_name() {
    let err = ServiceAccountKey::from_pem(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap_err();
    assert!(err.contains("PEM label"), "{err}");
    assert!(ServiceAccountKey::from_pem(b"garbage").is_err());
}

#[test]
fn odd_ids_are_percent_encoded_in_paths() {
    assert_eq!(path_segment("a/../b"), "a%2F%2E%2E%2Fb");
    assert_eq!(path_segment("0f8e-11"), "0f8e-11");
}

#[test]
fn a_huge_expires_in_is_capped_not_a_panic() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for expires_in in [u64::MAX, u64::MAX / 2, 1 << 40, 10 * 365 * 24 * 3600] {
        let at = token_refresh_at(now, expires_in);
        assert_eq!(
            at,
            now + MAX_TOKEN_CACHE - Duration::from_secs(60),
            "{expires_in}"
        );
    }
    // The ordinary cases keep the contract's margin: min(60 s, half the lifetime).
    assert_eq!(token_refresh_at(now, 900), now + Duration::from_secs(840));
    assert_eq!(token_refresh_at(now, 60), now + Duration::from_secs(30));
    assert_eq!(token_refresh_at(now, 0), now);
    // Even at the end of time the answer is a time, not a panic.
    let far = SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 2);
    let _ = token_refresh_at(far, u64::MAX);

    let body = format!(
        r#"{{"access_token":"tok","token_type":"bearer","expires_in":{}}}"#,
        u64::MAX
    );
    let token = read_token_answer(body.as_bytes(), now).expect("a huge lifetime is capped");
    assert_eq!(
        token.refresh_at,
        now + MAX_TOKEN_CACHE - Duration::from_secs(60)
    );
}

#[test]
fn malformed_token_answers_are_specific_errors_that_never_quote_the_token() {
    let now = SystemTime::now();
    let token = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl";
    for body in [
        format!(r#"{{"access_token":"{token}","token_type":"bearer","expires_in":-1}}"#),
        format!(r#"{{"access_token":"{token}","token_type":"bearer","expires_in":"{token}"}}"#),
        format!(r#"{{"access_token":"{token}","token_type":"bearer","expires_in":1e30}}"#),
        format!(r#"{{"access_token":["{token}"],"token_type":"bearer","expires_in":900}}"#),
        r#"{"access_token":"  ","token_type":"bearer","expires_in":900}"#.to_owned(),
        r#"{"token_type":"bearer","expires_in":900}"#.to_owned(),
    ] {
        let err = read_token_answer(body.as_bytes(), now).unwrap_err();
        assert!(matches!(err, ClientError::Malformed { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("service-account login"), "{text}");
        assert!(!text.contains(token), "{text}");
        assert!(!format!("{err:?}").contains(token), "{err:?}");
    }
}

/// Every type that carries a credential prints a placeholder in its place.
#[test]
fn debug_output_of_every_secret_carrying_type_holds_no_secret() {
    let token = "eyJhbGciOiJFUzI1NiJ9.secret-token-value";
    let wire = crate::wire::TokenResponse {
        access_token: token.to_owned(),
        token_type: "bearer".into(),
        expires_in: 900,
    };
    let answer = serde_json::to_vec(&wire).unwrap();
    let cached = read_token_answer(&answer, SystemTime::now()).unwrap();
    let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let pkcs8 = pair.to_pkcs8v1().unwrap();
    let pem_text = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
    let key = ServiceAccountKey::from_pem(pem_text.as_bytes()).unwrap();
    let assertion = key.mint_assertion("client", SystemTime::now()).unwrap();
    let outputs = [
        format!("{wire:?}"),
        format!("{wire:#?}"),
        format!("{cached:?}"),
        format!("{:?}", cached.token),
        format!("{key:?}"),
        format!("{assertion:?}"),
    ];
    let pem_body: String = pem_text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let jwt = assertion.expose();
    for out in &outputs {
        assert!(out.contains("redacted"), "{out}");
        assert!(!out.contains("secret-token-value"), "{out}");
        assert!(!out.contains(&pem_body[20..60]), "{out}");
        for part in jwt.split('.') {
            assert!(!out.contains(part), "{out}");
        }
    }
    // The wire type still says what is not secret.
    assert!(outputs[0].contains("expires_in: 900"), "{}", outputs[0]);
}

/// A one-route HTTP server: every request gets `answer` (one HTTP/1.1 response, connection
/// closed); counts requests per path.
async fn tiny_server(
    answer: impl Fn(&str, u16) -> String + Send + Sync + 'static,
) -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = paths.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let path = text.split_whitespace().nth(1).unwrap_or("").to_owned();
                seen.lock().unwrap().push(path.clone());
                let _ = stream.write_all(answer(&path, port).as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (port, paths)
}

fn p256_key() -> ServiceAccountKey {
    let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let pkcs8 = pair.to_pkcs8v1().unwrap();
    let pem_text = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
    ServiceAccountKey::from_pem(pem_text.as_bytes()).unwrap()
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_is_a_specific_error() {
    crate::crypto::install_default_provider();
    let (port, paths) = tiny_server(|path, port| {
        if path.starts_with("/elsewhere") {
            let body = r#"{"access_token":"t","token_type":"bearer","expires_in":900}"#;
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        } else {
            format!(
                "HTTP/1.1 302 Found\r\nlocation: http://user:pw@127.0.0.1:{port}/elsewhere?token=leak#frag\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
        }
    })
    .await;
    let client = TlspcClient::new(
        ClientSettings {
            base_url: format!("http://127.0.0.1:{port}"),
            client_id: "client".into(),
            request_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
        },
        p256_key(),
        Arc::new(crate::bootstrap::SystemClock),
    )
    .unwrap();
    let err = client.login().await.unwrap_err();
    let ClientError::Redirected {
        endpoint,
        status,
        location,
    } = &err
    else {
        panic!("expected a redirect error, got {err:?}");
    };
    assert_eq!(*endpoint, "service-account login");
    assert_eq!(*status, 302);
    assert_eq!(location, &format!("http://127.0.0.1:{port}/elsewhere"));
    let text = err.to_string();
    assert!(text.contains("redirects are not followed"), "{text}");
    assert!(text.contains("bootstrap.vaas.url"), "{text}");
    assert!(!text.contains("leak") && !text.contains("pw"), "{text}");
    assert!(!err.is_transient(), "a redirect is not retried");
    assert_eq!(
        paths.lock().unwrap().as_slice(),
        [crate::wire::paths::TOKEN],
        "exactly one request, and none to the redirect target"
    );
}

#[test]
fn a_requested_sub_ca_is_polled_after_10_ms_then_at_doubling_intervals_up_to_5_s() {
    let delays: Vec<Duration> = super::poll_delays().take(12).collect();
    let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
    assert_eq!(
        ms,
        [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5000, 5000, 5000],
        "an issuance that completes at once is seen after 10 ms, not a tenth of a second"
    );
    let first_2_5_s = delays
        .iter()
        .scan(Duration::ZERO, |t, d| {
            *t += *d;
            Some(*t)
        })
        .take_while(|t| *t <= Duration::from_millis(2_550))
        .count();
    assert_eq!(first_2_5_s, 8, "a slow issuance costs eight polls in 2.5 s");
}
