//! Memory kept per answered CertificateRequest in the controller's cache: realistic issued
//! objects (CSR, chain, managed fields, approver and Ready conditions) go through the same
//! `slim_for_cache` step as the watch, into a map shaped like the reflector store; a counting
//! allocator measures what stays resident. Goal: at most 2 KiB per retained request.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use firefly::crd::CertificateRequest;
use firefly::issuer::controller::slim_for_cache;
use kube::runtime::reflector::ObjectRef;
use serde_json::json;

/// Resident set size of this process, from /proc/self/statm (pages × page size).
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("resident pages");
    pages * 4096
}

/// An issued istio-csr request as the watch delivers it (bodies of realistic sizes).
fn issued_request(i: usize) -> serde_json::Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let csr = b64.encode("C".repeat(1100));
    let chain = b64.encode("L".repeat(2400));
    let ca = b64.encode("R".repeat(700));
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {
            "name": format!("istio-csr-{i:05}"),
            "namespace": "istio-system",
            "uid": format!("8c0b6a5e-2f4d-4c1e-9a7b-{i:012}"),
            "resourceVersion": format!("{}", 100000 + i),
            "generation": 1,
            "creationTimestamp": "2026-11-23T12:00:00Z",
            "annotations": {
                "istio.cert-manager.io/identities": "spiffe://cluster.local/ns/sandbox/sa/httpbin",
                "firefly.venafi.com/policy-name": "istio-mtls"
            },
            "managedFields": [
                {"manager": "cert-manager-istio-csr", "operation": "Update", "apiVersion": "cert-manager.io/v1",
                 "time": "2026-11-23T12:00:00Z", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:firefly.venafi.com/policy-name": {}}},
                              "f:spec": {"f:duration": {}, "f:issuerRef": {}, "f:request": {}, "f:usages": {}}}},
                {"manager": "firefly", "operation": "Apply", "apiVersion": "cert-manager.io/v1",
                 "time": "2026-11-23T12:00:00Z", "fieldsType": "FieldsV1", "subresource": "status",
                 "fieldsV1": {"f:status": {"f:ca": {}, "f:certificate": {}, "f:conditions": {}}}}
            ]
        },
        "spec": {
            "request": csr,
            "issuerRef": {"name": "firefly-istio", "kind": "Issuer", "group": "firefly.venafi.com"},
            "duration": "1h0m0s",
            "usages": ["client auth", "server auth"],
            "username": "system:serviceaccount:istio-system:cert-manager-istio-csr",
            "uid": "5a1f6c1e-0000-4000-8000-000000000001",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:istio-system", "system:authenticated"]
        },
        "status": {
            "conditions": [
                {"type": "Approved", "status": "True", "reason": "cert-manager.io",
                 "message": "Certificate request has been approved by cert-manager.io",
                 "lastTransitionTime": "2026-11-23T12:00:00Z"},
                {"type": "Ready", "status": "True", "reason": "Issued",
                 "message": "Certificate fetched from issuer successfully",
                 "lastTransitionTime": "2026-11-23T12:00:00Z", "observedGeneration": 1}
            ],
            "certificate": chain,
            "ca": ca
        }
    })
}

#[test]
fn an_answered_request_costs_at_most_two_kib_resident_in_the_cache() {
    // Large enough that allocator slack and the measurement's own noise are small per request.
    const N: usize = 20_000;
    let mut store: HashMap<ObjectRef<CertificateRequest>, Arc<CertificateRequest>> =
        HashMap::with_capacity(N);
    // Warm the allocator with the transient work (parse, slim) before the baseline.
    for i in 0..200 {
        let mut cr: CertificateRequest = serde_json::from_value(issued_request(N + i)).unwrap();
        slim_for_cache(&mut cr, "firefly.venafi.com");
    }
    let before = rss_bytes();
    for i in 0..N {
        let doc = issued_request(i).to_string();
        let mut cr: CertificateRequest = serde_json::from_str(&doc).unwrap();
        slim_for_cache(&mut cr, "firefly.venafi.com");
        store.insert(ObjectRef::from_obj(&cr), Arc::new(cr));
    }
    let after = rss_bytes();
    let per_request = after.saturating_sub(before) / N;
    println!("cache: {per_request} bytes resident per answered request (RSS delta / N, N = {N})");
    assert_eq!(store.len(), N);
    assert!(
        per_request <= 2048,
        "{per_request} bytes per retained request, goal 2048"
    );
}
