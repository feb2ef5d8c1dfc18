//! The shape rules a policy document must satisfy before it can be stored or used (tlspc.md §2, plus
//! our refusal of CA-capable usages); performs no I/O.

use std::fmt;

use super::model::{Policy, PropertyRule, PropertyType};
use super::pattern::Pattern;
use crate::duration::parse_iso8601_duration;
use crate::usage::{ExtendedKeyUsage, KeyUsage};

/// The OpenAPI document caps policy names at 64 characters.
const MAX_NAME_LEN: usize = 64;

/// One broken shape rule: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeViolation {
    /// JSON path of the field (`sans.uniformResourceIdentifiers.maxOccurrences`).
    pub field: String,
    /// What is wrong, naming the rule and the offending value.
    pub message: String,
}

impl fmt::Display for ShapeViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ShapeViolation {}

/// Checks every shape rule and returns all violations, not just the first.
///
/// Rules: the property-type table of tlspc.md §2; regex entries compile; `validityPeriod` is a
/// positive ISO 8601 duration; key usages, EKUs and key algorithms are non-empty and known;
/// `keyCertSign`, `cRLSign` and `ANY` are refused (leaves are never CA-capable); the default key
/// algorithm is one of the allowed ones; the name is at most 64 characters.
///
/// # Errors
/// Every violation found, in document order.
pub fn validate_shape(p: &Policy) -> Result<(), Vec<ShapeViolation>> {
    let mut v = Violations::default();
    if p.name.chars().count() > MAX_NAME_LEN {
        v.push(
            "name",
            format!(
                "is {} characters long; at most {MAX_NAME_LEN} are allowed",
                p.name.chars().count()
            ),
        );
    }
    match p.validity_period.as_deref() {
        None => v.push(
            "validityPeriod",
            "is required (an ISO 8601 duration such as PT1H)".to_owned(),
        ),
        Some(s) => {
            if let Err(e) = parse_iso8601_duration(s) {
                v.push("validityPeriod", e.to_string());
            }
        }
    }
    let subject = &p.subject;
    for (name, prop) in [
        ("commonName", &subject.common_name),
        ("organization", &subject.organization),
        ("organizationalUnit", &subject.organizational_unit),
        ("locality", &subject.locality),
        ("stateOrProvince", &subject.state_or_province),
        ("country", &subject.country),
    ] {
        if let Some(prop) = prop {
            check_property(&mut v, &format!("subject.{name}"), prop);
        }
    }
    let sans = &p.sans;
    for (name, prop) in [
        ("dnsNames", &sans.dns_names),
        ("ipAddresses", &sans.ip_addresses),
        ("rfc822Names", &sans.rfc822_names),
        (
            "uniformResourceIdentifiers",
            &sans.uniform_resource_identifiers,
        ),
    ] {
        if let Some(prop) = prop {
            check_property(&mut v, &format!("sans.{name}"), prop);
        }
    }
    check_key_usages(&mut v, &p.key_usages);
    check_extended_key_usages(&mut v, &p.extended_key_usages);
    match &p.key_algorithm {
        None => v.push(
            "keyAlgorithm",
            "is required (allowedValues and defaultValue)".to_owned(),
        ),
        Some(ka) => {
            if ka.allowed_values.is_empty() {
                v.push(
                    "keyAlgorithm.allowedValues",
                    "must list at least one algorithm".to_owned(),
                );
            }
            for (i, alg) in ka.allowed_values.iter().enumerate() {
                if ka.allowed_values[..i].contains(alg) {
                    v.push(
                        &format!("keyAlgorithm.allowedValues[{i}]"),
                        format!("{alg} is listed twice"),
                    );
                }
            }
            match ka.default_value {
                None => v.push("keyAlgorithm.defaultValue", "is required".to_owned()),
                Some(d) if !ka.allowed_values.contains(&d) => v.push(
                    "keyAlgorithm.defaultValue",
                    format!("{d} is not one of allowedValues"),
                ),
                Some(_) => {}
            }
        }
    }
    v.finish()
}

