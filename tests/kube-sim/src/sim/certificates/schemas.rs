//! The apply schemas of the `certificates.k8s.io` kinds: the fields their Go API types declare.
//!
//! kube-apiserver turns every apply configuration into the typed object before merging it, using
//! the OpenAPI models of the built-in types; a field the type does not declare fails that
//! conversion (HTTP 500 "failed to create typed patch object ... field not declared in schema"),
//! whatever `fieldValidation` says. These schemas give kube-sim the same field sets. They are
//! written from the API types (`k8s.io/api/certificates/{v1,v1beta1}`, metav1 `Condition`); the
//! unit tests compare every property set with k8s-openapi's generated schemas (which come from
//! the same OpenAPI document), and the list types with the types' `+listType` markers.
//!
//! `metadata` is judged against `ObjectMeta` by the caller; `apiVersion` and `kind` are always
//! declared.

use crate::sim::release::Release;
use serde_json::{Value, json};

fn string() -> Value {
    json!({"type": "string"})
}

/// `[]byte`: base64 text in JSON.
fn bytes() -> Value {
    json!({"type": "string", "format": "byte"})
}

/// `metav1.Time`.
fn time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn atomic_strings() -> Value {
    json!({"type": "array", "x-kubernetes-list-type": "atomic", "items": string()})
}

/// A `conditions` list: `+listType=map`, `+listMapKey=type`, items with `fields`.
fn conditions(fields: Value) -> Value {
    json!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {"type": "object", "properties": fields},
    })
}

/// The top level of a kind: `apiVersion`, `kind`, `metadata`, `spec` and, when the kind has
/// one, `status`.
fn kind(spec: Value, status: Option<Value>) -> Value {
    let mut props = json!({
        "apiVersion": string(),
        "kind": string(),
        "metadata": {"type": "object"},
        "spec": {"type": "object", "properties": spec},
    });
    if let Some(status) = status {
        props["status"] = json!({"type": "object", "properties": status});
    }
    json!({"type": "object", "properties": props})
}

/// CertificateSigningRequest v1: its conditions carry `lastUpdateTime` and
/// `lastTransitionTime` (no `observedGeneration`).
fn certificate_signing_request() -> Value {
    kind(
        json!({
            "request": bytes(),
            "signerName": string(),
            "expirationSeconds": {"type": "integer", "format": "int32"},
            "usages": atomic_strings(),
            "username": string(),
            "uid": string(),
            "groups": atomic_strings(),
            "extra": {"type": "object", "additionalProperties": atomic_strings()},
        }),
        Some(json!({
            "conditions": conditions(json!({
                "type": string(),
                "status": string(),
                "reason": string(),
                "message": string(),
                "lastUpdateTime": time(),
                "lastTransitionTime": time(),
            })),
            "certificate": bytes(),
        })),
    )
}

/// PodCertificateRequest: `v1` has no legacy key fields; `v1beta1` has them, and the stub only
/// from 1.36. Its conditions are metav1 `Condition`s (`observedGeneration`, no
/// `lastUpdateTime`).
fn pod_certificate_request(release: Release, version: &str) -> Value {
    let mut spec = json!({
        "signerName": string(),
        "podName": string(),
        "podUID": string(),
        "serviceAccountName": string(),
        "serviceAccountUID": string(),
        "nodeName": string(),
        "nodeUID": string(),
        "maxExpirationSeconds": {"type": "integer", "format": "int32"},
        "stubPKCS10Request": bytes(),
        "unverifiedUserAnnotations": {"type": "object", "additionalProperties": string()},
    });
    if version == "v1beta1" {
        spec["pkixPublicKey"] = bytes();
        spec["proofOfPossession"] = bytes();
    }
    if !release.has_stub()
        && let Some(s) = spec.as_object_mut()
    {
        s.remove("stubPKCS10Request");
    }
    kind(
        spec,
        Some(json!({
            "conditions": conditions(json!({
                "type": string(),
                "status": string(),
                "observedGeneration": {"type": "integer", "format": "int64"},
                "lastTransitionTime": time(),
                "reason": string(),
                "message": string(),
            })),
            "certificateChain": string(),
            "notBefore": time(),
            "beginRefreshAt": time(),
            "notAfter": time(),
        })),
    )
}

/// ClusterTrustBundle (v1beta1 and v1 alike): a spec, no status.
fn cluster_trust_bundle() -> Value {
    kind(
        json!({"signerName": string(), "trustBundle": string()}),
        None,
    )
}

