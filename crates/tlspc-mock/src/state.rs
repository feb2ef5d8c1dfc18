//! The mock's state and the runtime calls of an instance (login, configuration, intermediate request/poll/usage); admin CRUD lives in `state/admin.rs`; no HTTP, file I/O only in the state-dir helpers.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use zeroize::Zeroizing;

use firefly_tlspc::wire::policy::PolicyInformation;
use firefly_tlspc::wire::{
    ExtendedConfigurationInformation, IntermediateCertificateInformation,
    IntermediateCertificateRequest, IntermediateStatus, SubCaProviderInformation, TokenResponse,
    UsageReport,
};

mod admin;
mod intermediates;

pub(crate) use admin::Kind;

use super::MockError;
use super::ca::{BuiltinCa, SignedSubCa};
use super::faults::Faults;
use super::jwt::{self, AccountKey};
use super::seed::{DISTRIBUTED_ISSUANCE_SCOPE, Seed};

/// The mock's single tenant.
pub const COMPANY_ID: &str = "5b1f8e0e-6a1c-4c55-9a57-0f1e1ea5c0de";

/// The time source of the mock (the core's one clock type); tests may inject their own.
pub type Clock = Arc<dyn firefly_core::Clock>;

/// A refusal in one of the service's three error shapes.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Token endpoint: `{"error","error_description"}`.
    OAuth {
        /// HTTP status.
        status: u16,
        /// OAuth error code.
        error: &'static str,
        /// Human-readable description.
        description: String,
    },
    /// API: `{"errors":[{"code","message","args"}]}`.
    Api {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: i32,
        /// Message.
        message: String,
    },
    /// Plain-text body (`Invalid api key`).
    PlainText {
        /// HTTP status.
        status: u16,
        /// Body.
        body: &'static str,
    },
}

pub(crate) fn api(status: u16, code: i32, message: impl Into<String>) -> Failure {
    Failure::Api {
        status,
        code,
        message: message.into(),
    }
}

/// Error codes of the `errors` body (the service's are not public; these are stable in the mock).
pub mod codes {
    /// Malformed request body or parameter.
    pub const BAD_REQUEST: i32 = 10001;
    /// Missing, unknown or expired credentials.
    pub const UNAUTHORIZED: i32 = 10002;
    /// Authenticated but not allowed.
    pub const FORBIDDEN: i32 = 10003;
    /// Object not found.
    pub const NOT_FOUND: i32 = 10004;
    /// Name taken or object in use.
    pub const CONFLICT: i32 = 10005;
    /// Policy or provider content breaks a rule.
    pub const INVALID_OBJECT: i32 = 10006;
    /// Sub-CA issuance failed.
    pub const ISSUANCE_FAILED: i32 = 10007;
    /// Injected by a fault rule.
    pub const INJECTED: i32 = 10099;
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An administrator with a valid `tppl-api-key`.
    Admin,
    /// A service account (its client ID) with a valid access token.
    Account(String),
}

struct Account {
    name: String,
    client_id: String,
    key: AccountKey,
    /// Present only for keys the mock generated.
    private_pem: Option<Zeroizing<String>>,
    scopes: Vec<String>,
    revoked: bool,
}

struct Token {
    client_id: String,
    expires_at: SystemTime,
    scopes: Vec<String>,
}

enum Outcome {
    Issued(SignedSubCa),
    Failed(String),
}

struct Intermediate {
    info: IntermediateCertificateInformation,
    client_id: String,
    polls_remaining: u32,
    outcome: Outcome,
}

/// Mutable state behind one lock; no lock is held across an `.await`.
pub(crate) struct Store {
    api_keys: Vec<Zeroizing<String>>,
    token_expires_in: u64,
    accounts: BTreeMap<String, Account>,
    providers: BTreeMap<String, SubCaProviderInformation>,
    policies: BTreeMap<String, PolicyInformation>,
    configurations: BTreeMap<String, ExtendedConfigurationInformation>,
    tokens: HashMap<String, Token>,
    used_jtis: HashMap<String, SystemTime>,
    intermediates: BTreeMap<String, Intermediate>,
    pub(crate) faults: Faults,
}

/// Everything the handlers share.
pub(crate) struct Shared {
    store: Mutex<Store>,
    pub(crate) ca: BuiltinCa,
    pub(crate) clock: Clock,
}

fn key_of(client_id: &str) -> String {
    client_id.to_ascii_lowercase()
}

