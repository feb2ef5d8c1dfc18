//! Property tests of the SPIFFE ID and trust-domain types (C15–C18): round trips, every forbidden
//! character, and the length boundaries 2048/2049 and 255/256.

use firefly::spiffe::{MAX_ID_LEN, MAX_TRUST_DOMAIN_LEN, SpiffeError, SpiffeId, TrustDomain};
use proptest::prelude::*;

fn trust_domain() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,64}"
}

fn path() -> impl Strategy<Value = String> {
    // Segments that are not "." or "..": start with a letter or digit.
    prop::collection::vec("[a-zA-Z0-9][a-zA-Z0-9._-]{0,15}", 1..6)
        .prop_map(|segs| format!("/{}", segs.join("/")))
}

proptest! {
    #[test]
    fn valid_ids_round_trip(td in trust_domain(), p in path()) {
        let text = format!("spiffe://{td}{p}");
        let id: SpiffeId = text.parse().expect("valid by construction");
        prop_assert_eq!(id.to_string(), text.clone());
        prop_assert_eq!(id.trust_domain().as_str(), td.as_str());
        prop_assert_eq!(id.path(), p.as_str());
        let again: SpiffeId = id.to_string().parse().expect("round trip");
        prop_assert_eq!(again, id);
    }

    #[test]
    fn trust_domains_round_trip(td in trust_domain()) {
        let parsed: TrustDomain = td.parse().expect("valid");
        prop_assert_eq!(parsed.to_string(), td);
    }

    #[test]
    fn any_character_outside_the_path_class_is_refused(td in trust_domain(), p in path(), c in any::<char>(), at in 0usize..8) {
        prop_assume!(!(c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' || c == '/'));
        let mut chars: Vec<char> = p.chars().collect();
        let pos = 1 + at % (chars.len() - 1).max(1);
        chars.insert(pos.min(chars.len()), c);
        let bad: String = chars.into_iter().collect();
        let text = format!("spiffe://{td}{bad}");
        prop_assert!(text.parse::<SpiffeId>().is_err(), "{} parsed", text);
    }

    #[test]
    fn any_character_outside_the_trust_domain_class_is_refused(td in trust_domain(), c in any::<char>()) {
        prop_assume!(!(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-' || c == '_' || c == '/'));
        let bad = format!("{td}{c}");
        prop_assert!(bad.parse::<TrustDomain>().is_err(), "{} parsed", bad);
        let id = format!("spiffe://{bad}/ns/a");
        prop_assert!(id.parse::<SpiffeId>().is_err(), "{} parsed", id);
    }

    #[test]
    fn parsing_never_panics(s in ".{0,300}") {
        let _ = s.parse::<SpiffeId>();
        let _ = s.parse::<TrustDomain>();
    }
}

#[test]
fn every_forbidden_ascii_character_in_a_path_is_refused() {
    for b in 0u8..=127 {
        let c = b as char;
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/') {
            continue;
        }
        let text = format!("spiffe://example.org/ns/a{c}b");
        assert!(text.parse::<SpiffeId>().is_err(), "{text:?} parsed");
    }
}

#[test]
fn every_forbidden_ascii_character_in_a_trust_domain_is_refused() {
    for b in 0u8..=127 {
        let c = b as char;
        // '/' ends the trust domain rather than being part of it.
        if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_' | '/') {
            continue;
        }
        let text = format!("spiffe://exa{c}mple.org/ns/a");
        assert!(text.parse::<SpiffeId>().is_err(), "{text:?} parsed");
    }
}

#[test]
fn id_length_boundary_is_2048_bytes() {
    let prefix = "spiffe://example.org/";
    let at_limit = format!("{prefix}{}", "a".repeat(MAX_ID_LEN - prefix.len()));
    assert_eq!(at_limit.len(), 2048);
    assert!(at_limit.parse::<SpiffeId>().is_ok());
    let over = format!("{at_limit}b");
    assert_eq!(over.len(), 2049);
    assert_eq!(
        over.parse::<SpiffeId>(),
        Err(SpiffeError::TooLong { len: 2049 })
    );
}

#[test]
fn trust_domain_length_boundary_is_255_bytes() {
    let at_limit = "a".repeat(MAX_TRUST_DOMAIN_LEN);
    assert!(at_limit.parse::<TrustDomain>().is_ok());
    assert!(format!("spiffe://{at_limit}/x").parse::<SpiffeId>().is_ok());
    let over = "a".repeat(256);
    assert_eq!(
        over.parse::<TrustDomain>(),
        Err(SpiffeError::TrustDomainTooLong { len: 256 })
    );
    assert_eq!(
        format!("spiffe://{over}/x").parse::<SpiffeId>(),
        Err(SpiffeError::TrustDomainTooLong { len: 256 })
    );
}
