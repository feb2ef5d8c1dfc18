//! Fuzzes what the controller reads from TLSPC. The first byte minus `'0'` picks the reader (mod 5): 0 an
//! error body, 1 the service-account key file, 2 a configuration (its policies compiled into the
//! policy cache), 3 an intermediate-certificate answer (validated as a sub-CA for our key), 4 a
//! token answer (its `expires_in` turned into a refresh time, at several clock readings).
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use firefly::bootstrap::client::{
    MAX_TOKEN_CACHE, ServiceAccountKey, UpstreamDetail, parse_error_body, read_token_answer,
};
use firefly::bootstrap::locked_key::LockedKey;
use firefly::bootstrap::subca::validate_issued;
use firefly::config::LockMode;
use firefly::policy::cache::PolicyCache;
use firefly::policy::model::KeyAlgorithm;
use firefly::tlspc::{ExtendedConfigurationInformation, IntermediateCertificateInformation};
use libfuzzer_sys::fuzz_target;

fn key() -> &'static LockedKey {
    static KEY: OnceLock<LockedKey> = OnceLock::new();
    KEY.get_or_init(|| {
        LockedKey::generate(KeyAlgorithm::EcP256, LockMode::Disabled).expect("P-256 key")
    })
}

/// What reaches a log from an upstream body: one bounded line in which no long token-like word
/// (an echoed credential) survives.
fn assert_loggable(text: &str) {
    assert!(!text.contains('\n'), "a detail is one line: {text:?}");
    for word in text.split_whitespace() {
        let token_like = word.len() > 40
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.=+/".contains(c));
        assert!(
            !token_like,
            "a token-like word reached the detail: {word:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    // Seeds start with the reader's digit (`fuzz/seed.sh`): '0' picks reader 0.
    match selector.wrapping_sub(b'0') % 5 {
        0 => match parse_error_body(body) {
            UpstreamDetail::Text(t) => {
                assert!(
                    t.len() <= 163,
                    "plain-text detail is bounded: {} bytes",
                    t.len()
                );
                assert_loggable(&t);
            }
            UpstreamDetail::Api { message, .. } => assert_loggable(&message),
            UpstreamDetail::OAuth { error, description } => {
                assert_loggable(&error);
                assert_loggable(&description);
            }
            _ => {}
        },
        1 => {
            let _ = ServiceAccountKey::from_pem(body);
        }
        2 => {
            if let Ok(config) = serde_json::from_slice::<ExtendedConfigurationInformation>(body) {
                let mut cache = PolicyCache::new(Duration::from_secs(1800));
                let _ = cache.update(
                    &config.core_policies(),
                    &config.controller_allowed_policy_ids,
                    SystemTime::now(),
                );
                let _ = cache.longest_leaf();
                let _ = cache.usable_names();
            }
        }
        4 => {
            // The clock reading matters as much as the answer: `expires_in` once overflowed
            // `SystemTime` near its end.
            for issued_at in [
                SystemTime::UNIX_EPOCH,
                SystemTime::now(),
                SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 2),
            ] {
                match read_token_answer(body, issued_at) {
                    Ok(token) => {
                        assert!(token.refresh_at >= issued_at, "refresh before the login");
                        assert!(
                            token
                                .refresh_at
                                .duration_since(issued_at)
                                .is_ok_and(|d| d <= MAX_TOKEN_CACHE),
                            "a token is cached for at most MAX_TOKEN_CACHE"
                        );
                        assert!(format!("{token:?}").contains("redacted"));
                    }
                    Err(err) => assert_loggable(&err.to_string()),
                }
            }
        }
        _ => {
            if let Ok(answer) = serde_json::from_slice::<IntermediateCertificateInformation>(body) {
                let _ = validate_issued(
                    &answer,
                    key(),
                    // No configured anchor: the chain's own root is accepted (and pinned).
                    &[],
                    SystemTime::now(),
                    Some(Duration::from_secs(3600)),
                );
            }
        }
    }
});
