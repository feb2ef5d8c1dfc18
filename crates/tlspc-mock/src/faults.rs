//! Fault knobs of the mock (seed `faults:` and `PUT /mock/faults`): types and per-request decisions; performs no I/O.

use serde::{Deserialize, Serialize};

/// Every fault the mock can inject. All default to "off".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Faults {
    /// Added delay before every answer, milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Added delay per route, milliseconds (added to `latencyMs`).
    #[serde(default)]
    pub route_latency_ms: Vec<RouteLatency>,
    /// Injected error answers per route, tried in order; a rule with `count` is used up.
    #[serde(default)]
    pub route_errors: Vec<RouteError>,
    /// Overrides `tokenExpiresIn` for newly issued access tokens (tokens expiring early).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_in: Option<u64>,
    /// Intermediate-certificate polls answered `REQUESTED` before the answer is given.
    #[serde(default)]
    pub requested_polls: u32,
    /// When set, new intermediate requests end `FAILED` with this message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_issuance: Option<String>,
    /// When set, new intermediate requests are answered with this broken sub-CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_sub_ca: Option<BadSubCa>,
    /// How many new requests `badSubCa` / `failIssuance` apply to (absent → all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuance_fault_count: Option<u32>,
}

/// The routes fault rules can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Route {
    /// `POST /v1/oauth/token/serviceaccount`.
    Token,
    /// `GET /v1/distributedissuers/configurations` (any caller).
    Configurations,
    /// `POST /v1/distributedissuers/intermediatecertificates`.
    IntermediateRequest,
    /// `GET /v1/distributedissuers/intermediatecertificates/{id}`.
    IntermediatePoll,
    /// `PATCH /v1/distributedissuers/intermediatecertificates/{id}` (usage report).
    UsageReport,
    /// Every other `/v1/...` call (admin CRUD).
    Admin,
}

/// Delay on one route.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteLatency {
    /// The route.
    pub route: Route,
    /// Milliseconds.
    pub ms: u64,
}

/// An injected error answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteError {
    /// The route it applies to.
    pub route: Route,
    /// HTTP status of the answer (200 is allowed, for `malformedJson`).
    pub status: u16,
    /// How many answers remain; absent → unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Chance (0..=1) that a call gets this answer; absent → always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Shape of the body.
    #[serde(default)]
    pub body: ErrorBody,
}

/// Body shapes of injected errors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorBody {
    /// The route's real shape: OAuth error for the token route, `{"errors":[...]}` otherwise.
    #[default]
    Real,
    /// `text/plain` body.
    PlainText,
    /// An HTML error page, as a load balancer would answer.
    Html,
    /// No body.
    Empty,
    /// `application/json` that does not parse.
    MalformedJson,
}

/// Broken sub-CA answers, one per upstream item of x509-svid.md §4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BadSubCa {
    /// basicConstraints CA:false.
    NotCa,
    /// keyUsage without keyCertSign.
    NoKeyCertSign,
    /// Certifies a key the mock generated, not the CSR's.
    WrongKey,
    /// Signed by an unrelated CA; `issuerCertificates` lead to a foreign root.
    ForeignChain,
    /// Validity ended an hour ago.
    Expired,
    /// Valid for only 10 seconds from issuance.
    ShortLived,
    /// Carries a critical nameConstraints extension with a permitted URI subtree.
    UriNameConstraints,
    /// Signed by an extra intermediate below intermediate 2 whose pathLenConstraint is 0, so the
    /// sub-CA (itself a CA) breaks its parent's path length; every signature verifies.
    ParentPathLen,
    /// `certificate` is a PEM block of about 4 MiB.
    HugePem,
    /// `certificate` is a PEM envelope around bytes that are not base64 DER.
    MalformedPem,
    /// `issuerCertificates` is empty.
    EmptyChain,
}

