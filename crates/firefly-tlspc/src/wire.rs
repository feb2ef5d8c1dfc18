//! TLS Protect Cloud wire objects shared by the client and the mock; serde only, performs no I/O.
//!
//! Field names follow the public OpenAPI document for `/v1/distributedissuers/*`. Paths of the
//! runtime calls that are not public live in [`paths`] so that they can be changed in one place.

use serde::{Deserialize, Serialize};

pub mod policy;

use firefly_core::KeyAlgorithm;
use policy::PolicyInformation;

/// The HTTP paths the client and the mock agree on.
pub mod paths {
    /// Service-account JWT bearer grant.
    pub const TOKEN: &str = "/v1/oauth/token/serviceaccount";
    /// Configurations (admin CRUD; the caller's own with a service-account token).
    pub const CONFIGURATIONS: &str = "/v1/distributedissuers/configurations";
    /// Policies (admin CRUD).
    pub const POLICIES: &str = "/v1/distributedissuers/policies";
    /// Sub-CA providers (admin CRUD).
    pub const SUBCA_PROVIDERS: &str = "/v1/distributedissuers/subcaproviders";
    /// Intermediate (sub-CA) certificate requests, polls and usage reports.
    pub const INTERMEDIATE_CERTIFICATES: &str = "/v1/distributedissuers/intermediatecertificates";
}

/// The fixed JWT audience of the service-account login, the same for every region.
pub const TOKEN_AUDIENCE: &str = "api.venafi.cloud/v1/oauth/token/serviceaccount";

/// The JWT bearer grant type.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The header admin calls authenticate with.
pub const API_KEY_HEADER: &str = "tppl-api-key";

/// A successful token exchange. `Debug` never prints the access token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// The OAuth error shape of the token endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthError {
    pub error: String,
    #[serde(default)]
    pub error_description: String,
}

/// The API error shape: `{"errors":[{"code","message","args"}]}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorResponse {
    pub errors: Vec<ErrorInformation>,
}

/// One API error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorInformation {
    pub code: i32,
    pub message: String,
    pub args: Vec<serde_json::Value>,
}

/// `ConfigurationResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigurationResponse {
    pub configurations: Vec<ExtendedConfigurationInformation>,
}

/// A configuration with its sub-CA provider and policies embedded: everything an instance needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExtendedConfigurationInformation {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_id: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_ca_provider_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_ca_provider: Option<SubCaProviderInformation>,
    pub policy_ids: Vec<String>,
    pub policies: Vec<PolicyInformation>,
    pub service_account_ids: Vec<String>,
    pub controller_allowed_policy_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_tls_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_authentication: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_authorization: Option<serde_json::Value>,
    pub advanced_settings: AdvancedSettingsInformation,
    pub long_lived_cert_count: i64,
    pub short_lived_cert_count: i64,
    pub ultra_short_lived_cert_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modification_date: Option<String>,
}

impl ExtendedConfigurationInformation {
    /// The configuration's policies in the issuing core's terms (the policy cache takes these).
    pub fn core_policies(&self) -> Vec<firefly_core::policy::Policy> {
        self.policies
            .iter()
            .map(PolicyInformation::to_policy)
            .collect()
    }
}

/// `AdvancedSettingsInformation`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AdvancedSettingsInformation {
    pub enable_issuance_audit_log: bool,
    pub include_raw_cert_data_in_audit_log: bool,
    #[serde(rename = "requireFIPSCompliantBuild")]
    pub require_fips_compliant_build: bool,
}

/// `SubCaProviderInformation`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubCaProviderInformation {
    pub id: String,
    pub name: String,
    pub ca_type: String,
    pub ca_account_id: String,
    pub ca_product_option_id: String,
    /// ISO 8601 duration of the sub-CA certificates (`P7D`).
    pub validity_period: String,
    pub common_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organizational_unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_or_province: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_algorithm: Option<KeyAlgorithm>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modification_date: Option<String>,
}

/// Body of `POST /v1/distributedissuers/intermediatecertificates`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntermediateCertificateRequest {
    pub configuration_id: String,
    pub certificate_signing_request: String,
    pub instance_naming: String,
}

/// Status of an intermediate-certificate request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IntermediateStatus {
    Requested,
    Issued,
    Failed,
}

/// `IntermediateCertificateInformation`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntermediateCertificateInformation {
    pub id: String,
    #[serde(default)]
    pub common_name: String,
    pub status: IntermediateStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    /// PEM of the sub-CA certificate, once issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// PEM certificates from the sub-CA's issuer upward, the self-signed root last.
    #[serde(default)]
    pub issuer_certificates: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_information: Option<ErrorInformation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<serde_json::Value>,
    #[serde(default)]
    pub long_lived_cert_count: i64,
    #[serde(default)]
    pub short_lived_cert_count: i64,
    #[serde(default)]
    pub ultra_short_lived_cert_count: i64,
}

/// Body of the usage report `PATCH /v1/distributedissuers/intermediatecertificates/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    pub long_lived_cert_count: i64,
    pub short_lived_cert_count: i64,
    pub ultra_short_lived_cert_count: i64,
}
