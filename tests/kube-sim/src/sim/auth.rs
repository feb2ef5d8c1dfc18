//! Authentication: static bearer tokens (kube-apiserver's `--token-auth-file` CSV), ServiceAccount
//! tokens (harness call and TokenRequest), anonymous requests and the no-authentication admin; plus
//! the emulation of cert-manager's identity webhook on CertificateRequests.

use super::status::ApiError;
use super::store::{Store, WriteOpts};
use parking_lot::RwLock;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Group of the all-powerful admin (RBAC is not evaluated for it).
pub const MASTERS: &str = "system:masters";
/// Group every authenticated caller is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// Group of requests without credentials.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// Username of requests without credentials.
pub const ANONYMOUS: &str = "system:anonymous";
/// Username of the admin of the kubeconfig.
pub const ADMIN: &str = "kubernetes-admin";

/// Who a request comes from, as kube-apiserver's authenticators report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Username (`system:serviceaccount:ns:name`, `system:node:n`, …).
    pub user: String,
    /// UID (may be empty).
    pub uid: String,
    /// Groups, `system:authenticated` included for authenticated callers.
    pub groups: Vec<String>,
    /// Extra attributes.
    pub extra: BTreeMap<String, Vec<String>>,
    /// Authorized for everything without RBAC: the legacy `SimOptions::tokens` users.
    pub unrestricted: bool,
}

impl Identity {
    /// The admin (`kubernetes-admin` in `system:masters`).
    pub fn admin() -> Self {
        Identity {
            user: ADMIN.into(),
            uid: String::new(),
            groups: vec![MASTERS.into(), AUTHENTICATED.into()],
            extra: BTreeMap::new(),
            unrestricted: false,
        }
    }

    /// `system:anonymous` in `system:unauthenticated`.
    pub fn anonymous() -> Self {
        Identity {
            user: ANONYMOUS.into(),
            uid: String::new(),
            groups: vec![UNAUTHENTICATED.into()],
            extra: BTreeMap::new(),
            unrestricted: false,
        }
    }

    /// The identity of ServiceAccount `ns/name` with `uid`.
    pub fn service_account(ns: &str, name: &str, uid: &str) -> Self {
        Identity {
            user: format!("system:serviceaccount:{ns}:{name}"),
            uid: uid.into(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                AUTHENTICATED.into(),
            ],
            extra: BTreeMap::new(),
            unrestricted: false,
        }
    }

    /// In `system:masters` (RBAC is not evaluated, CertificateRequest identity fields are kept).
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }

    /// Whether every request is allowed without looking at RBAC.
    pub fn bypasses_rbac(&self) -> bool {
        self.unrestricted || self.is_master()
    }

    /// The node name when the caller is a node (`system:node:<n>` in `system:nodes`).
    pub fn node_name(&self) -> Option<&str> {
        if !self.groups.iter().any(|g| g == "system:nodes") {
            return None;
        }
        self.user
            .strip_prefix("system:node:")
            .filter(|n| !n.is_empty())
    }

    /// `{username, uid, groups, extra}` as the authentication API renders `UserInfo`.
    pub fn user_info(&self) -> Value {
        let mut v = json!({"username": self.user, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        if !self.extra.is_empty() {
            v["extra"] = json!(self.extra);
        }
        v
    }
}

/// One line of a token file: `token,user,uid,"group1,group2"`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenUser {
    /// The bearer token.
    pub token: String,
    /// Username.
    pub user: String,
    /// UID.
    pub uid: String,
    /// Groups (`system:authenticated` is added by the server).
    pub groups: Vec<String>,
}

impl TokenUser {
    /// A token for `user` in `groups` (uid = the username).
    pub fn new(token: &str, user: &str, groups: &[&str]) -> Self {
        TokenUser {
            token: token.into(),
            user: user.into(),
            uid: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// Parse kube-apiserver's token file (CSV: `token,user,uid[,"group1,group2"]`; blank lines
    /// are skipped; a later duplicate token replaces an earlier one, as kube-apiserver does).
    ///
    /// # Errors
    /// A line with fewer than 3 columns, an empty token or user, or an unterminated quote; the
    /// error names the line.
    pub fn parse_csv(text: &str) -> anyhow::Result<Vec<TokenUser>> {
        let mut out: Vec<TokenUser> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let rec = split_csv(line).map_err(|e| anyhow::anyhow!("token file line {n}: {e}"))?;
            anyhow::ensure!(
                rec.len() >= 3,
                "token file line {n}: must have at least 3 columns (token, user name, unique user ID), found {}",
                rec.len()
            );
            anyhow::ensure!(
                !rec[0].is_empty(),
                "token file line {n}: the token is empty"
            );
            anyhow::ensure!(
                !rec[1].is_empty(),
                "token file line {n}: the user name is empty"
            );
            let groups = rec
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let u = TokenUser {
                token: rec[0].clone(),
                user: rec[1].clone(),
                uid: rec[2].clone(),
                groups,
            };
            out.retain(|o| o.token != u.token);
            out.push(u);
        }
        Ok(out)
    }
}

/// Split one CSV record (RFC 4180 quotes, leading spaces of a field trimmed as Go's
/// `TrimLeadingSpace`).
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("unterminated quoted field".into()),
                }
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => out.push(field),
                Some(c) => return Err(format!("unexpected {c:?} after a quoted field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        out.push(field.trim_end_matches('\r').to_string());
                        return Ok(out);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            out.push(field);
        }
    }
}