impl Faults {
    /// Checks values that serde cannot (probabilities, statuses).
    ///
    /// # Errors
    /// A message naming the rule and the field.
    pub fn validate(&self) -> Result<(), String> {
        for (i, e) in self.route_errors.iter().enumerate() {
            if !(200..=599).contains(&e.status) {
                return Err(format!(
                    "routeErrors[{i}].status: {} is not an HTTP status (200..=599)",
                    e.status
                ));
            }
            if let Some(p) = e.probability
                && !(0.0..=1.0).contains(&p)
            {
                return Err(format!(
                    "routeErrors[{i}].probability: {p} is outside 0..=1"
                ));
            }
        }
        if self.token_expires_in == Some(0) {
            return Err("tokenExpiresIn: must be at least 1 second".into());
        }
        Ok(())
    }

    /// Total delay for `route`.
    pub fn latency(&self, route: Route) -> std::time::Duration {
        let extra: u64 = self
            .route_latency_ms
            .iter()
            .filter(|l| l.route == route)
            .map(|l| l.ms)
            .sum();
        std::time::Duration::from_millis(self.latency_ms.saturating_add(extra))
    }

    /// Picks the injected error for this call, consuming one use of a counted rule.
    pub fn take_error(&mut self, route: Route, roll: f64) -> Option<(u16, ErrorBody)> {
        let idx = self.route_errors.iter().position(|e| {
            e.route == route && e.count != Some(0) && e.probability.is_none_or(|p| roll < p)
        })?;
        let rule = &mut self.route_errors[idx];
        if let Some(c) = rule.count.as_mut() {
            *c -= 1;
        }
        Some((rule.status, rule.body))
    }

    /// Consumes one use of the issuance faults; returns (fail message, bad sub-CA) for a new request.
    pub fn take_issuance_fault(&mut self) -> (Option<String>, Option<BadSubCa>) {
        if self.fail_issuance.is_none() && self.bad_sub_ca.is_none() {
            return (None, None);
        }
        match self.issuance_fault_count.as_mut() {
            Some(0) => (None, None),
            Some(n) => {
                *n -= 1;
                (self.fail_issuance.clone(), self.bad_sub_ca)
            }
            None => (self.fail_issuance.clone(), self.bad_sub_ca),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_error_rule_is_used_up() {
        let mut f = Faults {
            route_errors: vec![RouteError {
                route: Route::Token,
                status: 503,
                count: Some(2),
                probability: None,
                body: ErrorBody::Html,
            }],
            ..Faults::default()
        };
        assert_eq!(
            f.take_error(Route::Token, 0.5),
            Some((503, ErrorBody::Html))
        );
        assert_eq!(f.take_error(Route::Configurations, 0.5), None);
        assert_eq!(
            f.take_error(Route::Token, 0.5),
            Some((503, ErrorBody::Html))
        );
        assert_eq!(f.take_error(Route::Token, 0.5), None);
    }

    #[test]
    fn probability_rule_applies_only_below_the_roll() {
        let mut f = Faults {
            route_errors: vec![RouteError {
                route: Route::Admin,
                status: 500,
                count: None,
                probability: Some(0.25),
                body: ErrorBody::Real,
            }],
            ..Faults::default()
        };
        assert!(f.take_error(Route::Admin, 0.1).is_some());
        assert!(f.take_error(Route::Admin, 0.9).is_none());
    }

    #[test]
    fn out_of_range_values_are_refused_by_name() {
        let f: Faults =
            serde_json::from_str(r#"{"routeErrors":[{"route":"token","status":42}]}"#).unwrap();
        assert!(f.validate().unwrap_err().contains("routeErrors[0].status"));
    }

    #[test]
    fn issuance_faults_apply_count_times() {
        let mut f = Faults {
            fail_issuance: Some("boom".into()),
            issuance_fault_count: Some(1),
            ..Faults::default()
        };
        assert_eq!(f.take_issuance_fault().0.as_deref(), Some("boom"));
        assert_eq!(f.take_issuance_fault(), (None, None));
    }
}
