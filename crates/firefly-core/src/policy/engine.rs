//! The policy decision: a decoded request against a compiled TLSPC policy and the SPIFFE rules,
//! yielding either the leaf profile to issue or every broken rule; performs no I/O.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

pub use super::field::Field;
use super::model::{Policy, PropertyRule, PropertyType};
use super::outcome::join;
pub use super::outcome::{Denial, Evaluation, LeafProfile, Request, RuleCheck};
use super::pattern::Pattern;
use super::shape::{ShapeViolation, is_blank, kind_name, validate_shape};
use crate::duration::{format_go_duration, parse_go_duration, parse_iso8601_duration};
use crate::key::KeyAlgorithm;
use crate::spiffe::SpiffeId;
use crate::usage::{CertManagerUsage, ExtendedKeyUsage, KeyUsage, cert_manager_usage};

/// Why a policy document cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The document breaks shape rules (every violation listed).
    #[error("policy {name:?} is invalid: {}", join(violations))]
    Shape {
        /// The policy's name.
        name: String,
        /// Every broken shape rule.
        violations: Vec<ShapeViolation>,
    },
}

#[derive(Debug, Clone)]
struct CompiledProperty {
    field: Field,
    kind: PropertyType,
    /// True when the document did not define it (the kind is then the default for its field).
    defaulted: bool,
    patterns: Vec<Pattern>,
    defaults: Vec<String>,
    min: usize,
    max: usize,
}

/// A policy checked for shape and compiled (regexes built once), ready to judge requests.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    id: String,
    name: String,
    max_validity: Duration,
    properties: Vec<CompiledProperty>,
    key_usages: Vec<KeyUsage>,
    extended_key_usages: Vec<ExtendedKeyUsage>,
    key_algorithms: Vec<KeyAlgorithm>,
}

impl CompiledPolicy {
    /// Checks the document's shape and compiles it.
    ///
    /// # Errors
    /// [`PolicyError::Shape`] listing every shape violation.
    pub fn compile(p: &Policy) -> Result<Self, PolicyError> {
        let shape_error = |violations| PolicyError::Shape {
            name: p.name.clone(),
            violations,
        };
        validate_shape(p).map_err(shape_error)?;
        // validate_shape proved these parse; the fallbacks below are unreachable but keep the
        // function total without an expect. Certificates carry whole seconds, so a fractional
        // second (`PT90.5S`) is dropped here, before any lifetime is derived from it.
        let max_validity = p
            .validity_period
            .as_deref()
            .map(parse_iso8601_duration)
            .and_then(Result::ok)
            .map(whole_seconds)
            .ok_or_else(|| {
                shape_error(vec![ShapeViolation {
                    field: "validityPeriod".into(),
                    message: "is invalid".into(),
                }])
            })?;
        if max_validity.is_zero() {
            return Err(shape_error(vec![ShapeViolation {
                field: "validityPeriod".into(),
                message: "is shorter than one second; certificates count whole seconds".into(),
            }]));
        }
        let subject = &p.subject;
        let sans = &p.sans;
        let sources: [(Field, &Option<PropertyRule>); 10] = [
            (Field::CommonName, &subject.common_name),
            (Field::Organization, &subject.organization),
            (Field::OrganizationalUnit, &subject.organizational_unit),
            (Field::Locality, &subject.locality),
            (Field::StateOrProvince, &subject.state_or_province),
            (Field::Country, &subject.country),
            (Field::DnsNames, &sans.dns_names),
            (Field::IpAddresses, &sans.ip_addresses),
            (Field::Rfc822Names, &sans.rfc822_names),
            (Field::Uris, &sans.uniform_resource_identifiers),
        ];
        let mut properties = Vec::with_capacity(sources.len());
        for (field, source) in sources {
            properties
                .push(compile_property(field, source.as_ref()).map_err(|v| shape_error(vec![v]))?);
        }
        Ok(CompiledPolicy {
            id: p.id.clone(),
            name: p.name.clone(),
            max_validity,
            properties,
            key_usages: p
                .key_usages
                .iter()
                .filter_map(|u| KeyUsage::from_tlspc(u))
                .collect(),
            extended_key_usages: p
                .extended_key_usages
                .iter()
                .filter_map(|u| ExtendedKeyUsage::from_tlspc(u))
                .collect(),
            key_algorithms: p
                .key_algorithm
                .as_ref()
                .map(|k| k.allowed_values.clone())
                .unwrap_or_default(),
        })
    }

