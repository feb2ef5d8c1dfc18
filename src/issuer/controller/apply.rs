//! The status apply of one CertificateRequest: exactly one server-side-apply write on `/status`
//! of the change [`decide`](crate::issuer::decide) computed (our Ready condition, plus
//! certificate, ca and failureTime); it computes nothing, never reads the object back and
//! publishes no event.

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

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

/// What became of a status write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Applied {
    /// The API server holds the new status.
    Written,
    /// The request no longer exists (404): it was deleted before its answer, which is normal
    /// (istio-csr deletes every request as soon as it has one). Not an error, not retried.
    Gone,
}

impl Context {
    /// Writes `update` on `cr`'s status: one server-side apply with our field manager, holding
    /// only our fields, so the approver's `Approved`/`Denied` conditions are never touched.
    ///
    /// # Errors
    /// [`ControllerError::StatusWrite`] for any failure but a 404, counted in
    /// `firefly_status_write_errors_total{code}`; the reconcile is then retried.
    pub(super) async fn apply_status(
        &self,
        cr: &CertificateRequest,
        update: &StatusUpdate,
    ) -> Result<Applied, ControllerError> {
        let namespace = cr.namespace().unwrap_or_default();
        let name = cr.name_any();
        let uid = cr.uid().unwrap_or_default();
        let api: Api<CertificateRequest> = Api::namespaced(self.client.clone(), &namespace);
        let body = StatusApply {
            api_version: "cert-manager.io/v1",
            kind: "CertificateRequest",
            metadata: ApplyMetadata {
                name: &name,
                namespace: &namespace,
            },
            status: ApplyStatus {
                conditions: [&update.ready],
                certificate: update.certificate.as_deref(),
                ca: update.ca.as_deref(),
                failure_time: update.failure_time.map(decide::time),
            },
        };
        // Recorded before the write is sent, so the watch event of our write (which forgets it)
        // can never arrive before the record and leave it behind.
        self.written
            .record(uid.clone(), cr.resource_version().unwrap_or_default());
        let params = PatchParams::apply(&self.settings.field_manager).force();
        match api.patch_status(&name, &params, &Patch::Apply(&body)).await {
            Ok(_) => Ok(Applied::Written),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                self.written.forget(&uid);
                tracing::debug!("request deleted before its status was written");
                Ok(Applied::Gone)
            }
            Err(source) => {
                self.written.forget(&uid);
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

/// The server-side-apply body of a request status write, serialized straight from borrowed
/// parts (no JSON tree, no copy of the certificate chain).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusApply<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: ApplyMetadata<'a>,
    status: ApplyStatus<'a>,
}

#[derive(Debug, serde::Serialize)]
struct ApplyMetadata<'a> {
    name: &'a str,
    namespace: &'a str,
}

#[derive(Debug, serde::Serialize)]
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
    fn status_apply_body_carries_only_our_fields() {
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
                namespace: "ns",
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
                "metadata": { "name": "r", "namespace": "ns" },
                "status": {
                    "conditions": [{ "type": "Ready", "status": "True", "reason": "Issued" }],
                    "certificate": "Q0VSVA==",
                },
            })
        );
    }
}
