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