/// A minted ServiceAccount token.
#[derive(Debug, Clone)]
struct SaToken {
    namespace: String,
    name: String,
    uid: String,
    expires: Option<jiff::Timestamp>,
}

/// The authenticator of one server.
#[derive(Debug)]
pub struct Authn {
    /// Whether requests are authenticated at all (false: everyone is the admin).
    pub enabled: bool,
    /// Whether a request without credentials is `system:anonymous` (else 401).
    anonymous: bool,
    statics: HashMap<String, Arc<Identity>>,
    sa: RwLock<HashMap<String, SaToken>>,
    minted: RwLock<HashMap<String, Arc<Identity>>>,
    admin: Arc<Identity>,
    anon: Arc<Identity>,
    /// The admin's token (in the kubeconfig) when authentication is on.
    pub admin_token: Option<String>,
}

impl Authn {
    /// No authentication, or: `users` (token file) plus the admin token, and the legacy tokens
    /// (authorized for everything) when given.
    pub fn new(enabled: bool, users: &[TokenUser], legacy: &[(String, String)]) -> Self {
        let mut statics = HashMap::new();
        for (t, u) in legacy {
            statics.insert(
                t.clone(),
                Arc::new(Identity {
                    user: u.clone(),
                    uid: String::new(),
                    groups: vec![AUTHENTICATED.into()],
                    extra: BTreeMap::new(),
                    unrestricted: true,
                }),
            );
        }
        let admin_token = enabled.then(|| format!("kube-sim-admin.{}", uuid::Uuid::new_v4()));
        for u in users {
            let mut groups = u.groups.clone();
            if !groups.iter().any(|g| g == AUTHENTICATED) {
                groups.push(AUTHENTICATED.into());
            }
            statics.insert(
                u.token.clone(),
                Arc::new(Identity {
                    user: u.user.clone(),
                    uid: u.uid.clone(),
                    groups,
                    extra: BTreeMap::new(),
                    unrestricted: false,
                }),
            );
        }
        if let Some(t) = &admin_token {
            statics.insert(t.clone(), Arc::new(Identity::admin()));
        }
        Authn {
            enabled: enabled || !legacy.is_empty(),
            anonymous: enabled,
            statics,
            sa: RwLock::new(HashMap::new()),
            minted: RwLock::new(HashMap::new()),
            admin: Arc::new(Identity::admin()),
            anon: Arc::new(Identity::anonymous()),
            admin_token,
        }
    }

