//! The mock's seed file: YAML types, parsing and cross-reference validation; performs no I/O except [`Seed::load`].

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use firefly_core::KeyAlgorithm;
use firefly_tlspc::wire::AdvancedSettingsInformation;
use firefly_tlspc::wire::policy::PolicyInformation;

use super::MockError;
use super::faults::Faults;

/// The scope a service account needs for every distributed-issuance call.
pub const DISTRIBUTED_ISSUANCE_SCOPE: &str = "distributed-issuance";

/// Default `expires_in` of access tokens, in seconds (TLSPC answers 900).
pub const DEFAULT_TOKEN_EXPIRES_IN: u64 = 900;

/// The whole seed document (`deploy/tlspc-mock/seed.yaml`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    /// Keys accepted in the `tppl-api-key` header of admin calls.
    pub api_keys: Vec<ApiKey>,
    /// `expires_in` of access tokens, seconds.
    #[serde(default = "default_token_expires_in")]
    pub token_expires_in: u64,
    /// Service accounts; the first one's credentials are written to the state dir.
    pub service_accounts: Vec<SeedServiceAccount>,
    /// Sub-CA providers.
    #[serde(default)]
    pub sub_ca_providers: Vec<SeedSubCaProvider>,
    /// Policies, each a `PolicyInformation` document (server-managed fields optional).
    #[serde(default)]
    pub policies: Vec<serde_json::Value>,
    /// Configurations, tying the other objects together by name.
    #[serde(default)]
    pub configurations: Vec<SeedConfiguration>,
    /// Fault knobs active from the start (also settable at run time through `/mock/faults`).
    #[serde(default)]
    pub faults: Faults,
}

fn default_token_expires_in() -> u64 {
    DEFAULT_TOKEN_EXPIRES_IN
}

/// An admin API key. `Debug` never prints the key.
#[derive(Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKey {
    /// The key value sent in `tppl-api-key`.
    pub key: String,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(...)")
    }
}

/// A service account of the seed.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedServiceAccount {
    /// Name used by configurations to refer to it.
    pub name: String,
    /// The client ID (a UUID); also the account's id in `serviceAccountIds`.
    pub client_id: String,
    /// Registered public key (PEM `PUBLIC KEY`). Absent → the mock generates a key pair.
    #[serde(default)]
    pub public_key: Option<String>,
    /// Algorithm of the generated pair when `publicKey` is absent (`EC_P256` by default).
    #[serde(default)]
    pub key_algorithm: Option<KeyAlgorithm>,
    /// Scopes; `distributed-issuance` by default.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// A revoked account cannot log in and its tokens are refused.
    #[serde(default)]
    pub revoked: bool,
}

fn default_scopes() -> Vec<String> {
    vec![DISTRIBUTED_ISSUANCE_SCOPE.to_owned()]
}

/// A sub-CA provider of the seed.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedSubCaProvider {
    /// Optional fixed id; a UUID is generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Name used by configurations to refer to it.
    pub name: String,
    /// Only `BUILTIN` is served by the mock.
    pub ca_type: String,
    /// ISO 8601 validity of issued sub-CAs (`P7D`, `PT30S`).
    pub validity_period: String,
    /// Common name appended to the instance naming in sub-CA CSRs.
    pub common_name: String,
    /// Subject O of issued sub-CAs.
    #[serde(default)]
    pub organization: Option<String>,
    /// Subject OU of issued sub-CAs.
    #[serde(default)]
    pub organizational_unit: Option<String>,
    /// Subject L of issued sub-CAs.
    #[serde(default)]
    pub locality: Option<String>,
    /// Subject ST of issued sub-CAs.
    #[serde(default)]
    pub state_or_province: Option<String>,
    /// Subject C of issued sub-CAs.
    #[serde(default)]
    pub country: Option<String>,
    /// Key algorithm instances must use for their sub-CA key.
    pub key_algorithm: KeyAlgorithm,
}

/// A configuration of the seed; objects are referred to by name.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedConfiguration {
    /// Optional fixed id; a UUID is generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Configuration name.
    pub name: String,
    /// Name of the sub-CA provider.
    pub sub_ca_provider: String,
    /// Names of the policies.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Names of the attached service accounts.
    #[serde(default)]
    pub service_accounts: Vec<String>,
    /// Names of the policies the in-cluster controller may use (empty → all).
    #[serde(default)]
    pub controller_allowed_policies: Vec<String>,
    /// Advanced settings, as on the wire.
    #[serde(default)]
    pub advanced_settings: AdvancedSettingsInformation,
}

