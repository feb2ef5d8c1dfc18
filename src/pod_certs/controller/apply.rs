//! The one status write of a PodCertificateRequest answer, guarded by the resourceVersion the
//! decision was made on, and what follows it (metrics, audit line, usage record, event);
//! computes no answer.

use std::time::SystemTime;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::{Resource, ResourceExt};
use serde::Serialize;

use super::{FRONT_DOOR, PcrError, WatchCtx};
use crate::issuer::authority::Issued;
use crate::issuer::controller::apply::{ApplyMetadata, account_write, apply_guarded};
use crate::issuer::controller::report::{log_issued, publish_event};
use crate::issuer::decide::{EventNote, time};
use crate::pod_certs::decide::{Answer, PcrSpec};

pub(super) use crate::issuer::controller::apply::Applied;

impl WatchCtx {
    /// Writes `answer` on the request's status: one forced server-side apply on `/status`
    /// carrying the resourceVersion the decision read (409: the request moved on — another
    /// replica answered it — and is decided again from the copy the watch delivers; 404: it was
    /// deleted). A certificate signed but not delivered is audited as signed-not-delivered.
    ///
    /// # Errors
    /// [`PcrError::StatusWrite`] for any failure but a 404 or a 409.
    pub(super) async fn apply(
        &self,
        obj: &super::PodCertificateRequest,
        namespace: &str,
        answer: &Answer,
        issued: Option<&Issued>,
    ) -> Result<Applied, PcrError> {
        let door = &self.shared.door;
        let name = obj.name_any();
        let rv = obj.resource_version().unwrap_or_default();
        let body = status_body(
            &self.resource.api_version,
            &name,
            namespace,
            &rv,
            answer,
            door.clock.now(),
        );
        let api: Api<super::PodCertificateRequest> =
            Api::namespaced_with(door.client.clone(), namespace, &self.resource);
        let result = apply_guarded(
            &api,
            &name,
            &door.field_manager,
            door.status_write_timeout,
            &body,
        )
        .await;
        let uid = obj.uid().unwrap_or_default();
        account_write(&door.metrics, FRONT_DOOR, &uid, &rv, result, issued).map_err(|source| {
            PcrError::StatusWrite {
                namespace: namespace.to_owned(),
                name,
                source,
            }
        })
    }

    /// Reports an answer the API server accepted: counted, logged and audited; every refusal
    /// gets a Warning event.
    pub(super) async fn report(
        &self,
        obj: &super::PodCertificateRequest,
        spec: &PcrSpec,
        answer: &Answer,
        issued: Option<&Issued>,
    ) {
        let door = &self.shared.door;
        door.metrics
            .issuance_outcomes
            .with_label_values(&[FRONT_DOOR, answer.outcome()])
            .inc();
        match (answer, issued) {
            (Answer::Issued { .. }, Some(issued)) => {
                door.authority.record_issued(issued);
                let age = crate::issuer::decide::object_age(&obj.metadata, door.clock.now());
                door.metrics
                    .issuance_latency
                    .with_label_values(&[FRONT_DOOR])
                    .observe(age.as_secs_f64());
                // DESIGN §8: a PodCertificateRequest carries no requester; its node is a claim.
                let uid = obj.uid().unwrap_or_default();
                log_issued(door.authority.as_ref(), issued, "", &spec.node_name, &uid);
            }
            (Answer::Denied { reason, message } | Answer::Failed { reason, message }, _) => {
                tracing::warn!(
                    reason,
                    message,
                    answer = answer.condition_type(),
                    "PodCertificateRequest refused"
                );
                let note = EventNote {
                    warning: true,
                    reason,
                    note: message.clone(),
                };
                publish_event(&door.recorder, &note, &obj.object_ref(&self.resource)).await;
            }
            (Answer::Issued { .. }, None) => {}
        }
    }
}

/// The server-side-apply body of an answer: the one terminal condition and, for Issued, the
/// chain and its times, with the resourceVersion precondition.
pub(crate) fn status_body<'a>(
    api_version: &'a str,
    name: &'a str,
    namespace: &'a str,
    resource_version: &'a str,
    answer: &'a Answer,
    now: SystemTime,
) -> StatusBody<'a> {
    let (reason, message) = match answer {
        Answer::Issued { .. } => ("Issued", "issued by firefly"),
        Answer::Denied { reason, message } | Answer::Failed { reason, message } => {
            (*reason, message.as_str())
        }
    };
    let condition = Condition {
        type_: answer.condition_type(),
        status: "True",
        reason,
        message,
        last_transition_time: time(now),
    };
    let issued = match answer {
        Answer::Issued {
            chain_pem,
            not_before,
            not_after,
            begin_refresh_at,
        } => Some(IssuedFields {
            certificate_chain: chain_pem,
            not_before: time(*not_before),
            not_after: time(*not_after),
            begin_refresh_at: time(*begin_refresh_at),
        }),
        _ => None,
    };
    StatusBody {
        api_version,
        kind: "PodCertificateRequest",
        metadata: ApplyMetadata {
            name,
            namespace: Some(namespace),
            resource_version,
        },
        status: Status {
            conditions: [condition],
            issued,
        },
    }
}

/// What [`status_body`] sends.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatusBody<'a> {
    api_version: &'a str,
    kind: &'static str,
    metadata: ApplyMetadata<'a>,
    status: Status<'a>,
}

#[derive(Debug, Serialize)]
struct Status<'a> {
    conditions: [Condition<'a>; 1],
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    issued: Option<IssuedFields<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Condition<'a> {
    #[serde(rename = "type")]
    type_: &'static str,
    status: &'static str,
    reason: &'a str,
    message: &'a str,
    last_transition_time: Time,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct IssuedFields<'a> {
    certificate_chain: &'a str,
    not_before: Time,
    not_after: Time,
    begin_refresh_at: Time,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_body_carries_the_resource_version_and_one_terminal_condition() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let issued = Answer::Issued {
            chain_pem: "PEM".into(),
            not_before: now - Duration::from_secs(10),
            not_after: now + Duration::from_secs(3590),
            begin_refresh_at: now + Duration::from_secs(2390),
        };
        let body = serde_json::to_value(status_body(
            "certificates.k8s.io/v1",
            "req-a",
            "apps",
            "42",
            &issued,
            now,
        ))
        .unwrap();
        assert_eq!(body["metadata"]["resourceVersion"], "42");
        assert_eq!(body["metadata"]["namespace"], "apps");
        let s = &body["status"];
        assert_eq!(s["conditions"].as_array().unwrap().len(), 1);
        assert_eq!(s["conditions"][0]["type"], "Issued");
        assert_eq!(s["certificateChain"], "PEM");
        assert_eq!(s["notBefore"], "2027-01-15T07:59:50Z");
        assert_eq!(s["notAfter"], "2027-01-15T08:59:50Z");
        let denied = Answer::Denied {
            reason: "MissingPublicKey",
            message: "no key".into(),
        };
        let body = serde_json::to_value(status_body(
            "certificates.k8s.io/v1beta1",
            "r",
            "apps",
            "7",
            &denied,
            now,
        ))
        .unwrap();
        let s = &body["status"];
        assert_eq!(s["conditions"][0]["type"], "Denied");
        assert_eq!(s["conditions"][0]["reason"], "MissingPublicKey");
        assert_eq!(s["conditions"][0]["status"], "True");
        assert!(s.get("certificateChain").is_none() && s.get("notBefore").is_none());
    }
}