#[derive(Default)]
struct Violations(Vec<ShapeViolation>);

impl Violations {
    fn push(&mut self, field: &str, message: String) {
        self.0.push(ShapeViolation {
            field: field.to_owned(),
            message,
        });
    }

    fn finish(self) -> Result<(), Vec<ShapeViolation>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// True when a property object carries nothing at all (`{}`): treated like an absent property.
pub(crate) fn is_blank(p: &PropertyRule) -> bool {
    p.kind.is_none()
        && p.allowed_values.is_empty()
        && p.default_values.is_empty()
        && p.min_occurrences == 0
        && p.max_occurrences == 0
}

fn check_property(v: &mut Violations, field: &str, p: &PropertyRule) {
    if is_blank(p) {
        return;
    }
    let (min, max) = (p.min_occurrences, p.max_occurrences);
    if min < 0 {
        v.push(
            &format!("{field}.minOccurrences"),
            format!("is {min}; it cannot be negative"),
        );
    }
    if max < 0 {
        v.push(
            &format!("{field}.maxOccurrences"),
            format!("is {max}; it cannot be negative"),
        );
    }
    for (i, entry) in p.allowed_values.iter().enumerate() {
        if let Err(e) = Pattern::compile(entry) {
            v.push(
                &format!("{field}.allowedValues[{i}]"),
                format!("regex {entry:?} does not compile: {e}"),
            );
        }
    }
    let Some(kind) = p.kind else {
        v.push(&format!("{field}.type"), "is required when any other field is set (IGNORED, FORBIDDEN, OPTIONAL, REQUIRED or LOCKED)".to_owned());
        return;
    };
    let kind_name = kind_name(kind);
    match kind {
        PropertyType::Ignored | PropertyType::Forbidden => {
            if min != 0 || max != 0 {
                v.push(field, format!("{kind_name} requires minOccurrences = maxOccurrences = 0 (got {min}, {max})"));
            }
            if !p.allowed_values.is_empty() {
                v.push(
                    &format!("{field}.allowedValues"),
                    format!("must be empty for {kind_name}"),
                );
            }
            if !p.default_values.is_empty() {
                v.push(
                    &format!("{field}.defaultValues"),
                    format!("must be empty for {kind_name}"),
                );
            }
        }
        PropertyType::Optional => {
            if min != 0 {
                v.push(
                    &format!("{field}.minOccurrences"),
                    format!("must be 0 for OPTIONAL (got {min})"),
                );
            }
            if max <= 0 {
                v.push(
                    &format!("{field}.maxOccurrences"),
                    format!("must be greater than 0 for OPTIONAL (got {max})"),
                );
            }
        }
        PropertyType::Required => {
            if min <= 0 {
                v.push(
                    &format!("{field}.minOccurrences"),
                    format!("must be greater than 0 for REQUIRED (got {min})"),
                );
            }
            if max < min {
                v.push(
                    &format!("{field}.maxOccurrences"),
                    format!("must be at least minOccurrences ({min}) for REQUIRED (got {max})"),
                );
            }
            if !p.default_values.is_empty() {
                v.push(
                    &format!("{field}.defaultValues"),
                    "must be empty for REQUIRED".to_owned(),
                );
            }
        }
        PropertyType::Locked => {
            if min != 0 || max != 0 {
                v.push(
                    field,
                    format!(
                        "LOCKED requires minOccurrences = maxOccurrences = 0 (got {min}, {max})"
                    ),
                );
            }
            if p.default_values.is_empty() {
                v.push(
                    &format!("{field}.defaultValues"),
                    "must not be empty for LOCKED".to_owned(),
                );
            }
        }
    }
}

pub(crate) fn kind_name(kind: PropertyType) -> &'static str {
    match kind {
        PropertyType::Ignored => "IGNORED",
        PropertyType::Forbidden => "FORBIDDEN",
        PropertyType::Optional => "OPTIONAL",
        PropertyType::Required => "REQUIRED",
        PropertyType::Locked => "LOCKED",
    }
}

