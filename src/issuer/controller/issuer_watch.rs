//! The Issuer/ClusterIssuer watches: they fill the issuer caches, wake the issuer status loop and
//! name the cached requests to re-queue when an issuer changes; they write nothing.

use std::sync::Arc;

use futures::{StreamExt, future};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
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

/// Watches one issuer kind into `writer`'s cache until `shutdown`; each change wakes the issuer
/// status loop (`notify`) and re-triggers the requests naming the issuer (`tx`).
pub(super) fn watch_issuers<K>(
    api: Api<K>,
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
    watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .take_until(shutdown)
        .for_each(move |r| {
            if let Ok(issuer) = r {
                notify.notify_one();
                let _ = tx.unbounded_send(IssuerChange {
                    kind,
                    // A ClusterIssuer has no namespace.
                    namespace: issuer.namespace(),
                    name: issuer.name_any(),
                });
            }
            future::ready(())
        })
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
