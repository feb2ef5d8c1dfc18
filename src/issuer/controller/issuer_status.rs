//! Issuer/ClusterIssuer status: a loop (every second and on every issuer change) that applies the
//! Ready condition [`desired_issuer_condition`] asks for, with its event; it never touches a
//! CertificateRequest and decides nothing itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use tokio::sync::Notify;

use super::report::truncate;
use super::{Applied, ApplyMetadata, Clock, Context, apply_guarded};
use crate::crd::{ClusterIssuer, Issuer, IssuerStatus};
use crate::events::EventRecorder;
use crate::issuer::authority::Authority;
use crate::issuer::decide::desired_issuer_condition;
use crate::metrics::Metrics;
use crate::rbac::{Group, KubeCall, RECORDER_CALLS};

/// The API calls this module makes (see [`crate::rbac`]): a server-side apply (`patch`) of the
/// Ready condition on `/status` of Issuers and ClusterIssuers, then the event (the recorder's
/// calls, [`RECORDER_CALLS`]).
pub const KUBE_CALLS: &[KubeCall] = &[
    KubeCall::cluster(Group::Issuers, "issuers", "status", "patch"),
    KubeCall::cluster(Group::Issuers, "clusterissuers", "status", "patch"),
    RECORDER_CALLS[0],
    RECORDER_CALLS[1],
];

/// Longest wait for one issuer status write: the loop must not stall behind an API server that
/// does not answer (the write is guarded by the resourceVersion, so an abandoned one that lands
/// late is harmless).
const ISSUER_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Zeroes the issuers-ready gauges: a controller that stopped (lost the lease, or shut down)
/// reports no issuer as Ready, as a standby does.
pub fn clear_gauges(metrics: &Metrics) {
    for kind in [Issuer::kind(&()), ClusterIssuer::kind(&())] {
        metrics
            .issuers_ready
            .with_label_values(&[kind.as_ref()])
            .set(0);
    }
}

