//! The one status write of a CSR answer, guarded by the resourceVersion the decision was made
//! on, and what follows it (metrics, audit line, usage record, event); computes no answer.

use base64::Engine as _;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::Api;
use kube::{Resource, ResourceExt};

use super::{Context, CsrError, FRONT_DOOR};
use crate::issuer::authority::Issued;
use crate::issuer::controller::apply::{ApplyMetadata, account_write, apply_guarded};
use crate::issuer::controller::report::{log_issued, publish_event};
use crate::kube_csr::decide::{Answer, CsrUpdate, failed_condition};
use crate::rbac::{CERTIFICATES, KubeCall, Needs};

/// The API calls this module makes (see [`crate::rbac`]): one server-side apply (`patch`) on a
/// CSR's `/status`, which the API server also authorizes as `sign` on the CSR's signer name
/// (`signers` of `certificates.k8s.io`; the chart limits it to our two signer domains).
pub const KUBE_CALLS: &[KubeCall] = &[
    KubeCall::cluster(
        CERTIFICATES,
        "certificatesigningrequests",
        "status",
        "patch",
    )
    .when(Needs::CertificateSigningRequests),
    KubeCall::cluster(CERTIFICATES, "signers", "", "sign").when(Needs::CertificateSigningRequests),
];

pub(super) use crate::issuer::controller::apply::Applied;

impl Context {
    /// Writes `update` on `csr`'s status: one server-side apply on `/status` carrying the
    /// `resourceVersion` the decision was made on (the CertificateRequest door's
    /// [`apply_guarded`]), so a CSR changed since (another signer's certificate, a deletion and
    /// re-creation) answers 409 and is decided again from the copy the watch delivers.
    ///
    /// # Errors
    /// [`CsrError::StatusWrite`] for any failure but a 404 or a 409. A certificate signed but
    /// not delivered (any refusal) is audited as signed-not-delivered and never counted as
    /// issued.
    pub(super) async fn apply(
        &self,
        csr: &CertificateSigningRequest,
        update: &CsrUpdate,
        issued: Option<&Issued>,
    ) -> Result<Applied, CsrError> {
        let name = csr.name_any();
        let rv = csr.resource_version().unwrap_or_default();
        let body = status_body(&name, &rv, &update.answer, self.door.clock.now());
        let api: Api<CertificateSigningRequest> = Api::all(self.door.client.clone());
        let result = apply_guarded(
            &api,
            &name,
            &self.door.settings.field_manager,
            self.door.settings.status_write_timeout,
            &body,
        )
        .await;
        let uid = csr.uid().unwrap_or_default();
        account_write(&self.door.metrics, FRONT_DOOR, &uid, &rv, result, issued)
            .map_err(|source| CsrError::StatusWrite { name, source })
    }

    /// Reports an answer the API server accepted: counted, logged and audited, with its event.
    pub(super) async fn report(
        &self,
        csr: &CertificateSigningRequest,
        update: &CsrUpdate,
        issued: Option<&Issued>,
    ) {
        let metrics = &self.door.metrics;
        metrics
            .issuance_outcomes
            .with_label_values(&[FRONT_DOOR, update.outcome])
            .inc();
        match (&update.answer, issued) {
            (Answer::Certificate(_), Some(issued)) => {
                self.door.authority.record_issued(issued);
                let age = crate::issuer::decide::object_age(&csr.metadata, self.door.clock.now());
                metrics
                    .issuance_latency
                    .with_label_values(&[FRONT_DOOR])
                    .observe(age.as_secs_f64());
                let requester = csr.spec.username.as_deref().unwrap_or("");
                let uid = csr.uid().unwrap_or_default();
                log_issued(self.door.authority.as_ref(), issued, requester, "", &uid);
            }
            (Answer::Failed { reason, message }, _) => {
                tracing::warn!(reason, message, "CSR failed");
            }
            (Answer::Certificate(_), None) => {}
        }
        if let Some(note) = &update.event {
            publish_event(&self.door.recorder, note, &csr.object_ref(&())).await;
        }
    }
}

/// The server-side-apply body of an answer: only our field (the certificate, or the `Failed`
/// condition), with the resourceVersion precondition.
fn status_body<'a>(
    name: &'a str,
    resource_version: &'a str,
    answer: &Answer,
    now: std::time::SystemTime,
) -> CsrStatusApply<'a> {
    let status = match answer {
        Answer::Certificate(pem) => serde_json::json!({
            "certificate": base64::engine::general_purpose::STANDARD.encode(pem.as_bytes()),
        }),
        Answer::Failed { reason, message } => serde_json::json!({
            "conditions": [failed_condition(reason, message, now)],
        }),
    };
    CsrStatusApply {
        api_version: "certificates.k8s.io/v1",
        kind: "CertificateSigningRequest",
        metadata: ApplyMetadata {
            name,
            namespace: None,
            resource_version,
        },
        status,
    }
}

/// A CSR `/status` apply body.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct CsrStatusApply<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: ApplyMetadata<'a>,
    status: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn the_body_carries_the_resource_version_and_only_our_field() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let cert = serde_json::to_value(status_body(
            "c",
            "42",
            &Answer::Certificate("PEM".into()),
            now,
        ))
        .unwrap();
        assert_eq!(
            cert,
            serde_json::json!({
                "apiVersion": "certificates.k8s.io/v1",
                "kind": "CertificateSigningRequest",
                "metadata": { "name": "c", "resourceVersion": "42" },
                "status": { "certificate": "UEVN" },
            })
        );
        let failed = Answer::Failed {
            reason: "CARequested",
            message: "no".into(),
        };
        let body = serde_json::to_value(status_body("c", "42", &failed, now)).unwrap();
        assert_eq!(body["metadata"]["resourceVersion"], "42");
        let c = &body["status"]["conditions"][0];
        assert_eq!(
            (c["type"].as_str(), c["status"].as_str()),
            (Some("Failed"), Some("True"))
        );
        assert_eq!(c["reason"], "CARequested");
        assert!(body["status"].get("certificate").is_none());
    }
}
