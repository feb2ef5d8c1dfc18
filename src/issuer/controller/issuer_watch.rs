//! The Issuer/ClusterIssuer watches: they fill the issuer caches, wake the issuer status loop and
//! name the cached requests to re-queue when an issuer changes; they write nothing.
//!
//! # The configured group
//! The issuer kinds are served under `controller.cert-manager.groupName` (the chart's
//! `crd.groupName`), while the derived [`Issuer`](crate::crd::Issuer) and
//! [`ClusterIssuer`](crate::crd::ClusterIssuer) types name the default group, fixed when they
//! were compiled. So every issuer API call goes through an [`ApiResource`] built by
//! [`issuer_resource`] from the configured group, and the watches read [`DynamicObject`]s, turned
//! into the typed objects (whose decoding ignores `apiVersion` and `kind`) before they enter the
//! typed caches everything else reads.

use std::sync::Arc;

use futures::{StreamExt, future};
use kube::Resource;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::Notify;

use crate::crd::CertificateRequest;
use crate::issuer::decide::{IssuerKind, is_terminal, our_issuer_kind};
use crate::rbac::{Group, KubeCall};

/// The API calls this module makes (see [`crate::rbac`]): `watcher` on Issuers and
/// ClusterIssuers in every namespace, a list then a watch each.
pub const KUBE_CALLS: &[KubeCall] = &[
    KubeCall::cluster(Group::Issuers, "issuers", "", "list"),
    KubeCall::cluster(Group::Issuers, "issuers", "", "watch"),
    KubeCall::cluster(Group::Issuers, "clusterissuers", "", "list"),
    KubeCall::cluster(Group::Issuers, "clusterissuers", "", "watch"),
];

/// An issuer that was added or changed.
pub(super) struct IssuerChange {
    kind: IssuerKind,
    /// `None` for a ClusterIssuer.
    namespace: Option<String>,
    name: String,
}

/// Where the issuer kind `K` is served under `group`: `K`'s version, kind and plural with the
/// configured group in place of the one `K` was derived with. For the default group it is exactly
/// what `K` itself would address, so the default's requests are unchanged on the wire.
pub fn issuer_resource<K: Resource<DynamicType = ()>>(group: &str) -> ApiResource {
    let mut resource = ApiResource::erase::<K>(&());
    resource.api_version = format!("{group}/{}", resource.version);
    group.clone_into(&mut resource.group);
    resource
}

/// Watches one issuer kind into `writer`'s cache until `shutdown`; each change wakes the issuer
/// status loop (`notify`) and re-triggers the requests naming the issuer (`tx`). `api` addresses
/// the kind under the configured group (see [`issuer_resource`]); its objects are read as `K`
/// (see [`typed_event`]).
pub(super) fn watch_issuers<K>(
    api: Api<DynamicObject>,
    writer: reflector::store::Writer<K>,
    kind: IssuerKind,
    tx: futures::channel::mpsc::UnboundedSender<IssuerChange>,
    notify: Arc<Notify>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> impl std::future::Future<Output = ()> + Send + 'static
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(|event| {
            future::ready(match event {
                Ok(event) => typed_event::<K>(event).map(Ok),
                Err(e) => Some(Err(e)),
            })
        })
        .reflect(writer);
    // A re-list's issuers once the cache holds them (see crate::queue::touched_after_lists).
    crate::queue::touched_after_lists(events, ())
        .take_until(shutdown)
        .for_each(move |r| {
            if let Ok(issuer) = r {
                notify.notify_one();
                let _ = tx.unbounded_send(IssuerChange {
                    kind,
                    // A ClusterIssuer has no namespace.
                    namespace: issuer.namespace,
                    name: issuer.name,
                });
            }
            future::ready(())
        })
}

/// `event` with its object read as the typed issuer `K`, or `None` when nothing is left to tell
/// the cache. An object that does not read as `K` (logged at warn with its name and the decoding
/// error) never enters the cache: one listed is left out (the cache then holds exactly what was
/// readable), and one applied or deleted is removed by its name and namespace, so an older,
/// readable copy cannot stay in the cache in its place.
fn typed_event<K: serde::de::DeserializeOwned>(
    event: watcher::Event<DynamicObject>,
) -> Option<watcher::Event<K>> {
    Some(match event {
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
        watcher::Event::InitApply(obj) => watcher::Event::InitApply(typed(&obj)?),
        watcher::Event::Apply(obj) => match typed(&obj) {
            Some(issuer) => watcher::Event::Apply(issuer),
            None => watcher::Event::Delete(metadata_only(&obj)?),
        },
        watcher::Event::Delete(obj) => {
            watcher::Event::Delete(typed(&obj).or_else(|| metadata_only(&obj))?)
        }
    })
}

/// `obj` read as `K`; `None`, logged at warn, when it does not read.
fn typed<K: serde::de::DeserializeOwned>(obj: &DynamicObject) -> Option<K> {
    match serde_json::to_value(obj).and_then(serde_json::from_value) {
        Ok(issuer) => Some(issuer),
        Err(e) => {
            tracing::warn!(
                issuer = %display_name(obj),
                error = %e,
                "issuer does not read as a Firefly issuer; it is left out of the issuer cache"
            );
            None
        }
    }
}

