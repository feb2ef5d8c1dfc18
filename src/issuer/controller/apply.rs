//! The status apply of one CertificateRequest: exactly one server-side-apply write on `/status`
//! of the change [`decide`](crate::issuer::decide) computed (our Ready condition, plus
//! certificate, ca and failureTime), guarded by the resourceVersion the decision was made on; it
//! computes nothing, never reads the object back and publishes no event.
//!
//! # The precondition pattern (reusable by every front door)
//! [`apply_guarded`] is generic over the resource kind: a front door serializes its own body with
//! [`ApplyMetadata`] (which carries the `resourceVersion` its decision read) and gets back
//! [`Applied::Written`], [`Applied::Gone`] (404) or [`Applied::Conflict`] (409). A conflict is
//! not an error: the object changed since the decision (another replica answered it, or an
//! approver wrote), so the front door decides again from the fresh copy its watch delivers,
//! counts the conflict, and — when it had already signed — audits the certificate as
//! signed-not-delivered instead of reporting it as issued.

use std::fmt::Debug;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;

use super::{Context, ControllerError};
use crate::crd::{CertificateRequest, CertificateRequestCondition};
use crate::issuer::decide::{self, StatusUpdate};
use crate::rbac::{CERT_MANAGER, KubeCall};

/// The API calls this module makes (see [`crate::rbac`]): one server-side apply (`patch`) on
/// `/status` of a CertificateRequest; never a read, never an `update`.
pub const KUBE_CALLS: &[KubeCall] = &[KubeCall::cluster(
    CERT_MANAGER,
    "certificaterequests",
    "status",
    "patch",
)];

/// What became of a guarded status write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The API server holds the new status.
    Written,
    /// The object no longer exists (404): it was deleted before its answer, which is normal
    /// (istio-csr deletes every request as soon as it has one). Not an error, not retried.
    Gone,
    /// 409: the object is no longer the version the decision was made on (or another field
    /// manager owns a field we set). Nothing was written; decide again from the fresh object.
    Conflict,
}

/// The `metadata` of a guarded apply body: the object's name, its namespace (absent for
/// cluster-scoped kinds) and the `resourceVersion` the decision was made on, which the API
/// server treats as a precondition (409 Conflict when the object has moved on).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyMetadata<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.namespace`; `None` for cluster-scoped objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<&'a str>,
    /// The version the decision read.
    pub resource_version: &'a str,
}

/// How long one answer's status write may wait for the API server before it is abandoned and
/// retried on a fresh connection (the client's own read timeout is 300 s, sized for watches).
/// Below the 60 s that istiod waits for a CSR's certificate and that kube-apiserver allows a
/// request (`--request-timeout`), so that a write sent into a dead connection is retried while
/// its requester still waits; the resourceVersion guard makes an abandoned write that lands late
/// harmless (a retry decided on the same copy then gets 409, or the late one does).
pub const STATUS_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A status write the API server did not answer within its bound. A transport failure: the
/// write may still have been stored, so a certificate it carried is audited as
/// signed-delivery-unknown.
#[derive(Debug, thiserror::Error)]
#[error("the API server did not answer the status write within {0:?}")]
pub struct WriteTimedOut(pub std::time::Duration);

/// Sends `body` as one forced server-side apply on the `/status` of `name`, with
/// `field_manager`, abandoned after `limit`. `body` must carry [`ApplyMetadata`] with the
/// decision's resourceVersion.
///
/// # Errors
/// The client's error for anything but 404 and 409; [`kube::Error::Service`] holding
/// [`WriteTimedOut`] when no answer came within `limit`.
pub async fn apply_guarded<K, B>(
    api: &Api<K>,
    name: &str,
    field_manager: &str,
    limit: std::time::Duration,
    body: &B,
) -> Result<Applied, kube::Error>
where
    K: kube::Resource + Clone + Debug,
    B: Serialize + Debug,
{
    // Forced: our own fields only; the precondition, not field ownership, keeps two writers
    // from both delivering.
    let params = PatchParams::apply(field_manager).force();
    // `Api::patch_status` decodes the whole object the server answers (request, certificate,
    // chain) into `K`; nothing reads it, so the answer is taken as text and dropped. Errors are
    // the same: the client turns every non-2xx answer into `kube::Error::Api`.
    let mut request = kube::core::Request::new(api.resource_url())
        .patch_subresource("status", name, &params, &Patch::Apply(body))
        .map_err(kube::Error::BuildRequest)?;
    request.extensions_mut().insert("patch_status");
    let answer = tokio::time::timeout(limit, api.clone().into_client().request_text(request))
        .await
        .unwrap_or_else(|_| Err(kube::Error::Service(Box::new(WriteTimedOut(limit)))));
    match answer {
        Ok(_) => Ok(Applied::Written),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Applied::Gone),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Applied::Conflict),
        Err(e) => Err(e),
    }
}