fn check_key_usages(v: &mut Violations, usages: &[String]) {
    if usages.is_empty() {
        v.push(
            "keyUsages",
            "must list at least one key usage (digitalSignature for SPIFFE leaves)".to_owned(),
        );
    }
    for (i, name) in usages.iter().enumerate() {
        let field = format!("keyUsages[{i}]");
        match KeyUsage::from_tlspc(name) {
            None => v.push(&field, format!("{name:?} is not a key usage TLSPC knows")),
            Some(KeyUsage::KeyCertSign | KeyUsage::CrlSign) => v.push(
                &field,
                format!("{name} is refused: leaves are never CA-capable (x509-svid C7)"),
            ),
            Some(_) => {}
        }
        if usages[..i].contains(name) {
            v.push(&field, format!("{name} is listed twice"));
        }
    }
}

fn check_extended_key_usages(v: &mut Violations, usages: &[String]) {
    if usages.is_empty() {
        v.push(
            "extendedKeyUsages",
            "must list at least one extended key usage (SERVER_AUTH and CLIENT_AUTH for mesh mTLS)"
                .to_owned(),
        );
    }
    for (i, name) in usages.iter().enumerate() {
        let field = format!("extendedKeyUsages[{i}]");
        match ExtendedKeyUsage::from_tlspc(name) {
            None => v.push(
                &field,
                format!("{name:?} is not an extended key usage TLSPC knows"),
            ),
            Some(ExtendedKeyUsage::Any) => v.push(
                &field,
                "ANY is refused: it would let a leaf act for any purpose, CA-like".to_owned(),
            ),
            Some(_) => {}
        }
        if usages[..i].contains(name) {
            v.push(&field, format!("{name} is listed twice"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyAlgorithm;
    use crate::policy::model::KeyAlgorithmRule;

    fn prop(
        kind: PropertyType,
        allowed: &[&str],
        defaults: &[&str],
        min: i32,
        max: i32,
    ) -> PropertyRule {
        PropertyRule {
            kind: Some(kind),
            allowed_values: allowed.iter().map(|s| s.to_string()).collect(),
            default_values: defaults.iter().map(|s| s.to_string()).collect(),
            min_occurrences: min,
            max_occurrences: max,
        }
    }

    fn istio_policy() -> Policy {
        let mut p = Policy {
            name: "istio".into(),
            validity_period: Some("PT1H".into()),
            key_usages: vec!["digitalSignature".into(), "keyEncipherment".into()],
            extended_key_usages: vec!["SERVER_AUTH".into(), "CLIENT_AUTH".into()],
            key_algorithm: Some(KeyAlgorithmRule {
                allowed_values: vec![KeyAlgorithm::Rsa2048, KeyAlgorithm::EcP256],
                default_value: Some(KeyAlgorithm::EcP256),
            }),
            ..Default::default()
        };
        p.subject.common_name = Some(prop(PropertyType::Forbidden, &[], &[], 0, 0));
        p.subject.organization = Some(prop(PropertyType::Ignored, &[], &[], 0, 0));
        p.sans.dns_names = Some(prop(PropertyType::Forbidden, &[], &[], 0, 0));
        p.sans.uniform_resource_identifiers = Some(prop(
            PropertyType::Required,
            &[r"^spiffe://cluster\.local/ns/.*/sa/.*"],
            &[],
            1,
            1,
        ));
        p
    }

    fn fields(p: &Policy) -> Vec<String> {
        match validate_shape(p) {
            Ok(()) => vec![],
            Err(v) => v.into_iter().map(|v| v.field).collect(),
        }
    }

    #[test]
    fn istio_policy_has_a_valid_shape() {
        assert_eq!(validate_shape(&istio_policy()), Ok(()));
    }

    #[test]
    fn each_property_type_shape_rule_is_enforced() {
        let cases: Vec<(PropertyRule, bool)> = vec![
            (prop(PropertyType::Ignored, &[], &[], 0, 0), true),
            (prop(PropertyType::Ignored, &["x"], &[], 0, 0), false),
            (prop(PropertyType::Ignored, &[], &[], 0, 1), false),
            (prop(PropertyType::Forbidden, &[], &[], 0, 0), true),
            (prop(PropertyType::Forbidden, &[], &["x"], 0, 0), false),
            (prop(PropertyType::Optional, &["x"], &[], 0, 2), true),
            (prop(PropertyType::Optional, &["x"], &[], 1, 2), false),
            (prop(PropertyType::Optional, &["x"], &[], 0, 0), false),
            (prop(PropertyType::Required, &["x"], &[], 1, 1), true),
            (prop(PropertyType::Required, &["x"], &[], 0, 1), false),
            (prop(PropertyType::Required, &["x"], &[], 2, 1), false),
            (prop(PropertyType::Required, &["x"], &["x"], 1, 1), false),
            (prop(PropertyType::Locked, &[], &["x"], 0, 0), true),
            (prop(PropertyType::Locked, &[], &[], 0, 0), false),
            (prop(PropertyType::Locked, &[], &["x"], 1, 1), false),
            (prop(PropertyType::Optional, &["^("], &[], 0, 1), false),
            (prop(PropertyType::Optional, &["x"], &[], -1, 1), false),
        ];
        for (property, valid) in cases {
            let mut p = istio_policy();
            p.subject.locality = Some(property.clone());
            let f = fields(&p);
            assert_eq!(f.is_empty(), valid, "{property:?} → {f:?}");
            if !valid {
                assert!(f.iter().all(|f| f.starts_with("subject.locality")), "{f:?}");
            }
        }
    }

    #[test]
    fn blank_property_is_accepted_and_typeless_nonblank_is_not() {
        let mut p = istio_policy();
        p.sans.ip_addresses = Some(PropertyRule::default());
        assert_eq!(validate_shape(&p), Ok(()));
        p.sans.ip_addresses = Some(PropertyRule {
            max_occurrences: 1,
            ..Default::default()
        });
        assert_eq!(fields(&p), vec!["sans.ipAddresses.type"]);
    }

    #[test]
    fn ca_capable_usages_are_refused() {
        let mut p = istio_policy();
        p.key_usages.push("keyCertSign".into());
        p.key_usages.push("cRLSign".into());
        p.extended_key_usages.push("ANY".into());
        assert_eq!(
            fields(&p),
            vec!["keyUsages[2]", "keyUsages[3]", "extendedKeyUsages[2]"]
        );
    }

    #[test]
    fn every_violation_is_listed_not_just_the_first() {
        let mut p = istio_policy();
        p.validity_period = Some("1 hour".into());
        p.key_usages = vec!["signing".into()];
        p.extended_key_usages.clear();
        p.key_algorithm = Some(KeyAlgorithmRule {
            allowed_values: vec![KeyAlgorithm::EcP256],
            default_value: Some(KeyAlgorithm::Rsa2048),
        });
        let errors = validate_shape(&p).unwrap_err();
        let f: Vec<_> = errors.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            f,
            vec![
                "validityPeriod",
                "keyUsages[0]",
                "extendedKeyUsages",
                "keyAlgorithm.defaultValue"
            ]
        );
        assert!(errors[3].to_string().contains("RSA_2048"), "{}", errors[3]);
    }

    #[test]
    fn missing_required_fields_are_named() {
        let p = Policy::default();
        let f = fields(&p);
        for needed in [
            "validityPeriod",
            "keyUsages",
            "extendedKeyUsages",
            "keyAlgorithm",
        ] {
            assert!(
                f.contains(&needed.to_owned()),
                "{needed} missing from {f:?}"
            );
        }
    }
}
