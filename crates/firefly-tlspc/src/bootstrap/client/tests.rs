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
    assert_eq!(jwt.split('.').count(), 3);
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
