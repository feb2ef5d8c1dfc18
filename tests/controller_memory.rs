//! Memory the controller keeps per CertificateRequest, on the path its request watch takes:
//! realistic istio-csr requests (CSR, chain, managed fields, approver and Ready conditions) go as
//! watch events through `cached_requests` (keep only actionable requests, slim them, reflect them
//! into a kube-runtime store), exactly as `firefly run` wires it. Answered requests must leave the
//! cache and never be listed into it. The resident bytes per request are printed as RSS deltas,
//! not bounded: they depend on the allocator, the kernel and whatever else this process did, so
//! memory goals are judged by the benchmark (`benches/e2e.rs`, phases `rss` and `large`, with the
//! allocator `firefly` ships).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use firefly::crd::CertificateRequest;
use firefly::issuer::controller::cached_requests;
use futures::{StreamExt, future, stream};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use serde_json::json;

const GROUP: &str = "firefly.venafi.com";

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

/// An istio-csr request as the watch delivers it (bodies of realistic sizes), approved and,
/// when `answered`, issued.
fn request(i: usize, answered: bool) -> CertificateRequest {
    let b64 = base64::engine::general_purpose::STANDARD;
    let csr = b64.encode("C".repeat(1100));
    let mut conditions = vec![json!({
        "type": "Approved", "status": "True", "reason": "cert-manager.io",
        "message": "Certificate request has been approved by cert-manager.io",
        "lastTransitionTime": "2026-11-23T12:00:00Z"})];
    let mut status = json!({});
    if answered {
        conditions.push(json!({
            "type": "Ready", "status": "True", "reason": "Issued",
            "message": "Certificate fetched from issuer successfully",
            "lastTransitionTime": "2026-11-23T12:00:00Z"}));
        status["certificate"] = json!(b64.encode("L".repeat(2400)));
        status["ca"] = json!(b64.encode("R".repeat(700)));
    }
    status["conditions"] = json!(conditions);
    let doc = json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {
            "name": format!("istio-csr-{i:05}"),
            "namespace": "istio-system",
            "uid": format!("8c0b6a5e-2f4d-4c1e-9a7b-{i:012}"),
            "resourceVersion": format!("{}", 100000 + 2 * i + usize::from(answered)),
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
            "issuerRef": {"name": "firefly-istio", "kind": "Issuer", "group": GROUP},
            "duration": "1h0m0s",
            "usages": ["client auth", "server auth"],
            "username": "system:serviceaccount:istio-system:cert-manager-istio-csr",
            "uid": "5a1f6c1e-0000-4000-8000-000000000001",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:istio-system", "system:authenticated"]
        },
        "status": status
    });
    // Parsed from text, as the watch does.
    serde_json::from_str(&doc.to_string()).unwrap()
}

/// A request cache fed the way the controller feeds it, and how many requests left it.
struct Cache {
    store: Store<CertificateRequest>,
    writer: Option<reflector::store::Writer<CertificateRequest>>,
    removed: Arc<AtomicUsize>,
}