impl Seed {
    /// Reads and validates a seed file.
    ///
    /// # Errors
    /// [`MockError::SeedRead`] when unreadable; otherwise as [`Seed::from_yaml_str`].
    pub fn load(path: &Path) -> Result<Seed, MockError> {
        let text = std::fs::read_to_string(path).map_err(|source| MockError::SeedRead {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml_str(&text)
    }

    /// Parses and validates a seed document.
    ///
    /// # Errors
    /// [`MockError::Seed`] naming the path of the first bad field (`serviceAccounts[0].clientId`).
    pub fn from_yaml_str(text: &str) -> Result<Seed, MockError> {
        let seed: Seed = firefly_core::yaml::from_str(text).map_err(|e| MockError::Seed {
            field: if e.key.is_empty() {
                "document".to_owned()
            } else {
                e.key
            },
            message: e.message,
        })?;
        seed.validate()?;
        Ok(seed)
    }

    /// The seed's policies as wire objects (names and shapes already validated).
    pub(crate) fn parsed_policies(&self) -> Result<Vec<PolicyInformation>, MockError> {
        self.policies
            .iter()
            .enumerate()
            .map(|(i, v)| parse_policy_value(v, &format!("policies[{i}]")))
            .collect()
    }

    pub(crate) fn validate(&self) -> Result<(), MockError> {
        let bad = |field: String, message: String| Err(MockError::Seed { field, message });
        if self.api_keys.is_empty() {
            return bad("apiKeys".into(), "at least one API key is required".into());
        }
        for (i, k) in self.api_keys.iter().enumerate() {
            if k.key.trim().is_empty() {
                return bad(format!("apiKeys[{i}].key"), "must not be empty".into());
            }
        }
        if self.token_expires_in == 0 {
            return bad("tokenExpiresIn".into(), "must be at least 1 second".into());
        }
        if self.service_accounts.is_empty() {
            return bad(
                "serviceAccounts".into(),
                "at least one service account is required".into(),
            );
        }
        let mut account_names = BTreeSet::new();
        let mut client_ids = BTreeSet::new();
        for (i, a) in self.service_accounts.iter().enumerate() {
            let at = |f: &str| format!("serviceAccounts[{i}].{f}");
            if !account_names.insert(a.name.as_str()) {
                return bad(
                    at("name"),
                    format!("duplicate service account name {:?}", a.name),
                );
            }
            if uuid::Uuid::parse_str(&a.client_id).is_err() {
                return bad(at("clientId"), format!("{:?} is not a UUID", a.client_id));
            }
            if !client_ids.insert(a.client_id.to_ascii_lowercase()) {
                return bad(
                    at("clientId"),
                    format!("duplicate client ID {}", a.client_id),
                );
            }
            if let Some(pem) = &a.public_key {
                if let Err(message) = super::jwt::AccountKey::from_public_pem(pem) {
                    return bad(at("publicKey"), message);
                }
                if a.key_algorithm.is_some() {
                    return bad(
                        at("keyAlgorithm"),
                        "only for generated keys; remove it or remove publicKey".into(),
                    );
                }
            }
            if let Some(alg) = a.key_algorithm
                && !super::jwt::can_generate(alg)
            {
                return bad(
                    at("keyAlgorithm"),
                    format!("cannot generate a {alg} account key"),
                );
            }
        }
        let mut provider_names = BTreeSet::new();
        for (i, p) in self.sub_ca_providers.iter().enumerate() {
            let at = |f: &str| format!("subCaProviders[{i}].{f}");
            if !provider_names.insert(p.name.as_str()) {
                return bad(at("name"), format!("duplicate provider name {:?}", p.name));
            }
            if p.ca_type != "BUILTIN" {
                return bad(
                    at("caType"),
                    format!("{:?}: the mock serves only BUILTIN", p.ca_type),
                );
            }
            if let Err(message) = super::state::parse_validity(&p.validity_period) {
                return bad(at("validityPeriod"), message);
            }
            if p.common_name.trim().is_empty() {
                return bad(at("commonName"), "must not be empty".into());
            }
            if !super::ca::supports_sub_ca_algorithm(p.key_algorithm) {
                return bad(
                    at("keyAlgorithm"),
                    format!("{} sub-CAs are not supported", p.key_algorithm),
                );
            }
        }
        let policies = self.parsed_policies()?;
        let mut policy_names = BTreeSet::new();
        for (i, p) in policies.iter().enumerate() {
            if !policy_names.insert(p.name.as_str()) {
                return bad(
                    format!("policies[{i}].name"),
                    format!("duplicate policy name {:?}", p.name),
                );
            }
        }
        let mut attached = BTreeSet::new();
        for (i, c) in self.configurations.iter().enumerate() {
            let at = |f: &str| format!("configurations[{i}].{f}");
            if c.name.trim().is_empty() {
                return bad(at("name"), "must not be empty".into());
            }
            if !provider_names.contains(c.sub_ca_provider.as_str()) {
                return bad(
                    at("subCaProvider"),
                    format!("no sub-CA provider named {:?}", c.sub_ca_provider),
                );
            }
            for (j, name) in c.policies.iter().enumerate() {
                if !policy_names.contains(name.as_str()) {
                    return bad(
                        format!("configurations[{i}].policies[{j}]"),
                        format!("no policy named {name:?}"),
                    );
                }
            }
            for (j, name) in c.controller_allowed_policies.iter().enumerate() {
                if !c.policies.contains(name) {
                    return bad(
                        format!("configurations[{i}].controllerAllowedPolicies[{j}]"),
                        format!("{name:?} is not one of this configuration's policies"),
                    );
                }
            }
            for (j, name) in c.service_accounts.iter().enumerate() {
                if !account_names.contains(name.as_str()) {
                    return bad(
                        format!("configurations[{i}].serviceAccounts[{j}]"),
                        format!("no service account named {name:?}"),
                    );
                }
                if !attached.insert(name.as_str()) {
                    return bad(
                        format!("configurations[{i}].serviceAccounts[{j}]"),
                        format!(
                            "service account {name:?} is already attached to another configuration"
                        ),
                    );
                }
            }
        }
        self.faults.validate().map_err(|message| MockError::Seed {
            field: "faults".into(),
            message,
        })?;
        Ok(())
    }
}

/// Keys a `PolicyInformation` document may carry, per nested object; `PolicyInformation` itself
/// accepts unknown keys (the real service adds some), so the seed checks them here.
pub(crate) const POLICY_KEYS: &[&str] = &[
    "id",
    "companyId",
    "name",
    "validityPeriod",
    "subject",
    "sans",
    "keyUsages",
    "extendedKeyUsages",
    "keyAlgorithm",
    "shareWithAll",
    "sharedWithSubTsgIds",
    "creationDate",
    "modificationDate",
    "configurations",
];
/// Subject attribute keys, of a policy's `subject` and of a sub-CA provider.
pub(crate) const SUBJECT_KEYS: &[&str] = &[
    "commonName",
    "organization",
    "organizationalUnit",
    "locality",
    "stateOrProvince",
    "country",
];
const SANS_KEYS: &[&str] = &[
    "dnsNames",
    "ipAddresses",
    "rfc822Names",
    "uniformResourceIdentifiers",
];
const PROPERTY_KEYS: &[&str] = &[
    "type",
    "allowedValues",
    "defaultValues",
    "minOccurrences",
    "maxOccurrences",
];
const KEY_ALGORITHM_KEYS: &[&str] = &["allowedValues", "defaultValue"];

/// The key lists `parts` one after the other, as an array of exactly `N` keys (checked when
/// compiled).
pub(crate) const fn concat_keys<const N: usize>(parts: &[&[&'static str]]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut n = 0;
    let mut p = 0;
    while p < parts.len() {
        let mut i = 0;
        while i < parts[p].len() {
            out[n] = parts[p][i];
            n += 1;
            i += 1;
        }
        p += 1;
    }
    assert!(n == N, "concat_keys: N is not the number of keys");
    out
}

/// Parses one policy document, rejecting unknown keys by path, a missing name and a bad shape.
pub(crate) fn parse_policy_value(
    value: &serde_json::Value,
    at: &str,
) -> Result<PolicyInformation, MockError> {
    check_keys(value, at, POLICY_KEYS)?;
    if let Some(subject) = value.get("subject") {
        check_keys(subject, &format!("{at}.subject"), SUBJECT_KEYS)?;
        for k in SUBJECT_KEYS {
            if let Some(p) = subject.get(k) {
                check_keys(p, &format!("{at}.subject.{k}"), PROPERTY_KEYS)?;
            }
        }
    }
    if let Some(sans) = value.get("sans") {
        check_keys(sans, &format!("{at}.sans"), SANS_KEYS)?;
        for k in SANS_KEYS {
            if let Some(p) = sans.get(k) {
                check_keys(p, &format!("{at}.sans.{k}"), PROPERTY_KEYS)?;
            }
        }
    }
    if let Some(ka) = value.get("keyAlgorithm") {
        check_keys(ka, &format!("{at}.keyAlgorithm"), KEY_ALGORITHM_KEYS)?;
    }
    let policy: PolicyInformation =
        serde_json::from_value(value.clone()).map_err(|e| MockError::Seed {
            field: at.to_owned(),
            message: e.to_string(),
        })?;
    if policy.name.trim().is_empty() {
        return Err(MockError::Seed {
            field: format!("{at}.name"),
            message: "must not be empty".into(),
        });
    }
    super::state::check_policy_shape(&policy).map_err(|message| MockError::Seed {
        field: at.to_owned(),
        message,
    })?;
    Ok(policy)
}

fn check_keys(value: &serde_json::Value, at: &str, allowed: &[&str]) -> Result<(), MockError> {
    let Some(map) = value.as_object() else {
        if value.is_null() {
            return Ok(());
        }
        return Err(MockError::Seed {
            field: at.to_owned(),
            message: "must be a mapping".into(),
        });
    };
    for name in map.keys() {
        if !allowed.contains(&name.as_str()) {
            return Err(MockError::Seed {
                field: format!("{at}.{name}"),
                message: format!("unknown key; expected one of {}", allowed.join(", ")),
            });
        }
    }
    Ok(())
}
