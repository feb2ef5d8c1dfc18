//! Firefly's `Issuer` and `ClusterIssuer` (firefly.venafi.com/v1alpha1): types only, performs no I/O.
//!
//! Firefly's own CRDs have an empty spec; every field here is an optional extension of ours.
//!
//! The group derived here is only the default one (what `firefly crds` prints). The kinds are
//! served under the configured `controller.cert-manager.groupName`, so the controller never
//! addresses the API server through these types' own group: its watches and status writes use
//! [`issuer_resource`](crate::issuer::controller::issuer_watch::issuer_resource), and read the
//! objects into these types, whose decoding ignores `apiVersion` and `kind`.

// kube's printcolumn(...) lists repeat `type_ = "string"` per column, which clippy mistakes for
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Generates the spec struct of one issuer kind: both kinds carry the same optional fields.
macro_rules! issuer_spec {
    ($spec:ident, $kind:literal, $plural:literal, $scope_doc:literal, $($scope:ident)?; $($extra:tt)*) => {
        #[doc = $scope_doc]
        #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
        #[kube(
            group = "firefly.venafi.com",
            version = "v1alpha1",
            kind = $kind,
            plural = $plural,
            category = "firefly",
            $($scope,)?
            status = "IssuerStatus",
            doc = $scope_doc,
            printcolumn(
                name = "Ready",
                type_ = "string",
                json_path = ".status.conditions[?(@.type==\"Ready\")].status"
            ),
            printcolumn(
                name = "Reason",
                type_ = "string",
                json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
            ),
            printcolumn(
                name = "Message",
                type_ = "string",
                json_path = ".status.conditions[?(@.type==\"Ready\")].message"
            ),
            printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
        )]
        #[serde(rename_all = "camelCase")]
        pub struct $spec {
            /// Policy used when a request carries no `firefly.venafi.com/policy-name` annotation.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub default_policy_name: Option<String>,
            /// `spec.username` values allowed to request certificates from this issuer. Narrows
            /// the controller's `controller.allowedRequesters`, never widens it: absent or `["*"]`
            /// narrows nothing, `[]` allows nobody.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub allowed_requesters: Option<Vec<String>>,
            /// Policies requests to this issuer may name (`firefly.venafi.com/policy-name` or
            /// `defaultPolicyName`); a request naming another is refused. Absent: any policy of
            /// the configuration.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub allowed_policies: Option<Vec<String>>,
            /// When set, SPIFFE IDs in requests must belong to this trust domain.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub trust_domain: Option<String>,
            $($extra)*
        }
    };
}

issuer_spec!(
    IssuerSpec,
    "Issuer",
    "issuers",
    "A Firefly issuer serving CertificateRequests of its own namespace.",
    namespaced;
);
issuer_spec!(
    ClusterIssuerSpec,
    "ClusterIssuer",
    "clusterissuers",
    "A Firefly issuer serving CertificateRequests of every namespace.",
    ;
    /// CertificateSigningRequests only (they have no namespace of their own): the namespaces
    /// whose identities this ClusterIssuer may sign, `["*"]` for every namespace. Absent or
    /// empty, every CertificateSigningRequest addressed to it fails `IdentityOutsideNamespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_namespaces: Option<Vec<String>>,
);

impl From<&ClusterIssuerSpec> for IssuerSpec {
    fn from(spec: &ClusterIssuerSpec) -> Self {
        IssuerSpec {
            default_policy_name: spec.default_policy_name.clone(),
            allowed_requesters: spec.allowed_requesters.clone(),
            allowed_policies: spec.allowed_policies.clone(),
            trust_domain: spec.trust_domain.clone(),
        }
    }
}

/// Observed state of an Issuer or ClusterIssuer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerStatus {
    /// Conditions; `Ready` says whether the issuer can sign now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
}
