//! Firefly's `Issuer` and `ClusterIssuer` (firefly.venafi.com/v1alpha1): types only, performs no I/O.
//!
//! Firefly's own CRDs have an empty spec; every field here is an optional extension of ours, and
//! `spec` itself may be absent (in the schema and when read).
//!
//! The group derived here is only the default one (what `firefly crds` prints). The kinds are
//! served under the configured `controller.cert-manager.groupName`, so the controller never
//! addresses the API server through these types' own group: its watches and status writes use
//! [`issuer_resource`](crate::issuer::controller::issuer_watch::issuer_resource), and read the
//! objects into these types, whose decoding ignores `apiVersion` and `kind`.

// kube's printcolumn(...) lists repeat `type_ = "string"` per column, which clippy mistakes for
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Generates the spec struct of one issuer kind: both kinds carry the same optional fields, and
/// `spec` itself is optional (see [`with_optional_spec`]).
macro_rules! issuer_spec {
    ($spec:ident, $kind:literal, $plural:literal, $scope_doc:literal, $($scope:ident)?; $($extra:tt)*) => {
        issuer_spec_fields!($spec, $kind, $plural, $scope_doc, $($scope)?;
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
        );
    };
}

/// [`issuer_spec!`] with every field listed: the spec struct, and its `Deserialize`, which reads
/// an absent (or `null`) `spec` as the empty one.
///
/// kube-derive's root struct (`Issuer`) requires its `spec` field and accepts no serde attribute
/// to default it, so the spec type accepts absence itself: serde deserializes a missing field as
/// an `Option` would (`None`), which becomes the default spec. Without this an Issuer stored
/// without `spec` would not read, and would be left out of the issuer cache.
macro_rules! issuer_spec_fields {
    (
        $spec:ident, $kind:literal, $plural:literal, $scope_doc:literal, $($scope:ident)?;
        $($(#[$field_attr:meta])* pub $field:ident: $type:ty,)*
    ) => {
        #[doc = $scope_doc]
        #[derive(CustomResource, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
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
            $($(#[$field_attr])* pub $field: $type,)*
        }

        impl<'de> Deserialize<'de> for $spec {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                /// The spec as written, when it is written.
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Written {
                    $($(#[$field_attr])* $field: $type,)*
                }
                Ok(match Option::<Written>::deserialize(deserializer)? {
                    Some(Written { $($field),* }) => $spec { $($field),* },
                    None => $spec::default(),
                })
            }
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

/// `crd` with `spec` optional at the root of every version's schema. kube-derive lists `spec` as
/// required for every custom resource, but Firefly's issuers have an empty spec whose fields are
/// all optional (cert-manager.md §3): an Issuer manifest with metadata only must be valid, not
/// refused with 422 `spec: Required value`.
pub fn with_optional_spec(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        let root = version
            .schema
            .as_mut()
            .and_then(|schema| schema.open_api_v3_schema.as_mut());
        if let Some(root) = root {
            if let Some(required) = root.required.as_mut() {
                required.retain(|field| field != "spec");
            }
            if root.required.as_ref().is_some_and(Vec::is_empty) {
                root.required = None;
            }
        }
    }
    crd
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::json;

    #[test]
    fn an_issuer_stored_without_spec_reads_as_the_empty_spec() {
        for spec in [None, Some(serde_json::Value::Null), Some(json!({}))] {
            let mut body = json!({
                "apiVersion": "firefly.venafi.com/v1alpha1",
                "metadata": {"name": "firefly-istio", "namespace": "istio-system"},
            });
            if let Some(spec) = spec.clone() {
                body["spec"] = spec;
            }
            let issuer: Issuer =
                serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(issuer.spec, IssuerSpec::default(), "{spec:?}");
            let cluster: ClusterIssuer =
                serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(cluster.spec, ClusterIssuerSpec::default(), "{spec:?}");
        }
    }

    #[test]
    fn a_written_spec_still_reads_field_by_field() {
        let cluster: ClusterIssuer = serde_json::from_value(json!({
            "metadata": {"name": "istio-ca"},
            "spec": {
                "defaultPolicyName": "istio-mtls",
                "allowedRequesters": ["a"],
                "allowedPolicies": ["istio-mtls"],
                "trustDomain": "cluster.local",
                "identityNamespaces": ["*"],
                "someFutureField": true,
            },
        }))
        .unwrap();
        assert_eq!(
            cluster.spec,
            ClusterIssuerSpec {
                default_policy_name: Some("istio-mtls".into()),
                allowed_requesters: Some(vec!["a".into()]),
                allowed_policies: Some(vec!["istio-mtls".into()]),
                trust_domain: Some("cluster.local".into()),
                identity_namespaces: Some(vec!["*".into()]),
            }
        );
        let wrong = serde_json::from_value::<Issuer>(json!({
            "metadata": {"name": "x"},
            "spec": {"allowedRequesters": "not a list"},
        }));
        assert!(wrong.is_err(), "a malformed spec is still refused");
    }

    #[test]
    fn the_published_crds_do_not_require_a_spec() {
        let required = |crd: &CustomResourceDefinition| {
            crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .and_then(|root| root.required.clone())
        };
        // kube-derive requires it; the CRDs we publish must not.
        assert_eq!(required(&Issuer::crd()), Some(vec!["spec".to_owned()]));
        let crds = crate::crd::crds();
        assert_eq!(crds.len(), 2);
        for crd in &crds {
            assert_eq!(required(crd), None, "{:?}", crd.metadata.name);
        }
    }
}