    /// The TLSPC policy ID (empty for a policy file without one).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The longest (and default) leaf lifetime: `validityPeriod`, in whole seconds (a fractional
    /// second is dropped, as a certificate cannot carry it).
    pub fn max_validity(&self) -> Duration {
        self.max_validity
    }

    /// The key algorithms the policy admits (`keyAlgorithm.allowedValues`).
    pub fn key_algorithms(&self) -> &[KeyAlgorithm] {
        &self.key_algorithms
    }

    /// The paths of the subject and SAN fields the policy makes REQUIRED
    /// (`subject.organization`, `sans.dnsNames`…): a request that cannot carry them (a key with
    /// an asserted identity only) is always refused.
    pub fn required_fields(&self) -> Vec<&'static str> {
        self.properties
            .iter()
            .filter(|p| p.kind == PropertyType::Required)
            .map(|p| p.field.path())
            .collect()
    }

    /// Warnings about a policy that is valid but probably not what its author meant.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.properties {
            if matches!(p.kind, PropertyType::Optional | PropertyType::Required)
                && p.patterns.is_empty()
            {
                out.push(format!(
                    "{}: {} with no allowedValues places no restriction on the value",
                    p.field.path(),
                    kind_name(p.kind)
                ));
            }
        }
        if !self.key_usages.contains(&KeyUsage::DigitalSignature) {
            out.push(
                "keyUsages: digitalSignature is missing; SPIFFE leaves need it (C7)".to_owned(),
            );
        }
        out
    }

    /// Judges a request: every rule is evaluated, every failure is kept.
    ///
    /// With `explain`, passing checks are recorded too (for `firefly policy check`); the signing
    /// path leaves it off to skip building their text.
    pub fn evaluate(&self, req: &Request<'_>, explain: bool) -> Evaluation {
        let mut eval = Evaluator {
            checks: Vec::new(),
            explain,
            failed: false,
        };
        let csr = req.csr;

        // Key algorithm.
        let alg = csr.key_algorithm;
        eval.check(
            "keyAlgorithm",
            alg.as_str().to_owned(),
            "keyAlgorithm.allowedValues".into(),
            self.key_algorithms.contains(&alg),
            || {
                format!(
                    "{alg} is not one of {}",
                    list(self.key_algorithms.iter().map(|a| a.as_str()))
                )
            },
        );

        // Subject attributes and SANs.
        let ips: Vec<String> = csr
            .sans
            .ip_addresses
            .iter()
            .map(IpAddr::to_string)
            .collect();
        let mut issued: Vec<(Field, Vec<String>)> = Vec::with_capacity(self.properties.len());
        for prop in &self.properties {
            let values: &[String] = match prop.field {
                Field::CommonName => &csr.subject.common_name,
                Field::Organization => &csr.subject.organization,
                Field::OrganizationalUnit => &csr.subject.organizational_unit,
                Field::Locality => &csr.subject.locality,
                Field::StateOrProvince => &csr.subject.state_or_province,
                Field::Country => &csr.subject.country,
                Field::DnsNames => &csr.sans.dns_names,
                Field::IpAddresses => &ips,
                Field::Rfc822Names => &csr.sans.rfc822_names,
                Field::Uris => &csr.sans.uris,
            };
            let out = eval.property(prop, values);
            issued.push((prop.field, out));
        }

        // X.520 syntax of the subject values the leaf would carry (the request's, or the policy's
        // LOCKED defaults), checked before anything is signed. Only failures are recorded.
        for (field, values) in &issued {
            for v in values {
                if let Some(problem) = x520_problem(*field, v) {
                    eval.check(
                        field.path(),
                        v.clone(),
                        "X.520 attribute syntax (RFC 5280 Appendix A)".into(),
                        false,
                        || problem,
                    );
                }
            }
        }

        // One value per subject attribute type: the issuer's name encoder (rcgen's
        // DistinguishedName) holds one value of each type and silently keeps only the last, so a
        // subject with two values of one attribute is refused rather than cut. Only failures are
        // recorded.
        for (field, values) in &issued {
            if field.is_san() || values.len() <= 1 {
                continue;
            }
            let source = match self.properties.iter().find(|p| p.field == *field) {
                Some(p) if p.kind == PropertyType::Locked => "the policy's LOCKED defaults carry",
                _ => "the request carries",
            };
            eval.check(
                field.path(),
                format!("{} value(s)", values.len()),
                "one value per subject attribute".into(),
                false,
                || {
                    format!(
                        "the issuer writes one {}; {source} {}",
                        attribute_name(*field),
                        values.len()
                    )
                },
            );
        }

        // SPIFFE rules on the URIs the leaf would carry: the request's, or the policy's when LOCKED.
        // IGNORED URIs are dropped from the leaf, so they take no part at all (no SPIFFE parsing,
        // no SPIFFE ID, no SVID rules), exactly as if the request had none. FORBIDDEN ones are
        // refused by the property itself and are still put through the rules for the report.
        let uris: &[String] = match self.properties.iter().find(|p| p.field == Field::Uris) {
            Some(p) if p.kind == PropertyType::Locked => &p.defaults,
            Some(p) if p.kind == PropertyType::Ignored => &[],
            _ => &csr.sans.uris,
        };
        let spiffe_id = self.spiffe_rules(&mut eval, req, uris);

        // Key usages.
        let usage_result = self.usage_rules(&mut eval, req, !uris.is_empty());

        // Leaf, not CA.
        eval.check(
            "isCA",
            req.is_ca.to_string(),
            "leaf only (C5)".into(),
            !req.is_ca,
            || {
                "isCA: true is refused: this issuer signs workload (leaf) certificates only"
                    .to_owned()
            },
        );

        // Validity.
        let lifetime = self.validity_rules(&mut eval, req);

        let profile = if eval.failed {
            None
        } else {
            let mut profile = LeafProfile {
                subject: Vec::new(),
                dns_names: Vec::new(),
                ip_addresses: Vec::new(),
                rfc822_names: Vec::new(),
                uris: Vec::new(),
                spiffe_id,
                key_usages: Vec::new(),
                extended_key_usages: self.extended_key_usages.clone(),
                lifetime: lifetime.map(|l| l.0).unwrap_or(self.max_validity),
                clamped_from: lifetime.and_then(|l| l.1),
            };
            for (field, values) in issued {
                match field {
                    Field::DnsNames => profile.dns_names = values,
                    Field::IpAddresses => {
                        profile.ip_addresses =
                            values.iter().filter_map(|v| v.parse().ok()).collect()
                    }
                    Field::Rfc822Names => profile.rfc822_names = values,
                    Field::Uris => profile.uris = values,
                    subject_field => {
                        for v in values {
                            profile.subject.push((subject_field, v));
                        }
                    }
                }
            }
            profile.subject.sort_by_key(|(f, _)| subject_order(*f));
            profile.key_usages = usage_result;
            let has_identity = !profile.subject.is_empty()
                || !profile.dns_names.is_empty()
                || !profile.ip_addresses.is_empty()
                || !profile.rfc822_names.is_empty()
                || !profile.uris.is_empty();
            eval.check(
                "subject+sans",
                String::new(),
                "a certificate names something".into(),
                has_identity,
                || "the certificate would have neither subject nor subjectAltName".to_owned(),
            );
            if eval.failed { None } else { Some(profile) }
        };
        Evaluation {
            policy: self.name.clone(),
            checks: eval.checks,
            profile,
        }
    }

    fn spiffe_rules(
        &self,
        eval: &mut Evaluator,
        req: &Request<'_>,
        uris: &[String],
    ) -> Option<SpiffeId> {
        let field = Field::Uris.path();
        eval.check(
            field,
            format!("{} URI SAN(s)", uris.len()),
            "at most one URI SAN (C1)".into(),
            uris.len() <= 1,
            || {
                format!(
                    "{} URI SANs requested; a SPIFFE leaf has exactly one",
                    uris.len()
                )
            },
        );
        let mut ids = Vec::new();
        for uri in uris {
            match SpiffeId::parse_workload(uri) {
                Ok(id) => {
                    eval.check(
                        field,
                        uri.clone(),
                        "SPIFFE ID (C3, C15–C18)".into(),
                        true,
                        String::new,
                    );
                    if let Some(td) = req.trust_domain {
                        eval.check(
                            field,
                            uri.clone(),
                            Cow::Owned(format!("trust domain {td}")),
                            id.trust_domain() == td,
                            || {
                                format!(
                                    "trust domain {} is not the issuer's trust domain {td}",
                                    id.trust_domain()
                                )
                            },
                        );
                    }
                    ids.push(id);
                }
                Err(e) => eval.check(
                    field,
                    uri.clone(),
                    "SPIFFE ID (C3, C15–C18)".into(),
                    false,
                    || e.to_string(),
                ),
            }
        }
        if let Some(annotation) = req.identities_annotation {
            let wanted: BTreeSet<&str> = annotation
                .split(',')
                .map(str::trim)
                .filter(|v| v.parse::<SpiffeId>().is_ok())
                .collect();
            let requested: BTreeSet<&str> = req.csr.sans.uris.iter().map(String::as_str).collect();
            eval.check(
                "istio.cert-manager.io/identities",
                annotation.to_owned(),
                "SPIFFE IDs equal the request's URI SANs (x509-svid §2)".into(),
                wanted == requested,
                || {
                    format!(
                        "the annotation names {} but the request carries {}",
                        list(wanted.iter().copied()),
                        list(requested.iter().copied())
                    )
                },
            );
        }
        if ids.len() == 1 { ids.pop() } else { None }
    }

    fn usage_rules(&self, eval: &mut Evaluator, req: &Request<'_>, is_svid: bool) -> Vec<KeyUsage> {
        let csr = req.csr;
        let mut asked_ku: Vec<KeyUsage> = csr.key_usages.clone();
        let mut asked_eku: Vec<ExtendedKeyUsage> = csr.extended_key_usages.clone();
        if let Some(usages) = req.usages {
            for u in usages {
                match cert_manager_usage(u) {
                    Some(CertManagerUsage::Key(k)) => asked_ku.push(k),
                    Some(CertManagerUsage::Extended(e)) => asked_eku.push(e),
                    None => eval.check("usages", u.clone(), "known usage".into(), false, || {
                        format!("{u:?} is not a cert-manager key usage")
                    }),
                }
            }
        }
        let alg = csr.key_algorithm;
        for k in dedup(asked_ku) {
            // A usage the key type cannot have (keyEncipherment for EC, keyAgreement for RSA):
            // cert-manager's default usages still ask for some, so it is dropped, not refused.
            if !usage_fits_key(k, alg) {
                continue;
            }
            eval.check(
                "keyUsages",
                k.tlspc_name().to_owned(),
                "keyUsages".into(),
                self.key_usages.contains(&k),
                || {
                    format!(
                        "{} is requested but the policy grants only {}",
                        k.tlspc_name(),
                        list(self.key_usages.iter().map(|u| u.tlspc_name()))
                    )
                },
            );
        }
        for e in dedup(asked_eku) {
            eval.check(
                "extendedKeyUsages",
                e.tlspc_name().to_owned(),
                "extendedKeyUsages".into(),
                self.extended_key_usages.contains(&e),
                || {
                    format!(
                        "{} is requested but the policy grants only {}",
                        e.tlspc_name(),
                        list(self.extended_key_usages.iter().map(|u| u.tlspc_name()))
                    )
                },
            );
        }
        eval.check(
            "keyUsages",
            list(self.key_usages.iter().map(|u| u.tlspc_name())),
            "digitalSignature granted (C7)".into(),
            self.key_usages.contains(&KeyUsage::DigitalSignature),
            || {
                "the policy does not grant digitalSignature, which every SPIFFE leaf needs"
                    .to_owned()
            },
        );
        if is_svid {
            let both = self
                .extended_key_usages
                .contains(&ExtendedKeyUsage::ServerAuth)
                && self
                    .extended_key_usages
                    .contains(&ExtendedKeyUsage::ClientAuth);
            eval.check(
                "extendedKeyUsages",
                list(self.extended_key_usages.iter().map(|u| u.tlspc_name())),
                "SERVER_AUTH and CLIENT_AUTH for mesh mTLS (C9)".into(),
                both,
                || "a SPIFFE leaf needs both SERVER_AUTH and CLIENT_AUTH".to_owned(),
            );
        }
        self.key_usages
            .iter()
            .copied()
            .filter(|k| usage_fits_key(*k, alg))
            .collect()
    }

    /// Returns (lifetime, clamped_from) when the duration rules pass. The lifetime is whole
    /// seconds: a certificate's validity has no finer unit, so the sub-second part of the
    /// requested duration (`59m59.5s`) is dropped before the minimum and the clamp are applied.
    fn validity_rules(
        &self,
        eval: &mut Evaluator,
        req: &Request<'_>,
    ) -> Option<(Duration, Option<Duration>)> {
        let max = self.max_validity;
        let Some(text) = req.duration else {
            return Some((max, None));
        };
        let requested = match parse_go_duration(text) {
            Ok(d) => whole_seconds(d),
            Err(e) => {
                eval.check(
                    "duration",
                    text.to_owned(),
                    "a positive Go duration".into(),
                    false,
                    || e.to_string(),
                );
                return None;
            }
        };
        let min = req.minimum_duration;
        if requested < min {
            eval.check(
                "duration",
                text.to_owned(),
                "minimum leaf duration".into(),
                false,
                || {
                    format!(
                        "{text} is below the minimum leaf duration {}",
                        format_go_duration(min)
                    )
                },
            );
            return None;
        }
        eval.check(
            "duration",
            text.to_owned(),
            "validityPeriod".into(),
            true,
            String::new,
        );
        if requested > max {
            Some((max, Some(requested)))
        } else {
            Some((requested, None))
        }
    }
}

