//! The admin side of the mock's state: CRUD of policies, sub-CA providers and configurations, and the mock-only knobs (faults, token and account revocation); no HTTP.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use zeroize::Zeroizing;

use firefly_tlspc::wire::policy::PolicyInformation;
use firefly_tlspc::wire::{ExtendedConfigurationInformation, SubCaProviderInformation};

use super::{
    COMPANY_ID, Failure, Shared, Store, api, check_policy_shape, codes, key_of, new_id, parse_json,
    parse_validity, timestamp,
};
use crate::faults::Faults;

impl Shared {
    // ---- admin CRUD ----

    /// Lists objects of one kind.
    pub(crate) fn admin_list(&self, kind: Kind) -> Value {
        let store = self.lock();
        match kind {
            Kind::Policy => {
                json!({ "policies": store.policies.values().map(|p| store.extend_policy(p)).collect::<Vec<_>>() })
            }
            Kind::Provider => {
                json!({ "subCaProviders": store.providers.values().collect::<Vec<_>>() })
            }
            Kind::Configuration => {
                json!({ "configurations": store.configurations.values().map(|c| store.extend(c)).collect::<Vec<_>>() })
            }
        }
    }

    /// Reads one object.
    pub(crate) fn admin_get(&self, kind: Kind, id: &str) -> Result<Value, Failure> {
        let store = self.lock();
        let found = match kind {
            Kind::Policy => store.policies.get(id).map(|p| store.extend_policy(p)),
            Kind::Provider => store
                .providers
                .get(id)
                .and_then(|p| serde_json::to_value(p).ok()),
            Kind::Configuration => store.configurations.get(id).map(|c| store.extend(c)),
        };
        found.ok_or_else(|| kind.not_found(id))
    }

