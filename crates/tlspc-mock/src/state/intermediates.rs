//! The mock's intermediate (sub-CA) certificate flow: request, poll, usage report, admin list.

use super::*;

impl Shared {
    /// `POST intermediatecertificates`.
    pub(crate) fn request_intermediate(
        &self,
        caller: &Caller,
        body: &[u8],
    ) -> Result<Value, Failure> {
        let Caller::Account(client_id) = caller else {
            return Err(api(
                403,
                codes::FORBIDDEN,
                "intermediate certificates are requested with a service-account token",
            ));
        };
        let req: IntermediateCertificateRequest = parse_json(body)?;
        let now = self.clock.now();
        let mut store = self.lock();
        let configuration = store
            .configuration_of(client_id)
            .ok_or_else(|| not_attached(client_id))?;
        if configuration.id != req.configuration_id {
            return Err(api(
                403,
                codes::FORBIDDEN,
                format!(
                    "service account {client_id} is not attached to configuration {:?}",
                    req.configuration_id
                ),
            ));
        }
        let provider = configuration
            .sub_ca_provider_id
            .as_ref()
            .and_then(|id| store.providers.get(id))
            .cloned()
            .ok_or_else(|| {
                api(
                    412,
                    codes::INVALID_OBJECT,
                    "configuration has no sub-CA provider",
                )
            })?;
        let configuration_ref = json!({"id": configuration.id, "name": configuration.name});
        let validity = parse_validity(&provider.validity_period).map_err(|m| {
            api(
                412,
                codes::INVALID_OBJECT,
                format!("sub-CA provider validityPeriod: {m}"),
            )
        })?;
        let fallback_cn = format!("{} {}", req.instance_naming, provider.common_name);
        let (fail, bad) = store.faults.take_issuance_fault();
        let polls = store.faults.requested_polls;
        let outcome = match fail {
            Some(message) => Outcome::Failed(message),
            None => Outcome::Issued(
                self.ca
                    .sign_sub_ca(
                        &req.certificate_signing_request,
                        &fallback_cn,
                        &provider,
                        validity,
                        now,
                        bad,
                    )
                    .map_err(|m| api(400, codes::BAD_REQUEST, m))?,
            ),
        };
        let id = new_id();
        let info = IntermediateCertificateInformation {
            id: id.clone(),
            common_name: match &outcome {
                Outcome::Issued(s) => s.common_name.clone(),
                Outcome::Failed(_) => fallback_cn,
            },
            status: IntermediateStatus::Requested,
            workflow_id: Some(new_id()),
            certificate: None,
            issuer_certificates: Vec::new(),
            fingerprint: None,
            validity_start: None,
            validity_end: None,
            error_information: None,
            configuration: Some(configuration_ref),
            long_lived_cert_count: 0,
            short_lived_cert_count: 0,
            ultra_short_lived_cert_count: 0,
        };
        let answer = serde_json::to_value(&info).unwrap_or_default();
        store.intermediates.insert(
            id,
            Intermediate {
                info,
                client_id: client_id.clone(),
                polls_remaining: polls,
                outcome,
            },
        );
        Ok(answer)
    }

    /// `GET intermediatecertificates/{id}`: REQUESTED while polls remain, then the outcome.
    pub(crate) fn poll_intermediate(&self, caller: &Caller, id: &str) -> Result<Value, Failure> {
        let mut store = self.lock();
        let entry = store.owned_intermediate(caller, id)?;
        if entry.polls_remaining > 0 {
            entry.polls_remaining -= 1;
            return Ok(serde_json::to_value(&entry.info).unwrap_or_default());
        }
        match &entry.outcome {
            Outcome::Issued(s) => {
                entry.info.status = IntermediateStatus::Issued;
                entry.info.certificate = Some(s.certificate.clone());
                entry.info.issuer_certificates = s.issuer_certificates.clone();
                entry.info.fingerprint = Some(s.fingerprint.clone());
                entry.info.validity_start = Some(timestamp(s.not_before));
                entry.info.validity_end = Some(timestamp(s.not_after));
            }
            Outcome::Failed(message) => {
                entry.info.status = IntermediateStatus::Failed;
                entry.info.error_information = Some(firefly_tlspc::wire::ErrorInformation {
                    code: codes::ISSUANCE_FAILED,
                    message: message.clone(),
                    args: Vec::new(),
                });
            }
        }
        Ok(serde_json::to_value(&entry.info).unwrap_or_default())
    }

    /// `PATCH intermediatecertificates/{id}`: the usage report.
    pub(crate) fn report_usage(
        &self,
        caller: &Caller,
        id: &str,
        body: &[u8],
    ) -> Result<Value, Failure> {
        let report: UsageReport = parse_json(body)?;
        if report.long_lived_cert_count < 0
            || report.short_lived_cert_count < 0
            || report.ultra_short_lived_cert_count < 0
        {
            return Err(api(
                400,
                codes::BAD_REQUEST,
                "usage counters must not be negative",
            ));
        }
        let mut store = self.lock();
        let entry = store.owned_intermediate(caller, id)?;
        entry.info.long_lived_cert_count = report.long_lived_cert_count;
        entry.info.short_lived_cert_count = report.short_lived_cert_count;
        entry.info.ultra_short_lived_cert_count = report.ultra_short_lived_cert_count;
        let answer = serde_json::to_value(&entry.info).unwrap_or_default();
        let config_id = entry
            .info
            .configuration
            .as_ref()
            .and_then(|c| c.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(config_id) = config_id {
            let sums = store
                .intermediates
                .values()
                .filter(|e| {
                    e.info
                        .configuration
                        .as_ref()
                        .and_then(|c| c.get("id"))
                        .and_then(Value::as_str)
                        == Some(&config_id)
                })
                .fold((0i64, 0i64, 0i64), |acc, e| {
                    (
                        acc.0.saturating_add(e.info.long_lived_cert_count),
                        acc.1.saturating_add(e.info.short_lived_cert_count),
                        acc.2.saturating_add(e.info.ultra_short_lived_cert_count),
                    )
                });
            if let Some(c) = store.configurations.get_mut(&config_id) {
                (
                    c.long_lived_cert_count,
                    c.short_lived_cert_count,
                    c.ultra_short_lived_cert_count,
                ) = sums;
            }
        }
        Ok(answer)
    }

    /// `GET intermediatecertificates` (admin).
    pub(crate) fn list_intermediates(&self) -> Value {
        let store = self.lock();
        let all: Vec<_> = store.intermediates.values().map(|e| &e.info).collect();
        json!({ "intermediateCertificates": all })
    }
}

impl Store {
    /// The intermediate `id` if `caller` requested it; 404 otherwise (another caller's request
    /// is not disclosed).
    fn owned_intermediate(
        &mut self,
        caller: &Caller,
        id: &str,
    ) -> Result<&mut Intermediate, Failure> {
        self.intermediates
            .get_mut(id)
            .filter(|e| owns(caller, &e.client_id))
            .ok_or_else(|| {
                api(
                    404,
                    codes::NOT_FOUND,
                    format!("intermediate certificate {id:?} not found"),
                )
            })
    }
}
