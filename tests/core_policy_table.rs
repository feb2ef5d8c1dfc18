//! Table tests of the policy engine: every property type (and an absent property) for every subject
//! attribute and every SAN type, with the value present, absent, matching and not matching.

use std::time::Duration;

use firefly::csr::decode_pem;
use firefly::policy::engine::Field;
use firefly::policy::model::{PolicyInformation, PropertyInformation, PropertyType};
use firefly::policy::{CompiledPolicy, LeafProfile, Request};
use support::csr::*;
use support::der::{printable, utf8};

const URI: &str = "spiffe://cluster.local/ns/default/sa/sleep";

#[derive(Clone, Copy, Debug)]
enum Kind {
    Absent,
    Ignored,
    Forbidden,
    Optional,
    Required,
    Locked,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Issued(Vec<String>),
    Denied(&'static str),
}

struct FieldCase {
    field: Field,
    good: &'static str,
    bad: &'static str,
    locked: &'static str,
    regex: &'static str,
}

const FIELDS: &[FieldCase] = &[
    FieldCase {
        field: Field::CommonName,
        good: "sleep",
        bad: "Evil-1",
        locked: "locked-cn",
        regex: "^[a-z]+$",
    },
    FieldCase {
        field: Field::Organization,
        good: "Acme",
        bad: "Evil Corp",
        locked: "Locked Org",
        regex: "^Acme$",
    },
    FieldCase {
        field: Field::OrganizationalUnit,
        good: "mesh",
        bad: "other",
        locked: "platform",
        regex: "^mesh$",
    },
    FieldCase {
        field: Field::Locality,
        good: "Berlin",
        bad: "Paris",
        locked: "Hamburg",
        regex: "^Berlin$",
    },
    FieldCase {
        field: Field::StateOrProvince,
        good: "Berlin",
        bad: "Bavaria",
        locked: "Hesse",
        regex: "^Ber.*",
    },
    FieldCase {
        field: Field::Country,
        good: "DE",
        bad: "FR",
        locked: "US",
        regex: "^D[A-Z]$",
    },
    FieldCase {
        field: Field::DnsNames,
        good: "sleep.default.svc",
        bad: "evil.example",
        locked: "locked.example",
        regex: "^[a-z]+\\.default\\.svc$",
    },
    FieldCase {
        field: Field::IpAddresses,
        good: "10.0.0.1",
        bad: "192.168.0.1",
        locked: "10.9.9.9",
        regex: "^10\\..*",
    },
    FieldCase {
        field: Field::Rfc822Names,
        good: "a@example.com",
        bad: "b@evil.example",
        locked: "pki@example.com",
        regex: "^[a-z]@example\\.com$",
    },
    FieldCase {
        field: Field::Uris,
        good: URI,
        bad: "spiffe://cluster.local/other/path",
        locked: "spiffe://cluster.local/ns/locked/sa/x",
        regex: "^spiffe://cluster\\.local/ns/.*/sa/.*",
    },
];

fn prop(kind: Kind, c: &FieldCase, literal: bool) -> Option<PropertyInformation> {
    let mk = |t, allowed: Vec<String>, defaults: Vec<String>, min, max| {
        Some(PropertyInformation {
            kind: Some(t),
            allowed_values: allowed,
            default_values: defaults,
            min_occurrences: min,
            max_occurrences: max,
        })
    };
    let allowed = vec![if literal {
        c.good.to_owned()
    } else {
        c.regex.to_owned()
    }];
    match kind {
        Kind::Absent => None,
        Kind::Ignored => mk(PropertyType::Ignored, vec![], vec![], 0, 0),
        Kind::Forbidden => mk(PropertyType::Forbidden, vec![], vec![], 0, 0),
        Kind::Optional => mk(PropertyType::Optional, allowed, vec![], 0, 1),
        Kind::Required => mk(PropertyType::Required, allowed, vec![], 1, 1),
        Kind::Locked => mk(
            PropertyType::Locked,
            vec![],
            vec![c.locked.to_owned()],
            0,
            0,
        ),
    }
}

/// The base policy: nothing allowed except an "anchor" identity so that a leaf always names
/// something: a REQUIRED URI, or (when the URI itself is under test) an OPTIONAL CN.
fn policy_with(c: &FieldCase, kind: Kind, literal: bool) -> CompiledPolicy {
    let mut p: PolicyInformation = support::policies::istio_policy();
    p.subject = Default::default();
    p.sans = Default::default();
    if c.field == Field::Uris {
        p.subject.common_name = Some(PropertyInformation {
            kind: Some(PropertyType::Optional),
            allowed_values: vec!["anchor".into()],
            default_values: vec![],
            min_occurrences: 0,
            max_occurrences: 1,
        });
    } else {
        p.sans.uniform_resource_identifiers = prop(Kind::Required, &FIELDS[9], false);
    }
    let slot = match c.field {
        Field::CommonName => &mut p.subject.common_name,
        Field::Organization => &mut p.subject.organization,
        Field::OrganizationalUnit => &mut p.subject.organizational_unit,
        Field::Locality => &mut p.subject.locality,
        Field::StateOrProvince => &mut p.subject.state_or_province,
        Field::Country => &mut p.subject.country,
        Field::DnsNames => &mut p.sans.dns_names,
        Field::IpAddresses => &mut p.sans.ip_addresses,
        Field::Rfc822Names => &mut p.sans.rfc822_names,
        Field::Uris => &mut p.sans.uniform_resource_identifiers,
        _ => unreachable!("all fields listed"),
    };
    *slot = prop(kind, c, literal);
    CompiledPolicy::compile(&p.to_policy()).expect("table policy compiles")
}

fn subject_oid(f: Field) -> &'static [u64] {
    match f {
        Field::CommonName => &[2, 5, 4, 3],
        Field::Organization => &[2, 5, 4, 10],
        Field::OrganizationalUnit => &[2, 5, 4, 11],
        Field::Locality => &[2, 5, 4, 7],
        Field::StateOrProvince => &[2, 5, 4, 8],
        _ => &[2, 5, 4, 6],
    }
}