/// The apply schema of a served `certificates.k8s.io` resource in `release`, if kube-sim
/// serves it.
pub fn apply_schema(release: Release, version: &str, plural: &str) -> Option<Value> {
    match (version, plural) {
        ("v1", "certificatesigningrequests") => Some(certificate_signing_request()),
        ("v1" | "v1beta1", "podcertificaterequests") => {
            Some(pod_certificate_request(release, version))
        }
        ("v1" | "v1beta1", "clustertrustbundles") => Some(cluster_trust_bundle()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::schema::{Compiled, undeclared_in_apply};
    use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
    use std::collections::BTreeSet;

    /// The property names k8s-openapi's schema of `T` declares.
    fn openapi_fields<T: JsonSchema>() -> BTreeSet<String> {
        let schema = SchemaGenerator::default().into_root_schema_for::<T>();
        schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn ours(schema: &Value, pointer: &str) -> BTreeSet<String> {
        schema
            .pointer(pointer)
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("no properties at {pointer}"))
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn field_sets_are_the_api_types_fields() {
        use k8s_openapi::api::certificates::{v1, v1beta1};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
        let csr = apply_schema(Release::V1_37, "v1", "certificatesigningrequests").unwrap();
        assert_eq!(
            ours(&csr, "/properties"),
            openapi_fields::<v1::CertificateSigningRequest>()
        );
        assert_eq!(
            ours(&csr, "/properties/spec/properties"),
            openapi_fields::<v1::CertificateSigningRequestSpec>()
        );
        assert_eq!(
            ours(&csr, "/properties/status/properties"),
            openapi_fields::<v1::CertificateSigningRequestStatus>()
        );
        assert_eq!(
            ours(
                &csr,
                "/properties/status/properties/conditions/items/properties"
            ),
            openapi_fields::<v1::CertificateSigningRequestCondition>()
        );
        let spec = "/properties/spec/properties";
        let status = "/properties/status/properties";
        let condition = "/properties/status/properties/conditions/items/properties";
        let pcr = apply_schema(Release::V1_37, "v1", "podcertificaterequests").unwrap();
        assert_eq!(
            ours(&pcr, "/properties"),
            openapi_fields::<v1::PodCertificateRequest>()
        );
        assert_eq!(
            ours(&pcr, spec),
            openapi_fields::<v1::PodCertificateRequestSpec>()
        );
        assert_eq!(
            ours(&pcr, status),
            openapi_fields::<v1::PodCertificateRequestStatus>()
        );
        assert_eq!(ours(&pcr, condition), openapi_fields::<Condition>());
        let beta = apply_schema(Release::V1_37, "v1beta1", "podcertificaterequests").unwrap();
        assert_eq!(
            ours(&beta, spec),
            openapi_fields::<v1beta1::PodCertificateRequestSpec>()
        );
        assert_eq!(
            ours(&beta, status),
            openapi_fields::<v1beta1::PodCertificateRequestStatus>()
        );
        for (version, top, spec_fields) in [
            (
                "v1",
                openapi_fields::<v1::ClusterTrustBundle>(),
                openapi_fields::<v1::ClusterTrustBundleSpec>(),
            ),
            (
                "v1beta1",
                openapi_fields::<v1beta1::ClusterTrustBundle>(),
                openapi_fields::<v1beta1::ClusterTrustBundleSpec>(),
            ),
        ] {
            let ctb = apply_schema(Release::V1_37, version, "clustertrustbundles").unwrap();
            assert_eq!(ours(&ctb, "/properties"), top, "{version}");
            assert_eq!(ours(&ctb, spec), spec_fields, "{version}");
        }
    }

    #[test]
    fn undeclared_condition_and_status_fields_are_named_as_structured_merge_diff_names_them() {
        let pcr =
            Compiled::new(&apply_schema(Release::V1_37, "v1", "podcertificaterequests").unwrap());
        let cfg = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "PodCertificateRequest",
            "metadata": {"name": "r", "namespace": "default"},
            "status": {"conditions": [{"type": "Issued", "status": "True", "lastUpdateTime": "2026-01-01T00:00:00Z"}]}});
        assert_eq!(
            undeclared_in_apply(&pcr, &cfg),
            vec![r#".status.conditions[type="Issued"].lastUpdateTime"#]
        );
        let csr = Compiled::new(
            &apply_schema(Release::V1_37, "v1", "certificatesigningrequests").unwrap(),
        );
        let cfg = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "c"}, "status": {"foo": 1}});
        assert_eq!(undeclared_in_apply(&csr, &cfg), vec![".status.foo"]);
        // What the signers write passes: a CSR Failed condition with both times, a PCR
        // condition with observedGeneration, spec maps and lists.
        let cfg = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "c", "resourceVersion": "4"},
            "spec": {"extra": {"k": ["v"]}, "usages": ["client auth"]},
            "status": {"certificate": "UEVN", "conditions": [{"type": "Failed", "status": "True", "reason": "R", "message": "m",
                "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        assert!(undeclared_in_apply(&csr, &cfg).is_empty());
        let cfg = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "PodCertificateRequest",
            "metadata": {"name": "r"}, "spec": {"unverifiedUserAnnotations": {"example.com/a": "b"}},
            "status": {"conditions": [{"type": "Denied", "status": "True", "observedGeneration": 1}]}});
        assert!(undeclared_in_apply(&pcr, &cfg).is_empty());
        let ctb =
            Compiled::new(&apply_schema(Release::V1_37, "v1", "clustertrustbundles").unwrap());
        let cfg = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "ClusterTrustBundle",
            "metadata": {"name": "b"}, "status": {}});
        assert_eq!(undeclared_in_apply(&ctb, &cfg), vec![".status"]);
        // v1 has no legacy key fields; v1beta1 has.
        let legacy = json!({"apiVersion": "x", "kind": "PodCertificateRequest", "spec": {"pkixPublicKey": ""}});
        assert_eq!(
            undeclared_in_apply(&pcr, &legacy),
            vec![".spec.pkixPublicKey"]
        );
        let beta = Compiled::new(
            &apply_schema(Release::V1_37, "v1beta1", "podcertificaterequests").unwrap(),
        );
        assert!(undeclared_in_apply(&beta, &legacy).is_empty());
        // 1.35's v1beta1 has no stub.
        let stub = json!({"apiVersion": "x", "kind": "PodCertificateRequest", "spec": {"stubPKCS10Request": ""}});
        assert!(undeclared_in_apply(&beta, &stub).is_empty());
        let beta_135 = Compiled::new(
            &apply_schema(Release::V1_35, "v1beta1", "podcertificaterequests").unwrap(),
        );
        assert_eq!(
            undeclared_in_apply(&beta_135, &stub),
            vec![".spec.stubPKCS10Request"]
        );
    }
}
