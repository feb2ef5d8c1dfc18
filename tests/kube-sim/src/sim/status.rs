//! Kubernetes `Status` errors as the API server returns them; builds response bodies, performs no I/O.

use serde_json::{Value, json};

/// One entry of `details.causes` in a `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Machine-readable reason, e.g. `FieldValueRequired`.
    pub reason: String,
    /// Human-readable message for this field.
    pub message: String,
    /// Field path, e.g. `spec.request`.
    pub field: String,
}

/// An API error rendered as a `kind: Status` body with the matching HTTP code.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code (also `Status.code`).
    pub code: u16,
    /// `Status.reason`, e.g. `NotFound`, `Conflict`, `Invalid`.
    pub reason: &'static str,
    /// `Status.message`.
    pub message: String,
    /// `details.name`, `details.group`, `details.kind`.
    pub details: Option<Box<(String, String, String)>>,
    /// `details.causes`.
    pub causes: Vec<Cause>,
    /// Seconds for `Retry-After` (429/503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A bare error with code, reason and message.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            causes: Vec::new(),
            retry_after: None,
        }
    }
    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    /// 404 NotFound for `plural.group "name"`.
    pub fn not_found(plural: &str, group: &str, name: &str) -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(plural, group)),
        );
        e.details = Some(Box::new((
            name.to_string(),
            group.to_string(),
            plural.to_string(),
        )));
        e
    }
    /// 409 AlreadyExists.
    pub fn already_exists(plural: &str, group: &str, name: &str) -> Self {
        let mut e = Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(plural, group)),
        );
        e.details = Some(Box::new((
            name.to_string(),
            group.to_string(),
            plural.to_string(),
        )));
        e
    }
    /// 409 Conflict for a stale resourceVersion or a failed precondition.
    pub fn conflict(plural: &str, group: &str, name: &str, why: &str) -> Self {
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(plural, group)
            ),
        );
        e.details = Some(Box::new((
            name.to_string(),
            group.to_string(),
            plural.to_string(),
        )));
        e
    }
    /// 422 Invalid with field causes.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let what = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let message = if list.len() == 1 {
            format!("{what} \"{name}\" is invalid: {}", list[0])
        } else {
            format!("{what} \"{name}\" is invalid: [{}]", list.join(", "))
        };
        let mut e = Self::new(422, "Invalid", message);
        e.details = Some(Box::new((
            name.to_string(),
            group.to_string(),
            kind.to_string(),
        )));
        e.causes = causes;
        e
    }
    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }
    /// 415 UnsupportedMediaType.
    pub fn unsupported_media(ct: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct:?})"
            ),
        )
    }
    /// 410 Expired (sent in a watch stream as an ERROR event).
    pub fn expired(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }
    /// 500 with no reason: kube-apiserver's answer to an error that is not a `Status` (its
    /// `ErrorToAPIStatus` falls back to code 500 and the empty `StatusReasonUnknown`), such as a
    /// server-side apply configuration that cannot be converted to the typed object.
    pub fn unknown(message: impl Into<String>) -> Self {
        Self::new(500, "", message)
    }
    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `kind: Status` JSON.
    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.reason.is_empty() {
            // `reason` is omitempty in metav1.Status.
            if let Some(m) = v.as_object_mut() {
                m.remove("reason");
            }
        }
        if self.details.is_some() || !self.causes.is_empty() || self.retry_after.is_some() {
            let mut d = serde_json::Map::new();
            if let Some(det) = &self.details {
                let (name, group, kind) = &**det;
                d.insert("name".into(), json!(name));
                if !group.is_empty() {
                    d.insert("group".into(), json!(group));
                }
                d.insert("kind".into(), json!(kind));
            }
            if !self.causes.is_empty() {
                let causes: Vec<Value> = self
                    .causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                d.insert("causes".into(), Value::Array(causes));
            }
            if let Some(s) = self.retry_after {
                d.insert("retryAfterSeconds".into(), json!(s));
            }
            v["details"] = Value::Object(d);
        }
        v
    }
}

/// `plural.group` or just `plural` for the core group.
pub fn qualified(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}