/// Accounts for the outcome of a front door's one guarded status write (`result`, for the copy at
/// `resource_version` of request `request_uid`): a 409 is counted in
/// `firefly_status_write_conflicts_total{front_door}`, any other failure in
/// `firefly_status_write_errors_total{code}`, and a certificate signed for it that the server did
/// not take is audited as signed-not-delivered. Returns `result` unchanged.
pub(crate) fn account_write(
    metrics: &crate::metrics::Metrics,
    front_door: &str,
    request_uid: &str,
    resource_version: &str,
    result: Result<Applied, kube::Error>,
    issued: Option<&firefly_core::issuance::Issued>,
) -> Result<Applied, kube::Error> {
    let refused = match &result {
        Ok(Applied::Written) => return result,
        Ok(Applied::Gone) => 404,
        Ok(Applied::Conflict) => {
            metrics
                .write_conflicts
                .with_label_values(&[front_door])
                .inc();
            tracing::debug!(
                front_door,
                resource_version,
                "request changed since the decision (409); deciding again"
            );
            409
        }
        Err(source) => {
            let code = match source {
                kube::Error::Api(s) => s.code.to_string(),
                _ => "transport".to_owned(),
            };
            metrics
                .write_errors
                .with_label_values(&[code.as_str()])
                .inc();
            match source {
                kube::Error::Api(s) => s.code,
                _ => 0,
            }
        }
    };
    if let Some(issued) = issued {
        super::report::audit_not_delivered(metrics, front_door, issued, request_uid, refused);
    }
    result
}

impl Context {
    /// Writes `update` on `cr`'s status: one server-side apply with our field manager, holding
    /// only our fields (so the approver's `Approved`/`Denied` conditions are never touched) and
    /// the resourceVersion of `cr`, the copy the decision was made on.
    ///
    /// # Errors
    /// [`ControllerError::StatusWrite`] for any failure but a 404 or a 409, counted in
    /// `firefly_status_write_errors_total{code}`; the reconcile is then retried. A 409 is counted
    /// in `firefly_status_write_conflicts_total` instead.
    pub(super) async fn apply_status(
        &self,
        cr: &CertificateRequest,
        update: &StatusUpdate,
    ) -> Result<Applied, ControllerError> {
        let namespace = cr.namespace().unwrap_or_default();
        let name = cr.name_any();
        let resource_version = cr.resource_version().unwrap_or_default();
        let api: Api<CertificateRequest> = Api::namespaced(self.client.clone(), &namespace);
        let body = StatusApply {
            api_version: "cert-manager.io/v1",
            kind: "CertificateRequest",
            metadata: ApplyMetadata {
                name: &name,
                namespace: Some(&namespace),
                resource_version: &resource_version,
            },
            status: ApplyStatus {
                conditions: [&update.ready],
                certificate: update.certificate.as_deref(),
                ca: update.ca.as_deref(),
                failure_time: update.failure_time.map(decide::time),
            },
        };
        let written = apply_guarded(
            &api,
            &name,
            &self.settings.field_manager,
            self.settings.status_write_timeout,
            &body,
        );
        match written.await {
            Ok(Applied::Written) => Ok(Applied::Written),
            Ok(Applied::Gone) => {
                tracing::debug!("request deleted before its status was written");
                Ok(Applied::Gone)
            }
            Ok(Applied::Conflict) => {
                self.metrics
                    .write_conflicts
                    .with_label_values(&[FRONT_DOOR])
                    .inc();
                tracing::debug!(
                    resource_version,
                    "request changed since the decision (409); deciding again"
                );
                Ok(Applied::Conflict)
            }
            Err(source) => {
                let code = match &source {
                    kube::Error::Api(s) => s.code.to_string(),
                    _ => "transport".to_owned(),
                };
                self.metrics
                    .write_errors
                    .with_label_values(&[code.as_str()])
                    .inc();
                Err(ControllerError::StatusWrite {
                    namespace,
                    name,
                    source,
                })
            }
        }
    }
}

/// The `type` label of this front door's metrics.
pub(super) const FRONT_DOOR: &str = "CertificateRequest";

/// The server-side-apply body of a request status write, serialized straight from borrowed
/// parts (no JSON tree, no copy of the certificate chain).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusApply<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: ApplyMetadata<'a>,
    status: ApplyStatus<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ApplyStatus<'a> {
    conditions: [&'a CertificateRequestCondition; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_apply_body_carries_only_our_fields_and_the_decided_version() {
        let ready = CertificateRequestCondition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: Some("Issued".into()),
            ..Default::default()
        };
        let body = StatusApply {
            api_version: "cert-manager.io/v1",
            kind: "CertificateRequest",
            metadata: ApplyMetadata {
                name: "r",
                namespace: Some("ns"),
                resource_version: "42",
            },
            status: ApplyStatus {
                conditions: [&ready],
                certificate: Some("Q0VSVA=="),
                ca: None,
                failure_time: None,
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({
                "apiVersion": "cert-manager.io/v1",
                "kind": "CertificateRequest",
                "metadata": { "name": "r", "namespace": "ns", "resourceVersion": "42" },
                "status": {
                    "conditions": [{ "type": "Ready", "status": "True", "reason": "Issued" }],
                    "certificate": "Q0VSVA==",
                },
            })
        );
    }

    #[test]
    fn cluster_scoped_metadata_has_no_namespace() {
        let meta = ApplyMetadata {
            name: "csr",
            namespace: None,
            resource_version: "7",
        };
        assert_eq!(
            serde_json::to_value(&meta).unwrap(),
            serde_json::json!({ "name": "csr", "resourceVersion": "7" })
        );
    }
}