fn compile_property(
    field: Field,
    source: Option<&PropertyRule>,
) -> Result<CompiledProperty, ShapeViolation> {
    let default_kind = if field.is_san() {
        PropertyType::Forbidden
    } else {
        PropertyType::Ignored
    };
    let Some(p) = source.filter(|p| !is_blank(p)) else {
        return Ok(CompiledProperty {
            field,
            kind: default_kind,
            defaulted: true,
            patterns: Vec::new(),
            defaults: Vec::new(),
            min: 0,
            max: 0,
        });
    };
    let mut patterns = Vec::with_capacity(p.allowed_values.len());
    for entry in &p.allowed_values {
        patterns.push(Pattern::compile(entry).map_err(|e| ShapeViolation {
            field: format!("{}.allowedValues", field.path()),
            message: format!("regex {entry:?} does not compile: {e}"),
        })?);
    }
    Ok(CompiledProperty {
        field,
        kind: p.kind.unwrap_or(default_kind),
        defaulted: false,
        patterns,
        defaults: p.default_values.clone(),
        min: usize::try_from(p.min_occurrences).unwrap_or(0),
        max: usize::try_from(p.max_occurrences).unwrap_or(0),
    })
}

/// Why `value` cannot be written as subject attribute `field` (RFC 5280 Appendix A's profile of
/// X.520), or `None` when it can. countryName is exactly two PrintableString characters: an
/// ISO 3166 alpha-2 code, so two ASCII letters (which also keeps out `?`, which yasna cannot
/// write). The others are at least 1 and at most their upper bound in characters: commonName,
/// organizationName and organizationalUnitName 64; localityName and stateOrProvinceName 128.
fn x520_problem(field: Field, value: &str) -> Option<String> {
    let bound = match field {
        Field::Country => {
            let ok = value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic());
            return (!ok).then(|| {
                "countryName must be exactly 2 PrintableString characters, an ISO 3166 alpha-2 \
                 code such as \"DE\" (RFC 5280 Appendix A: PrintableString SIZE (2))"
                    .to_owned()
            });
        }
        Field::CommonName | Field::Organization | Field::OrganizationalUnit => 64,
        Field::Locality | Field::StateOrProvince => 128,
        _ => return None,
    };
    let attribute = attribute_name(field);
    let n = value.chars().count();
    (n == 0 || n > bound).then(|| {
        format!(
            "{attribute} must be 1 to {bound} characters (RFC 5280 Appendix A: \
             SIZE (1..{bound})); this value has {n}"
        )
    })
}