    /// Who sent `authorization` (the header value); 401 for an unknown token.
    ///
    /// # Errors
    /// 401 Unauthorized.
    pub fn authenticate(
        &self,
        store: &Store,
        authorization: Option<&str>,
    ) -> Result<Arc<Identity>, ApiError> {
        if !self.enabled {
            return Ok(self.admin.clone());
        }
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            return if self.anonymous {
                Ok(self.anon.clone())
            } else {
                Err(unauthorized())
            };
        };
        if let Some(i) = self.statics.get(token) {
            return Ok(i.clone());
        }
        if let Some(i) = self.minted.read().get(token) {
            return Ok(i.clone());
        }
        let sa = self.sa.read().get(token).cloned();
        if let Some(sa) = sa {
            if sa.expires.is_some_and(|e| e <= jiff::Timestamp::now()) {
                return Err(unauthorized());
            }
            // A token stops working when its ServiceAccount is deleted (or re-created).
            let current_uid = store
                .lookup("", "v1", "serviceaccounts")
                .and_then(|d| store.get_value(&d, &sa.namespace, &sa.name))
                .and_then(|v| {
                    v.pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                });
            if current_uid.as_deref() != Some(sa.uid.as_str()) {
                return Err(unauthorized());
            }
            return Ok(Arc::new(Identity::service_account(
                &sa.namespace,
                &sa.name,
                &sa.uid,
            )));
        }
        Err(unauthorized())
    }

    /// Mint a static token for `id` (a harness call).
    pub fn mint(&self, id: Identity) -> String {
        let token = format!("kube-sim-user.{}", uuid::Uuid::new_v4().simple());
        self.minted.write().insert(token.clone(), Arc::new(id));
        token
    }

    /// Mint a token for ServiceAccount `ns/name` (which must exist) valid for `seconds`.
    ///
    /// # Errors
    /// 404 when the ServiceAccount does not exist.
    pub fn mint_sa_token(
        &self,
        store: &Store,
        ns: &str,
        name: &str,
        seconds: Option<i64>,
    ) -> Result<(String, Option<jiff::Timestamp>), ApiError> {
        let uid = store
            .lookup("", "v1", "serviceaccounts")
            .and_then(|d| store.get_value(&d, ns, name))
            .and_then(|v| {
                v.pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .ok_or_else(|| ApiError::not_found("serviceaccounts", "", name))?;
        let token = format!("kube-sim-sa.{}", uuid::Uuid::new_v4().simple());
        let expires = seconds.and_then(|s| {
            jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::from_secs(s))
                .ok()
        });
        self.sa.write().insert(
            token.clone(),
            SaToken {
                namespace: ns.into(),
                name: name.into(),
                uid,
                expires,
            },
        );
        Ok((token, expires))
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

/// TokenRequest (`POST …/serviceaccounts/NAME/token`): returns the request with `status.token`.
///
/// # Errors
/// 400 for a bad body or `expirationSeconds` below 600; 404 for a missing ServiceAccount.
pub fn token_request(
    authn: &Authn,
    store: &Store,
    ns: &str,
    name: &str,
    mut req: Value,
) -> Result<Value, ApiError> {
    let secs = req
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    if secs < 600 {
        return Err(ApiError::invalid(
            "TokenRequest",
            "authentication.k8s.io",
            name,
            vec![super::status::Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {secs}: may not specify a duration less than 10 minutes"
                ),
                field: "spec.expirationSeconds".into(),
            }],
        ));
    }
    let (token, expires) = authn.mint_sa_token(store, ns, name, Some(secs))?;
    req["apiVersion"] = json!("authentication.k8s.io/v1");
    req["kind"] = json!("TokenRequest");
    if !req.get("metadata").is_some_and(Value::is_object) {
        req["metadata"] = json!({});
    }
    req["metadata"]["name"] = json!(name);
    req["metadata"]["namespace"] = json!(ns);
    if !req.get("spec").is_some_and(Value::is_object) {
        req["spec"] = json!({});
    }
    req["spec"]["expirationSeconds"] = json!(secs);
    if req.pointer("/spec/audiences").is_none() {
        req["spec"]["audiences"] = json!(["https://kubernetes.default.svc"]);
    }
    req["status"] = json!({
        "token": token,
        "expirationTimestamp": expires.map(|e| e.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
    });
    Ok(req)
}

/// cert-manager's identity webhook on CertificateRequest create: `spec.username`, `uid`,
/// `groups` and `extra` from the caller; callers in `system:masters` keep what they send.
pub fn certificaterequest_identity(obj: &mut Value, o: &WriteOpts) {
    let Some(id) = &o.identity else {
        return;
    };
    if id.is_master() {
        return;
    }
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.insert("username".into(), json!(id.user));
    spec.insert("uid".into(), json!(id.uid));
    spec.insert("groups".into(), json!(id.groups));
    if id.extra.is_empty() {
        spec.remove("extra");
    } else {
        spec.insert("extra".into(), json!(id.extra));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines_parse_as_kube_apiserver_reads_them() {
        let users = TokenUser::parse_csv(
            "t1,system:node:node-1,uid-1,\"system:nodes,extra\"\n\n t2,alice,a-uid\nt1,bob,b,g\n",
        )
        .unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].user, "alice");
        assert_eq!(
            users[1].user, "bob",
            "a later duplicate replaces an earlier one"
        );
        let only = TokenUser::parse_csv("t1,system:node:node-1,uid-1,\"system:nodes,x\"").unwrap();
        assert_eq!(only[0].groups, vec!["system:nodes", "x"]);
        let e = TokenUser::parse_csv("ok,u,1\nbad,only-two").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(TokenUser::parse_csv("t,\"u,1").is_err());
    }
}
