//! TLSPC policy objects exactly as the public OpenAPI document names them; serde only, no rules.

use serde::{Deserialize, Serialize};

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

/// The five property types of TLSPC policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PropertyType {
    Ignored,
    Forbidden,
    Optional,
    Required,
    Locked,
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

/// Key algorithm names as TLSPC spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    #[serde(rename = "RSA_2048")]
    Rsa2048,
    #[serde(rename = "RSA_3072")]
    Rsa3072,
    #[serde(rename = "RSA_4096")]
    Rsa4096,
    #[serde(rename = "EC_P256")]
    EcP256,
    #[serde(rename = "EC_P384")]
    EcP384,
    #[serde(rename = "EC_P521")]
    EcP521,
    #[serde(rename = "EC_ED25519")]
    EcEd25519,
}

impl KeyAlgorithm {
    /// The name TLSPC uses on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rsa2048 => "RSA_2048",
            Self::Rsa3072 => "RSA_3072",
            Self::Rsa4096 => "RSA_4096",
            Self::EcP256 => "EC_P256",
            Self::EcP384 => "EC_P384",
            Self::EcP521 => "EC_P521",
            Self::EcEd25519 => "EC_ED25519",
        }
    }
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
