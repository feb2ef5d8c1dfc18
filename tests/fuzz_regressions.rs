//! Inputs found by the fuzz targets in `fuzz/` that once broke a rule, fed to the same entry
//! point with the rule they broke asserted.

use firefly::bootstrap::client::{UpstreamDetail, parse_error_body};

/// `tlspc_answers` (reader 0), 2026-11-23: a plain-text error body echoing a JWT with control
/// characters inside it. They hid the token from the elision, then were stripped, and the whole
/// token reached the detail that error messages and logs quote.
#[test]
fn a_token_split_by_control_characters_is_still_elided_from_an_error_body() {
    let body = b"Invalid api key Invalid api key eyJhbGciOiJSUzI1NiIsInR5cCI6IkpeyJhbGciOiJSUzI1NiIsInR5cCI6Ikp\x02\x00\x00\x00\x00\x00\x00\x00XVCJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    let UpstreamDetail::Text(text) = parse_error_body(body) else {
        panic!("a short plain-text body is described as text");
    };
    assert!(
        !text.contains("eyJhbGciOiJSUzI1NiIsInR5cCI6Ikp"),
        "{text:?}"
    );
    assert!(text.contains("<elided>"), "{text:?}");
    assert!(text.starts_with("Invalid api key"), "{text:?}");
    assert!(!text.chars().any(char::is_control), "{text:?}");
}

/// The kept corpus of the `csr_content` target (`fuzz/kept/csr_content/`, a few dozen inputs
/// chosen from a fuzzing run to cover every outcome, key type and policy), replayed through the
/// same entry point the target calls: every input still runs decode, SPIFFE rules, policy,
/// template, signing and post-sign validation without breaking an invariant.
#[test]
fn the_kept_csr_content_corpus_replays_without_breaking_an_invariant() {
    use support::csr_content::{Outcome, exercise};
    let dir = support::repo_root().join("fuzz/kept/csr_content");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 10,
        "the kept corpus is missing: {}",
        dir.display()
    );
    let mut seen = std::collections::BTreeSet::new();
    for path in &inputs {
        let data = std::fs::read(path).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| exercise(&data))
            .unwrap_or_else(|_| panic!("{} broke an invariant", path.display()));
        seen.insert(format!("{outcome:?}"));
    }
    // The corpus is worth replaying only if it reaches past the decoder into signing.
    for outcome in [Outcome::Issued, Outcome::Refused] {
        assert!(
            seen.contains(&format!("{outcome:?}")),
            "no kept input ends {outcome:?}: {seen:?}"
        );
    }
}

