//! The shape of the controller's CertificateRequest cache: which watched requests it keeps (only
//! those still actionable) and which of their fields (what a decision reads); it performs no I/O
//! of its own and decides no outcome.

use futures::{Stream, TryStreamExt, future};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::store::Writer;
use kube::runtime::{WatchStreamExt, watcher};

use crate::crd::CertificateRequest;
use crate::issuer::decide::{self, is_terminal, our_issuer_kind};

/// Feeds a CertificateRequest watch into the request cache behind `writer`, and yields the
/// requests to queue, each once the cache holds the copy it was queued for (see
/// [`crate::queue::touched_after_lists`]).
///
/// # Guarantees
/// Requests the controller will never act on again (answered, or for another issuer) leave the
/// cache altogether and are never listed into it: memory grows with the requests in flight, not
/// with those retained in the cluster, and their watch events queue no reconcile. Every cached
/// request is slimmed by [`slim_for_cache`] first. `on_removed` sees each request that leaves the
/// cache (deleted, or rewritten into a removal), after the cache dropped it.
pub fn cached_requests<S>(
    events: S,
    group: String,
    writer: Writer<CertificateRequest>,
    on_removed: impl Fn(&CertificateRequest) + Send + 'static,
) -> impl Stream<Item = Result<ObjectRef<CertificateRequest>, watcher::Error>> + Send
where
    S: Stream<Item = Result<watcher::Event<CertificateRequest>, watcher::Error>> + Send,
{
    let slim_group = group.clone();
    let kept = events
        .try_filter_map(move |ev| future::ready(Ok(keep_actionable(ev, &group))))
        .modify(move |cr| slim_for_cache(cr, &slim_group));
    let cached = crate::queue::first_list_as_it_arrives(kept)
        .reflect(writer)
        .inspect_ok(move |ev| {
            if let watcher::Event::Delete(cr) = ev {
                on_removed(cr);
            }
        });
    crate::queue::touched_after_lists(cached, ())
}

/// Whether the controller may still act on `cr`: it names one of our issuers and has no
/// terminal state. Neither can change back (spec is immutable, terminal states are final).
fn actionable(cr: &CertificateRequest, group: &str) -> bool {
    our_issuer_kind(cr, group).is_some() && !is_terminal(cr)
}

/// Rewrites a watch event so the cache holds only actionable requests: a request that became
/// terminal (typically through our own write) is removed as if deleted, and one listed already
/// terminal is never added.
fn keep_actionable(
    ev: watcher::Event<CertificateRequest>,
    group: &str,
) -> Option<watcher::Event<CertificateRequest>> {
    match ev {
        watcher::Event::Apply(cr) if !actionable(&cr, group) => Some(watcher::Event::Delete(cr)),
        watcher::Event::InitApply(cr) if !actionable(&cr, group) => None,
        other => Some(other),
    }
}

/// A marker that stands for a certificate whose bytes were dropped from the cache: only its
/// presence matters to the state machine.
const DROPPED_CERTIFICATE: &str = "-";