/// Whether a leaf with an `alg` key may carry key usage `k`; a granted usage that does not fit is
/// left out of the leaf rather than refused.
///
/// - RSA (RFC 3279 §2.3.1): no keyAgreement, nor encipherOnly/decipherOnly, which mean something
///   only beside keyAgreement (RFC 5280 §4.2.1.3).
/// - EC P-256/P-384 (RFC 5480 §3): no keyEncipherment or dataEncipherment.
/// - Ed25519 (RFC 8410 §5): none of those five.
fn usage_fits_key(k: KeyUsage, alg: KeyAlgorithm) -> bool {
    let enciphers = matches!(k, KeyUsage::KeyEncipherment | KeyUsage::DataEncipherment);
    let agrees = matches!(
        k,
        KeyUsage::KeyAgreement | KeyUsage::EncipherOnly | KeyUsage::DecipherOnly
    );
    match alg {
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => !agrees,
        KeyAlgorithm::EcEd25519 => !enciphers && !agrees,
        _ => !enciphers,
    }
}

/// `d` without its sub-second part: the unit of a certificate's validity.
fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

/// The X.520 name of subject attribute `field` (`organizationalUnitName`); the policy path for a
/// SAN field.
fn attribute_name(field: Field) -> &'static str {
    match field {
        Field::Country => "countryName",
        Field::StateOrProvince => "stateOrProvinceName",
        Field::Locality => "localityName",
        Field::Organization => "organizationName",
        Field::OrganizationalUnit => "organizationalUnitName",
        Field::CommonName => "commonName",
        san => san.path(),
    }
}