fn csr_with(c: &FieldCase, values: &[&str]) -> String {
    let key = p256();
    let mut attrs: Vec<(&[u64], Vec<u8>)> = Vec::new();
    let mut names: Vec<Vec<u8>> = Vec::new();
    if c.field == Field::Uris {
        attrs.push((OID_CN, utf8("anchor")));
    } else {
        names.push(gn_uri(URI));
    }
    for v in values {
        match c.field {
            Field::DnsNames => names.push(gn_dns(v)),
            Field::IpAddresses => names.push(gn_ip(
                &v.parse::<std::net::Ipv4Addr>().expect("ip").octets(),
            )),
            Field::Rfc822Names => names.push(gn_email(v)),
            Field::Uris => names.push(gn_uri(v)),
            Field::Country => attrs.push((subject_oid(c.field), printable(v))),
            f => attrs.push((subject_oid(f), utf8(v))),
        }
    }
    let mut raw = RawCsr {
        subject: name(&attrs),
        ..RawCsr::istio(&key, URI)
    };
    raw = if names.is_empty() {
        raw.with_extensions(&[])
    } else {
        raw.with_sans(&names)
    };
    raw.pem(&key)
}

fn issued_values(p: &LeafProfile, f: Field) -> Vec<String> {
    match f {
        Field::DnsNames => p.dns_names.clone(),
        Field::IpAddresses => p.ip_addresses.iter().map(ToString::to_string).collect(),
        Field::Rfc822Names => p.rfc822_names.clone(),
        Field::Uris => p.uris.clone(),
        f => p
            .subject
            .iter()
            .filter(|(k, _)| *k == f)
            .map(|(_, v)| v.clone())
            .collect(),
    }
}

fn decide(c: &FieldCase, kind: Kind, literal: bool, values: &[&str]) -> Outcome {
    let policy = policy_with(c, kind, literal);
    let pem = csr_with(c, values);
    let csr = decode_pem(pem.as_bytes()).expect("table CSR decodes");
    let req = Request {
        csr: &csr,
        duration: None,
        usages: None,
        is_ca: false,
        identities_annotation: None,
        trust_domain: None,
        minimum_duration: Duration::from_secs(60),
    };
    match policy.evaluate(&req, false).into_result() {
        Ok(profile) => Outcome::Issued(issued_values(&profile, c.field)),
        Err(denial) => {
            let v = denial
                .violations
                .iter()
                .find(|v| v.field == c.field.path())
                .unwrap_or_else(|| {
                    panic!(
                        "{:?} {kind:?}: denied, but not on {}: {denial}",
                        c.field,
                        c.field.path()
                    )
                });
            // Return the first rule word that identifies why.
            for needle in ["FORBIDDEN", "allowedValues", "values", "C1", "SPIFFE"] {
                if v.rule.contains(needle) {
                    return Outcome::Denied(needle);
                }
            }
            panic!("unexpected rule {v}");
        }
    }
}

fn issued(v: &[&str]) -> Outcome {
    Outcome::Issued(v.iter().map(|s| s.to_string()).collect())
}