/// Drops from a cached request everything the controller will never read again: managed fields
/// and kubectl's last-applied copy always; for requests that are not ours or already answered,
/// the CSR, the certificate bytes, the user info and condition messages too.
pub fn slim_for_cache(cr: &mut CertificateRequest, group: &str) {
    cr.metadata.managed_fields = None;
    if let Some(a) = cr.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    if our_issuer_kind(cr, group).is_some() && !is_terminal(cr) {
        return;
    }
    cr.metadata.annotations = None;
    cr.metadata.labels = None;
    cr.metadata.owner_references = None;
    cr.spec.request = String::new();
    cr.spec.usages = None;
    cr.spec.groups = None;
    cr.spec.extra = None;
    cr.spec.uid = None;
    cr.spec.username = None;
    cr.spec.duration = None;
    cr.metadata.creation_timestamp = None;
    if let Some(status) = cr.status.as_mut() {
        if status.certificate.as_deref().is_some_and(|c| !c.is_empty()) {
            status.certificate = Some(DROPPED_CERTIFICATE.to_owned());
        }
        status.ca = None;
        status.failure_time = None;
        if let Some(conditions) = status.conditions.as_mut() {
            // Only what makes the request terminal is read again.
            conditions.retain(|c| c.type_ == decide::READY || c.type_ == decide::INVALID_REQUEST);
            conditions.shrink_to_fit();
            for c in conditions.iter_mut() {
                c.message = None;
                c.last_transition_time = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::crd::{
        CertificateRequestCondition, CertificateRequestSpec, CertificateRequestStatus, IssuerRef,
    };

    fn request(ready: Option<&str>) -> CertificateRequest {
        let mut annotations = BTreeMap::new();
        annotations.insert(
            "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
            "x".repeat(4000),
        );
        annotations.insert(
            crate::crd::POLICY_NAME_ANNOTATION.to_owned(),
            "istio-mtls".to_owned(),
        );
        CertificateRequest {
            metadata: ObjectMeta {
                name: Some("r".into()),
                namespace: Some("istio-system".into()),
                annotations: Some(annotations),
                ..Default::default()
            },
            spec: CertificateRequestSpec {
                request: "Q1NS".repeat(1000),
                issuer_ref: IssuerRef {
                    name: "i".into(),
                    kind: None,
                    group: Some("firefly.venafi.com".into()),
                },
                ..Default::default()
            },
            status: ready.map(|r| CertificateRequestStatus {
                conditions: Some(vec![CertificateRequestCondition {
                    type_: "Ready".into(),
                    status: if r == "Issued" {
                        "True".into()
                    } else {
                        "False".into()
                    },
                    reason: Some(r.into()),
                    message: Some("a long message".repeat(50)),
                    ..Default::default()
                }]),
                certificate: (r == "Issued").then(|| "Q0VSVA==".repeat(1000)),
                ca: (r == "Issued").then(|| "Q0E=".repeat(500)),
                failure_time: None,
            }),
        }
    }

    #[test]
    fn answered_requests_are_cached_without_their_bodies() {
        let mut cr = request(Some("Issued"));
        slim_for_cache(&mut cr, "firefly.venafi.com");
        assert!(cr.spec.request.is_empty());
        let status = cr.status.as_ref().unwrap();
        assert_eq!(status.certificate.as_deref(), Some(DROPPED_CERTIFICATE));
        assert!(status.ca.is_none());
        assert!(cr.metadata.annotations.is_none());
        assert!(
            is_terminal(&cr),
            "a slimmed answered request must still read as terminal"
        );
        assert!(serde_json::to_vec(&cr).unwrap().len() < 600);
    }

    #[test]
    fn unanswered_requests_keep_what_signing_needs_but_not_kubectl_copies() {
        let mut cr = request(None);
        slim_for_cache(&mut cr, "firefly.venafi.com");
        assert_eq!(cr.spec.request.len(), 4000);
        let annotations = cr.metadata.annotations.as_ref().unwrap();
        assert!(annotations.contains_key(crate::crd::POLICY_NAME_ANNOTATION));
        assert!(!annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
    }

    #[test]
    fn answered_requests_leave_the_cache_and_are_never_listed_into_it() {
        let group = "firefly.venafi.com";
        let answered = request(Some("Issued"));
        assert!(matches!(
            keep_actionable(watcher::Event::Apply(answered.clone()), group),
            Some(watcher::Event::Delete(_))
        ));
        assert!(keep_actionable(watcher::Event::InitApply(answered), group).is_none());
        let waiting = request(None);
        assert!(matches!(
            keep_actionable(watcher::Event::Apply(waiting.clone()), group),
            Some(watcher::Event::Apply(_))
        ));
        assert!(matches!(
            keep_actionable(watcher::Event::InitApply(waiting.clone()), group),
            Some(watcher::Event::InitApply(_))
        ));
        let mut other = waiting;
        other.spec.issuer_ref.group = Some("cert-manager.io".into());
        assert!(matches!(
            keep_actionable(watcher::Event::Apply(other), group),
            Some(watcher::Event::Delete(_))
        ));
    }

    #[test]
    fn requests_for_other_issuers_are_cached_without_bodies() {
        let mut cr = request(None);
        cr.spec.issuer_ref.group = Some("cert-manager.io".into());
        slim_for_cache(&mut cr, "firefly.venafi.com");
        assert!(cr.spec.request.is_empty());
    }
}