fn subject_order(f: Field) -> u8 {
    match f {
        Field::Country => 0,
        Field::StateOrProvince => 1,
        Field::Locality => 2,
        Field::Organization => 3,
        Field::OrganizationalUnit => 4,
        _ => 5,
    }
}

fn dedup<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = items.collect();
    if v.is_empty() {
        "nothing".to_owned()
    } else {
        v.join(", ")
    }
}

struct Evaluator {
    checks: Vec<RuleCheck>,
    explain: bool,
    failed: bool,
}

impl Evaluator {
    fn check(
        &mut self,
        field: &'static str,
        value: String,
        rule: Cow<'static, str>,
        passed: bool,
        why: impl FnOnce() -> String,
    ) {
        if passed && !self.explain {
            return;
        }
        self.failed |= !passed;
        self.checks.push(RuleCheck {
            field,
            value,
            rule,
            passed,
            message: if passed { String::new() } else { why() },
        });
    }

    /// Applies one property's rule to the request's values; returns the values to issue.
    fn property(&mut self, p: &CompiledProperty, values: &[String]) -> Vec<String> {
        let field = p.field.path();
        let kind = kind_name(p.kind);
        let rule = |extra: &str| -> Cow<'static, str> {
            if p.defaulted {
                Cow::Owned(format!("{kind} (absent from the policy){extra}"))
            } else {
                Cow::Owned(format!("{kind}{extra}"))
            }
        };
        match p.kind {
            PropertyType::Ignored => {
                if self.explain && !values.is_empty() {
                    self.check(
                        field,
                        values.join(", "),
                        rule(": dropped from the certificate"),
                        true,
                        String::new,
                    );
                }
                Vec::new()
            }
            PropertyType::Forbidden => {
                for v in values {
                    self.check(field, v.clone(), rule(""), false, || {
                        format!("{field} is forbidden by the policy but the request has {v:?}")
                    });
                }
                Vec::new()
            }
            PropertyType::Locked => {
                if self.explain {
                    self.check(
                        field,
                        p.defaults.join(", "),
                        rule(": the policy's defaultValues are issued"),
                        true,
                        String::new,
                    );
                }
                p.defaults.clone()
            }
            PropertyType::Optional | PropertyType::Required => {
                let min = if p.kind == PropertyType::Required {
                    p.min
                } else {
                    0
                };
                let count_ok = values.len() >= min && values.len() <= p.max;
                if !count_ok || self.explain {
                    self.check(
                        field,
                        format!("{} value(s)", values.len()),
                        Cow::Owned(format!("{kind}: {min}..{} values", p.max)),
                        count_ok,
                        || {
                            format!(
                                "{} values requested; the policy requires between {min} and {}",
                                values.len(),
                                p.max
                            )
                        },
                    );
                }
                for v in values {
                    let matched =
                        p.patterns.is_empty() || p.patterns.iter().any(|pat| pat.matches(v));
                    self.check(
                        field,
                        v.clone(),
                        Cow::Owned(format!("{kind}: allowedValues")),
                        matched,
                        || {
                            format!(
                                "{v:?} matches none of allowedValues [{}]",
                                p.patterns
                                    .iter()
                                    .map(Pattern::source)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        },
                    );
                }
                values.to_vec()
            }
        }
    }
}
