//! The project's Rust mirror of cert-manager's `CertificateRequest` (cert-manager.io/v1), written
//! from the documented field facts; types and schema helpers only, performs no I/O.

// kube's printcolumn(...) lists repeat `type_ = "string"` per column, which clippy mistakes for
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Every key usage string cert-manager accepts in `spec.usages`.
pub const KEY_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// A request for a signed certificate from an issuer, as cert-manager defines it.
///
/// `spec` is immutable once created; cert-manager's webhook fills `username`, `uid`, `groups` and
/// `extra` from the identity that created the object.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "CertificateRequest",
    plural = "certificaterequests",
    singular = "certificaterequest",
    shortname = "cr",
    shortname = "crs",
    category = "cert-manager",
    namespaced,
    status = "CertificateRequestStatus",
    doc = "A request for a signed X.509 certificate from the issuer named in spec.issuerRef.",
    printcolumn(
        name = "Approved",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Approved\")].status"
    ),
    printcolumn(
        name = "Denied",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Denied\")].status"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Issuer", type_ = "string", json_path = ".spec.issuerRef.name"),
    printcolumn(name = "Requester", type_ = "string", json_path = ".spec.username"),
    printcolumn(
        name = "Status",
        type_ = "string",
        priority = 1,
        json_path = ".status.conditions[?(@.type==\"Ready\")].message"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp",
        description = "Time since the request was created."
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestSpec {
    /// Base64 of the PEM-encoded PKCS#10 certificate signing request.
    #[schemars(extend("format" = "byte"))]
    pub request: String,
    /// The issuer that should sign this request.
    pub issuer_ref: IssuerRef,
    /// Requested lifetime of the certificate as a Go duration string (for example `1h0m0s`);
    /// absent means the issuer's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Whether the certificate should be a CA certificate (absent means false).
    #[serde(default, rename = "isCA", skip_serializing_if = "Option::is_none")]
    pub is_ca: Option<bool>,
    /// Requested key usages; absent means `digital signature` and `key encipherment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "usages_schema")]
    pub usages: Option<Vec<String>>,
    /// Name of the user that created the request (set by cert-manager's webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// UID of the user that created the request (set by cert-manager's webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Groups of the user that created the request (set by cert-manager's webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub groups: Option<Vec<String>>,
    /// Extra attributes of the user that created the request (set by cert-manager's webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<BTreeMap<String, Vec<String>>>,
}

/// A reference to an issuer: `kind` empty means `Issuer`, `group` empty means cert-manager's own.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct IssuerRef {
    /// Name of the issuer.
    pub name: String,
    /// Kind of the issuer (`Issuer` or `ClusterIssuer` for Firefly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// API group of the issuer (`firefly.venafi.com` for Firefly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// Observed state of a CertificateRequest.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestStatus {
    /// Conditions (Approved, Denied, Ready, InvalidRequest), at most one per type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<CertificateRequestCondition>>,
    /// Base64 of the PEM chain: the signed certificate first, then every intermediate up to (not
    /// including) the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "byte"))]
    pub certificate: Option<String>,
    /// Base64 of the PEM of the root certificate the chain leads to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "byte"))]
    pub ca: Option<String>,
    /// When the request entered a failed state (Ready=False with reason Failed or Denied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_time: Option<Time>,
}

/// One condition of a CertificateRequest.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestCondition {
    /// Condition type: `Ready`, `Approved`, `Denied` or `InvalidRequest`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    #[schemars(schema_with = "condition_status_schema")]
    pub status: String,
    /// Machine-readable reason of the last transition, one CamelCase word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail of the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

fn usages_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "description": "Requested key usages; absent means `digital signature` and `key encipherment`.",
        "items": { "type": "string", "enum": KEY_USAGES },
        "x-kubernetes-list-type": "atomic",
    })
}

pub(crate) fn condition_status_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "description": "`True`, `False` or `Unknown`.",
        "enum": ["True", "False", "Unknown"],
    })
}
