//! Shared fixtures for kube-sim's integration tests: the project's CRDs and request builders.
#![allow(dead_code)]

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

/// The CRDs these tests install: cert-manager's CertificateRequest (the upstream transcription)
/// and the project's own Issuer and ClusterIssuer (crds/firefly.yaml, the output of `firefly crds`).
pub fn project_crds() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../crds/firefly.yaml");
    let ours = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {path}: {e} (generate it with `firefly crds`)"));
    format!(
        "{}\n---\n{ours}",
        kube_sim::CERT_MANAGER_CERTIFICATE_REQUEST_CRD
    )
}

/// The CertificateRequest resource (cert-manager.io/v1).
pub fn cr_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cert-manager.io", "v1", "CertificateRequest"),
        "certificaterequests",
    )
}

/// A namespaced CertificateRequest API.
pub fn cr_api(client: kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client, ns, &cr_resource())
}

/// A CertificateRequest body with a base64 payload (kube-sim only checks that it is base64).
pub fn cr_body(name: &str) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {"name": name, "labels": {"app": "test"}},
        "spec": {
            "request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K",
            "issuerRef": {"name": "firefly", "kind": "Issuer", "group": "firefly.venafi.com"},
            "duration": "1h0m0s"
        }
    })
}

/// A DynamicObject from JSON.
pub fn dynamic(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("fixture is a valid object")
}

/// The status of one condition type on an object.
pub fn condition(obj: &DynamicObject, type_: &str) -> Option<String> {
    obj.data
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?
        .get("status")?
        .as_str()
        .map(str::to_string)
}
