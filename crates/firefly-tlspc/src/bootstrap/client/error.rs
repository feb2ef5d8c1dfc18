//! The client's errors, and TLSPC's error bodies reduced to the fields of its three documented
//! shapes (or a short, sanitized line): never a token, a key or a raw body.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::wire::{ErrorResponse, OAuthError};

/// Errors of talking to TLSPC.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The service-account key file cannot be read.
    #[error(
        "cannot read the service-account key bootstrap.vaas.auth.privateKeyFile={path}: {source}"
    )]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The service-account key file is not a key we can sign a JWT with.
    #[error("bootstrap.vaas.auth.privateKeyFile={path}: {reason}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the key itself).
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the TLSPC HTTP client: {0}")]
    Build(String),
    /// A connection or transport failure (after retries).
    #[error("TLSPC {endpoint}: cannot reach {base_url}: {message}")]
    Transport {
        /// Which call.
        endpoint: &'static str,
        /// The base URL.
        base_url: String,
        /// The transport error, without the URL query or any header.
        message: String,
    },
    /// No answer within `bootstrap.vaas.requestTimeout` (after retries).
    #[error("TLSPC {endpoint}: no answer within {timeout:?} (bootstrap.vaas.requestTimeout)")]
    Timeout {
        /// Which call.
        endpoint: &'static str,
        /// The per-call timeout.
        timeout: Duration,
    },
    /// TLSPC refused the service-account login.
    #[error("TLSPC login as service account {client_id} refused (HTTP {status}): {detail}{hint}")]
    LoginRefused {
        /// The client ID.
        client_id: String,
        /// HTTP status.
        status: u16,
        /// The parsed upstream reason.
        detail: UpstreamDetail,
        /// What to do about it.
        hint: &'static str,
    },
    /// A call was answered with an error status.
    #[error("TLSPC {endpoint} answered HTTP {status}: {detail}{hint}")]
    Status {
        /// Which call.
        endpoint: &'static str,
        /// HTTP status.
        status: u16,
        /// The parsed upstream reason.
        detail: UpstreamDetail,
        /// What to do about it.
        hint: &'static str,
    },
    /// TLSPC (or something in front of it) answered with a redirect, which is never followed: a
    /// redirect would carry the login assertion or the bearer token to another address.
    #[error(
        "TLSPC {endpoint} answered HTTP {status} redirecting to {location}: redirects are not followed (they would carry credentials elsewhere); set bootstrap.vaas.url to the API's own address"
    )]
    Redirected {
        /// Which call.
        endpoint: &'static str,
        /// HTTP status (301, 302, 303, 307, 308).
        status: u16,
        /// Where it pointed: scheme, host, port and path only (no query, no user info).
        location: String,
    },
    /// The answer was not the JSON the contract describes.
    #[error("TLSPC {endpoint}: malformed answer: {what}")]
    Malformed {
        /// Which call.
        endpoint: &'static str,
        /// What was wrong (serde's message, never the body).
        what: String,
    },
    /// The answer exceeded the size any legitimate answer has.
    #[error("TLSPC {endpoint}: answer larger than {limit} bytes refused")]
    TooLarge {
        /// Which call.
        endpoint: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The service account is not attached to any configuration.
    #[error(
        "TLSPC has no configuration for service account {client_id}: attach the service account to a distributed-issuer configuration"
    )]
    NoConfiguration {
        /// The client ID.
        client_id: String,
    },
    /// The intermediate-certificate request ended in FAILED.
    #[error("TLSPC refused to issue the sub-CA (request {id}): {code} {message}")]
    IssuanceFailed {
        /// Request id.
        id: String,
        /// Upstream error code.
        code: i32,
        /// Upstream message.
        message: String,
    },
    /// The intermediate certificate was still REQUESTED at the deadline.
    #[error(
        "TLSPC did not issue the sub-CA (request {id}) within {deadline:?} (bootstrap.vaas.subCaRequestDeadline){}",
        last_problem.as_deref().map(|p| format!("; last problem: {p}")).unwrap_or_default()
    )]
    IssuanceDeadline {
        /// Request id.
        id: String,
        /// The deadline.
        deadline: Duration,
        /// The last transient poll failure, if any.
        last_problem: Option<String>,
    },
}