fn timestamp(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Credentials of the seed's accounts, for the state dir and for tests.
pub(crate) struct AccountCredentials {
    pub(crate) client_id: String,
    pub(crate) private_pem: Option<Zeroizing<String>>,
}

impl Shared {
    /// Builds the state from a validated seed; generated account keys are loaded from or written
    /// to `state_dir/accounts/<client-id>.key`.
    pub(crate) fn from_seed(
        seed: &Seed,
        ca: BuiltinCa,
        clock: Clock,
        state_dir: Option<&Path>,
    ) -> Result<(Shared, Vec<AccountCredentials>), MockError> {
        let now = clock.now();
        let mut accounts = BTreeMap::new();
        let mut credentials = Vec::new();
        for (i, a) in seed.service_accounts.iter().enumerate() {
            let (key, private_pem) = match &a.public_key {
                Some(pem) => {
                    let key =
                        AccountKey::from_public_pem(pem).map_err(|message| MockError::Seed {
                            field: format!("serviceAccounts[{i}].publicKey"),
                            message,
                        })?;
                    (key, None)
                }
                None => {
                    let (private, public) = account_key_pair(a, state_dir)?;
                    let key = AccountKey::from_public_pem(&public).map_err(MockError::Ca)?;
                    (key, Some(private))
                }
            };
            credentials.push(AccountCredentials {
                client_id: a.client_id.clone(),
                private_pem: private_pem.clone(),
            });
            accounts.insert(
                key_of(&a.client_id),
                Account {
                    name: a.name.clone(),
                    client_id: a.client_id.clone(),
                    key,
                    private_pem,
                    scopes: a.scopes.clone(),
                    revoked: a.revoked,
                },
            );
        }
        let created = timestamp(now);
        let mut providers = BTreeMap::new();
        let mut provider_ids = HashMap::new();
        for p in &seed.sub_ca_providers {
            let id = p.id.clone().unwrap_or_else(new_id);
            provider_ids.insert(p.name.clone(), id.clone());
            providers.insert(
                id.clone(),
                SubCaProviderInformation {
                    id,
                    name: p.name.clone(),
                    ca_type: p.ca_type.clone(),
                    ca_account_id: new_id(),
                    ca_product_option_id: new_id(),
                    validity_period: p.validity_period.clone(),
                    common_name: p.common_name.clone(),
                    organization: p.organization.clone(),
                    organizational_unit: p.organizational_unit.clone(),
                    locality: p.locality.clone(),
                    state_or_province: p.state_or_province.clone(),
                    country: p.country.clone(),
                    key_algorithm: Some(p.key_algorithm),
                    pkcs11: None,
                    creation_date: Some(created.clone()),
                    modification_date: Some(created.clone()),
                },
            );
        }
        let mut policies = BTreeMap::new();
        let mut policy_ids = HashMap::new();
        for mut p in seed.parsed_policies()? {
            let id = p.id.clone().unwrap_or_else(new_id);
            policy_ids.insert(p.name.clone(), id.clone());
            p.id = Some(id.clone());
            p.company_id = Some(COMPANY_ID.to_owned());
            p.creation_date = Some(created.clone());
            p.modification_date = Some(created.clone());
            policies.insert(id, p);
        }
        let mut configurations = BTreeMap::new();
        for c in &seed.configurations {
            let id = c.id.clone().unwrap_or_else(new_id);
            let ids = |names: &[String]| -> Vec<String> {
                names
                    .iter()
                    .filter_map(|n| policy_ids.get(n).cloned())
                    .collect()
            };
            let account_ids = c
                .service_accounts
                .iter()
                .filter_map(|n| seed.service_accounts.iter().find(|a| &a.name == n))
                .map(|a| a.client_id.clone())
                .collect();
            configurations.insert(
                id.clone(),
                ExtendedConfigurationInformation {
                    id,
                    company_id: Some(COMPANY_ID.to_owned()),
                    name: c.name.clone(),
                    sub_ca_provider_id: provider_ids.get(&c.sub_ca_provider).cloned(),
                    policy_ids: ids(&c.policies),
                    service_account_ids: account_ids,
                    controller_allowed_policy_ids: ids(&c.controller_allowed_policies),
                    min_tls_version: Some("TLS13".to_owned()),
                    advanced_settings: c.advanced_settings.clone(),
                    creation_date: Some(created.clone()),
                    modification_date: Some(created.clone()),
                    ..ExtendedConfigurationInformation::default()
                },
            );
        }
        let store = Store {
            api_keys: seed
                .api_keys
                .iter()
                .map(|k| Zeroizing::new(k.key.clone()))
                .collect(),
            token_expires_in: seed.token_expires_in,
            accounts,
            providers,
            policies,
            configurations,
            tokens: HashMap::new(),
            used_jtis: HashMap::new(),
            intermediates: BTreeMap::new(),
            faults: seed.faults.clone(),
        };
        Ok((
            Shared {
                store: Mutex::new(store),
                ca,
                clock,
            },
            credentials,
        ))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave the store half-updated in a way that
        // matters for a test tool; keep serving rather than poisoning every later request.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Authenticates a caller from the API-key header and the bearer token.
    pub(crate) fn authenticate(
        &self,
        api_key: Option<&[u8]>,
        bearer: Option<&str>,
    ) -> Result<Caller, Failure> {
        let store = self.lock();
        if let Some(given) = api_key {
            return if store.api_keys.iter().any(|k| k.as_bytes() == given) {
                Ok(Caller::Admin)
            } else {
                Err(Failure::PlainText {
                    status: 401,
                    body: "Invalid api key",
                })
            };
        }
        let Some(token) = bearer else {
            return Err(api(
                401,
                codes::UNAUTHORIZED,
                "authentication required: send `Authorization: Bearer <access token>` or `tppl-api-key`",
            ));
        };
        let now = self.clock.now();
        let Some(t) = store.tokens.get(token) else {
            return Err(api(
                401,
                codes::UNAUTHORIZED,
                "access token is unknown or revoked",
            ));
        };
        if t.expires_at <= now {
            return Err(api(401, codes::UNAUTHORIZED, "access token has expired"));
        }
        let account = store.accounts.get(&key_of(&t.client_id));
        if account.is_none_or(|a| a.revoked) {
            return Err(api(401, codes::UNAUTHORIZED, "service account is revoked"));
        }
        if !t.scopes.iter().any(|s| s == DISTRIBUTED_ISSUANCE_SCOPE) {
            return Err(api(
                403,
                codes::FORBIDDEN,
                format!("service account lacks scope {DISTRIBUTED_ISSUANCE_SCOPE}"),
            ));
        }
        Ok(Caller::Account(t.client_id.clone()))
    }

    /// The JWT-bearer grant.
    pub(crate) fn exchange_token(
        &self,
        grant_type: &str,
        assertion: &str,
    ) -> Result<TokenResponse, Failure> {
        let oauth = |status, error, description: String| Failure::OAuth {
            status,
            error,
            description,
        };
        if grant_type != firefly_tlspc::wire::JWT_BEARER_GRANT {
            return Err(oauth(
                400,
                "unsupported_grant_type",
                format!(
                    "grant_type must be {}",
                    firefly_tlspc::wire::JWT_BEARER_GRANT
                ),
            ));
        }
        let refusal = |r: jwt::AssertionRefusal| oauth(r.status, r.error, r.description);
        let issuer = jwt::unverified_issuer(assertion).map_err(refusal)?;
        let now = self.clock.now();
        let mut store = self.lock();
        let Some(account) = store.accounts.get(&key_of(&issuer)) else {
            return Err(oauth(
                401,
                "invalid_client",
                format!("unknown client ID {issuer:?}"),
            ));
        };
        if account.revoked {
            return Err(oauth(
                401,
                "invalid_client",
                format!("service account {} is revoked", account.client_id),
            ));
        }
        let accepted = jwt::verify_assertion(assertion, &account.client_id, &account.key, now)
            .map_err(refusal)?;
        let scopes = account.scopes.clone();
        store.used_jtis.retain(|_, exp| *exp > now);
        if store.used_jtis.contains_key(&accepted.jti) {
            return Err(oauth(
                400,
                "invalid_grant",
                format!("assertion jti {:?} was already used", accepted.jti),
            ));
        }
        store.used_jtis.insert(accepted.jti, accepted.expires_at);
        let expires_in = store
            .faults
            .token_expires_in
            .unwrap_or(store.token_expires_in);
        store.tokens.retain(|_, t| t.expires_at > now);
        let token = random_token();
        store.tokens.insert(
            token.clone(),
            Token {
                client_id: accepted.client_id,
                expires_at: now + Duration::from_secs(expires_in),
                scopes,
            },
        );
        Ok(TokenResponse {
            access_token: token,
            token_type: "bearer".to_owned(),
            expires_in,
        })
    }

    /// `GET configurations`: all for an admin, the attached one for an account.
    pub(crate) fn list_configurations(&self, caller: &Caller) -> Result<Value, Failure> {
        let store = self.lock();
        let configurations: Vec<_> = match caller {
            Caller::Admin => store
                .configurations
                .values()
                .map(|c| store.extend(c))
                .collect(),
            Caller::Account(client_id) => {
                let c = store
                    .configuration_of(client_id)
                    .ok_or_else(|| not_attached(client_id))?;
                vec![store.extend(c)]
            }
        };
        Ok(json!({ "configurations": configurations }))
    }
}

fn owns(caller: &Caller, client_id: &str) -> bool {
    match caller {
        Caller::Admin => true,
        Caller::Account(c) => key_of(c) == key_of(client_id),
    }
}

fn not_attached(client_id: &str) -> Failure {
    api(
        404,
        codes::NOT_FOUND,
        format!("service account {client_id} is not attached to any configuration"),
    )
}

impl Store {
    fn configuration_of(&self, client_id: &str) -> Option<&ExtendedConfigurationInformation> {
        self.configurations.values().find(|c| {
            c.service_account_ids
                .iter()
                .any(|a| key_of(a) == key_of(client_id))
        })
    }

    /// A configuration with its provider and policies embedded.
    pub(super) fn extend(&self, c: &ExtendedConfigurationInformation) -> Value {
        let mut out = c.clone();
        out.sub_ca_provider = c
            .sub_ca_provider_id
            .as_ref()
            .and_then(|id| self.providers.get(id))
            .cloned();
        out.policies = c
            .policy_ids
            .iter()
            .filter_map(|id| self.policies.get(id))
            .cloned()
            .collect();
        serde_json::to_value(out).unwrap_or_default()
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| {
        api(
            400,
            codes::BAD_REQUEST,
            format!("request body does not parse: {e}"),
        )
    })
}

fn random_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Loads or generates the key pair of a seed account without a public key; returns (private, public) PEM.
fn account_key_pair(
    a: &super::seed::SeedServiceAccount,
    state_dir: Option<&Path>,
) -> Result<(Zeroizing<String>, String), MockError> {
    let path = state_dir.map(|d| {
        d.join("accounts")
            .join(format!("{}.key", key_of(&a.client_id)))
    });
    if let Some(path) = path.as_ref().filter(|p| p.exists()) {
        let private = Zeroizing::new(read_file(path)?);
        let kp = rcgen::KeyPair::from_pem(&private).map_err(|e| MockError::StateDir {
            path: path.display().to_string(),
            message: format!("not a PKCS#8 private key: {e}"),
        })?;
        return Ok((private, kp.public_key_pem()));
    }
    let alg = a
        .key_algorithm
        .unwrap_or(firefly_core::KeyAlgorithm::EcP256);
    let (private, public) = jwt::generate_account_key(alg).map_err(MockError::Ca)?;
    let private = Zeroizing::new(private);
    if let Some(path) = path {
        if let Some(parent) = path.parent() {
            create_dir(parent)?;
        }
        write_file(&path, &private, true)?;
    }
    Ok((private, public))
}

/// Parses a `validityPeriod` with the core's ISO 8601 rules (`P7D`, `PT1H`, `PT30S`; Y = 365 days,
/// M = 30 days).
///
/// # Errors
/// The core's message naming the bad value.
pub fn parse_validity(s: &str) -> Result<Duration, String> {
    firefly_core::duration::parse_iso8601_duration(s).map_err(|e| e.to_string())
}

/// Policy shape rules on create/update: [`firefly_core::policy::validate_shape`] (tlspc.md §2 plus the
/// refusal of CA-capable usages).
///
/// # Errors
/// Every violation, `field: message`, joined with `; `.
pub fn check_policy_shape(p: &PolicyInformation) -> Result<(), String> {
    firefly_core::policy::validate_shape(&p.to_policy()).map_err(|violations| {
        violations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

pub(crate) fn read_file(path: &Path) -> Result<String, MockError> {
    std::fs::read_to_string(path).map_err(|e| MockError::StateDir {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

pub(crate) fn create_dir(path: &Path) -> Result<(), MockError> {
    std::fs::create_dir_all(path).map_err(|e| MockError::StateDir {
        path: path.display().to_string(),
        message: format!("cannot create directory: {e}"),
    })
}

/// Writes a file atomically (temp file + rename); `secret` files get mode 0600.
pub(crate) fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), MockError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| MockError::StateDir {
        path: path.display().to_string(),
        message: format!("cannot write: {e}"),
    };
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(err)?;
    f.write_all(contents.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use firefly_tlspc::wire::policy::{PropertyInformation, PropertyType};

    #[test]
    fn forbidden_property_with_values_breaks_the_shape() {
        let mut p = PolicyInformation {
            name: "x".into(),
            validity_period: Some("PT1H".into()),
            ..PolicyInformation::default()
        };
        p.sans.ip_addresses = Some(PropertyInformation {
            kind: Some(PropertyType::Forbidden),
            allowed_values: vec![".*".into()],
            ..PropertyInformation::default()
        });
        let err = check_policy_shape(&p).unwrap_err();
        assert!(err.contains("sans.ipAddresses"), "{err}");
    }
}
