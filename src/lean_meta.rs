//! Object metadata decoded without `metadata.managedFields`: pure decoding, no I/O.
//!
//! The API server sends every object with its field-ownership record: one entry per writer (the
//! requester's create, the approver's condition, our own status apply), each a nested map of
//! field paths. The doors read none of it, yet decoding it into [`ObjectMeta`] allocates a map
//! node per path on every watch event; for a CertificateRequest with three writers that more than
//! doubles the cost of decoding the event. The watched types decode their metadata through
//! [`deserialize`], which skips the record without building it (`managed_fields` is `None`) and
//! keeps every other field as [`ObjectMeta`]'s own decoding does.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::{Deserialize, Deserializer};

/// [`ObjectMeta`]'s fields but `managedFields`, which serde skips like any unknown key.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Lean {
    annotations: Option<BTreeMap<String, String>>,
    creation_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    name: Option<String>,
    namespace: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
    resource_version: Option<String>,
    self_link: Option<String>,
    uid: Option<String>,
}

/// Decodes object metadata as [`ObjectMeta`] does, leaving `managed_fields` `None`: use as
/// `#[serde(deserialize_with = "crate::lean_meta::deserialize")]` on a watched type's `metadata`.
///
/// # Errors
/// Whatever [`ObjectMeta`]'s own decoding refuses in the fields kept.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let Lean {
        annotations,
        creation_timestamp,
        deletion_grace_period_seconds,
        deletion_timestamp,
        finalizers,
        generate_name,
        generation,
        labels,
        name,
        namespace,
        owner_references,
        resource_version,
        self_link,
        uid,
    } = Lean::deserialize(deserializer)?;
    // Every field named, none defaulted: a field k8s-openapi adds to ObjectMeta fails to compile
    // here instead of being dropped unnoticed.
    Ok(ObjectMeta {
        annotations,
        creation_timestamp,
        deletion_grace_period_seconds,
        deletion_timestamp,
        finalizers,
        generate_name,
        generation,
        labels,
        managed_fields: None,
        name,
        namespace,
        owner_references,
        resource_version,
        self_link,
        uid,
    })
}

/// A watch event of a lean watched type, as the event of the type the door works with.
pub(crate) fn convert_event<A, B: From<A>>(
    event: kube::runtime::watcher::Event<A>,
) -> kube::runtime::watcher::Event<B> {
    use kube::runtime::watcher::Event;
    match event {
        Event::Apply(o) => Event::Apply(o.into()),
        Event::Delete(o) => Event::Delete(o.into()),
        Event::Init => Event::Init,
        Event::InitApply(o) => Event::InitApply(o.into()),
        Event::InitDone => Event::InitDone,
    }
}

/// Implements `kube::Resource` for `$lean`, a type decoded from `$full`'s API with fewer fields:
/// the same kind, group, version and plural, and its own `metadata`.
macro_rules! delegate_resource {
    ($lean:ident => $full:path, $scope:ty) => {
        impl kube::Resource for $lean {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
                <$full as kube::Resource>::kind(dt)
            }
            fn group(dt: &()) -> std::borrow::Cow<'_, str> {
                <$full as kube::Resource>::group(dt)
            }
            fn version(dt: &()) -> std::borrow::Cow<'_, str> {
                <$full as kube::Resource>::version(dt)
            }
            fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
                <$full as kube::Resource>::plural(dt)
            }
            fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(
                &mut self,
            ) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
pub(crate) use delegate_resource;

