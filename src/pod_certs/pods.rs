//! The pod cache of `verifyPod`: one list/watch of every pod, kept as the three facts the
//! cross-check compares (UID, service account, node) keyed by namespace and name; no GET per
//! request whose pod the cache holds as the request names it. Only when the cached copy is absent
//! or differs (the watch may trail the kubelet) is the pod read from the API server ([`fetch`]).
//!
//! Why not a metadata-only watch: `PartialObjectMetadata` carries no `spec`, and the service
//! account and node are `spec.serviceAccountName` and `spec.nodeName`. So the watch receives
//! whole pods, but decodes only the metadata (without its managedFields) and those two spec
//! fields ([`WatchedPod`]): the rest of each event (containers, volumes, status, the ownership
//! record) is skipped by the parser without being built, and the cache holds a few short strings
//! per pod.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

use super::decide::PodFacts;
use crate::rbac::{KubeCall, Needs};

/// The API calls this module makes (see [`crate::rbac`]): list and watch of pods, and a get of
/// one pod when the cached copy does not match a request, only when a signer sets
/// `verifyPod: true`.
pub const KUBE_CALLS: &[KubeCall] = &[
    KubeCall::cluster(crate::rbac::Group::Fixed(""), "pods", "", "get")
        .when(Needs::PodVerification),
    KubeCall::cluster(crate::rbac::Group::Fixed(""), "pods", "", "list")
        .when(Needs::PodVerification),
    KubeCall::cluster(crate::rbac::Group::Fixed(""), "pods", "", "watch")
        .when(Needs::PodVerification),
];

type Key = (String, String);

#[derive(Default)]
struct State {
    pods: HashMap<Key, PodFacts>,
    /// Filled during a (re-)list, swapped in when it completes.
    relisting: Option<HashMap<Key, PodFacts>>,
}

/// The cache the decision reads. Cheap to clone.
#[derive(Clone, Default)]
pub struct PodCache(Arc<RwLock<State>>);

impl std::fmt::Debug for PodCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodCache")
            .field("pods", &self.read().pods.len())
            .finish()
    }
}

/// A pod as the cache's watch decodes it: the metadata but its managedFields, and the two spec
/// fields the cross-check compares; everything else in the event is skipped unbuilt.
#[derive(Clone, Debug, serde::Deserialize)]
pub(crate) struct WatchedPod {
    #[serde(deserialize_with = "crate::lean_meta::deserialize")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<PodSpecFacts>,
}

/// `spec.serviceAccountName` and `spec.nodeName`.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpecFacts {
    service_account_name: Option<String>,
    node_name: Option<String>,
}

crate::lean_meta::delegate_resource!(WatchedPod => Pod, kube::core::NamespaceResourceScope);

fn facts_of(
    meta: &ObjectMeta,
    service_account: Option<&String>,
    node: Option<&String>,
) -> Option<(Key, PodFacts)> {
    Some((
        (meta.namespace.clone()?, meta.name.clone()?),
        PodFacts {
            uid: meta.uid.clone().unwrap_or_default(),
            service_account: service_account
                .filter(|s| !s.is_empty())
                .cloned()
                .unwrap_or_else(|| "default".to_owned()),
            node: node.cloned().unwrap_or_default(),
        },
    ))
}

fn facts(pod: &WatchedPod) -> Option<(Key, PodFacts)> {
    let spec = pod.spec.as_ref();
    facts_of(
        &pod.metadata,
        spec.and_then(|s| s.service_account_name.as_ref()),
        spec.and_then(|s| s.node_name.as_ref()),
    )
}

/// The API server's copy of pod `namespace/name` as the cross-check's facts; `None` when there
/// is no such pod.
///
/// # Errors
/// The client's error (other than 404).
pub async fn fetch(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<PodFacts>, kube::Error> {
    let pod = Api::<Pod>::namespaced(client, namespace)
        .get_opt(name)
        .await?;
    Ok(pod
        .as_ref()
        .and_then(|pod| {
            let spec = pod.spec.as_ref();
            facts_of(
                &pod.metadata,
                spec.and_then(|s| s.service_account_name.as_ref()),
                spec.and_then(|s| s.node_name.as_ref()),
            )
        })
        .map(|(_, f)| f))
}

impl PodCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The facts of pod `namespace/name`, when cached.
    pub fn get(&self, namespace: &str, name: &str) -> Option<PodFacts> {
        self.read()
            .pods
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    fn apply(&self, event: watcher::Event<WatchedPod>) {
        let mut state = self.write();
        match event {
            watcher::Event::Init => state.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(pod) => {
                if let Some((k, v)) = facts(&pod) {
                    state
                        .relisting
                        .get_or_insert_with(HashMap::new)
                        .insert(k, v);
                }
            }
            watcher::Event::InitDone => {
                if let Some(fresh) = state.relisting.take() {
                    state.pods = fresh;
                }
            }
            watcher::Event::Apply(pod) => {
                if let Some((k, v)) = facts(&pod) {
                    state.pods.insert(k, v);
                }
            }
            watcher::Event::Delete(pod) => {
                if let Some((k, _)) = facts(&pod) {
                    state.pods.remove(&k);
                }
            }
        }
    }

    /// Keeps the cache current until the client's watch ends (never, on its own: errors back
    /// off and resume).
    pub async fn run(self, client: kube::Client) {
        let api = Api::<WatchedPod>::all(client);
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => self.apply(event),
                Err(e) => tracing::warn!(error = %e, "pod watch (verifyPod)"),
            }
        }
    }
}