impl ClientError {
    /// True for faults that may pass (outages, throttling, timeouts); false for answers that
    /// need an administrator (bad credentials, detached account, refused issuance).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. }
            | Self::Timeout { .. }
            | Self::Malformed { .. }
            | Self::IssuanceDeadline { .. } => true,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::LoginRefused { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// The reason an upstream error body gives, reduced to one of the documented shapes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpstreamDetail {
    /// `{"errors":[{"code","message"}]}`.
    Api {
        /// First error's code.
        code: i32,
        /// The messages, joined.
        message: String,
    },
    /// `{"error","error_description"}`.
    OAuth {
        /// OAuth error code.
        error: String,
        /// Its description.
        description: String,
    },
    /// A short plain-text body (`Invalid api key`), sanitized and truncated.
    Text(String),
    /// An HTML page (a proxy or gateway error page), not shown.
    Html,
    /// No body.
    Empty,
    /// A body in none of the shapes, not shown.
    Unrecognized {
        /// Its length in bytes.
        len: usize,
    },
}

impl fmt::Display for UpstreamDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Api { code, message } => write!(f, "error {code}: {message}"),
            Self::OAuth { error, description } if description.is_empty() => write!(f, "{error}"),
            Self::OAuth { error, description } => write!(f, "{error}: {description}"),
            Self::Text(text) => write!(f, "{text:?}"),
            Self::Html => f.write_str("an HTML page (a proxy or gateway error, not TLSPC's API)"),
            Self::Empty => f.write_str("empty body"),
            Self::Unrecognized { len } => write!(f, "an unrecognized body of {len} bytes"),
        }
    }
}

/// Longest plain-text body quoted in an error.
pub(super) const MAX_TEXT_DETAIL: usize = 160;

/// Parses an error body into one of the documented shapes; never returns the raw body.
pub fn parse_error_body(body: &[u8]) -> UpstreamDetail {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return UpstreamDetail::Empty;
    }
    if let Ok(api) = serde_json::from_slice::<ErrorResponse>(trimmed)
        && !api.errors.is_empty()
    {
        let code = api.errors[0].code;
        let message = api
            .errors
            .iter()
            .map(|e| sanitize(&e.message))
            .filter(|m| !m.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        return UpstreamDetail::Api { code, message };
    }
    if let Ok(oauth) = serde_json::from_slice::<OAuthError>(trimmed)
        && !oauth.error.is_empty()
    {
        return UpstreamDetail::OAuth {
            error: sanitize(&oauth.error),
            description: sanitize(&oauth.error_description),
        };
    }
    let Ok(text) = std::str::from_utf8(trimmed) else {
        return UpstreamDetail::Unrecognized { len: body.len() };
    };
    let lower = text
        .get(..text.len().min(512))
        .unwrap_or("")
        .to_ascii_lowercase();
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") || lower.contains("<body")
    {
        return UpstreamDetail::Html;
    }
    if text.starts_with('{') || text.starts_with('[') || text.lines().count() > 3 {
        return UpstreamDetail::Unrecognized { len: body.len() };
    }
    UpstreamDetail::Text(sanitize(text))
}

/// One line, printable, bounded; a long token-like word is elided so that an echoed credential
/// never reaches a log.
pub(super) fn sanitize(text: &str) -> String {
    // Control characters go first: left inside a word they would hide a token from the
    // elision below and then vanish, leaving the token whole.
    let printable: String = text
        .chars()
        .filter(|c| c.is_whitespace() || !c.is_control())
        .collect();
    let words: Vec<String> = printable
        .split_whitespace()
        .map(|w| {
            if w.len() > 40
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.=+/".contains(c))
            {
                "<elided>".to_string()
            } else {
                w.to_owned()
            }
        })
        .collect();
    firefly_core::util::truncate_at_char_boundary(&words.join(" "), MAX_TEXT_DETAIL)
}