    /// Creates (`id` None) or patches (`id` Some) one object; the merged result is validated.
    pub(crate) fn admin_upsert(
        &self,
        kind: Kind,
        id: Option<&str>,
        body: &[u8],
    ) -> Result<Value, Failure> {
        let patch = parse_json_object(body)?;
        let now = timestamp(self.clock.now());
        let mut store = self.lock();
        let mut merged = match id {
            None => json!({}),
            Some(id) => store.raw(kind, id).ok_or_else(|| kind.not_found(id))?,
        };
        if let Some(obj) = merged.as_object_mut() {
            for (k, v) in &patch {
                if READ_ONLY_KEYS.contains(&k.as_str()) {
                    continue;
                }
                if !kind.writable_keys().contains(&k.as_str()) {
                    return Err(api(
                        400,
                        codes::BAD_REQUEST,
                        format!(
                            "unknown {} field {k:?}; expected one of {}",
                            kind.label(),
                            kind.writable_keys().join(", ")
                        ),
                    ));
                }
                obj.insert(k.clone(), v.clone());
            }
        }
        let new_id = id.map(str::to_owned).unwrap_or_else(new_id);
        let invalid = |m: String| api(400, codes::INVALID_OBJECT, m);
        match kind {
            Kind::Policy => {
                let mut p: PolicyInformation = serde_json::from_value(merged)
                    .map_err(|e| invalid(format!("policy does not parse: {e}")))?;
                check_name("name", &p.name).map_err(invalid)?;
                check_policy_shape(&p).map_err(invalid)?;
                p.id = Some(new_id.clone());
                p.company_id = Some(COMPANY_ID.to_owned());
                put(&mut store.policies, &new_id, p, now, kind)?;
            }
            Kind::Provider => {
                let mut p: SubCaProviderInformation = serde_json::from_value(merged)
                    .map_err(|e| invalid(format!("sub-CA provider does not parse: {e}")))?;
                check_name("name", &p.name).map_err(invalid)?;
                check_name("commonName", &p.common_name).map_err(invalid)?;
                if p.ca_type != "BUILTIN" {
                    return Err(invalid(format!(
                        "caType {:?}: the mock serves only BUILTIN",
                        p.ca_type
                    )));
                }
                parse_validity(&p.validity_period)
                    .map_err(|m| invalid(format!("validityPeriod: {m}")))?;
                match p.key_algorithm {
                    Some(a) if crate::ca::supports_sub_ca_algorithm(a) => {}
                    Some(a) => {
                        return Err(invalid(format!(
                            "keyAlgorithm {a} is not supported for sub-CAs"
                        )));
                    }
                    None => return Err(invalid("keyAlgorithm is required".into())),
                }
                p.id = new_id.clone();
                put(&mut store.providers, &new_id, p, now, kind)?;
            }
            Kind::Configuration => {
                let mut c: ExtendedConfigurationInformation = serde_json::from_value(merged)
                    .map_err(|e| invalid(format!("configuration does not parse: {e}")))?;
                c.sub_ca_provider = None;
                c.policies = Vec::new();
                check_name("name", &c.name).map_err(invalid)?;
                match &c.sub_ca_provider_id {
                    Some(p) if store.providers.contains_key(p) => {}
                    other => {
                        return Err(unknown_reference(format!(
                            "subCaProviderId {other:?} names no sub-CA provider"
                        )));
                    }
                }
                for p in &c.policy_ids {
                    if !store.policies.contains_key(p) {
                        return Err(unknown_reference(format!(
                            "policyIds: {p:?} names no policy"
                        )));
                    }
                }
                for p in &c.controller_allowed_policy_ids {
                    if !c.policy_ids.contains(p) {
                        return Err(invalid(format!(
                            "controllerAllowedPolicyIds: {p:?} is not in policyIds"
                        )));
                    }
                }
                for a in &c.service_account_ids {
                    if !store.accounts.contains_key(&key_of(a)) {
                        return Err(unknown_reference(format!(
                            "serviceAccountIds: {a:?} names no service account"
                        )));
                    }
                    let elsewhere = store.configurations.values().find(|o| {
                        o.id != new_id
                            && o.service_account_ids.iter().any(|x| key_of(x) == key_of(a))
                    });
                    if let Some(o) = elsewhere {
                        return Err(api(
                            409,
                            codes::CONFLICT,
                            format!(
                                "service account {a} is already attached to configuration {:?}",
                                o.name
                            ),
                        ));
                    }
                }
                c.id = new_id.clone();
                c.company_id = Some(COMPANY_ID.to_owned());
                put(&mut store.configurations, &new_id, c, now, kind)?;
            }
        }
        drop(store);
        self.admin_get(kind, &new_id)
    }

    /// Deletes one object; refuses while a configuration refers to it.
    pub(crate) fn admin_delete(&self, kind: Kind, id: &str) -> Result<Value, Failure> {
        let mut store = self.lock();
        let in_use = match kind {
            Kind::Policy => store
                .configurations
                .values()
                .find(|c| c.policy_ids.iter().any(|p| p == id)),
            Kind::Provider => store
                .configurations
                .values()
                .find(|c| c.sub_ca_provider_id.as_deref() == Some(id)),
            Kind::Configuration => None,
        };
        if let Some(c) = in_use {
            return Err(api(
                409,
                codes::CONFLICT,
                format!(
                    "{} {id} is used by configuration {:?}",
                    kind.label(),
                    c.name
                ),
            ));
        }
        let name = match kind {
            Kind::Policy => store.policies.remove(id).map(|p| p.name),
            Kind::Provider => store.providers.remove(id).map(|p| p.name),
            Kind::Configuration => store.configurations.remove(id).map(|c| c.name),
        };
        let name = name.ok_or_else(|| kind.not_found(id))?;
        Ok(json!({ "id": id, "name": name }))
    }

    // ---- mock-only admin ----

    /// Current faults.
    pub(crate) fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// Replaces the faults.
    pub(crate) fn set_faults(&self, body: &[u8]) -> Result<Faults, Failure> {
        let faults: Faults = parse_json(body)?;
        faults
            .validate()
            .map_err(|m| api(400, codes::BAD_REQUEST, m))?;
        self.lock().faults = faults.clone();
        Ok(faults)
    }

