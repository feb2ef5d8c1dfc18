//! Authorization: RBAC over the stored Roles, ClusterRoles and bindings, the default grants of a
//! real cluster, a Node-authorizer equivalent, kube-apiserver's 403 bodies, (Self)SubjectAccessReview
//! and the per-caller record of the calls made.

use super::auth::{AUTHENTICATED, Identity, UNAUTHENTICATED};
use super::status::ApiError;
use super::store::Store;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// What a request asks to do (kube-apiserver's authorizer attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attrs {
    /// A request on an API resource.
    Resource {
        /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
        /// or a special verb (`approve`, `sign`, `attest`, …).
        verb: String,
        /// API group ("" for core).
        group: String,
        /// Plural resource.
        resource: String,
        /// Subresource ("" for none).
        subresource: String,
        /// Namespace ("" for cluster scope).
        namespace: String,
        /// Object name ("" for collections and create).
        name: String,
    },
    /// A request on a path that is not an API resource (`/version`, discovery, …).
    NonResource {
        /// Lower-case HTTP method (`get`, `post`, …).
        verb: String,
        /// The path.
        path: String,
    },
}

impl Attrs {
    /// Resource attributes.
    pub fn resource(
        verb: &str,
        group: &str,
        resource: &str,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> Self {
        Attrs::Resource {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// One call as the record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Call {
    /// API group ("" for core).
    pub group: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource ("" for none).
    pub subresource: String,
    /// Verb.
    pub verb: String,
}

/// The calls of one user: (allowed, refused).
type CallSets = (BTreeSet<Call>, BTreeSet<Call>);

/// Calls per username, allowed and refused; `seen` holds a hash of every recorded
/// (user, call, allowed) so that a repeated call costs no allocation.
#[derive(Debug, Default)]
pub struct Recorder(Mutex<(std::collections::HashSet<u64>, BTreeMap<String, CallSets>)>);

impl Recorder {
    /// Record one resource request of `user`.
    pub fn record(&self, user: &str, a: &Attrs, allowed: bool) {
        let Attrs::Resource {
            verb,
            group,
            resource,
            subresource,
            ..
        } = a
        else {
            return;
        };
        let key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (user, group, resource, subresource, verb, allowed).hash(&mut h);
            h.finish()
        };
        let mut guard = self.0.lock();
        let (seen, m) = &mut *guard;
        if !seen.insert(key) {
            return;
        }
        let call = Call {
            group: group.clone(),
            resource: resource.clone(),
            subresource: subresource.clone(),
            verb: verb.clone(),
        };
        let e = m.entry(user.to_string()).or_default();
        if allowed {
            e.0.insert(call);
        } else {
            e.1.insert(call);
        }
    }

    /// (allowed, refused) calls of `user`.
    pub fn calls(&self, user: &str) -> CallSets {
        self.0.lock().1.get(user).cloned().unwrap_or_default()
    }

    /// Forget everything recorded.
    pub fn clear(&self) {
        let mut g = self.0.lock();
        g.0.clear();
        g.1.clear();
    }
}

const RBAC: &str = "rbac.authorization.k8s.io";

/// Whether RBAC (plus the default grants and the node rules) allows `a` for `id`.
pub fn allowed(store: &Store, id: &Identity, a: &Attrs) -> bool {
    if id.bypasses_rbac() || default_grants(id, a) || node_allows(store, id, a) {
        return true;
    }
    let matches_rules = |role: &Value| {
        role.get("rules")
            .and_then(Value::as_array)
            .is_some_and(|rules| rules.iter().any(|r| rule_allows(r, a)))
    };
    let namespace = match a {
        Attrs::Resource { namespace, .. } => namespace.as_str(),
        Attrs::NonResource { .. } => "",
    };
    if let Some(crb) = store.lookup(RBAC, "v1", "clusterrolebindings") {
        let bindings: Vec<_> = crb
            .coll
            .inner
            .read()
            .objects
            .values()
            .map(|s| s.obj.clone())
            .collect();
        for b in bindings {
            if !subjects_match(&b, id, "") {
                continue;
            }
            if let Some(role) = role_of(store, &b, "")
                && matches_rules(&role)
            {
                return true;
            }
        }
    }
    if !namespace.is_empty()
        && let Some(rb) = store.lookup(RBAC, "v1", "rolebindings")
    {
        let bindings: Vec<_> = rb
            .coll
            .inner
            .read()
            .objects
            .range((namespace.to_string(), String::new())..)
            .take_while(|((ns, _), _)| ns == namespace)
            .map(|(_, s)| s.obj.clone())
            .collect();
        for b in bindings {
            if !subjects_match(&b, id, namespace) {
                continue;
            }
            if let Some(role) = role_of(store, &b, namespace)
                && matches_rules(&role)
            {
                return true;
            }
        }
    }
    false
}

/// Whether `id` may use `verb` (`approve`, `sign`, `attest`, …) on signer `signer`: resourceName
/// the signer, or `<domain>/*` (`certificates.k8s.io` `signers`, cluster scope).
pub fn signer_allowed(store: &Store, id: &Identity, verb: &str, signer: &str) -> bool {
    let exact = Attrs::resource(verb, "certificates.k8s.io", "signers", "", "", signer);
    if allowed(store, id, &exact) {
        return true;
    }
    let Some((domain, _)) = signer.split_once('/') else {
        return false;
    };
    let wildcard = Attrs::resource(
        verb,
        "certificates.k8s.io",
        "signers",
        "",
        "",
        &format!("{domain}/*"),
    );
    allowed(store, id, &wildcard)
}

fn role_of(store: &Store, binding: &Value, ns: &str) -> Option<std::sync::Arc<Value>> {
    let kind = binding.pointer("/roleRef/kind").and_then(Value::as_str)?;
    let name = binding.pointer("/roleRef/name").and_then(Value::as_str)?;
    match kind {
        "ClusterRole" => {
            let d = store.lookup(RBAC, "v1", "clusterroles")?;
            store.get_value(&d, "", name)
        }
        "Role" if !ns.is_empty() => {
            let d = store.lookup(RBAC, "v1", "roles")?;
            store.get_value(&d, ns, name)
        }
        _ => None,
    }
}

fn subjects_match(binding: &Value, id: &Identity, binding_ns: &str) -> bool {
    let Some(subjects) = binding.get("subjects").and_then(Value::as_array) else {
        return false;
    };
    subjects.iter().any(|s| {
        let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
        match s.get("kind").and_then(Value::as_str).unwrap_or_default() {
            "User" => id.user == name,
            "Group" => id.groups.iter().any(|g| g == name),
            "ServiceAccount" => {
                let ns = s
                    .get("namespace")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                    .unwrap_or(binding_ns);
                id.user == format!("system:serviceaccount:{ns}:{name}")
            }
            _ => false,
        }
    })
}

fn strs(rule: &Value, key: &str) -> Vec<String> {
    rule.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

/// One PolicyRule against the attributes, as upstream's `RuleAllows`.
pub fn rule_allows(rule: &Value, a: &Attrs) -> bool {
    let verbs = strs(rule, "verbs");
    match a {
        Attrs::Resource {
            verb,
            group,
            resource,
            subresource,
            name,
            ..
        } => {
            if !has(&verbs, verb) || !has(&strs(rule, "apiGroups"), group) {
                return false;
            }
            let combined = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            let resources = strs(rule, "resources");
            let res_ok = resources.iter().any(|r| {
                r == "*"
                    || *r == combined
                    || (!subresource.is_empty() && *r == format!("*/{subresource}"))
            });
            if !res_ok {
                return false;
            }
            let names = strs(rule, "resourceNames");
            names.is_empty() || names.iter().any(|n| n == name)
        }
        Attrs::NonResource { verb, path } => {
            if !has(&verbs, verb) {
                return false;
            }
            strs(rule, "nonResourceURLs").iter().any(|u| {
                u == "*"
                    || u == path
                    || u.strip_suffix('*')
                        .is_some_and(|prefix| path.starts_with(prefix))
            })
        }
    }
}

/// The bootstrap ClusterRoles a real cluster binds by default, as rules (not stored objects).
fn default_grants(id: &Identity, a: &Attrs) -> bool {
    let in_group = |g: &str| id.groups.iter().any(|x| x == g);
    match a {
        Attrs::NonResource { verb, path } => {
            if verb != "get" {
                return false;
            }
            // system:public-info-viewer (authenticated and unauthenticated).
            let public = matches!(
                path.as_str(),
                "/healthz" | "/livez" | "/readyz" | "/version" | "/version/"
            );
            if public && (in_group(AUTHENTICATED) || in_group(UNAUTHENTICATED)) {
                return true;
            }
            // system:discovery (authenticated).
            let discovery = public
                || matches!(path.as_str(), "/api" | "/apis" | "/openapi")
                || ["/api/", "/apis/", "/openapi/"]
                    .iter()
                    .any(|p| path.starts_with(p));
            discovery && in_group(AUTHENTICATED)
        }
        Attrs::Resource {
            verb,
            group,
            resource,
            subresource,
            ..
        } => {
            if !subresource.is_empty() {
                return false;
            }
            // system:basic-user (authenticated).
            let basic = verb == "create"
                && matches!(
                    (group.as_str(), resource.as_str()),
                    (
                        "authorization.k8s.io",
                        "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
                    ) | ("authentication.k8s.io", "selfsubjectreviews")
                );
            if basic && in_group(AUTHENTICATED) {
                return true;
            }
            // ClusterTrustBundles are world-readable for workloads and nodes.
            group == "certificates.k8s.io"
                && resource == "clustertrustbundles"
                && matches!(verb.as_str(), "get" | "list" | "watch")
                && (in_group("system:serviceaccounts") || in_group("system:nodes"))
        }
    }
}

/// The Node authorizer, reduced to what kubelet's pod-certificate path needs: a node may create,
/// read and watch PodCertificateRequests, read and watch Pods (`get` only for pods bound to it),
/// read Nodes, and read the ServiceAccounts of its pods.
fn node_allows(store: &Store, id: &Identity, a: &Attrs) -> bool {
    let Some(node) = id.node_name() else {
        return false;
    };
    let Attrs::Resource {
        verb,
        group,
        resource,
        subresource,
        namespace,
        name,
    } = a
    else {
        return false;
    };
    if !subresource.is_empty() {
        return false;
    }
    let read = matches!(verb.as_str(), "get" | "list" | "watch");
    match (group.as_str(), resource.as_str()) {
        ("certificates.k8s.io", "podcertificaterequests") => read || verb == "create",
        ("", "nodes") => read,
        ("", "pods") if verb == "get" => store
            .lookup("", "v1", "pods")
            .and_then(|d| store.get_value(&d, namespace, name))
            .is_some_and(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node)),
        ("", "pods") => read,
        ("", "serviceaccounts") if verb == "get" => {
            let Some(d) = store.lookup("", "v1", "pods") else {
                return false;
            };
            let inner = d.coll.inner.read();
            inner
                .objects
                .range((namespace.to_string(), String::new())..)
                .take_while(|((ns, _), _)| ns == namespace)
                .any(|(_, s)| {
                    s.obj.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node)
                        && s.obj
                            .pointer("/spec/serviceAccountName")
                            .and_then(Value::as_str)
                            .unwrap_or("default")
                            == name
                })
        }
        _ => false,
    }
}

/// kube-apiserver's 403 for a refused request.
pub fn forbidden(id: &Identity, a: &Attrs) -> ApiError {
    match a {
        Attrs::NonResource { verb, path } => ApiError::new(
            403,
            "Forbidden",
            format!("forbidden: User {:?} cannot {verb} path {path:?}", id.user),
        ),
        Attrs::Resource {
            verb,
            group,
            resource,
            subresource,
            namespace,
            name,
        } => {
            let res = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            let why = if namespace.is_empty() {
                format!(
                    "User {:?} cannot {verb} resource {res:?} in API group {group:?} at the cluster scope",
                    id.user
                )
            } else {
                format!(
                    "User {:?} cannot {verb} resource {res:?} in API group {group:?} in the namespace {namespace:?}",
                    id.user
                )
            };
            let qualified = super::status::qualified(resource, group);
            let message = if name.is_empty() {
                format!("{qualified} is forbidden: {why}")
            } else {
                format!("{qualified} {name:?} is forbidden: {why}")
            };
            let mut e = ApiError::new(403, "Forbidden", message);
            e.details = Some(Box::new((name.clone(), group.clone(), resource.clone())));
            e
        }
    }
}

fn attrs_of_spec(spec: &Value) -> Result<Attrs, ApiError> {
    let s = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if let Some(r) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        return Ok(Attrs::Resource {
            verb: s(r, "verb"),
            group: s(r, "group"),
            resource: s(r, "resource"),
            subresource: s(r, "subresource"),
            namespace: s(r, "namespace"),
            name: s(r, "name"),
        });
    }
    if let Some(n) = spec.get("nonResourceAttributes").filter(|v| v.is_object()) {
        return Ok(Attrs::NonResource {
            verb: s(n, "verb"),
            path: s(n, "path"),
        });
    }
    Err(ApiError::invalid(
        "SubjectAccessReview",
        "authorization.k8s.io",
        "",
        vec![super::status::Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified".into(),
            field: "spec.resourceAttributes".into(),
        }],
    ))
}

