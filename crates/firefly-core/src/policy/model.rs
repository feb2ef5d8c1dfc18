//! The issuing core's policy: what a policy says, as plain Rust data; no wire format, no rules.
//!
//! Upstreams (TLSPC today) convert their own wire objects into [`Policy`] at their edge; the shape
//! rules ([`super::validate_shape`]) and the engine ([`super::CompiledPolicy`]) read only this.

use serde::{Deserialize, Serialize};

use crate::key::KeyAlgorithm;

/// One issuance policy: subject and SAN rules, usages, key algorithms and the maximum validity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// The upstream's identifier, empty when the policy has none (a file being checked).
    pub id: String,
    /// The name requests select the policy by.
    pub name: String,
    /// ISO 8601 duration (`PT1H`, `P7D`): the maximum a request may get, and the default.
    pub validity_period: Option<String>,
    /// Subject attribute rules.
    pub subject: SubjectRules,
    /// Subject alternative name rules.
    pub sans: SanRules,
    /// The key usages a leaf may carry (TLSPC spelling, e.g. `digitalSignature`).
    pub key_usages: Vec<String>,
    /// The extended key usages a leaf may carry (e.g. `SERVER_AUTH`).
    pub extended_key_usages: Vec<String>,
    /// The key algorithms a request's key may use.
    pub key_algorithm: Option<KeyAlgorithmRule>,
}

/// Subject attributes, each governed by a [`PropertyRule`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectRules {
    /// commonName.
    pub common_name: Option<PropertyRule>,
    /// organization.
    pub organization: Option<PropertyRule>,
    /// organizationalUnit.
    pub organizational_unit: Option<PropertyRule>,
    /// locality.
    pub locality: Option<PropertyRule>,
    /// stateOrProvince.
    pub state_or_province: Option<PropertyRule>,
    /// country.
    pub country: Option<PropertyRule>,
}

/// Subject alternative names, each governed by a [`PropertyRule`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SanRules {
    /// dNSName.
    pub dns_names: Option<PropertyRule>,
    /// iPAddress.
    pub ip_addresses: Option<PropertyRule>,
    /// rfc822Name.
    pub rfc822_names: Option<PropertyRule>,
    /// uniformResourceIdentifier.
    pub uniform_resource_identifiers: Option<PropertyRule>,
}

/// How one subject attribute or SAN type is treated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PropertyRule {
    /// The treatment; absent is refused by the shape rules.
    pub kind: Option<PropertyType>,
    /// Patterns (or, for `LOCKED`, values) a requested value must match.
    pub allowed_values: Vec<String>,
    /// Values filled in when the request has none.
    pub default_values: Vec<String>,
    /// Fewest values a leaf may carry.
    pub min_occurrences: i32,
    /// Most values a leaf may carry.
    pub max_occurrences: i32,
}

/// The five property treatments (serialized as upstreams spell them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PropertyType {
    /// The request's values are dropped.
    Ignored,
    /// The request must carry no value.
    Forbidden,
    /// Values are allowed, within the patterns.
    Optional,
    /// At least `min_occurrences` values, within the patterns.
    Required,
    /// The defaults are used; a requested value must equal one of them.
    Locked,
}

/// The key algorithms a policy admits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyAlgorithmRule {
    /// Every algorithm a request's key may use.
    pub allowed_values: Vec<KeyAlgorithm>,
    /// The algorithm a caller should generate when it has no preference.
    pub default_value: Option<KeyAlgorithm>,
}
