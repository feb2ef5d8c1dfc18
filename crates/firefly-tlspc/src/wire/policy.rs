//! TLSPC policy objects exactly as the public OpenAPI document names them, and their conversion
//! into the issuing core's [`Policy`]; serde only, no rules.

use serde::{Deserialize, Serialize};

pub use firefly_core::key::KeyAlgorithm;
pub use firefly_core::policy::model::PropertyType;
use firefly_core::policy::model::{KeyAlgorithmRule, Policy, PropertyRule, SanRules, SubjectRules};

/// A TLSPC distributed-issuance policy (`PolicyInformation`).
///
/// Server-managed fields (`id`, `companyId`, dates) are optional so that a policy file written by
/// an administrator (for `firefly policy check`) parses as well as the service's own answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyInformation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_id: Option<String>,
    #[serde(default)]
    pub name: String,
    /// ISO 8601 duration (`PT1H`, `P7D`): the maximum a request may get, and the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_period: Option<String>,
    #[serde(default)]
    pub subject: SubjectAttributesInformation,
    #[serde(default)]
    pub sans: SansInformation,
    #[serde(default)]
    pub key_usages: Vec<String>,
    #[serde(default)]
    pub extended_key_usages: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_algorithm: Option<KeyAlgorithmInformation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_with_all: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_with_sub_tsg_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modification_date: Option<String>,
}

/// Subject attributes, each governed by a [`PropertyInformation`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectAttributesInformation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<PropertyInformation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<PropertyInformation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizational_unit: Option<PropertyInformation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<PropertyInformation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_or_province: Option<PropertyInformation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<PropertyInformation>,
}

/// Subject alternative names, each governed by a [`PropertyInformation`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SansInformation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_names: Option<PropertyInformation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_addresses: Option<PropertyInformation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfc822_names: Option<PropertyInformation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uniform_resource_identifiers: Option<PropertyInformation>,
}

/// How one subject attribute or SAN type is treated (`PropertyInformation`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyInformation {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<PropertyType>,
    #[serde(default)]
    pub allowed_values: Vec<String>,
    #[serde(default)]
    pub default_values: Vec<String>,
    #[serde(default)]
    pub min_occurrences: i32,
    #[serde(default)]
    pub max_occurrences: i32,
}

/// The key algorithms a policy admits (`KeyAlgorithmInformation`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyAlgorithmInformation {
    #[serde(default)]
    pub allowed_values: Vec<KeyAlgorithm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<KeyAlgorithm>,
}

impl PolicyInformation {
    /// The issuing core's view of this policy: the rules only, without server-managed fields.
    pub fn to_policy(&self) -> Policy {
        let subject = &self.subject;
        let sans = &self.sans;
        Policy {
            id: self.id.clone().unwrap_or_default(),
            name: self.name.clone(),
            validity_period: self.validity_period.clone(),
            subject: SubjectRules {
                common_name: rule(&subject.common_name),
                organization: rule(&subject.organization),
                organizational_unit: rule(&subject.organizational_unit),
                locality: rule(&subject.locality),
                state_or_province: rule(&subject.state_or_province),
                country: rule(&subject.country),
            },
            sans: SanRules {
                dns_names: rule(&sans.dns_names),
                ip_addresses: rule(&sans.ip_addresses),
                rfc822_names: rule(&sans.rfc822_names),
                uniform_resource_identifiers: rule(&sans.uniform_resource_identifiers),
            },
            key_usages: self.key_usages.clone(),
            extended_key_usages: self.extended_key_usages.clone(),
            key_algorithm: self.key_algorithm.as_ref().map(|k| KeyAlgorithmRule {
                allowed_values: k.allowed_values.clone(),
                default_value: k.default_value,
            }),
        }
    }
}

impl From<&PolicyInformation> for Policy {
    fn from(p: &PolicyInformation) -> Policy {
        p.to_policy()
    }
}

fn rule(p: &Option<PropertyInformation>) -> Option<PropertyRule> {
    p.as_ref().map(|p| PropertyRule {
        kind: p.kind,
        allowed_values: p.allowed_values.clone(),
        default_values: p.default_values.clone(),
        min_occurrences: p.min_occurrences,
        max_occurrences: p.max_occurrences,
    })
}
