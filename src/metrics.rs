//! The controller's Prometheus metrics: one registry per process, passed down, never global;
//! every label value comes from a bounded set (no object names, no error text).

use std::time::{Duration, SystemTime};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Errors of metric registration and rendering.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A metric could not be created or registered (a programming error: duplicate name).
    #[error("metric {name} could not be registered: {source}")]
    Register {
        /// The metric's name.
        name: &'static str,
        /// The registry's error.
        source: prometheus::Error,
    },
    /// The text exposition could not be produced.
    #[error("metrics could not be rendered: {0}")]
    Render(prometheus::Error),
}

/// Every metric the controller exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `firefly_signer_sign{success,type}`: signatures attempted (Firefly's name and labels;
    /// `type` is the front door). `success="false"` only when signing or its post-sign checks
    /// failed; refusals and waits sign nothing and are not counted.
    pub signer_sign: IntCounterVec,
    /// `firefly_certificaterequest_outcomes_total{outcome}`: decisions written, by reason.
    pub outcomes: IntCounterVec,
    /// `firefly_sign_duration_seconds`: time spent deciding, building and signing one leaf (only
    /// answers where a signature was attempted).
    pub sign_duration: Histogram,
    /// `firefly_certificaterequest_reconcile_duration_seconds{result}`: from the start of a
    /// reconcile to its status write (or decision to do nothing).
    pub reconcile_duration: HistogramVec,
    /// `firefly_certificaterequest_issue_latency_seconds`: from the request's creation timestamp
    /// (second precision) to the write that issued it.
    pub issue_latency: Histogram,
    /// `firefly_subca_not_after_timestamp_seconds`: NotAfter of the active sub-CA (0 when none);
    /// every replica's own, refreshed at each scrape of `/metrics`.
    pub sub_ca_not_after: IntGauge,
    /// `firefly_tlspc_requests_total{operation,code}`: TLSPC calls by operation and status class.
    pub tlspc_requests: IntCounterVec,
    /// `firefly_tlspc_request_duration_seconds{operation}`: TLSPC call latency.
    pub tlspc_duration: HistogramVec,
    /// `firefly_leader`: 1 while this replica holds the lease.
    pub leader: IntGauge,
    /// `firefly_issuer_ready{kind}`: issuers currently reported Ready by this controller; 0 while
    /// it does not lead (only the leader reports issuers).
    pub issuers_ready: IntGaugeVec,
    /// `firefly_status_write_errors_total{code}`: failed CertificateRequest status writes.
    pub write_errors: IntCounterVec,
    /// `firefly_issuance_outcomes_total{front_door,outcome}`: answers written, by front door
    /// (`CertificateRequest`, `CertificateSigningRequest`) and outcome (`Issued` or the reason).
    pub issuance_outcomes: IntCounterVec,
    /// `firefly_issuance_latency_seconds{front_door}`: from the request's creation (second
    /// precision) to the write that issued it, by front door.
    pub issuance_latency: HistogramVec,
    /// `firefly_tlspc_insecure_http`: 1 while TLSPC is reached over plain `http://`.
    pub tlspc_insecure_http: IntGauge,
    /// `firefly_status_write_conflicts_total{type}`: status writes answered 409 (the object moved
    /// on since the decision; the request is decided again). Not failures.
    pub write_conflicts: IntCounterVec,
    /// `firefly_signed_not_delivered_total{type}`: certificates signed whose status write was
    /// refused with 409 (audited with their serial, not reported to TLSPC as issued).
    pub signed_not_delivered: IntCounterVec,
    /// `firefly_issuance_retries_total{front_door,reason}`: answers deferred for temporary trouble
    /// (no sub-CA, stale policy, pod not cached yet…); the request is looked at again.
    pub issuance_retries: IntCounterVec,
    /// `firefly_events_dropped_total`: events not published because the recorder's queue was
    /// full (the events API slower than the events come) or closed.
    pub events_dropped: IntCounter,
}

/// Latency buckets from 100 µs to about 13 s: signatures take well under a millisecond, a
/// request's path through the API server a few milliseconds, a backlog seconds.
fn latency_buckets() -> Vec<f64> {
    (0..18).map(|i| 0.0001 * 2f64.powi(i)).collect()
}