#[test]
fn every_property_type_for_every_subject_attribute_and_san_type() {
    for c in FIELDS {
        let is_san = matches!(
            c.field,
            Field::DnsNames | Field::IpAddresses | Field::Rfc822Names | Field::Uris
        );
        let absent_present = if is_san {
            Outcome::Denied("FORBIDDEN")
        } else {
            issued(&[])
        };
        let table: Vec<(Kind, bool, Vec<&str>, Outcome)> = vec![
            // An absent property: FORBIDDEN for SANs, IGNORED for subject attributes.
            (Kind::Absent, false, vec![c.good], absent_present),
            (Kind::Absent, false, vec![], issued(&[])),
            (Kind::Ignored, false, vec![c.good], issued(&[])),
            (Kind::Ignored, false, vec![], issued(&[])),
            (
                Kind::Forbidden,
                false,
                vec![c.good],
                Outcome::Denied("FORBIDDEN"),
            ),
            (Kind::Forbidden, false, vec![], issued(&[])),
            (Kind::Optional, false, vec![c.good], issued(&[c.good])),
            (Kind::Optional, true, vec![c.good], issued(&[c.good])),
            (
                Kind::Optional,
                false,
                vec![c.bad],
                Outcome::Denied("allowedValues"),
            ),
            (
                Kind::Optional,
                true,
                vec![c.bad],
                Outcome::Denied("allowedValues"),
            ),
            (Kind::Optional, false, vec![], issued(&[])),
            (Kind::Required, false, vec![c.good], issued(&[c.good])),
            (
                Kind::Required,
                false,
                vec![c.bad],
                Outcome::Denied("allowedValues"),
            ),
            (Kind::Required, false, vec![], Outcome::Denied("values")),
            (Kind::Locked, false, vec![c.bad], issued(&[c.locked])),
            (Kind::Locked, false, vec![], issued(&[c.locked])),
        ];
        for (kind, literal, values, expected) in table {
            // Two URIs break C1 before anything else; that case has its own row below.
            let got = decide(c, kind, literal, &values);
            assert_eq!(
                got,
                expected,
                "{} {kind:?} (literal: {literal}) with {values:?}",
                c.field.path()
            );
        }
        // maxOccurrences is enforced (two values where one is allowed).
        if c.field != Field::Uris && c.field != Field::Country {
            let two = [c.good, c.good];
            assert_eq!(
                decide(c, Kind::Optional, false, &two),
                Outcome::Denied("values"),
                "{} max",
                c.field.path()
            );
        }
    }
}

#[test]
fn two_uri_sans_break_c1_even_when_the_policy_would_take_two() {
    let c = &FIELDS[9];
    let mut p = support::policies::istio_policy();
    p.sans.uniform_resource_identifiers = Some(PropertyInformation {
        kind: Some(PropertyType::Optional),
        allowed_values: vec![c.regex.into()],
        default_values: vec![],
        min_occurrences: 0,
        max_occurrences: 2,
    });
    let policy = CompiledPolicy::compile(&p.to_policy()).expect("compiles");
    let key = p256();
    let pem = RawCsr::istio(&key, URI)
        .with_uris(&[URI, "spiffe://cluster.local/ns/default/sa/other"])
        .pem(&key);
    let csr = decode_pem(pem.as_bytes()).expect("decodes");
    let req = Request {
        csr: &csr,
        duration: None,
        usages: None,
        is_ca: false,
        identities_annotation: None,
        trust_domain: None,
        minimum_duration: Duration::from_secs(60),
    };
    let denial = policy
        .evaluate(&req, false)
        .into_result()
        .expect_err("denied");
    assert!(
        denial.violations.iter().any(|v| v.rule.contains("C1")),
        "{denial}"
    );
}

#[test]
fn wildcard_literal_matches_one_dns_label_only() {
    let c = FieldCase {
        field: Field::DnsNames,
        good: "a.svc.example",
        bad: "a.b.svc.example",
        locked: "x",
        regex: "*.svc.example",
    };
    // `*.` entries are literals with a one-label wildcard, not regexes.
    assert_eq!(
        decide(&c, Kind::Optional, false, &["a.svc.example"]),
        issued(&["a.svc.example"])
    );
    assert_eq!(
        decide(&c, Kind::Optional, false, &["a.b.svc.example"]),
        Outcome::Denied("allowedValues")
    );
    assert_eq!(
        decide(&c, Kind::Optional, false, &["svc.example"]),
        Outcome::Denied("allowedValues")
    );
}

#[test]
fn key_algorithm_outside_the_allow_list_is_denied() {
    let mut p = support::policies::istio_policy();
    p.key_algorithm = Some(firefly::policy::model::KeyAlgorithmInformation {
        allowed_values: vec![firefly::policy::model::KeyAlgorithm::Rsa2048],
        default_value: Some(firefly::policy::model::KeyAlgorithm::Rsa2048),
    });
    let policy = CompiledPolicy::compile(&p.to_policy()).expect("compiles");
    let key = p256();
    let pem = RawCsr::istio(&key, URI).pem(&key);
    let csr = decode_pem(pem.as_bytes()).expect("decodes");
    let req = Request {
        csr: &csr,
        duration: None,
        usages: None,
        is_ca: false,
        identities_annotation: None,
        trust_domain: None,
        minimum_duration: Duration::from_secs(60),
    };
    let denial = policy
        .evaluate(&req, false)
        .into_result()
        .expect_err("denied");
    assert!(
        denial
            .to_string()
            .contains("EC_P256 is not one of RSA_2048"),
        "{denial}"
    );
}

#[test]
fn validity_period_units_follow_tlspc() {
    for (period, secs) in [
        ("PT1H", 3600),
        ("P7D", 7 * 86400),
        ("P1M", 30 * 86400),
        ("P1Y", 365 * 86400),
        ("PT90M", 5400),
    ] {
        let mut p = support::policies::istio_policy();
        p.validity_period = Some(period.into());
        let policy = CompiledPolicy::compile(&p.to_policy()).expect("compiles");
        assert_eq!(policy.max_validity(), Duration::from_secs(secs), "{period}");
    }
}
