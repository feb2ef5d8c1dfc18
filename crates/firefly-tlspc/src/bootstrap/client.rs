//! The TLSPC HTTP client: service-account login, token cache, retries, and error bodies turned into actionable errors.
//!
//! It never puts a token, a key or a raw response body into an error or a log line: upstream
//! bodies are reduced to the fields of the three documented error shapes (or a short,
//! sanitized line of plain text).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use rand::Rng as _;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::Clock;
use crate::wire::{
    self, ConfigurationResponse, ErrorResponse, ExtendedConfigurationInformation,
    IntermediateCertificateInformation, IntermediateCertificateRequest, IntermediateStatus,
    OAuthError, TokenResponse, UsageReport,
};

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
const MAX_TEXT_DETAIL: usize = 160;

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
fn sanitize(text: &str) -> String {
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
    let mut line = words.join(" ");
    if line.len() > MAX_TEXT_DETAIL {
        let mut cut = MAX_TEXT_DETAIL;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
}

/// A service-account private key, ready to sign login JWTs. `Debug` prints a placeholder.
pub struct ServiceAccountKey {
    algorithm: jsonwebtoken::Algorithm,
    key: jsonwebtoken::EncodingKey,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceAccountKey({:?}, <redacted>)", self.algorithm)
    }
}

impl ServiceAccountKey {
    /// Reads a PEM key file (`PRIVATE KEY`, `EC PRIVATE KEY` or `RSA PRIVATE KEY`).
    ///
    /// # Errors
    /// [`ClientError::ReadKey`] or [`ClientError::BadKey`] naming the file and the problem.
    pub fn load(path: &Path) -> Result<ServiceAccountKey, ClientError> {
        let text = Zeroizing::new(std::fs::read(path).map_err(|source| ClientError::ReadKey {
            path: path.to_path_buf(),
            source,
        })?);
        Self::from_pem(&text).map_err(|reason| ClientError::BadKey {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        })
    }

    /// Parses a PEM private key and picks the JWT algorithm from it (RS256, ES256, ES384, EdDSA).
    ///
    /// # Errors
    /// A short reason (never key material) when the PEM is not a supported private key.
    pub fn from_pem(pem_text: &[u8]) -> Result<ServiceAccountKey, &'static str> {
        let block = pem::parse(pem_text).map_err(|_| "not a PEM private key")?;
        let der = Zeroizing::new(block.contents().to_vec());
        use jsonwebtoken::{Algorithm, EncodingKey};
        match block.tag() {
            "PRIVATE KEY" => {
                if EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                    .is_ok()
                {
                    Ok(Self {
                        algorithm: Algorithm::ES256,
                        key: EncodingKey::from_ec_der(&der),
                    })
                } else if EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                    &der,
                )
                .is_ok()
                {
                    Ok(Self {
                        algorithm: Algorithm::ES384,
                        key: EncodingKey::from_ec_der(&der),
                    })
                } else if Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).is_ok() {
                    Ok(Self {
                        algorithm: Algorithm::EdDSA,
                        key: EncodingKey::from_ed_der(&der),
                    })
                } else if let Ok(pair) = RsaKeyPair::from_pkcs8(&der) {
                    Self::rsa(&pair)
                } else {
                    Err("PKCS#8 key is not RSA, EC P-256/P-384 or Ed25519")
                }
            }
            "EC PRIVATE KEY" => {
                // jsonwebtoken reads EC keys as PKCS#8 only: convert SEC1 through aws-lc-rs.
                for (alg, jwt) in [
                    (
                        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                        Algorithm::ES256,
                    ),
                    (
                        &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                        Algorithm::ES384,
                    ),
                ] {
                    if let Ok(pair) = EcdsaKeyPair::from_private_key_der(alg, &der) {
                        let pkcs8 = pair
                            .to_pkcs8v1()
                            .map_err(|_| "cannot convert the EC key to PKCS#8")?;
                        return Ok(Self {
                            algorithm: jwt,
                            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
                        });
                    }
                }
                Err("EC key is not on P-256 or P-384")
            }
            "RSA PRIVATE KEY" => {
                let pair =
                    RsaKeyPair::from_der(&der).map_err(|_| "not a valid PKCS#1 RSA private key")?;
                Self::rsa(&pair)
            }
            "ENCRYPTED PRIVATE KEY" => {
                Err("encrypted keys are not supported: provide an unencrypted PKCS#8 key")
            }
            _ => Err("PEM label must be PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY"),
        }
    }

    fn rsa(pair: &RsaKeyPair) -> Result<ServiceAccountKey, &'static str> {
        if pair.public_modulus_len() < 256 {
            return Err("RSA keys must have at least 2048 bits");
        }
        // jsonwebtoken's aws-lc backend signs with PKCS#1; its PEM reader unwraps PKCS#8 for us.
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(pair)
            .map_err(|_| "cannot encode the RSA key")?;
        let pem_text = Zeroizing::new(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            pkcs8.as_ref().to_vec(),
        )));
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem_text.as_bytes())
            .map_err(|_| "cannot load the RSA key")?;
        Ok(Self {
            algorithm: jsonwebtoken::Algorithm::RS256,
            key,
        })
    }

    /// The JWT algorithm this key signs with.
    pub fn algorithm(&self) -> jsonwebtoken::Algorithm {
        self.algorithm
    }

    /// Mints the login assertion for `client_id` at `now`.
    ///
    /// # Errors
    /// A short reason when signing fails.
    pub fn mint_assertion(
        &self,
        client_id: &str,
        now: SystemTime,
    ) -> Result<Zeroizing<String>, &'static str> {
        let iat = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| "clock before 1970")?
            .as_secs();
        let claims = AssertionClaims {
            iss: client_id,
            sub: client_id,
            aud: tlspc::TOKEN_AUDIENCE,
            iat,
            exp: iat + ASSERTION_LIFETIME.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let header = jsonwebtoken::Header::new(self.algorithm);
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map(Zeroizing::new)
            .map_err(|_| "JWT signing failed")
    }
}