impl Metrics {
    /// Creates and registers every metric in a fresh registry.
    ///
    /// # Errors
    /// [`MetricsError::Register`] only on a duplicate name, which the fixed set here excludes.
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let reg = |name: &'static str, c: Box<dyn prometheus::core::Collector>| {
            registry
                .register(c)
                .map_err(|source| MetricsError::Register { name, source })
        };
        let err = |name: &'static str| move |source| MetricsError::Register { name, source };

        let signer_sign = IntCounterVec::new(
            Opts::new(
                "firefly_signer_sign",
                "Certificate signatures attempted, by success and request type.",
            ),
            &["success", "type"],
        )
        .map_err(err("firefly_signer_sign"))?;
        reg("firefly_signer_sign", Box::new(signer_sign.clone()))?;
        let outcomes = IntCounterVec::new(
            Opts::new(
                "firefly_certificaterequest_outcomes_total",
                "CertificateRequest decisions written, by outcome reason.",
            ),
            &["outcome"],
        )
        .map_err(err("firefly_certificaterequest_outcomes_total"))?;
        reg(
            "firefly_certificaterequest_outcomes_total",
            Box::new(outcomes.clone()),
        )?;
        let sign_duration = Histogram::with_opts(
            HistogramOpts::new(
                "firefly_sign_duration_seconds",
                "Time to build and sign one leaf certificate.",
            )
            .buckets(latency_buckets()),
        )
        .map_err(err("firefly_sign_duration_seconds"))?;
        reg(
            "firefly_sign_duration_seconds",
            Box::new(sign_duration.clone()),
        )?;
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "firefly_certificaterequest_reconcile_duration_seconds",
                "Time from the start of a CertificateRequest reconcile to its status write, by result.",
            )
            .buckets(latency_buckets()),
            &["result"],
        )
        .map_err(err("firefly_certificaterequest_reconcile_duration_seconds"))?;
        reg(
            "firefly_certificaterequest_reconcile_duration_seconds",
            Box::new(reconcile_duration.clone()),
        )?;
        let issue_latency = Histogram::with_opts(
            HistogramOpts::new(
                "firefly_certificaterequest_issue_latency_seconds",
                "Time from a CertificateRequest's creation (second precision) to the write that issued it.",
            )
            .buckets(latency_buckets()),
        )
        .map_err(err("firefly_certificaterequest_issue_latency_seconds"))?;
        reg(
            "firefly_certificaterequest_issue_latency_seconds",
            Box::new(issue_latency.clone()),
        )?;
        let sub_ca_not_after = IntGauge::new(
            "firefly_subca_not_after_timestamp_seconds",
            "NotAfter of the active sub-CA as a Unix timestamp; 0 when no sub-CA is active.",
        )
        .map_err(err("firefly_subca_not_after_timestamp_seconds"))?;
        reg(
            "firefly_subca_not_after_timestamp_seconds",
            Box::new(sub_ca_not_after.clone()),
        )?;
        let tlspc_requests = IntCounterVec::new(
            Opts::new(
                "firefly_tlspc_requests_total",
                "TLS Protect Cloud API calls, by operation and HTTP status class.",
            ),
            &["operation", "code"],
        )
        .map_err(err("firefly_tlspc_requests_total"))?;
        reg(
            "firefly_tlspc_requests_total",
            Box::new(tlspc_requests.clone()),
        )?;
        let tlspc_duration = HistogramVec::new(
            HistogramOpts::new(
                "firefly_tlspc_request_duration_seconds",
                "TLS Protect Cloud API call latency, by operation.",
            )
            .buckets(latency_buckets()),
            &["operation"],
        )
        .map_err(err("firefly_tlspc_request_duration_seconds"))?;
        reg(
            "firefly_tlspc_request_duration_seconds",
            Box::new(tlspc_duration.clone()),
        )?;
        let leader = IntGauge::new(
            "firefly_leader",
            "1 while this replica holds the leader lease, 0 otherwise.",
        )
        .map_err(err("firefly_leader"))?;
        reg("firefly_leader", Box::new(leader.clone()))?;
        let issuers_ready = IntGaugeVec::new(
            Opts::new(
                "firefly_issuer_ready",
                "Issuers and ClusterIssuers this controller reports Ready, by kind.",
            ),
            &["kind"],
        )
        .map_err(err("firefly_issuer_ready"))?;
        reg("firefly_issuer_ready", Box::new(issuers_ready.clone()))?;
        let write_errors = IntCounterVec::new(
            Opts::new(
                "firefly_status_write_errors_total",
                "Failed CertificateRequest status writes, by HTTP status code.",
            ),
            &["code"],
        )
        .map_err(err("firefly_status_write_errors_total"))?;
        reg(
            "firefly_status_write_errors_total",
            Box::new(write_errors.clone()),
        )?;
        let issuance_outcomes = IntCounterVec::new(
            Opts::new(
                "firefly_issuance_outcomes_total",
                "Answers written, by front door and outcome.",
            ),
            &["front_door", "outcome"],
        )
        .map_err(err("firefly_issuance_outcomes_total"))?;
        reg(
            "firefly_issuance_outcomes_total",
            Box::new(issuance_outcomes.clone()),
        )?;
        let issuance_latency = HistogramVec::new(
            HistogramOpts::new(
                "firefly_issuance_latency_seconds",
                "Time from a request's creation (second precision) to the write that issued it, by front door.",
            )
            .buckets(latency_buckets()),
            &["front_door"],
        )
        .map_err(err("firefly_issuance_latency_seconds"))?;
        reg(
            "firefly_issuance_latency_seconds",
            Box::new(issuance_latency.clone()),
        )?;
        let tlspc_insecure_http = IntGauge::new(
            "firefly_tlspc_insecure_http",
            "1 while TLS Protect Cloud is reached over plain http:// (a loopback host or bootstrap.vaas.allowInsecureHTTP), 0 otherwise.",
        )
        .map_err(err("firefly_tlspc_insecure_http"))?;
        reg(
            "firefly_tlspc_insecure_http",
            Box::new(tlspc_insecure_http.clone()),
        )?;
        let by_type = |name: &'static str, help: &str| -> Result<IntCounterVec, MetricsError> {
            let c = IntCounterVec::new(Opts::new(name, help), &["type"]).map_err(err(name))?;
            reg(name, Box::new(c.clone()))?;
            Ok(c)
        };
        let write_conflicts = by_type(
            "firefly_status_write_conflicts_total",
            "Status writes refused with 409 (decided again from the fresh object), by request type.",
        )?;
        let signed_not_delivered = by_type(
            "firefly_signed_not_delivered_total",
            "Certificates signed whose status write got 409 (never delivered), by request type.",
        )?;
        let issuance_retries = IntCounterVec::new(
            Opts::new(
                "firefly_issuance_retries_total",
                "Answers deferred for temporary trouble (retried later), by front door and reason.",
            ),
            &["front_door", "reason"],
        )
        .map_err(err("firefly_issuance_retries_total"))?;
        reg(
            "firefly_issuance_retries_total",
            Box::new(issuance_retries.clone()),
        )?;

        let events_dropped = IntCounter::new(
            "firefly_events_dropped_total",
            "Events not published because the event queue was full (the events API slower than the events come) or closed.",
        )
        .map_err(err("firefly_events_dropped_total"))?;
        reg(
            "firefly_events_dropped_total",
            Box::new(events_dropped.clone()),
        )?;

        Ok(Metrics {
            registry,
            signer_sign,
            outcomes,
            sign_duration,
            reconcile_duration,
            issue_latency,
            sub_ca_not_after,
            tlspc_requests,
            tlspc_duration,
            leader,
            issuers_ready,
            write_errors,
            issuance_outcomes,
            issuance_latency,
            tlspc_insecure_http,
            write_conflicts,
            signed_not_delivered,
            issuance_retries,
            events_dropped,
        })
    }

    /// Records one TLSPC call; `operation` must come from a fixed set: the TLSPC client's endpoint
    /// names (`token exchange`, `configuration fetch`, `intermediate certificate request`, ...).
    pub fn observe_tlspc(&self, operation: &'static str, status: Option<u16>, took: Duration) {
        let code = match status {
            Some(s) => status_class(s),
            None => "error",
        };
        self.tlspc_requests
            .with_label_values(&[operation, code])
            .inc();
        self.tlspc_duration
            .with_label_values(&[operation])
            .observe(took.as_secs_f64());
    }

    /// Sets the sub-CA NotAfter gauge (`None`: no active sub-CA).
    pub fn set_sub_ca_not_after(&self, not_after: Option<SystemTime>) {
        let secs = not_after
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.sub_ca_not_after.set(secs);
    }

    /// The Prometheus text exposition of every metric.
    ///
    /// # Errors
    /// [`MetricsError::Render`] if encoding fails.
    pub fn render(&self) -> Result<String, MetricsError> {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .map_err(MetricsError::Render)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_exposes_firefly_signer_sign_with_its_labels() {
        let m = Metrics::new().unwrap();
        m.signer_sign
            .with_label_values(&["true", "CertificateRequest"])
            .inc();
        let text = m.render().unwrap();
        assert!(
            text.contains("firefly_signer_sign{success=\"true\",type=\"CertificateRequest\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn insecure_http_is_a_gauge_that_starts_at_zero() {
        let m = Metrics::new().unwrap();
        assert!(
            m.render()
                .unwrap()
                .contains("\nfirefly_tlspc_insecure_http 0\n")
        );
        m.tlspc_insecure_http.set(1);
        let text = m.render().unwrap();
        assert!(
            text.contains("# TYPE firefly_tlspc_insecure_http gauge"),
            "{text}"
        );
        assert!(text.contains("\nfirefly_tlspc_insecure_http 1\n"), "{text}");
    }

    #[test]
    fn tlspc_calls_are_labelled_by_status_class_only() {
        let m = Metrics::new().unwrap();
        m.observe_tlspc("login", Some(503), Duration::from_millis(3));
        m.observe_tlspc("login", None, Duration::from_millis(3));
        let text = m.render().unwrap();
        assert!(
            text.contains("firefly_tlspc_requests_total{code=\"5xx\",operation=\"login\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("firefly_tlspc_requests_total{code=\"error\",operation=\"login\"} 1"),
            "{text}"
        );
    }
}