impl Cache {
    fn new() -> Cache {
        let (store, writer) = reflector::store();
        Cache {
            store,
            writer: Some(writer),
            removed: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Runs `events` through the controller's cache path; returns how many requests it queued.
    async fn feed(
        &mut self,
        events: impl Iterator<Item = Event<CertificateRequest>> + Send,
    ) -> usize {
        let removed = self.removed.clone();
        let writer = self.writer.take().expect("one feed per cache");
        cached_requests(
            stream::iter(events.map(Ok::<_, watcher::Error>)),
            GROUP.to_owned(),
            writer,
            move |_| {
                removed.fetch_add(1, Ordering::Relaxed);
            },
        )
        .fold(0, |queued, r| {
            future::ready(queued + usize::from(r.is_ok()))
        })
        .await
    }
}

/// A relist (`Init`, one `InitApply` per request, `InitDone`), then plain watch events.
fn relist_then(
    listed: impl Iterator<Item = CertificateRequest> + Send,
    watched: impl Iterator<Item = Event<CertificateRequest>> + Send,
) -> impl Iterator<Item = Event<CertificateRequest>> + Send {
    std::iter::once(Event::Init)
        .chain(listed.map(Event::InitApply))
        .chain(std::iter::once(Event::InitDone))
        .chain(watched)
}

#[tokio::test]
async fn answered_requests_leave_the_cache_and_are_never_listed_into_it() {
    const N: usize = 50;
    let mut cache = Cache::new();
    // 0..N are listed already answered; N..2N arrive in flight, then answered.
    let in_flight = (N..2 * N).map(|i| Event::Apply(request(i, false)));
    let answered = (N..2 * N).map(|i| Event::Apply(request(i, true)));
    let queued = cache
        .feed(relist_then(
            (0..N).map(|i| request(i, true)),
            in_flight.chain(answered),
        ))
        .await;
    assert_eq!(queued, N, "only the requests in flight are queued");
    assert!(
        cache.store.state().is_empty(),
        "answered requests left the cache: {} remain",
        cache.store.state().len()
    );
    assert_eq!(
        cache.removed.load(Ordering::Relaxed),
        N,
        "each request answered while cached is reported as removed (its retry state is forgotten)"
    );
}

#[tokio::test]
async fn requests_in_flight_are_cached_slim() {
    let mut cache = Cache::new();
    cache
        .feed(relist_then(
            std::iter::empty(),
            (0..3).map(|i| Event::Apply(request(i, false))),
        ))
        .await;
    let cached = cache.store.state();
    assert_eq!(cached.len(), 3);
    for cr in cached {
        assert!(
            cr.metadata.managed_fields.is_none(),
            "managed fields dropped"
        );
        assert_eq!(cr.spec.request.len(), 1468, "the CSR is kept for signing");
    }
}

/// A relist of answered requests, as after a restart in a cluster that retains them, caches none
/// of them, and a burst in flight caches each: the structural reason an answered request leaves
/// (next to) nothing resident (before answered requests left the cache, each cost about 1.9 KiB).
/// The RSS deltas per request are printed for a look, not judged: resident bytes depend on the
/// allocator and the kernel. What memory per retained request the whole controller costs is
/// measured by the `rss` and `large` phases of `cargo bench --bench e2e` (goal ≤ 1 KiB).
#[tokio::test]
async fn a_relist_of_answered_requests_caches_none_and_resident_bytes_are_reported() {
    // Large enough that allocator slack and the measurement's own noise are small per request.
    const N: usize = 10_000;
    // Warm the allocator with the transient work (parse, slim, reflect) before the baseline.
    Cache::new()
        .feed(relist_then(
            (0..200).map(|i| request(N * 4 + i, true)),
            (0..200).map(|i| Event::Apply(request(N * 5 + i, false))),
        ))
        .await;

    // A relist of N answered requests, as after a restart in a cluster that retains them.
    let mut answered = Cache::new();
    let before = rss_bytes();
    let answered_queued = answered
        .feed(relist_then(
            (0..N).map(|i| request(i, true)),
            std::iter::empty(),
        ))
        .await;
    let after_answered = rss_bytes();
    let answered_cached = answered.store.state().len();
    let per_answered = after_answered.saturating_sub(before) / N;

    // N requests in flight at once (a burst the signer has not answered yet).
    let mut in_flight = Cache::new();
    in_flight
        .feed(relist_then(
            std::iter::empty(),
            (N..2 * N).map(|i| Event::Apply(request(i, false))),
        ))
        .await;
    let after_in_flight = rss_bytes();
    assert_eq!(in_flight.store.state().len(), N);
    let per_in_flight = after_in_flight.saturating_sub(after_answered) / N;

    println!(
        "request cache: {per_answered} bytes resident per answered request (listed), \
         {per_in_flight} bytes per request in flight (RSS delta / N, N = {N})"
    );
    assert_eq!(
        answered_cached, 0,
        "answered requests are never listed into the cache"
    );
    assert_eq!(answered_queued, 0, "nor queued");
}