/// `csr_content`, 2026-12-05, within a minute of the first run: a request whose countryName is a
/// PrintableString holding `?` (which X.680 allows), admitted by a policy that allows any country.
/// rcgen accepts `?` in a PrintableString, but yasna, the DER writer under it, refuses it with a
/// panic, so signing the leaf panicked. The country was then written as UTF8String and the leaf
/// issued, which RFC 5280 Appendix A forbids (countryName is PrintableString SIZE (2)). Now the
/// policy decision refuses any countryName that is not two letters, naming the attribute and its
/// bound, before anything is signed: still no panic, and nothing signed.
#[test]
fn a_question_mark_in_an_allowed_country_is_refused_by_name_not_a_panic() {
    use firefly::ca::{IssueError, IssueOptions, LeafRequest};
    use support::csr_content::{Outcome, build, exercise};
    let input = std::fs::read(
        support::repo_root()
            .join("fuzz/kept/csr_content/crash-1fc45ae4d246d3abf5ce59db9dbc601812b73566"),
    )
    .expect("the crash input is kept");
    let case = build(&input);
    let csr = firefly::csr::decode_der(&case.der).expect("the request decodes");
    assert!(
        csr.subject.country.iter().any(|c| c.contains('?')),
        "the input still builds a country with `?`: {:?}",
        csr.subject
    );
    assert_eq!(exercise(&input), Outcome::Refused);

    // The refusal names countryName and its bound, under a policy that allows any country.
    let doc: firefly::policy::model::PolicyInformation = serde_json::from_str(
        r#"{
  "name": "any-country",
  "validityPeriod": "PT1H",
  "subject": {
    "commonName": {"type": "IGNORED", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 0},
    "organization": {"type": "IGNORED", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 0},
    "organizationalUnit": {"type": "IGNORED", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 0},
    "locality": {"type": "IGNORED", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 0},
    "stateOrProvince": {"type": "IGNORED", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 0},
    "country": {"type": "OPTIONAL", "allowedValues": ["^.*"], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 4}
  },
  "sans": {
    "dnsNames": {"type": "OPTIONAL", "allowedValues": ["^.*"], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 8},
    "ipAddresses": {"type": "OPTIONAL", "allowedValues": [], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 8},
    "rfc822Names": {"type": "OPTIONAL", "allowedValues": ["^.*"], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 8},
    "uniformResourceIdentifiers": {"type": "OPTIONAL", "allowedValues": ["^.*"], "defaultValues": [], "minOccurrences": 0, "maxOccurrences": 8}
  },
  "keyUsages": ["digitalSignature", "keyEncipherment"],
  "extendedKeyUsages": ["SERVER_AUTH", "CLIENT_AUTH"],
  "keyAlgorithm": {"allowedValues": ["EC_P256", "EC_P384", "EC_ED25519", "RSA_2048", "RSA_3072", "RSA_4096"], "defaultValue": "EC_P256"}
}"#,
    )
    .expect("policy JSON");
    let policy = firefly::policy::CompiledPolicy::compile(&doc.to_policy()).expect("compiles");
    let pem = support::csr::to_pem(&case.der);
    let pki = support::pki::PkiBuilder::default().build();
    // A panic here fails the test as surely as a wrong outcome.
    let result = firefly::ca::issue(
        &pki.sub_ca,
        &policy,
        &LeafRequest {
            csr_pem: pem.as_bytes(),
            duration: None,
            usages: None,
            is_ca: false,
            identities_annotation: None,
            trust_domain: None,
        },
        &IssueOptions::default(),
        std::time::SystemTime::now(),
    );
    let Err(IssueError::Denied(denial)) = result else {
        panic!("expected a policy refusal, got {result:?}");
    };
    assert!(
        denial
            .violations
            .iter()
            .any(|v| v.field == "subject.country"
                && v.value.contains('?')
                && v.message.contains("countryName")
                && v.message.contains("SIZE (2)")),
        "{denial}"
    );
}

/// `tlspc_answers` (reader 4, token answers), kept inputs in `fuzz/kept/tlspc_answers/`. The first
/// one is the issue-14 finding: `expires_in` = 2^64 − 1 was added to `SystemTime` unchecked and
/// the login panicked. The lifetime is now capped at `MAX_TOKEN_CACHE`; an answer whose
/// `expires_in` is a quoted token is a specific error that does not quote it.
#[test]
fn kept_token_answers_are_capped_or_refused_never_a_panic() {
    use firefly::bootstrap::client::{MAX_TOKEN_CACHE, read_token_answer};
    use std::time::{Duration, SystemTime};
    let dir = support::repo_root().join("fuzz/kept/tlspc_answers");
    let input = |name: &str| {
        let data = std::fs::read(dir.join(name)).expect("the kept input");
        assert_eq!(data[0], b'4', "{name} is a token answer (reader 4)");
        data[1..].to_vec()
    };
    let issued_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let token = read_token_answer(&input("expires-in-u64-max"), issued_at)
        .expect("a huge lifetime is capped, not refused");
    assert_eq!(
        token.refresh_at,
        issued_at + MAX_TOKEN_CACHE - Duration::from_secs(60)
    );
    let err = read_token_answer(&input("expires-in-quoted-token"), issued_at).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("malformed answer"), "{text}");
    assert!(!text.contains("eyJzdWIiOiJ4In0"), "{text}");
    // Every kept input, at every clock reading the target uses.
    for entry in std::fs::read_dir(&dir).expect("kept corpus") {
        let data = std::fs::read(entry.expect("entry").path()).expect("input");
        for at in [
            SystemTime::UNIX_EPOCH,
            SystemTime::now(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 2),
        ] {
            if let Ok(token) = read_token_answer(&data[1..], at) {
                assert!(
                    token
                        .refresh_at
                        .duration_since(at)
                        .is_ok_and(|d| d <= MAX_TOKEN_CACHE)
                );
            }
        }
    }
}