/// A `K` carrying only `obj`'s metadata, enough for the cache to remove `obj` by its name and
/// namespace (every spec field of both issuer kinds is optional, so an empty spec reads).
fn metadata_only<K: serde::de::DeserializeOwned>(obj: &DynamicObject) -> Option<K> {
    let shell = serde_json::json!({ "metadata": obj.metadata, "spec": {} });
    match serde_json::from_value(shell) {
        Ok(issuer) => Some(issuer),
        Err(e) => {
            tracing::warn!(
                issuer = %display_name(obj),
                error = %e,
                "issuer could not be removed from the issuer cache"
            );
            None
        }
    }
}

/// `namespace/name` (`name` for a ClusterIssuer), for log lines.
fn display_name(obj: &DynamicObject) -> String {
    let name = obj.metadata.name.as_deref().unwrap_or_default();
    match obj.metadata.namespace.as_deref() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}

/// The cached, unanswered requests that name the issuer of `change`.
pub(super) fn requests_naming(
    requests: &Store<CertificateRequest>,
    change: &IssuerChange,
    group: &str,
) -> Vec<ObjectRef<CertificateRequest>> {
    requests
        .state_filter(|cr| {
            our_issuer_kind(cr, group) == Some(change.kind)
                && cr.spec.issuer_ref.name == change.name
                && (change.kind == IssuerKind::ClusterIssuer
                    || cr.metadata.namespace == change.namespace)
                && !is_terminal(cr)
        })
        .iter()
        .map(|cr| ObjectRef::from_obj(cr.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ClusterIssuer, ClusterIssuerSpec, Issuer};
    use kube::ResourceExt as _;

    fn dynamic(value: serde_json::Value) -> DynamicObject {
        serde_json::from_value(value).expect("a DynamicObject")
    }

    #[test]
    fn the_default_group_addresses_exactly_what_the_typed_kinds_do() {
        let group = crate::config::defaults::GROUP_NAME;
        assert_eq!(
            issuer_resource::<Issuer>(group),
            ApiResource::erase::<Issuer>(&())
        );
        assert_eq!(
            issuer_resource::<ClusterIssuer>(group),
            ApiResource::erase::<ClusterIssuer>(&())
        );
    }

    #[test]
    fn another_group_keeps_version_kind_and_plural() {
        let resource = issuer_resource::<ClusterIssuer>("example.org");
        assert_eq!(resource.group, "example.org");
        assert_eq!(resource.version, "v1alpha1");
        assert_eq!(resource.api_version, "example.org/v1alpha1");
        assert_eq!(resource.kind, "ClusterIssuer");
        assert_eq!(resource.plural, "clusterissuers");
    }

    #[test]
    fn objects_of_another_group_read_as_the_typed_issuers() {
        let obj = dynamic(serde_json::json!({
            "apiVersion": "example.org/v1alpha1",
            "kind": "Issuer",
            "metadata": {"name": "mesh", "namespace": "istio-system", "generation": 2},
            "spec": {"trustDomain": "cluster.local"},
            "status": {"conditions": [{
                "type": "Ready", "status": "True", "reason": "Ready", "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 2,
            }]},
        }));
        let Some(watcher::Event::Apply(issuer)) =
            typed_event::<Issuer>(watcher::Event::Apply(obj.clone()))
        else {
            panic!("an Apply of the typed issuer");
        };
        assert_eq!(issuer.name_any(), "mesh");
        assert_eq!(issuer.namespace().as_deref(), Some("istio-system"));
        assert_eq!(issuer.spec.trust_domain.as_deref(), Some("cluster.local"));
        let conditions = issuer.status.and_then(|s| s.conditions).unwrap_or_default();
        assert_eq!(conditions.len(), 1);
        assert!(matches!(
            typed_event::<Issuer>(watcher::Event::InitApply(obj.clone())),
            Some(watcher::Event::InitApply(_))
        ));
        assert!(matches!(
            typed_event::<Issuer>(watcher::Event::Delete(obj)),
            Some(watcher::Event::Delete(_))
        ));
        assert!(matches!(
            typed_event::<Issuer>(watcher::Event::Init),
            Some(watcher::Event::Init)
        ));
        assert!(matches!(
            typed_event::<Issuer>(watcher::Event::InitDone),
            Some(watcher::Event::InitDone)
        ));
    }

    #[test]
    fn an_unreadable_issuer_never_enters_the_cache() {
        let obj = dynamic(serde_json::json!({
            "apiVersion": "example.org/v1alpha1",
            "kind": "ClusterIssuer",
            "metadata": {"name": "odd"},
            "spec": {"identityNamespaces": "not a list"},
        }));
        assert!(typed_event::<ClusterIssuer>(watcher::Event::InitApply(obj.clone())).is_none());
        for event in [
            watcher::Event::Apply(obj.clone()),
            watcher::Event::Delete(obj),
        ] {
            let Some(watcher::Event::Delete(removed)) = typed_event::<ClusterIssuer>(event) else {
                panic!("removed from the cache by name");
            };
            assert_eq!(removed.name_any(), "odd");
            assert_eq!(removed.spec, ClusterIssuerSpec::default());
        }
    }
}
