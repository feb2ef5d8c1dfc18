//! The bad-input corpus of x509-svid.md §4 "Requests": every fixture gets its specific error and
//! nothing is signed.

use std::time::SystemTime;

use firefly::ca::{IssueError, IssueOptions, LeafRequest, issue};
use firefly::spiffe::TrustDomain;
use support::corpus::{Expect, bad_requests};

#[test]
fn every_bad_request_gets_its_specific_error_and_nothing_is_signed() {
    let pki = support::pki::PkiBuilder::default().build();
    let policy = support::policies::compiled_istio_policy();
    let cases = bad_requests();
    assert!(cases.len() >= 70, "corpus shrank to {}", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let td: Option<TrustDomain> = c
            .trust_domain
            .as_deref()
            .map(|t| t.parse().expect("test trust domain"));
        let req = LeafRequest {
            csr_pem: &c.csr_pem,
            duration: c.duration.as_deref(),
            usages: c.usages.as_deref(),
            is_ca: c.is_ca,
            identities_annotation: c.annotation.as_deref(),
            trust_domain: td.as_ref(),
        };
        let result = issue(
            &pki.sub_ca,
            &policy,
            &req,
            &IssueOptions::default(),
            SystemTime::now(),
        );
        let verdict = match (&result, &c.expect) {
            (Ok(_), _) => Err("a certificate was issued".to_owned()),
            (Err(e), _) if !e.is_request_error() => Err(format!("not a request error: {e}")),
            (Err(IssueError::BadRequest(csr)), Expect::Csr(variant)) => {
                let debug = format!("{csr:?}");
                if debug.starts_with(variant) {
                    Ok(())
                } else {
                    Err(format!("expected {variant}, got {debug}"))
                }
            }
            (Err(IssueError::Denied(denial)), Expect::Denied { field, needle }) => {
                let hit = denial.violations.iter().any(|v| {
                    v.field == *field && (v.rule.contains(needle) || v.message.contains(needle))
                });
                if hit {
                    Ok(())
                } else {
                    Err(format!(
                        "expected a violation of {field} mentioning {needle:?}, got: {denial}"
                    ))
                }
            }
            (Err(other), expected) => Err(format!("expected {expected:?}, got {other:?}")),
        };
        match verdict {
            Ok(()) => {
                // The message a person reads must not be empty and must stay bounded.
                let msg = result
                    .as_ref()
                    .err()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                assert!(
                    !msg.is_empty() && msg.len() < 8192,
                    "{}: message {msg:?}",
                    c.name
                );
            }
            Err(why) => failures.push(format!("{} ({}): {why}", c.name, c.item)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn fixtures_are_distinct_per_case() {
    let cases = bad_requests();
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "duplicate case names");
}