    /// Merges the top-level fields of `body` into the current faults (`null` resets a field).
    pub(crate) fn patch_faults(&self, body: &[u8]) -> Result<Faults, Failure> {
        let patch = parse_json_object(body)?;
        let mut store = self.lock();
        let mut merged = serde_json::to_value(&store.faults).unwrap_or_default();
        if let Some(obj) = merged.as_object_mut() {
            for (k, v) in &patch {
                if v.is_null() {
                    obj.remove(k);
                } else {
                    obj.insert(k.clone(), v.clone());
                }
            }
        }
        let faults: Faults = serde_json::from_value(merged)
            .map_err(|e| api(400, codes::BAD_REQUEST, format!("faults do not parse: {e}")))?;
        faults
            .validate()
            .map_err(|m| api(400, codes::BAD_REQUEST, m))?;
        store.faults = faults.clone();
        Ok(faults)
    }

    /// Revokes access tokens: every token, or those of one client ID.
    pub(crate) fn revoke_tokens(&self, client_id: Option<&str>) -> usize {
        let mut store = self.lock();
        let before = store.tokens.len();
        store
            .tokens
            .retain(|_, t| client_id.is_some_and(|c| key_of(c) != key_of(&t.client_id)));
        before - store.tokens.len()
    }

    /// Revokes or restores a service account.
    pub(crate) fn set_account_revoked(
        &self,
        client_id: &str,
        revoked: bool,
    ) -> Result<Value, Failure> {
        let mut store = self.lock();
        let account = store.accounts.get_mut(&key_of(client_id)).ok_or_else(|| {
            api(
                404,
                codes::NOT_FOUND,
                format!("service account {client_id:?} not found"),
            )
        })?;
        account.revoked = revoked;
        Ok(json!({"clientId": account.client_id, "name": account.name, "revoked": revoked}))
    }

    /// Lists service accounts (never their keys' private halves).
    pub(crate) fn list_accounts(&self) -> Value {
        let store = self.lock();
        let accounts: Vec<_> = store
            .accounts
            .values()
            .map(|a| {
                json!({
                    "id": a.client_id, "clientId": a.client_id, "name": a.name, "scopes": a.scopes,
                    "revoked": a.revoked, "publicKey": a.key.public_pem, "generatedKey": a.private_pem.is_some(),
                })
            })
            .collect();
        json!({ "serviceAccounts": accounts })
    }

    /// The generated private key of an account, for tests.
    pub(crate) fn account_private_pem(&self, client_id: &str) -> Option<Zeroizing<String>> {
        self.lock()
            .accounts
            .get(&key_of(client_id))
            .and_then(|a| a.private_pem.clone())
    }

    /// The first API key, for tests and the demo.
    pub(crate) fn first_api_key(&self) -> Zeroizing<String> {
        self.lock().api_keys.first().cloned().unwrap_or_default()
    }
}

/// Object kinds of the admin CRUD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Policy,
    Provider,
    Configuration,
}

/// Server-managed fields: accepted in create/update bodies (a GET-modify-PATCH round trip) and ignored.
const READ_ONLY_KEYS: &[&str] = &[
    "id",
    "companyId",
    "creationDate",
    "modificationDate",
    "configurations",
    "subCaProvider",
    "policies",
    "longLivedCertCount",
    "shortLivedCertCount",
    "ultraShortLivedCertCount",
];

/// The OpenAPI document caps names and common names at 64 characters.
const MAX_NAME_LEN: usize = 64;