/// Longest wait at start for issuer conditions to reflect the authority's readiness.
const ISSUER_SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often issuer conditions are compared with the authority's readiness when nothing else
/// happens (a sub-CA can expire or a policy go stale without any API event).
const ISSUER_STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Waits (bounded) until every cached issuer carries the Ready condition the status loop is
/// about to write: deciding requests before that would write a Pending (`IssuerNotReady`) on
/// requests that would be signed a moment later — a second write per request after every start.
pub(super) async fn settle_issuers(ctx: &Context) {
    let deadline = Instant::now() + ISSUER_SETTLE_TIMEOUT;
    while Instant::now() < deadline {
        let readiness = ctx.authority.readiness();
        let now = ctx.clock.now();
        let wants_write = |status: Option<&IssuerStatus>, generation: Option<i64>| {
            desired_issuer_condition(status, generation, &readiness, now).is_some()
        };
        let pending = ctx
            .issuers
            .issuers
            .state()
            .iter()
            .any(|i| wants_write(i.status.as_ref(), i.metadata.generation))
            || ctx
                .issuers
                .cluster_issuers
                .state()
                .iter()
                .any(|i| wants_write(i.status.as_ref(), i.metadata.generation));
        if !pending {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!(
        "issuer conditions not settled within {ISSUER_SETTLE_TIMEOUT:?}; deciding requests anyway"
    );
}

/// What the issuer status loop reads and writes with.
pub(super) struct IssuerStatusLoop {
    pub(super) client: kube::Client,
    pub(super) issuers: Store<Issuer>,
    pub(super) cluster_issuers: Store<ClusterIssuer>,
    /// Where Issuers are written: the configured group, not the typed one (see
    /// [`issuer_resource`](super::issuer_watch::issuer_resource)).
    pub(super) issuer_resource: ApiResource,
    /// Where ClusterIssuers are written, likewise.
    pub(super) cluster_issuer_resource: ApiResource,
    pub(super) authority: Arc<dyn Authority>,
    pub(super) metrics: Metrics,
    pub(super) recorder: EventRecorder,
    pub(super) field_manager: String,
    /// Woken by every issuer change.
    pub(super) changed: Arc<Notify>,
    pub(super) clock: Clock,
}

/// Keeps every cached issuer's Ready condition in step with the authority's readiness until
/// `shutdown`; also refreshes the issuers-ready gauges (which [`clear_gauges`] zeroes once the
/// controller stops). The sub-CA expiry gauge is every replica's, refreshed by `/metrics`.
pub(super) async fn run_loop(
    state: IssuerStatusLoop,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        let readiness = state.authority.readiness();
        tracing::trace!(
            ready = readiness.ready,
            issuers = state.issuers.len(),
            "issuer status pass"
        );
        let now = state.clock.now();
        state
            .refresh_kind(
                state.issuers.state(),
                &state.issuer_resource,
                |i: &Issuer| {
                    Api::namespaced_with(
                        state.client.clone(),
                        &i.namespace().unwrap_or_default(),
                        &state.issuer_resource,
                    )
                },
                |i| i.status.as_ref(),
                readiness.ready,
                |status, generation| desired_issuer_condition(status, generation, &readiness, now),
            )
            .await;
        state
            .refresh_kind(
                state.cluster_issuers.state(),
                &state.cluster_issuer_resource,
                |_: &ClusterIssuer| {
                    Api::all_with(state.client.clone(), &state.cluster_issuer_resource)
                },
                |i| i.status.as_ref(),
                readiness.ready,
                |status, generation| desired_issuer_condition(status, generation, &readiness, now),
            )
            .await;
        tokio::select! {
            () = &mut shutdown => return,
            () = state.changed.notified() => {}
            () = tokio::time::sleep(ISSUER_STATUS_INTERVAL) => {}
        }
    }
}

impl IssuerStatusLoop {
    /// One pass over the issuers of one kind: applies the Ready condition `desired` asks for
    /// where it differs, and sets that kind's issuers-ready gauge. `resource` and `api` address
    /// the kind under the configured group.
    async fn refresh_kind<K>(
        &self,
        issuers: Vec<Arc<K>>,
        resource: &ApiResource,
        api: impl Fn(&K) -> Api<DynamicObject>,
        status: impl Fn(&K) -> Option<&IssuerStatus>,
        ready: bool,
        desired: impl Fn(Option<&IssuerStatus>, Option<i64>) -> Option<Condition>,
    ) where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let mut ready_count = 0;
        for issuer in &issuers {
            ready_count += i64::from(ready);
            if let Some(cond) = desired(status(issuer), issuer.meta().generation) {
                self.write(&api(issuer), resource, issuer.as_ref(), cond)
                    .await;
            }
        }
        self.metrics
            .issuers_ready
            .with_label_values(&[K::kind(&()).as_ref()])
            .set(ready_count);
    }

    /// One server-side apply of the issuer's Ready condition, guarded by the resourceVersion of
    /// the copy it was decided on, then its event (best effort). A 409 means the issuer moved on
    /// (another replica wrote, or its spec changed): nothing is written, and the watch's newer
    /// copy is decided again. The body names `resource`'s apiVersion, the configured group's.
    async fn write<K>(
        &self,
        api: &Api<DynamicObject>,
        resource: &ApiResource,
        issuer: &K,
        cond: Condition,
    ) where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let name = issuer.name_any();
        let namespace = issuer.namespace();
        let resource_version = issuer.resource_version().unwrap_or_default();
        let body = status_body(
            resource,
            ApplyMetadata {
                name: &name,
                namespace: namespace.as_deref(),
                resource_version: &resource_version,
            },
            &cond,
        );
        let written =
            apply_guarded(api, &name, &self.field_manager, ISSUER_WRITE_TIMEOUT, &body).await;
        match written {
            Ok(Applied::Written) => {
                tracing::info!(kind = %K::kind(&()), issuer = %name, ready = %cond.status, message = %cond.message, "issuer status updated");
                self.publish(issuer, resource, &cond).await;
            }
            Ok(Applied::Gone) => {}
            Ok(Applied::Conflict) => tracing::debug!(
                kind = %K::kind(&()),
                issuer = %name,
                resource_version,
                "issuer changed since its status was decided (409); deciding again from the newer copy"
            ),
            Err(e) => tracing::warn!(error = %e, issuer = %name, "issuer status write failed"),
        }
    }

    /// The event of a Ready condition written on `issuer`, regarding it as served under
    /// `resource` (the configured group), not as its type was derived.
    async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        issuer: &K,
        resource: &ApiResource,
        cond: &Condition,
    ) {
        let event = Event {
            type_: if cond.status != "True" {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: cond.reason.clone(),
            note: Some(truncate(&cond.message, 1000)),
            action: "UpdateStatus".to_owned(),
            secondary: None,
        };
        let mut regarding = issuer.object_ref(&());
        regarding.api_version = Some(resource.api_version.clone());
        self.recorder.record(&event, &regarding);
    }
}

/// The server-side-apply body of an issuer's Ready condition: `resource`'s apiVersion and kind
/// (the configured group's), the metadata carrying the decided resourceVersion, and the one
/// condition.
fn status_body(
    resource: &ApiResource,
    metadata: ApplyMetadata<'_>,
    cond: &Condition,
) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": metadata,
        "status": { "conditions": [cond] },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::controller::issuer_watch::issuer_resource;

    fn ready() -> Condition {
        Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "Ready".into(),
            message: "ready".into(),
            observed_generation: Some(1),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
        }
    }

    fn metadata() -> ApplyMetadata<'static> {
        ApplyMetadata {
            name: "mesh",
            namespace: Some("istio-system"),
            resource_version: "7",
        }
    }

    #[test]
    fn the_default_group_body_is_what_the_typed_kind_names() {
        let group = crate::config::defaults::GROUP_NAME;
        let body = status_body(&issuer_resource::<Issuer>(group), metadata(), &ready());
        assert_eq!(
            body,
            serde_json::json!({
                "apiVersion": Issuer::api_version(&()),
                "kind": Issuer::kind(&()),
                "metadata": metadata(),
                "status": { "conditions": [ready()] },
            })
        );
        assert_eq!(body["apiVersion"], "firefly.venafi.com/v1alpha1");
    }

    #[test]
    fn another_group_body_names_that_group() {
        let body = status_body(
            &issuer_resource::<ClusterIssuer>("example.org"),
            metadata(),
            &ready(),
        );
        assert_eq!(body["apiVersion"], "example.org/v1alpha1");
        assert_eq!(body["kind"], "ClusterIssuer");
    }
}
