//! The TLSPC HTTP client: service-account login, token cache, retries, and error bodies turned into actionable errors.
//!
//! It never puts a token, a key or a raw response body into an error or a log line: upstream
//! bodies are reduced to the fields of the three documented error shapes (or a short,
//! sanitized line of plain text).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::Rng as _;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::Clock;
use crate::wire::{
    self, ConfigurationResponse, ExtendedConfigurationInformation,
    IntermediateCertificateInformation, IntermediateCertificateRequest, IntermediateStatus,
    TokenResponse, UsageReport,
};

mod account_key;
mod error;

pub use account_key::{ClientAssertion, ServiceAccountKey};
use error::sanitize;
pub use error::{ClientError, UpstreamDetail, parse_error_body};

/// Retry behaviour for throttling, 5xx and timeouts.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// First backoff; doubled each time, with full jitter.
    pub base: Duration,
    /// Longest backoff.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The backoff before attempt `attempt + 1`: "full jitter" (uniform in [d/2, d]).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.cap);
        let half = exp / 2;
        half + exp
            .saturating_sub(half)
            .mul_f64(rand::rng().random::<f64>())
    }
}

/// Settings of a [`TlspcClient`].
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// Base URL (`https://api.venafi.cloud`), no trailing slash needed.
    pub base_url: String,
    /// Service-account client ID.
    pub client_id: String,
    /// Timeout of one HTTP call.
    pub request_timeout: Duration,
    /// Retry behaviour.
    pub retry: RetryPolicy,
}

/// A bearer token with the time to replace it. `Debug` never prints the token.
pub struct CachedToken {
    token: BearerToken,
    /// When to log in again: min(60 s, half the lifetime) before the token expires.
    pub refresh_at: SystemTime,
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("token", &self.token)
            .field("refresh_at", &self.refresh_at)
            .finish()
    }
}

/// A TLSPC access token: zeroized on drop; `Debug` prints a placeholder.
#[derive(Clone)]
pub struct BearerToken(Zeroizing<String>);