fn check_name(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    let len = value.chars().count();
    if len > MAX_NAME_LEN {
        return Err(format!(
            "{field} is {len} characters long; at most {MAX_NAME_LEN} are allowed"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field} {value:?} contains control characters"));
    }
    Ok(())
}

/// A request body that must be a JSON object (400 otherwise).
fn parse_json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, Failure> {
    match parse_json(body)? {
        Value::Object(map) => Ok(map),
        _ => Err(api(
            400,
            codes::BAD_REQUEST,
            "request body must be a JSON object",
        )),
    }
}

/// Fields a sub-CA provider's create/update body may set: its own, then the subject attributes
/// of the sub-CAs it issues (the keys a policy's `subject` has).
const PROVIDER_KEYS: [&str; 13] = crate::seed::concat_keys(&[
    &[
        "name",
        "caType",
        "caAccountId",
        "caProductOptionId",
        "validityPeriod",
    ],
    crate::seed::SUBJECT_KEYS,
    &["keyAlgorithm", "pkcs11"],
]);

/// The fields the admin API manages on every kind it stores.
trait Stored {
    fn name(&self) -> &str;
    fn creation_date(&self) -> Option<&String>;
    fn stamp(&mut self, created: Option<String>, modified: String);
}

macro_rules! stored {
    ($($t:ty),*) => {$(
        impl Stored for $t {
            fn name(&self) -> &str {
                &self.name
            }
            fn creation_date(&self) -> Option<&String> {
                self.creation_date.as_ref()
            }
            fn stamp(&mut self, created: Option<String>, modified: String) {
                self.creation_date = created;
                self.modification_date = Some(modified);
            }
        }
    )*};
}
stored!(
    PolicyInformation,
    SubCaProviderInformation,
    ExtendedConfigurationInformation
);

/// Stores `obj` under `id`: refuses a name another object of its kind holds (409), keeps the
/// creation date of the object it replaces (`now` for a new one) and sets the modification date.
fn put<T: Stored>(
    objects: &mut BTreeMap<String, T>,
    id: &str,
    mut obj: T,
    now: String,
    kind: Kind,
) -> Result<(), Failure> {
    let mut created = None;
    for (other_id, other) in objects.iter() {
        if other_id == id {
            created = other.creation_date().cloned();
        } else if other.name() == obj.name() {
            return Err(api(
                409,
                codes::CONFLICT,
                format!("a {} named {:?} already exists", kind.label(), obj.name()),
            ));
        }
    }
    obj.stamp(created.or_else(|| Some(now.clone())), now);
    objects.insert(id.to_owned(), obj);
    Ok(())
}

impl Kind {
    /// Fields a create/update body may set.
    fn writable_keys(self) -> &'static [&'static str] {
        match self {
            Kind::Policy => crate::seed::POLICY_KEYS,
            Kind::Provider => &PROVIDER_KEYS,
            Kind::Configuration => &[
                "name",
                "subCaProviderId",
                "policyIds",
                "serviceAccountIds",
                "controllerAllowedPolicyIds",
                "minTlsVersion",
                "clientAuthentication",
                "clientAuthorization",
                "cloudProviders",
                "advancedSettings",
            ],
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Policy => "policy",
            Kind::Provider => "sub-CA provider",
            Kind::Configuration => "configuration",
        }
    }

    fn not_found(self, id: &str) -> Failure {
        api(
            404,
            codes::NOT_FOUND,
            format!("{} {id:?} not found", self.label()),
        )
    }
}

impl Store {
    /// A policy with the configurations using it (`ExtendedPolicyInformation`).
    fn extend_policy(&self, p: &PolicyInformation) -> Value {
        let mut v = serde_json::to_value(p).unwrap_or_default();
        let users: Vec<_> = self
            .configurations
            .values()
            .filter(|c| p.id.as_ref().is_some_and(|id| c.policy_ids.contains(id)))
            .map(|c| json!({"id": c.id, "name": c.name}))
            .collect();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("configurations".into(), Value::Array(users));
        }
        v
    }

    fn raw(&self, kind: Kind, id: &str) -> Option<Value> {
        match kind {
            Kind::Policy => self
                .policies
                .get(id)
                .and_then(|p| serde_json::to_value(p).ok()),
            Kind::Provider => self
                .providers
                .get(id)
                .and_then(|p| serde_json::to_value(p).ok()),
            Kind::Configuration => self
                .configurations
                .get(id)
                .and_then(|c| serde_json::to_value(c).ok()),
        }
    }
}

/// A configuration names an object that does not exist: TLSPC answers 400 with the not-found code.
fn unknown_reference(message: String) -> Failure {
    api(400, codes::NOT_FOUND, message)
}