/// Declares `$lean`, the type a door watches `$full` as: its `spec` and `status` decoded as
/// `$full`'s, its metadata through [`deserialize`]; converted into `$full` by a move.
macro_rules! lean_watched {
    ($(#[$doc:meta])* $lean:ident => $full:path { spec: $spec:ty, status: $status:ty, scope: $scope:ty }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, serde::Deserialize)]
        pub(crate) struct $lean {
            #[serde(deserialize_with = "crate::lean_meta::deserialize")]
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
            spec: $spec,
            #[serde(default)]
            status: Option<$status>,
        }

        crate::lean_meta::delegate_resource!($lean => $full, $scope);

        impl From<$lean> for $full {
            fn from(o: $lean) -> $full {
                $full {
                    metadata: o.metadata,
                    spec: o.spec,
                    status: o.status,
                }
            }
        }
    };
}
pub(crate) use lean_watched;

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
    use serde_json::json;

    #[derive(Deserialize)]
    struct Wrapped {
        #[serde(deserialize_with = "deserialize")]
        metadata: ObjectMeta,
    }

    fn time(text: &str) -> Time {
        Time(text.parse().unwrap())
    }

    /// Every field of ObjectMeta set (a struct literal without `..`: a new field must be added).
    fn full() -> ObjectMeta {
        ObjectMeta {
            annotations: Some(BTreeMap::from([("a".into(), "1".into())])),
            creation_timestamp: Some(time("2026-12-06T10:00:00Z")),
            deletion_grace_period_seconds: Some(30),
            deletion_timestamp: Some(time("2026-12-06T11:00:00Z")),
            finalizers: Some(vec!["f".into()]),
            generate_name: Some("csr-workload-".into()),
            generation: Some(2),
            labels: Some(BTreeMap::from([("l".into(), "v".into())])),
            managed_fields: Some(vec![ManagedFieldsEntry {
                api_version: Some("cert-manager.io/v1".into()),
                fields_type: Some("FieldsV1".into()),
                fields_v1: Some(FieldsV1(json!({"f:status": {"f:certificate": {}}}))),
                manager: Some("firefly".into()),
                operation: Some("Apply".into()),
                subresource: Some("status".into()),
                time: Some(time("2026-12-06T10:00:01Z")),
            }]),
            name: Some("csr-workload-x".into()),
            namespace: Some("istio-system".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: "p".into(),
                uid: "u1".into(),
                block_owner_deletion: Some(true),
                controller: Some(true),
            }]),
            resource_version: Some("42".into()),
            self_link: Some("/apis/x".into()),
            uid: Some("u2".into()),
        }
    }

    #[test]
    fn every_field_but_the_ownership_record_decodes_as_object_meta_does() {
        let meta = full();
        let text = json!({ "metadata": meta }).to_string();
        let lean: Wrapped = serde_json::from_str(&text).unwrap();
        let expected = ObjectMeta {
            managed_fields: None,
            ..full()
        };
        assert_eq!(lean.metadata, expected);
        // The standard decoding of the same text differs only in the record.
        #[derive(Deserialize)]
        struct Standard {
            metadata: ObjectMeta,
        }
        let standard: Standard = serde_json::from_str(&text).unwrap();
        assert!(standard.metadata.managed_fields.is_some());
        assert_eq!(
            ObjectMeta {
                managed_fields: None,
                ..standard.metadata
            },
            lean.metadata
        );
    }

    /// The managedFields a real API server sends with a CertificateRequest approved by
    /// cert-manager and answered by us.
    fn ownership_record() -> serde_json::Value {
        json!([
            {"manager": "cert-manager-istio-csr", "operation": "Update", "apiVersion": "cert-manager.io/v1",
             "time": "2026-12-06T10:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {".": {}, "f:request": {}, "f:issuerRef": {".": {}, "f:name": {}}}}},
            {"manager": "firefly", "operation": "Apply", "apiVersion": "cert-manager.io/v1",
             "time": "2026-12-06T10:00:01Z", "fieldsType": "FieldsV1", "subresource": "status",
             "fieldsV1": {"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}}}}}}
        ])
    }

    #[test]
    fn a_watched_certificate_request_becomes_the_full_type_without_its_ownership_record() {
        use crate::crd::CertificateRequest;
        use crate::issuer::controller::WatchedRequest;
        use kube::runtime::watcher::Event;
        let object = json!({
            "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
            "metadata": {"name": "r", "namespace": "istio-system", "uid": "u", "resourceVersion": "7",
                         "annotations": {"istio.cert-manager.io/identities": "spiffe://cluster.local/ns/a/sa/b"},
                         "managedFields": ownership_record()},
            "spec": {"request": "UkVR", "issuerRef": {"name": "firefly-istio", "kind": "Issuer", "group": "firefly.venafi.com"},
                     "usages": ["client auth"], "username": "system:serviceaccount:cert-manager:istio-csr"},
            "status": {"conditions": [{"type": "Approved", "status": "True", "reason": "cert-manager.io", "message": "ok"}]}
        });
        let lean: WatchedRequest = serde_json::from_value(object.clone()).unwrap();
        let full: CertificateRequest = serde_json::from_value(object).unwrap();
        assert!(full.metadata.managed_fields.is_some());
        let Event::Apply(converted) = convert_event::<_, CertificateRequest>(Event::Apply(lean))
        else {
            panic!("the event kind is kept");
        };
        let mut expected = full;
        expected.metadata.managed_fields = None;
        assert_eq!(
            serde_json::to_value(&converted).unwrap(),
            serde_json::to_value(&expected).unwrap()
        );
    }

    #[test]
    fn a_watched_csr_becomes_the_full_type_without_its_ownership_record() {
        use crate::kube_csr::controller::WatchedCsr;
        use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
        use kube::runtime::watcher::Event;
        let object = json!({
            "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "csr-workload-x", "uid": "u", "resourceVersion": "9", "managedFields": ownership_record()},
            "spec": {"request": "UkVR", "signerName": "clusterissuers.firefly.venafi.com/istio-ca",
                     "usages": ["digital signature"], "username": "system:serviceaccount:istio-system:istiod",
                     "expirationSeconds": 86400},
            "status": {"conditions": [{"type": "Approved", "status": "True", "reason": "Approved", "message": "ok"}]}
        });
        let lean: WatchedCsr = serde_json::from_value(object.clone()).unwrap();
        let full: CertificateSigningRequest = serde_json::from_value(object).unwrap();
        let Event::InitApply(converted) =
            convert_event::<_, CertificateSigningRequest>(Event::InitApply(lean))
        else {
            panic!("the event kind is kept");
        };
        let mut expected = full;
        expected.metadata.managed_fields = None;
        assert_eq!(converted, expected);
    }

    #[test]
    fn nulls_and_absent_fields_are_none_and_bad_values_are_refused() {
        let lean: Wrapped =
            serde_json::from_str(r#"{"metadata":{"name":"a","labels":null,"managedFields":null}}"#)
                .unwrap();
        assert_eq!(lean.metadata.name.as_deref(), Some("a"));
        assert_eq!(lean.metadata.labels, None);
        let bad = serde_json::from_str::<Wrapped>(r#"{"metadata":{"generation":"two"}}"#);
        assert!(
            bad.is_err(),
            "a wrong type is refused as ObjectMeta refuses it"
        );
        let bad_time =
            serde_json::from_str::<Wrapped>(r#"{"metadata":{"creationTimestamp":"yesterday"}}"#);
        assert!(bad_time.is_err());
    }
}