/// Answer a `SubjectAccessReview` (`self_caller` None) or a `SelfSubjectAccessReview` (for the caller).
///
/// # Errors
/// 400 for a body that does not parse, 422 when neither attribute set is given or no user/group.
pub fn access_review(
    store: &Store,
    self_caller: Option<&Identity>,
    mut review: Value,
) -> Result<Value, ApiError> {
    let spec = review.get("spec").cloned().unwrap_or(json!({}));
    let attrs = attrs_of_spec(&spec)?;
    let id = match self_caller {
        Some(c) => c.clone(),
        None => {
            let user = spec.get("user").and_then(Value::as_str).unwrap_or_default();
            let groups: Vec<String> = strs(&spec, "groups");
            if user.is_empty() && groups.is_empty() {
                return Err(ApiError::invalid(
                    "SubjectAccessReview",
                    "authorization.k8s.io",
                    "",
                    vec![super::status::Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value: at least one of user or group must be specified"
                            .into(),
                        field: "spec.user".into(),
                    }],
                ));
            }
            let extra = spec
                .get("extra")
                .and_then(|e| serde_json::from_value(e.clone()).ok())
                .unwrap_or_default();
            Identity {
                user: user.into(),
                uid: spec
                    .get("uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .into(),
                groups,
                extra,
                unrestricted: false,
            }
        }
    };
    let ok = allowed(store, &id, &attrs);
    if self_caller.is_some() {
        review["kind"] = json!("SelfSubjectAccessReview");
    } else {
        review["kind"] = json!("SubjectAccessReview");
    }
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    if !review.get("metadata").is_some_and(Value::is_object) {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    review["status"] = if ok {
        json!({"allowed": true, "reason": "allowed by kube-sim RBAC"})
    } else {
        json!({"allowed": false})
    };
    Ok(review)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_subresources_names_and_non_resource_urls() {
        let r = json!({"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "resourceNames": ["example.com/*"], "verbs": ["sign"]});
        let a =
            |name: &str| Attrs::resource("sign", "certificates.k8s.io", "signers", "", "", name);
        assert!(rule_allows(&r, &a("example.com/*")));
        assert!(
            !rule_allows(&r, &a("example.com/x")),
            "a wildcard is a name, matched by the caller"
        );
        let st = json!({"apiGroups": [""], "resources": ["*/status"], "verbs": ["*"]});
        assert!(rule_allows(
            &st,
            &Attrs::resource("patch", "", "pods", "status", "ns", "p")
        ));
        assert!(!rule_allows(
            &st,
            &Attrs::resource("patch", "", "pods", "", "ns", "p")
        ));
        let nr = json!({"nonResourceURLs": ["/metrics", "/logs/*"], "verbs": ["get"]});
        assert!(rule_allows(
            &nr,
            &Attrs::NonResource {
                verb: "get".into(),
                path: "/logs/a".into()
            }
        ));
        assert!(!rule_allows(
            &nr,
            &Attrs::NonResource {
                verb: "get".into(),
                path: "/metricsx".into()
            }
        ));
    }
}