impl BearerToken {
    /// The token, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// Longest time a token is cached, whatever `expires_in` says: an absurd lifetime (up to
/// `u64::MAX` seconds, which once overflowed `SystemTime` and panicked) is capped rather than
/// refused, because the token itself is good and a 401 makes the client log in again anyway; a
/// real TLSPC token lives 15 minutes.
pub const MAX_TOKEN_CACHE: Duration = Duration::from_secs(60 * 60);

/// Reads a successful answer of the token endpoint received for a login started at `issued_at`.
///
/// # Errors
/// [`ClientError::Malformed`] when the body is not the token JSON (the message never quotes a
/// token-like value) or the token is empty.
pub fn read_token_answer(body: &[u8], issued_at: SystemTime) -> Result<CachedToken, ClientError> {
    let endpoint = "service-account login";
    let parsed: TokenResponse =
        serde_json::from_slice(body).map_err(|e| ClientError::Malformed {
            endpoint,
            what: without_quoted_values(&e.to_string()),
        })?;
    let TokenResponse {
        access_token,
        expires_in,
        ..
    } = parsed;
    let token = BearerToken(Zeroizing::new(access_token));
    if token.0.trim().is_empty() {
        return Err(ClientError::Malformed {
            endpoint,
            what: "access_token is empty".into(),
        });
    }
    Ok(CachedToken {
        token,
        refresh_at: token_refresh_at(issued_at, expires_in),
    })
}

/// serde quotes an offending string value (`invalid type: string "…", expected u64`): in a
/// token answer that value may be the token, so everything between the first and the last quote
/// is elided.
fn without_quoted_values(message: &str) -> String {
    let text = match (message.find('"'), message.rfind('"')) {
        (Some(first), Some(last)) if first < last => {
            format!("{}<elided>{}", &message[..first], &message[last + 1..])
        }
        _ => message.to_owned(),
    };
    sanitize(&text)
}

/// When to replace a token issued at `issued_at` living `expires_in` seconds: min(60 s, half the
/// lifetime) before expiry, the lifetime capped at [`MAX_TOKEN_CACHE`]. Never panics.
pub fn token_refresh_at(issued_at: SystemTime, expires_in: u64) -> SystemTime {
    let lifetime = Duration::from_secs(expires_in).min(MAX_TOKEN_CACHE);
    let margin = (lifetime / 2).min(Duration::from_secs(60));
    issued_at
        .checked_add(lifetime.saturating_sub(margin))
        .unwrap_or(issued_at)
}

/// The TLSPC client of one service account.
pub struct TlspcClient {
    http: reqwest::Client,
    settings: ClientSettings,
    key: ServiceAccountKey,
    clock: Arc<dyn Clock>,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    observer: Option<CallObserver>,
}

/// Told of every HTTP exchange with TLSPC: the endpoint (one of a fixed set of names, so it is a
/// bounded metrics label), the HTTP status (`None` when no answer came) and how long it took.
pub type CallObserver = Arc<dyn Fn(&'static str, Option<u16>, Duration) + Send + Sync>;

impl fmt::Debug for TlspcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlspcClient")
            .field("base_url", &self.settings.base_url)
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

/// Largest response body read (sub-CA chains are a few KiB).
const MAX_BODY: usize = 1024 * 1024;

impl TlspcClient {
    /// Builds a client; performs no I/O.
    ///
    /// # Errors
    /// [`ClientError::Build`] when the HTTP client cannot be built.
    pub fn new(
        mut settings: ClientSettings,
        key: ServiceAccountKey,
        clock: Arc<dyn Clock>,
    ) -> Result<TlspcClient, ClientError> {
        crate::crypto::install_default_provider();
        while settings.base_url.ends_with('/') {
            settings.base_url.pop();
        }
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout)
            .user_agent(concat!("firefly-rs/", env!("CARGO_PKG_VERSION")))
            // A redirect would send the assertion or the token to another address: refuse it.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(TlspcClient {
            http,
            settings,
            key,
            clock,
            token: tokio::sync::Mutex::new(None),
            observer: None,
        })
    }

    /// Reports every HTTP exchange to `observer` (metrics); performs no I/O.
    pub fn with_observer(mut self, observer: CallObserver) -> TlspcClient {
        self.observer = Some(observer);
        self
    }

    /// The client ID.
    pub fn client_id(&self) -> &str {
        &self.settings.client_id
    }

    /// Logs in now (or reuses a fresh token); useful to fail fast at start.
    ///
    /// # Errors
    /// [`ClientError::LoginRefused`] and transport errors.
    pub async fn login(&self) -> Result<(), ClientError> {
        self.bearer(false).await.map(drop)
    }

    /// The configuration this service account is attached to, with provider and policies.
    ///
    /// # Errors
    /// [`ClientError::NoConfiguration`] when the account is detached (a 404 with TLSPC's JSON
    /// `errors` body, or an empty list); others as for any call.
    pub async fn configuration(&self) -> Result<ExtendedConfigurationInformation, ClientError> {
        let result: Result<ConfigurationResponse, ClientError> = self
            .call(
                "configuration fetch",
                Method::GET,
                wire::paths::CONFIGURATIONS.to_string(),
                None::<&()>,
            )
            .await;
        let response = match result {
            // Only TLSPC's own `errors` body means "not attached": an HTML, empty or text 404
            // comes from a proxy or gateway in front of it, an outage to ride out.
            Err(ClientError::Status {
                status: 404,
                detail: UpstreamDetail::Api { .. },
                ..
            }) => {
                return Err(ClientError::NoConfiguration {
                    client_id: self.settings.client_id.clone(),
                });
            }
            other => other?,
        };
        response
            .configurations
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::NoConfiguration {
                client_id: self.settings.client_id.clone(),
            })
    }

    /// Submits a sub-CA CSR.
    ///
    /// # Errors
    /// As for any call.
    pub async fn request_intermediate(
        &self,
        request: &IntermediateCertificateRequest,
    ) -> Result<IntermediateCertificateInformation, ClientError> {
        self.call(
            "intermediate certificate request",
            Method::POST,
            wire::paths::INTERMEDIATE_CERTIFICATES.to_string(),
            Some(request),
        )
        .await
    }

    /// Reads an intermediate-certificate request.
    ///
    /// # Errors
    /// As for any call.
    pub async fn intermediate(
        &self,
        id: &str,
    ) -> Result<IntermediateCertificateInformation, ClientError> {
        let path = format!(
            "{}/{}",
            wire::paths::INTERMEDIATE_CERTIFICATES,
            path_segment(id)
        );
        self.call(
            "intermediate certificate poll",
            Method::GET,
            path,
            None::<&()>,
        )
        .await
    }

    /// Polls `id` until ISSUED, FAILED, or `deadline` passes, at the intervals of
    /// [`poll_delays`]; transient poll failures are retried.
    ///
    /// # Errors
    /// [`ClientError::IssuanceFailed`], [`ClientError::IssuanceDeadline`], or the last
    /// non-transient call error.
    pub async fn wait_for_intermediate(
        &self,
        mut current: IntermediateCertificateInformation,
        deadline: Duration,
    ) -> Result<IntermediateCertificateInformation, ClientError> {
        let started = tokio::time::Instant::now();
        let mut delays = poll_delays();
        let mut last_problem = None;
        loop {
            match current.status {
                IntermediateStatus::Issued => return Ok(current),
                IntermediateStatus::Failed => {
                    let info = current.error_information.unwrap_or_default();
                    return Err(ClientError::IssuanceFailed {
                        id: current.id,
                        code: info.code,
                        message: sanitize(&info.message),
                    });
                }
                IntermediateStatus::Requested => {}
            }
            let delay = delays.next().unwrap_or(LAST_POLL_DELAY);
            if started.elapsed() + delay > deadline {
                return Err(ClientError::IssuanceDeadline {
                    id: current.id,
                    deadline,
                    last_problem,
                });
            }
            tokio::time::sleep(delay).await;
            match self.intermediate(&current.id).await {
                Ok(next) => current = next,
                Err(err) if err.is_transient() => {
                    tracing::warn!(error = %err, "sub-CA poll failed; retrying");
                    last_problem = Some(err.to_string());
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Sends the usage counters of sub-CA `id`.
    ///
    /// # Errors
    /// As for any call; callers log and move on (a report never blocks issuance).
    pub async fn report_usage(&self, id: &str, report: &UsageReport) -> Result<(), ClientError> {
        let path = format!(
            "{}/{}",
            wire::paths::INTERMEDIATE_CERTIFICATES,
            path_segment(id)
        );
        let _: serde_json::Value = self
            .call("usage report", Method::PATCH, path, Some(report))
            .await?;
        Ok(())
    }

    /// One authenticated call: retries 429/5xx/timeouts with backoff; on 401 logs in again and
    /// retries once.
    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        endpoint: &'static str,
        method: Method,
        path: String,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let url = format!("{}{}", self.settings.base_url, path);
        let mut reauthenticated = false;
        let mut attempt = 0;
        loop {
            let token = self.bearer(false).await?;
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(token.expose());
            if let Some(body) = body {
                request = request.json(body);
            }
            let outcome = self.send(endpoint, request).await;
            match outcome {
                Ok((status, bytes)) if status.is_success() => {
                    return serde_json::from_slice(&bytes).map_err(|e| ClientError::Malformed {
                        endpoint,
                        what: e.to_string(),
                    });
                }
                Ok((StatusCode::UNAUTHORIZED, _)) if !reauthenticated => {
                    tracing::info!(endpoint, "TLSPC token refused; logging in again");
                    reauthenticated = true;
                    self.token.lock().await.take();
                    continue;
                }
                Ok((status, bytes)) => {
                    let detail = parse_error_body(&bytes);
                    let hint = status_hint(endpoint, status.as_u16(), &detail);
                    let err = ClientError::Status {
                        endpoint,
                        status: status.as_u16(),
                        detail,
                        hint,
                    };
                    if err.is_transient() && attempt + 1 < self.settings.retry.attempts {
                        self.pause(endpoint, &err, attempt).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(err);
                }
                Err(err) if err.is_transient() && attempt + 1 < self.settings.retry.attempts => {
                    self.pause(endpoint, &err, attempt).await;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn pause(&self, endpoint: &'static str, err: &ClientError, attempt: u32) {
        let wait = self.settings.retry.backoff(attempt);
        tracing::warn!(endpoint, error = %err, retry_in_ms = wait.as_millis() as u64, "TLSPC call failed; retrying");
        tokio::time::sleep(wait).await;
    }

    async fn send(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                ClientError::Timeout {
                    endpoint,
                    timeout: self.settings.request_timeout,
                }
            } else {
                ClientError::Transport {
                    endpoint,
                    base_url: self.settings.base_url.clone(),
                    message: error_chain(&e.without_url()),
                }
            }
        };
        let started = std::time::Instant::now();
        let result = async {
            let mut response = request.send().await.map_err(transport)?;
            let status = response.status();
            if status.is_redirection() {
                return Err(ClientError::Redirected {
                    endpoint,
                    status: status.as_u16(),
                    location: redirect_target(response.url(), response.headers()),
                });
            }
            // Sized from Content-Length when given, so that the buffer is not reallocated (a
            // reallocation would leave a copy of a token answer in freed memory).
            let expected = response
                .content_length()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(0)
                .min(MAX_BODY);
            let mut body = Vec::with_capacity(expected);
            while let Some(chunk) = response.chunk().await.map_err(transport)? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(ClientError::TooLarge {
                        endpoint,
                        limit: MAX_BODY,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, body))
        }
        .await;
        if let Some(observe) = &self.observer {
            let status = result.as_ref().ok().map(|(status, _)| status.as_u16());
            observe(endpoint, status, started.elapsed());
        }
        result
    }

    /// A valid bearer token: cached until min(60 s, half its lifetime) before expiry.
    async fn bearer(&self, force: bool) -> Result<BearerToken, ClientError> {
        let mut cached = self.token.lock().await;
        let now = self.clock.now();
        if !force
            && let Some(token) = cached.as_ref()
            && now < token.refresh_at
        {
            return Ok(token.token.clone());
        }
        let fresh = self.fetch_token().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    async fn fetch_token(&self) -> Result<CachedToken, ClientError> {
        let endpoint = "service-account login";
        let url = format!("{}{}", self.settings.base_url, wire::paths::TOKEN);
        let mut attempt = 0;
        loop {
            let issued_at = self.clock.now();
            let assertion = self
                .key
                .mint_assertion(&self.settings.client_id, issued_at)
                .map_err(|reason| ClientError::BadKey {
                    path: PathBuf::from("bootstrap.vaas.auth.privateKeyFile"),
                    reason: reason.into(),
                })?;
            let form = [
                ("grant_type", wire::JWT_BEARER_GRANT),
                ("assertion", assertion.expose()),
            ];
            let request = self.http.post(&url).form(&form);
            let err = match self.send(endpoint, request).await {
                Ok((status, bytes)) if status.is_success() => {
                    // The body holds the token: wipe this copy once it is read.
                    let bytes = Zeroizing::new(bytes);
                    return read_token_answer(&bytes, issued_at);
                }
                Ok((status, bytes)) => {
                    let detail = parse_error_body(&bytes);
                    let hint = login_hint(&detail, status.as_u16());
                    ClientError::LoginRefused {
                        client_id: self.settings.client_id.clone(),
                        status: status.as_u16(),
                        detail,
                        hint,
                    }
                }
                Err(err) => err,
            };
            if err.is_transient() && attempt + 1 < self.settings.retry.attempts {
                self.pause(endpoint, &err, attempt).await;
                attempt += 1;
                continue;
            }
            return Err(err);
        }
    }
}

fn login_hint(detail: &UpstreamDetail, status: u16) -> &'static str {
    let text = detail.to_string();
    if text.contains("token_signature_verification_error") {
        " (the JWT signature does not match the public key registered for this service account: bootstrap.vaas.auth.privateKeyFile is not the key of bootstrap.vaas.auth.clientID)"
    } else if status == 400 || status == 401 || status == 403 {
        " (check bootstrap.vaas.auth.clientID, that the service account exists, is enabled, has scope distributed-issuance, and that its key matches bootstrap.vaas.auth.privateKeyFile)"
    } else if status == 429 || status >= 500 {
        " (TLSPC is throttling or unavailable; retrying with backoff)"
    } else {
        ""
    }
}

fn status_hint(endpoint: &str, status: u16, detail: &UpstreamDetail) -> &'static str {
    let from_tlspc = matches!(detail, UpstreamDetail::Api { .. });
    match status {
        401 | 403 | 404 if !from_tlspc => {
            " (not TLSPC's JSON error body: a proxy or gateway in front of TLSPC answered; treated as an outage)"
        }
        401 => " (the token was refused twice: the service account may be disabled or revoked)",
        403 => {
            " (the service account lacks the distributed-issuance scope or is not attached to this configuration)"
        }
        404 if endpoint.contains("configuration") => {
            " (the service account is not attached to a distributed-issuer configuration)"
        }
        429 => " (throttled by TLSPC)",
        s if s >= 500 => " (TLSPC is unavailable)",
        _ => "",
    }
}

/// Where a redirect points, for an error message: scheme, host, port and path of the `Location`
/// (resolved against the request URL), never its query, fragment or user info.
fn redirect_target(from: &reqwest::Url, headers: &reqwest::header::HeaderMap) -> String {
    let Some(location) = headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
    else {
        return "nowhere (no Location header)".to_owned();
    };
    match from.join(location) {
        Ok(mut url) => {
            url.set_query(None);
            url.set_fragment(None);
            let _ = url.set_username("");
            let _ = url.set_password(None);
            sanitize(url.as_str())
        }
        Err(_) => "an unparsable Location".to_owned(),
    }
}

fn path_segment(id: &str) -> String {
    // Ids are UUIDs from TLSPC; anything else is percent-encoded rather than trusted in a path.
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The first wait between an intermediate-certificate request and its first poll. Every
/// process start and every rotation waits for it before signing, and an issuance that completes
/// at once (TLSPC's built-in CA, the mock) is then seen after 10 ms instead of a tenth of a
/// second; the doubling that follows keeps a slow issuance to about one poll per interval.
const FIRST_POLL_DELAY: Duration = Duration::from_millis(10);

/// The longest wait between two polls.
const LAST_POLL_DELAY: Duration = Duration::from_secs(5);

/// The waits before each poll of a requested sub-CA: 10 ms, doubling up to 5 s (eight polls in
/// the first 2.5 s, then one every 5 s).
fn poll_delays() -> impl Iterator<Item = Duration> {
    std::iter::successors(Some(FIRST_POLL_DELAY), |d| {
        Some((*d * 2).min(LAST_POLL_DELAY))
    })
}

#[cfg(test)]
mod tests;