/// Lifetime of the login assertion: short, inside the contract's 1–30 min.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(5 * 60);

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

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

struct CachedToken {
    token: Zeroizing<String>,
    refresh_at: SystemTime,
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
    /// [`ClientError::NoConfiguration`] when the account is detached; others as for any call.
    pub async fn configuration(&self) -> Result<ExtendedConfigurationInformation, ClientError> {
        let result: Result<ConfigurationResponse, ClientError> = self
            .call(
                "configuration fetch",
                Method::GET,
                tlspc::paths::CONFIGURATIONS.to_string(),
                None::<&()>,
            )
            .await;
        let response = match result {
            Err(ClientError::Status { status: 404, .. }) => {
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
            tlspc::paths::INTERMEDIATE_CERTIFICATES.to_string(),
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
            tlspc::paths::INTERMEDIATE_CERTIFICATES,
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

    /// Polls `id` until ISSUED, FAILED, or `deadline` passes; transient poll failures are retried.
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
        let mut delay = Duration::from_millis(100);
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
            if started.elapsed() + delay > deadline {
                return Err(ClientError::IssuanceDeadline {
                    id: current.id,
                    deadline,
                    last_problem,
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
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
            tlspc::paths::INTERMEDIATE_CERTIFICATES,
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
                .bearer_auth(token.as_str());
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
                    let err = ClientError::Status {
                        endpoint,
                        status: status.as_u16(),
                        detail: parse_error_body(&bytes),
                        hint: status_hint(endpoint, status.as_u16()),
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
            let mut body = Vec::new();
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
    async fn bearer(&self, force: bool) -> Result<Zeroizing<String>, ClientError> {
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
        let url = format!("{}{}", self.settings.base_url, tlspc::paths::TOKEN);
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
                ("grant_type", tlspc::JWT_BEARER_GRANT),
                ("assertion", assertion.as_str()),
            ];
            let request = self.http.post(&url).form(&form);
            let err = match self.send(endpoint, request).await {
                Ok((status, bytes)) if status.is_success() => {
                    let parsed: TokenResponse =
                        serde_json::from_slice(&bytes).map_err(|e| ClientError::Malformed {
                            endpoint,
                            what: e.to_string(),
                        })?;
                    let token = Zeroizing::new(parsed.access_token);
                    let lifetime = Duration::from_secs(parsed.expires_in);
                    let margin = (lifetime / 2).min(Duration::from_secs(60));
                    return Ok(CachedToken {
                        token,
                        refresh_at: issued_at + lifetime.saturating_sub(margin),
                    });
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

fn status_hint(endpoint: &str, status: u16) -> &'static str {
    match status {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_shape_becomes_code_and_message() {
        let d = parse_error_body(
            br#"{"errors":[{"code":10051,"message":"Service account not attached","args":[]}]}"#,
        );
        assert_eq!(
            d,
            UpstreamDetail::Api {
                code: 10051,
                message: "Service account not attached".into()
            }
        );
    }

    #[test]
    fn oauth_error_shape_becomes_error_and_description() {
        let d = parse_error_body(
            br#"{"error":"invalid_grant","error_description":"token_signature_verification_error"}"#,
        );
        assert_eq!(
            d,
            UpstreamDetail::OAuth {
                error: "invalid_grant".into(),
                description: "token_signature_verification_error".into()
            }
        );
        assert!(login_hint(&d, 400).contains("privateKeyFile is not the key"));
    }

    #[test]
    fn plain_text_empty_html_and_junk_bodies_are_described_not_dumped() {
        assert_eq!(
            parse_error_body(b"Invalid api key"),
            UpstreamDetail::Text("Invalid api key".into())
        );
        assert_eq!(parse_error_body(b"  \n"), UpstreamDetail::Empty);
        assert_eq!(
            parse_error_body(b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>"),
            UpstreamDetail::Html
        );
        assert_eq!(
            parse_error_body(b"{\"unexpected\": true}"),
            UpstreamDetail::Unrecognized { len: 20 }
        );
        assert_eq!(
            parse_error_body(&[0xff, 0xfe, 0x00]),
            UpstreamDetail::Unrecognized { len: 3 }
        );
    }

    #[test]
    fn echoed_token_like_words_are_elided_and_long_text_truncated() {
        let token = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl";
        let d = parse_error_body(format!("bad token {token}").as_bytes());
        assert!(!d.to_string().contains(token), "{d}");
        let long = "word ".repeat(100);
        let UpstreamDetail::Text(text) = parse_error_body(long.as_bytes()) else {
            panic!()
        };
        assert!(text.len() <= MAX_TEXT_DETAIL + '…'.len_utf8());
    }

    #[test]
    fn backoff_stays_within_jitter_bounds_and_cap() {
        let policy = RetryPolicy::default();
        for attempt in 0..10 {
            let wait = policy.backoff(attempt);
            let full = policy
                .base
                .saturating_mul(2u32.saturating_pow(attempt))
                .min(policy.cap);
            assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
        }
    }

    #[test]
    fn sec1_p256_key_is_converted_and_signs_es256() {
        let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let sec1 = pair.private_key().as_der().unwrap();
        let pem_text = pem::encode(&pem::Pem::new("EC PRIVATE KEY", sec1.as_ref().to_vec()));
        let key = ServiceAccountKey::from_pem(pem_text.as_bytes()).unwrap();
        assert_eq!(key.algorithm(), jsonwebtoken::Algorithm::ES256);
        let jwt = key.mint_assertion("client", SystemTime::now()).unwrap();
        assert_eq!(jwt.split('.').count(), 3);
        assert!(!format!("{key:?}").contains(&pem_text[40..80]));
    }

    #[test]
    fn unsupported_pem_labels_are_refused_by_name() {
        let err = ServiceAccountKey::from_pem(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap_err();
        assert!(err.contains("PEM label"), "{err}");
        assert!(ServiceAccountKey::from_pem(b"garbage").is_err());
    }

    #[test]
    fn odd_ids_are_percent_encoded_in_paths() {
        assert_eq!(path_segment("a/../b"), "a%2F%2E%2E%2Fb");
        assert_eq!(path_segment("0f8e-11"), "0f8e-11");
    }
}
