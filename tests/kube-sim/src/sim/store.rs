//! In-memory object storage: resource registry, per-resource collections, resourceVersions, watch history; no network I/O.

use super::apply::{self, Entry, Operation};
use super::managed::{self, Managed};
use super::schema;
use super::selector::{FieldSelector, LabelSelector};
use super::status::{ApiError, Cause, qualified};
use bytes::Bytes;
use parking_lot::RwLock;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::broadcast;

/// One served resource at one group/version.
#[derive(Debug)]
pub struct ResourceDef {
    /// API group ("" for core).
    pub group: String,
    /// Served version.
    pub version: String,
    /// Plural resource name.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Has a `/status` subresource.
    pub status: bool,
    /// Short names for discovery.
    pub short_names: Vec<String>,
    /// Categories for discovery.
    pub categories: Vec<String>,
    /// The CRD's `openAPIV3Schema` for this version.
    pub schema: Option<Arc<Value>>,
    /// `schema` compiled for validation (built with it, never on a write).
    pub compiled: Option<Arc<schema::Compiled>>,
    /// A built-in's schema for server-side apply: the fields its API type declares, which
    /// kube-apiserver's conversion of an apply configuration to the typed object requires
    /// (`None`: kube-sim has no schema for the kind and does not check its applies).
    pub apply_schema: Option<Arc<schema::Compiled>>,
    /// The version objects are stored at.
    pub storage_version: String,
    /// Whether PUT without `metadata.resourceVersion` is allowed (built-ins yes, custom resources no).
    pub unconditional_update: bool,
    /// Whether writes bump `metadata.generation` (custom resources and built-ins with status).
    pub generation: bool,
    /// CRD `additionalPrinterColumns` of this version.
    pub printer_columns: Vec<Value>,
    /// The storage shared by every version of this resource.
    pub coll: Arc<Collection>,
    /// Conversion from the storage version to this one (built-ins with several versions).
    pub convert: Option<Arc<dyn Admission>>,
}

impl ResourceDef {
    /// The store key of object `name` in namespace `ns` (the namespace is ignored for a
    /// cluster-scoped resource).
    fn key(&self, ns: &str, name: &str) -> (String, String) {
        let ns = if self.namespaced { ns } else { "" };
        (ns.to_owned(), name.to_owned())
    }

    /// The conversion between the stored and the served JSON shape, when they differ beyond
    /// `apiVersion` (events.k8s.io Events are stored as core Events).
    pub fn view(&self) -> Option<&'static super::events::View> {
        super::events::view_for(&self.group, &self.plural)
    }

    /// Whether objects are served exactly as stored (same version, same shape).
    pub fn serves_stored_form(&self) -> bool {
        self.version == self.storage_version && self.view().is_none()
    }

    /// `group/version` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    fn storage_api_version(&self) -> String {
        if let Some(v) = self.view() {
            return v.storage_api_version.to_string();
        }
        if self.group.is_empty() {
            self.storage_version.clone()
        } else {
            format!("{}/{}", self.group, self.storage_version)
        }
    }
}

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// ADDED
    Added,
    /// MODIFIED
    Modified,
    /// DELETED
    Deleted,
}

impl EventType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, serialized once and shared by every watcher.
#[derive(Debug)]
pub struct Event {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Type as stored.
    pub etype: EventType,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// Object after the change (the last state for DELETED).
    pub obj: Arc<Value>,
    /// Object before the change (for selector transitions).
    pub old: Option<Arc<Value>>,
    /// Serialized object (storage version), a slice of `line`.
    pub bytes: Bytes,
    /// Ready-made watch line for `etype`.
    pub line: Bytes,
    /// When the change was stored (a delayed watch sends it no sooner than this plus the delay).
    pub at: std::time::Instant,
}

/// One retained change for watch-from-resourceVersion: only the serialized line is kept, so old
/// object versions are not held in memory twice.
#[derive(Debug)]
pub struct Hist {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Type as stored.
    pub etype: EventType,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// Serialized object, a slice of `line`.
    pub bytes: Bytes,
    /// Watch line.
    pub line: Bytes,
}

/// Build `{"type":T,"object":<bytes>}\n` (for synthesized events; stored writes build theirs in `finish`).
pub fn watch_line(t: &str, obj: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(obj.len() + 32);
    v.extend_from_slice(b"{\"type\":\"");
    v.extend_from_slice(t.as_bytes());
    v.extend_from_slice(b"\",\"object\":");
    v.extend_from_slice(obj);
    v.extend_from_slice(b"}\n");
    Bytes::from(v)
}

/// A stored object.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Parsed object.
    pub obj: Arc<Value>,
    /// Serialized object.
    pub bytes: Bytes,
    /// The `metadata.managedFields` entries and their encoding, which `bytes` holds and `obj`
    /// does not (shared, so that a write can take a snapshot of the stored version cheaply).
    pub managers: Arc<Managed>,
}

impl Stored {
    /// Whether `self` is the version `other` was copied from (the same object and managers).
    fn same_version(&self, other: &Stored) -> bool {
        Arc::ptr_eq(&self.obj, &other.obj) && Arc::ptr_eq(&self.managers, &other.managers)
    }
}

/// Objects of one resource plus its bounded event history.
#[derive(Debug)]
pub struct Collection {
    /// Objects and history.
    pub inner: RwLock<Inner>,
    /// Live events.
    pub tx: broadcast::Sender<Arc<Event>>,
}

/// Guarded part of a collection.
#[derive(Debug, Default)]
pub struct Inner {
    /// (namespace, name) → object.
    pub objects: BTreeMap<(String, String), Stored>,
    /// Recent events, oldest first.
    pub history: VecDeque<Hist>,
    /// Events with rv ≤ this are gone: a watch from an older rv gets 410.
    pub compacted: u64,
}

/// Events a watch may fall behind the newest before it is closed (the fan-out buffer).
pub const DEFAULT_WATCH_BUFFER: usize = 65536;

impl Collection {
    fn new(watch_buffer: usize) -> Arc<Self> {
        let (tx, _) = broadcast::channel(watch_buffer);
        Arc::new(Collection {
            inner: RwLock::new(Inner::default()),
            tx,
        })
    }
}

/// Per verb+resource API call counters: verb → resource → count, so counting a call looks the
/// names up as `&str` without allocating.
#[derive(Debug, Default)]
pub struct Counters(RwLock<HashMap<String, HashMap<String, Arc<AtomicU64>>>>);

impl Counters {
    /// Count one call.
    pub fn inc(&self, verb: &str, resource: &str) {
        if let Some(c) = self.0.read().get(verb).and_then(|m| m.get(resource)) {
            c.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.0
            .write()
            .entry(verb.to_string())
            .or_default()
            .entry(resource.to_string())
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }
    /// Read one counter.
    pub fn get(&self, verb: &str, resource: &str) -> u64 {
        self.0
            .read()
            .get(verb)
            .and_then(|m| m.get(resource))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
    /// All counters.
    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.0
            .read()
            .iter()
            .flat_map(|(verb, m)| {
                m.iter()
                    .map(|(r, c)| ((verb.clone(), r.clone()), c.load(Ordering::Relaxed)))
            })
            .collect()
    }
}

/// Served resources.
#[derive(Debug, Default)]
pub struct Registry {
    /// (group, version) → plural → definition.
    pub gvs: BTreeMap<(String, String), BTreeMap<String, Arc<ResourceDef>>>,
    /// Preferred version per group (first registered, or the CRD's storage version).
    pub preferred: BTreeMap<String, String>,
    /// Group order for discovery.
    pub group_order: Vec<String>,
    colls: HashMap<(String, String), Arc<Collection>>,
}

/// Static description of a built-in resource.
pub struct Builtin {
    /// group
    pub group: &'static str,
    /// version
    pub version: &'static str,
    /// plural
    pub plural: &'static str,
    /// kind
    pub kind: &'static str,
    /// namespaced
    pub namespaced: bool,
    /// has /status
    pub status: bool,
    /// short names
    pub short: &'static [&'static str],
}

/// A built-in resource's description (a `const` table row).
pub(super) const fn b(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    status: bool,
    short: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        version,
        plural,
        kind,
        namespaced,
        status,
        short,
    }
}

/// Built-in resources served as plain storage (no controllers behind them).
pub const BUILTINS: &[Builtin] = &[
    b("", "v1", "namespaces", "Namespace", false, true, &["ns"]),
    b("", "v1", "secrets", "Secret", true, false, &[]),
    b("", "v1", "configmaps", "ConfigMap", true, false, &["cm"]),
    b(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        true,
        false,
        &["sa"],
    ),
    b("", "v1", "events", "Event", true, false, &["ev"]),
    b("", "v1", "services", "Service", true, true, &["svc"]),
    b("", "v1", "pods", "Pod", true, true, &["po"]),
    b("", "v1", "endpoints", "Endpoints", true, false, &["ep"]),
    b(
        "events.k8s.io",
        "v1",
        "events",
        "Event",
        true,
        false,
        &["ev"],
    ),
    b(
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        true,
        false,
        &[],
    ),
    b(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        true,
        true,
        &["deploy"],
    ),
    b(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        true,
        true,
        &["sts"],
    ),
    b("apps", "v1", "daemonsets", "DaemonSet", true, true, &["ds"]),
    b(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        true,
        true,
        &["rs"],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        false,
        &[],
    ),
    b(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        true,
        &["pdb"],
    ),
    b(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        false,
        &["netpol"],
    ),
    b(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        true,
        &["crd", "crds"],
    ),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        false,
        false,
        &[],
    ),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        false,
        false,
        &[],
    ),
];

/// Now as RFC 3339 with second precision (the API's `metav1.Time`).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Options of a write that come from the query string.
#[derive(Debug, Default, Clone)]
pub struct WriteOpts {
    /// `fieldValidation=Strict`.
    pub strict: bool,
    /// `fieldValidation=Ignore` (unknown and duplicate fields are dropped without a warning).
    pub ignore_fields: bool,
    /// Duplicate fields found while decoding the request body (paths such as `spec.a`).
    pub duplicate_fields: Vec<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// The request's `User-Agent` (the manager of a non-apply write without `fieldManager`).
    pub user_agent: Option<String>,
    /// `force` (apply).
    pub force: bool,
    /// The caller (user, uid, groups, extra) when the request came over HTTP.
    pub identity: Option<Arc<super::auth::Identity>>,
    /// The subresource written (`status`, `approval`), if any.
    pub subresource: Option<String>,
    /// The authorization of the create a server-side apply makes when its object does not
    /// exist yet (requests over HTTP with authorization on; `None` skips it).
    pub authorize_create: Option<CreateCheck>,
}

/// Authorizes (and records) verb `create` for the object of a server-side apply that creates
/// it: kube-apiserver's patch handler asks its authorizer for `create` on that path, besides
/// the `patch` the request itself was authorized for.
#[derive(Clone)]
pub struct CreateCheck(pub Arc<dyn Fn() -> Result<(), ApiError> + Send + Sync>);

impl std::fmt::Debug for CreateCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CreateCheck")
    }
}

/// Checks and mutations that built-in registries and admission plugins apply to writes
/// (`certificates.k8s.io`, NodeRestriction, …); called before validation, without the lock of
/// the written resource on create and with it on update.
pub trait Admission: Send + Sync + std::fmt::Debug {
    /// A create of `obj` in `ns`.
    ///
    /// # Errors
    /// The write is refused (the error is the response).
    fn create(
        &self,
        store: &Store,
        def: &ResourceDef,
        ns: &str,
        obj: &mut Value,
        o: &WriteOpts,
    ) -> Result<(), ApiError>;
    /// An update (PUT, patch, apply) from `old` to `new`.
    ///
    /// # Errors
    /// The write is refused (the error is the response).
    fn update(
        &self,
        store: &Store,
        def: &ResourceDef,
        old: &Value,
        new: &mut Value,
        o: &WriteOpts,
    ) -> Result<(), ApiError>;
    /// Convert a stored object for a served version other than the storage version.
    fn convert(&self, _def: &ResourceDef, _obj: &mut Value) {}
}

/// Result of a write: HTTP code, body and warnings.
#[derive(Debug)]
pub struct WriteOut {
    /// 200 or 201.
    pub code: u16,
    /// Object JSON.
    pub body: Bytes,
    /// `Warning` headers.
    pub warnings: Vec<String>,
}

/// How long a paged list's snapshot (its continue token) stays valid: kube-apiserver pages
/// through an etcd revision, which etcd compacts every 5 minutes.
const SNAPSHOT_TTL: std::time::Duration = std::time::Duration::from_secs(300);
/// Paged lists in progress kept at once; the oldest is dropped first (its token then gets 410).
const MAX_SNAPSHOTS: usize = 256;

/// One paged list in progress: what its first page saw.
#[derive(Debug)]
struct Snapshot {
    rv: u64,
    /// Which resource version the pages are for (a token is not valid for another).
    api_version: String,
    plural: String,
    taken: std::time::Instant,
    items: Vec<(Arc<Value>, Bytes)>,
}

/// The snapshots behind continue tokens (a continue token is `<id>:<offset>`, base64url).
#[derive(Debug, Default)]
struct Snapshots {
    next_id: AtomicU64,
    live: parking_lot::Mutex<HashMap<u64, Arc<Snapshot>>>,
}

/// One page: the list's resourceVersion, the page's objects, the next continue token.
type Page = (u64, Vec<(Arc<Value>, Bytes)>, Option<String>);

impl Snapshots {
    fn token(id: u64, offset: usize) -> String {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            format!("{id}:{offset}"),
        )
    }

    /// The first page of `items` (everything when there is no limit or it all fits).
    fn first_page(
        &self,
        def: &ResourceDef,
        rv: u64,
        mut items: Vec<(Arc<Value>, Bytes)>,
        limit: Option<usize>,
    ) -> Page {
        let Some(limit) = limit.filter(|l| *l < items.len()) else {
            return (rv, items, None);
        };
        let page: Vec<_> = items.drain(..limit).collect();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = std::time::Instant::now();
        let mut live = self.live.lock();
        live.retain(|_, s| now.duration_since(s.taken) < SNAPSHOT_TTL);
        while live.len() >= MAX_SNAPSHOTS {
            let Some(oldest) = live.iter().min_by_key(|(_, s)| s.taken).map(|(k, _)| *k) else {
                break;
            };
            live.remove(&oldest);
        }
        live.insert(
            id,
            Arc::new(Snapshot {
                rv,
                api_version: def.api_version(),
                plural: def.plural.to_string(),
                taken: now,
                items,
            }),
        );
        (rv, page, Some(Self::token(id, 0)))
    }

    /// The page a continue token names.
    fn next_page(
        &self,
        def: &ResourceDef,
        cont: &str,
        limit: Option<usize>,
    ) -> Result<Page, ApiError> {
        let invalid = || ApiError::bad_request(format!("invalid continue token {cont:?}"));
        let raw = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, cont)
            .map_err(|_| invalid())?;
        let raw = String::from_utf8(raw).map_err(|_| invalid())?;
        let (id, offset) = raw.split_once(':').ok_or_else(invalid)?;
        let id: u64 = id.parse().map_err(|_| invalid())?;
        let offset: usize = offset.parse().map_err(|_| invalid())?;
        let snapshot = self.live.lock().get(&id).cloned().ok_or_else(|| {
            ApiError::new(
                410,
                "Expired",
                "the continue token is too old to give a consistent list: start a new list without it",
            )
        })?;
        if snapshot.api_version != def.api_version() || snapshot.plural != def.plural {
            return Err(ApiError::bad_request(format!(
                "continue token {cont:?} belongs to a list of {} {}",
                snapshot.api_version, snapshot.plural
            )));
        }
        let rest = snapshot.items.get(offset..).ok_or_else(invalid)?;
        let n = limit.unwrap_or(rest.len()).min(rest.len());
        let page = rest[..n].to_vec();
        let next = if n < rest.len() {
            Some(Self::token(id, offset + n))
        } else {
            self.live.lock().remove(&id);
            None
        };
        Ok((snapshot.rv, page, next))
    }
}

/// The whole API server state.
#[derive(Debug)]
pub struct Store {
    rv: AtomicU64,
    /// Served resources.
    pub registry: RwLock<Registry>,
    history_limit: usize,
    /// Capacity of each resource's watch fan-out (see [`DEFAULT_WATCH_BUFFER`]).
    watch_buffer: usize,
    /// Set `spec.username` of cert-manager CertificateRequests from the authenticated user on create.
    pub set_cr_username: bool,
    namespaces: Arc<Collection>,
    /// Admission for built-ins with rules (set once at start).
    pub admission: std::sync::OnceLock<Arc<dyn Admission>>,
    /// Watches closed because they fell more than the fan-out buffer behind.
    pub watches_closed_behind: AtomicU64,
    /// Paged lists in progress.
    snapshots: Snapshots,
}

fn meta(v: &Value) -> Option<&serde_json::Map<String, Value>> {
    v.get("metadata").and_then(Value::as_object)
}
fn meta_mut(v: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    v.get_mut("metadata").and_then(Value::as_object_mut)
}
/// kube-apiserver's refusal of an apply configuration with undeclared fields, worded as its field
/// manager words it: `failed to create typed patch object (<ns>/<name>; <group>/<version>,
/// Kind=<kind>): <path>: field not declared in schema` (structured-merge-diff lists several
/// errors under `errors:`, one per indented line).
fn typed_patch_error(cfg: &Value, undeclared: &[String]) -> ApiError {
    let api_version = cfg.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = cfg.get("kind").and_then(Value::as_str).unwrap_or("");
    let errors: Vec<String> = undeclared
        .iter()
        .map(|p| format!("{p}: field not declared in schema"))
        .collect();
    let detail = match errors.as_slice() {
        [one] => one.clone(),
        many => format!("errors:\n  {}", many.join("\n  ")),
    };
    ApiError::unknown(format!(
        "failed to create typed patch object ({}/{}; {group}/{version}, Kind={kind}): {detail}",
        meta_str(cfg, "namespace").unwrap_or_default(),
        meta_str(cfg, "name").unwrap_or_default(),
    ))
}

fn meta_str<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    meta(v).and_then(|m| m.get(k)).and_then(Value::as_str)
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// How many fresh suffixes a colliding `generateName` gets before AlreadyExists (kube-apiserver: 7).
const GENERATE_NAME_ATTEMPTS: u32 = 7;

fn random_suffix() -> String {
    use rand::Rng as _;
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHA[rng.random_range(0..ALPHA.len())] as char)
        .collect()
}

/// Top-level keys other than metadata/status/apiVersion/kind differ (→ generation bump).
fn spec_changed(old: &Value, new: &Value, has_status: bool) -> bool {
    let skip =
        |k: &str| matches!(k, "metadata" | "apiVersion" | "kind") || (has_status && k == "status");
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return old != new;
    };
    o.iter()
        .filter(|(k, _)| !skip(k))
        .any(|(k, v)| n.get(k) != Some(v))
        || n.iter()
            .filter(|(k, _)| !skip(k))
            .any(|(k, _)| !o.contains_key(k))
}

/// Equal apart from resourceVersion (a no-op write).
fn same_except_rv(a: &Value, b: &Value) -> bool {
    let (Some(ao), Some(bo)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    if ao.len() != bo.len() {
        return false;
    }
    ao.iter().all(|(k, v)| {
        if k == "metadata" {
            let (Some(am), Some(bm)) = (v.as_object(), bo.get(k).and_then(Value::as_object)) else {
                return false;
            };
            am.iter()
                .filter(|(k, _)| *k != "resourceVersion")
                .all(|(k, v)| bm.get(k) == Some(v))
                && bm
                    .iter()
                    .filter(|(k, _)| *k != "resourceVersion")
                    .all(|(k, _)| am.contains_key(k))
        } else {
            bo.get(k) == Some(v)
        }
    })
}

/// The top-level fields a write through subresource `sub` may not change (kube-apiserver's
/// reset fields of the endpoint): nobody takes ownership of anything under them.
fn reset_fields(def: &ResourceDef, sub: &str) -> &'static [&'static str] {
    match sub {
        "" if def.status => &["status"],
        "" => &[],
        _ => &["spec"],
    }
}

/// What a create is compared with: a custom resource starts from nothing, a built-in from its
/// type's zero value, whose `spec` and `status` structs exist (so a creator owns what it sets in
/// them, not the structs themselves).
fn create_baseline(def: &ResourceDef) -> Value {
    if def.schema.is_some() {
        json!({})
    } else {
        json!({"spec": {}, "status": {}})
    }
}

/// The managedFields identity of a write: `Update` by `fieldManager` or the User-Agent's prefix
/// (kube-sim's own writes: [`managed::INTERNAL_MANAGER`]); `Apply` by `fieldManager`.
fn writer(def: &ResourceDef, o: &WriteOpts, operation: Operation) -> Entry {
    let manager = if o.identity.is_none() && o.field_manager.is_none() && o.user_agent.is_none() {
        managed::INTERNAL_MANAGER.to_string()
    } else {
        managed::manager_for(o.field_manager.as_deref(), o.user_agent.as_deref())
    };
    Entry {
        manager,
        operation,
        api_version: def.api_version(),
        subresource: o.subresource.clone().unwrap_or_default(),
        time: None,
        fields: std::collections::BTreeSet::new(),
    }
}

/// Set `who`'s time to now (its operation changed the object).
fn stamp(entries: &mut [Entry], who: &Entry) {
    let now = now_rfc3339();
    for e in entries.iter_mut().filter(|e| e.same_manager(who)) {
        e.time = Some(now.clone());
    }
}

/// Whether any entry owns a server-owned field (possible only in entries a client sent): the
/// comparison must then find the changed ones, which leave that entry.
fn owns_server_fields(entries: &[Entry]) -> bool {
    entries
        .iter()
        .any(|e| e.fields.iter().any(apply::server_owned))
}

/// The managers after a non-apply write of `new` (in the request's shape) over `old` (`live`: the
/// stored object in that shape), as kube-apiserver's field manager updates them: managedFields
/// sent in the body replace the live ones when valid (not through a subresource), `[]` or `[{}]`
/// resets them, and an existing object without any entry stays untracked.
fn updated_managers(
    def: &ResourceDef,
    old: &Stored,
    live: &Value,
    new: &Value,
    only: Option<&[&str]>,
    o: &WriteOpts,
) -> Vec<Entry> {
    let sub = o.subresource.as_deref().unwrap_or_default();
    // (`obj` holds no managedFields: the live list is rendered only when a body carries one.)
    let sent = meta(new).and_then(|m| m.get("managedFields"));
    let mut entries = if !sub.is_empty() || sent.is_none() || sent == old.managers.value().as_ref()
    {
        old.managers.entries.clone()
    } else {
        match managed::sent(sent) {
            managed::Sent::Live => old.managers.entries.clone(),
            managed::Sent::Reset => return Vec::new(),
            managed::Sent::Entries(e) => e,
        }
    };
    if entries.is_empty() {
        return entries;
    }
    let cmp = apply::compare(
        live,
        new,
        def.schema.as_deref(),
        only,
        reset_fields(def, sub),
        owns_server_fields(&entries),
    );
    managed::update(
        &mut entries,
        cmp,
        &writer(def, o, Operation::Update),
        &now_rfc3339(),
    );
    entries
}

impl Store {
    /// A store serving the built-ins, with the usual namespaces present, keeping `history_limit`
    /// events per resource for watches from a resourceVersion and a watch fan-out of
    /// `watch_buffer` events per resource: a watch that falls further behind is closed (the client
    /// re-watches, or re-lists after a 410).
    pub fn new(history_limit: usize, set_cr_username: bool, watch_buffer: usize) -> Arc<Store> {
        let watch_buffer = watch_buffer.max(16);
        let mut reg = Registry::default();
        for bi in BUILTINS {
            let coll = reg
                .colls
                .entry({
                    let (g, p) = super::events::storage_key(bi.group, bi.plural);
                    (g.to_string(), p.to_string())
                })
                .or_insert_with(|| Collection::new(watch_buffer))
                .clone();
            let def = ResourceDef::builtin(bi, bi.version, coll, None);
            reg.add(Arc::new(def));
        }
        let namespaces = reg.colls[&(String::new(), "namespaces".to_string())].clone();
        let store = Arc::new(Store {
            rv: AtomicU64::new(1),
            registry: RwLock::new(reg),
            history_limit: history_limit.max(16),
            watch_buffer,
            set_cr_username,
            namespaces,
            admission: std::sync::OnceLock::new(),
            watches_closed_behind: AtomicU64::new(0),
            snapshots: Snapshots::default(),
        });
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let def = store.lookup("", "v1", "namespaces");
            if let Some(def) = def {
                let _ = store.create(
                    &def,
                    "",
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                    &WriteOpts::default(),
                );
            }
        }
        store
    }

    /// The current global resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.rv.load(Ordering::SeqCst)
    }

    /// Find a served resource by group, version and plural.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.registry
            .read()
            .gvs
            .get(&(group.to_string(), version.to_string()))?
            .get(plural)
            .cloned()
    }

    /// Find a served resource by group and kind (any version, preferred first).
    pub fn lookup_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceDef>> {
        let reg = self.registry.read();
        let pref = reg.preferred.get(group)?;
        let find = |v: &str| {
            reg.gvs
                .get(&(group.to_string(), v.to_string()))?
                .values()
                .find(|d| d.kind == kind)
                .cloned()
        };
        find(pref).or_else(|| {
            reg.gvs
                .iter()
                .filter(|((g, _), _)| g == group)
                .find_map(|(_, m)| m.values().find(|d| d.kind == kind).cloned())
        })
    }

    fn out_bytes(def: &ResourceDef, s: &Stored) -> Bytes {
        Self::render_for(def, &s.obj, &s.bytes)
    }

    /// Serialize an object for one served version.
    pub fn render_for(def: &ResourceDef, obj: &Value, bytes: &Bytes) -> Bytes {
        if def.view().is_none() && def.version == def.storage_version {
            return bytes.clone();
        }
        // Another shape: from the stored serialization, which holds the managedFields `obj`
        // does not.
        let full: Option<Value> = serde_json::from_slice(bytes).ok();
        let obj = full.as_ref().unwrap_or(obj);
        if let Some(view) = def.view() {
            return Bytes::from(serde_json::to_vec(&(view.to_view)(obj)).unwrap_or_default());
        }
        let mut v = obj.clone();
        v["apiVersion"] = json!(def.api_version());
        if let Some(c) = &def.convert {
            c.convert(def, &mut v);
        }
        Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
    }

    fn check_namespace(&self, def: &ResourceDef, ns: &str) -> Result<(), ApiError> {
        if !def.namespaced {
            return Ok(());
        }
        if ns.is_empty() {
            return Err(ApiError::bad_request(format!(
                "the namespace of the provided object does not match the namespace sent on the request ({} is namespaced)",
                def.plural
            )));
        }
        let inner = self.namespaces.inner.read();
        match inner.objects.get(&(String::new(), ns.to_string())) {
            None => Err(ApiError::not_found("namespaces", "", ns)),
            Some(s) if meta(&s.obj).is_some_and(|m| m.contains_key("deletionTimestamp")) => {
                Err(ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        qualified(&def.plural, &def.group),
                        meta_str(&s.obj, "name").unwrap_or_default()
                    ),
                ))
            }
            Some(_) => Ok(()),
        }
    }

    /// Check kind/apiVersion/name and run CRD schema validation; returns warnings.
    /// `old`: the stored copy, on an update.
    fn validate(
        &self,
        def: &ResourceDef,
        obj: &mut Value,
        old: Option<&Value>,
        o: &WriteOpts,
    ) -> Result<Vec<String>, ApiError> {
        let name = meta_str(obj, "name").unwrap_or_default().to_string();
        let mut causes: Vec<Cause> = Vec::new();
        if !obj.get("metadata").is_some_and(Value::is_object) && obj.get("metadata").is_some() {
            causes.push(Cause {
                reason: "FieldValueTypeInvalid".into(),
                message: "must be an object".into(),
                field: "metadata".into(),
            });
        }
        if def.plural != "namespaces" || !name.is_empty() {
            let valid = if matches!(def.plural.as_str(), "namespaces") {
                name.len() <= 63 && is_dns_subdomain(&name) && !name.contains('.')
            } else {
                is_dns_subdomain(&name)
                    || (def.group.starts_with("rbac.") && !name.is_empty() && !name.contains('/'))
                    // Signer-linked bundles are named `<domain>:<path>:<rest>` (checked in certificates/ctb.rs).
                    || (def.plural == "clustertrustbundles" && name.contains(':'))
            };
            if !valid {
                causes.push(Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!("Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
                    field: "metadata.name".into(),
                });
            }
        }
        for k in ["labels", "annotations"] {
            if let Some(m) = meta(obj).and_then(|m| m.get(k))
                && (!m.is_object()
                    || m.as_object()
                        .is_some_and(|o| o.values().any(|v| !v.is_string())))
            {
                causes.push(Cause {
                    reason: "FieldValueTypeInvalid".into(),
                    message: "must be a map of string to string".into(),
                    field: format!("metadata.{k}"),
                });
            }
        }
        if def.plural == "customresourcedefinitions" && def.group == "apiextensions.k8s.io" {
            causes.extend(super::crd_checks::check_crd(obj));
        }
        if def.plural == "events" && (def.group.is_empty() || def.group == "events.k8s.io") {
            causes.extend(super::events::check(obj, old, def.group == "events.k8s.io"));
        }
        let mut unknown = Vec::new();
        if let Some(schema) = &def.compiled {
            let r = schema::validate_root(schema, obj);
            unknown = r.unknown;
            causes.extend(r.causes);
        } else {
            super::field_validation::unknown_builtin(def, obj, &mut unknown);
        }
        let warnings = super::field_validation::verdict(o, &unknown)?;
        if !causes.is_empty() {
            return Err(ApiError::invalid(&def.kind, &def.group, &name, causes));
        }
        Ok(warnings)
    }

    fn check_type(def: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        let av = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON or YAML object",
            ));
        }
        if (!kind.is_empty() && kind != def.kind) || (!av.is_empty() && av != def.api_version()) {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({}) or the kind ({kind}) does not match {}",
                def.api_version(),
                def.kind
            )));
        }
        Ok(())
    }

    /// Append a change to the history and fan it out; caller holds the write lock and has set the rv.
    /// Stores `obj` as `key`'s next version (removes `key` instead for a `Deleted` event) and
    /// records its watch event, under the collection's write lock (`inner`): draws its
    /// resourceVersion, serializes it with `managers`' managedFields. Returns the object as
    /// stored and its serialization.
    #[allow(clippy::too_many_arguments)]
    fn commit_version(
        &self,
        def: &ResourceDef,
        coll: &Collection,
        inner: &mut Inner,
        key: &(String, String),
        mut obj: Value,
        etype: EventType,
        managers: Arc<Managed>,
        old: Option<Arc<Value>>,
    ) -> Result<(Arc<Value>, Bytes), ApiError> {
        let rv = self.rv.fetch_add(1, Ordering::SeqCst) + 1;
        let (line, bytes) = self.finish(def, &mut obj, rv, etype, &managers)?;
        let obj = Arc::new(obj);
        if etype == EventType::Deleted {
            inner.objects.remove(key);
        } else {
            inner.objects.insert(
                key.clone(),
                Stored {
                    obj: obj.clone(),
                    bytes: bytes.clone(),
                    managers,
                },
            );
        }
        self.record(
            coll,
            inner,
            rv,
            etype,
            &key.0,
            obj.clone(),
            old,
            line,
            bytes.clone(),
        );
        Ok((obj, bytes))
    }

    #[allow(clippy::too_many_arguments)] // every part of an event is needed; grouping them would only move the list
    fn record(
        &self,
        coll: &Collection,
        inner: &mut Inner,
        rv: u64,
        etype: EventType,
        ns: &str,
        obj: Arc<Value>,
        old: Option<Arc<Value>>,
        line: Bytes,
        bytes: Bytes,
    ) {
        inner.history.push_back(Hist {
            rv,
            etype,
            namespace: ns.to_string(),
            bytes: bytes.clone(),
            line: line.clone(),
        });
        while inner.history.len() > self.history_limit {
            if let Some(e) = inner.history.pop_front() {
                inner.compacted = e.rv;
            }
        }
        // No receivers is normal (nobody watching).
        let _ = coll.tx.send(Arc::new(Event {
            rv,
            etype,
            namespace: ns.to_string(),
            obj,
            old,
            bytes,
            line,
            at: std::time::Instant::now(),
        }));
    }

    /// Stamp the rv and type meta, then serialize once, straight into a watch line of `etype`;
    /// returns (line, object slice of the line).
    fn finish(
        &self,
        def: &ResourceDef,
        obj: &mut Value,
        rv: u64,
        etype: EventType,
        managed: &Managed,
    ) -> Result<(Bytes, Bytes), ApiError> {
        if let Some(m) = meta_mut(obj) {
            m.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        let av = def.storage_api_version();
        if obj.get("apiVersion").and_then(Value::as_str) != Some(av.as_str()) {
            obj["apiVersion"] = json!(av);
        }
        if obj.get("kind").and_then(Value::as_str) != Some(def.kind.as_str()) {
            obj["kind"] = json!(def.kind);
        }
        let mut v = Vec::with_capacity(512);
        v.extend_from_slice(b"{\"type\":\"");
        v.extend_from_slice(etype.as_str().as_bytes());
        v.extend_from_slice(b"\",\"object\":");
        let start = v.len();
        super::json_out::write_with_managed(&mut v, obj, managed.json().map(|b| &b[..]));
        let end = v.len();
        v.extend_from_slice(b"}\n");
        let line = Bytes::from(v);
        let bytes = line.slice(start..end);
        Ok((line, bytes))
    }

    /// Create an object.
    ///
    /// # Errors
    /// 400/404/409/422 Status errors as the API server answers them.
    pub fn create(
        &self,
        def: &Arc<ResourceDef>,
        ns: &str,
        obj: Value,
        o: &WriteOpts,
    ) -> Result<WriteOut, ApiError> {
        self.create_with(def, ns, obj, o, None)
    }

    /// Create an object; `managers`: the entries of a server-side apply that creates it (else
    /// the create is an `Update` operation).
    fn create_with(
        &self,
        def: &Arc<ResourceDef>,
        ns: &str,
        mut obj: Value,
        o: &WriteOpts,
        managers: Option<Vec<Entry>>,
    ) -> Result<WriteOut, ApiError> {
        Self::check_type(def, &obj)?;
        if let Some(view) = def.view() {
            obj = (view.from_view)(obj);
        }
        if obj.get("metadata").is_none() {
            obj["metadata"] = json!({});
        }
        let body_ns = meta_str(&obj, "namespace").unwrap_or_default().to_string();
        if def.namespaced && !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        self.check_namespace(def, ns)?;
        let Some(m) = meta_mut(&mut obj) else {
            return Err(ApiError::bad_request("metadata must be an object"));
        };
        let mut generate_name = None;
        if m.get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
        {
            match m.get("generateName").and_then(Value::as_str) {
                Some(g) if !g.is_empty() => {
                    generate_name = Some(g.to_owned());
                    let n = format!("{g}{}", random_suffix());
                    m.insert("name".into(), json!(n));
                }
                _ => {
                    return Err(ApiError::invalid(
                        &def.kind,
                        &def.group,
                        "",
                        vec![Cause {
                            reason: "FieldValueRequired".into(),
                            message: "Required value: name or generateName is required".into(),
                            field: "metadata.name".into(),
                        }],
                    ));
                }
            }
        }
        if def.namespaced {
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        m.remove("deletionTimestamp");
        let sent = m.remove("managedFields");
        m.remove("resourceVersion");
        if def.generation || def.schema.is_some() {
            m.insert("generation".into(), json!(1));
        }
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        // Status is not writable on create through the main resource.
        if def.status
            && def.schema.is_some()
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        let managers = match managers {
            Some(m) => m,
            None => {
                let mut entries = match managed::sent(sent.as_ref()) {
                    managed::Sent::Entries(e) => e,
                    managed::Sent::Live | managed::Sent::Reset => Vec::new(),
                };
                let sub = o.subresource.as_deref().unwrap_or_default();
                let cmp = apply::compare(
                    &create_baseline(def),
                    &obj,
                    def.schema.as_deref(),
                    None,
                    reset_fields(def, sub),
                    owns_server_fields(&entries),
                );
                managed::update(
                    &mut entries,
                    cmp,
                    &writer(def, o, Operation::Update),
                    &now_rfc3339(),
                );
                entries
            }
        };
        self.builtin_defaults(def, &mut obj, o);
        if let Some(a) = self.admission.get() {
            a.create(self, def, ns, &mut obj, o)?;
        }
        let warnings = self.validate(def, &mut obj, None, o)?;
        // Encoded before the write lock is taken (the entries do not depend on the name drawn).
        let managers = Managed::new(managers, None);
        let coll = &def.coll;
        let mut inner = coll.inner.write();
        let mut name = name;
        let mut key = def.key(ns, &name);
        // A generated name that collides is drawn again, as kube-apiserver does (its
        // RetryGenerateName behaviour): 27^5 suffixes make a collision likely within ~10k objects.
        if let Some(prefix) = &generate_name {
            let mut attempts = 0;
            while inner.objects.contains_key(&key) && attempts < GENERATE_NAME_ATTEMPTS {
                name = format!("{prefix}{}", random_suffix());
                key.1 = name.clone();
                attempts += 1;
            }
            if let Some(m) = meta_mut(&mut obj) {
                m.insert("name".into(), json!(name));
            }
        }
        if inner.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&def.plural, &def.group, &name));
        }
        if o.dry_run {
            let (_, body) = self.finish(
                def,
                &mut obj,
                self.current_rv(),
                EventType::Added,
                &managers,
            )?;
            return Ok(WriteOut {
                code: 201,
                body,
                warnings,
            });
        }
        let (obj, bytes) = self.commit_version(
            def,
            coll,
            &mut inner,
            &key,
            obj,
            EventType::Added,
            Arc::new(managers),
            None,
        )?;
        drop(inner);
        if def.plural == "customresourcedefinitions" && def.group == "apiextensions.k8s.io" {
            self.register_crd(&obj)?;
        }
        let body = Self::render_for(def, &obj, &bytes);
        Ok(WriteOut {
            code: 201,
            body,
            warnings,
        })
    }

    /// Defaults that real built-in registries (or cert-manager's webhook) apply on create.
    fn builtin_defaults(&self, def: &ResourceDef, obj: &mut Value, o: &WriteOpts) {
        match (def.group.as_str(), def.plural.as_str()) {
            ("", "namespaces") => {
                obj["status"] = json!({"phase": "Active"});
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                let names = obj.pointer("/spec/names").cloned().unwrap_or(json!({}));
                let now = now_rfc3339();
                obj["status"] = json!({
                    "acceptedNames": names,
                    "conditions": [
                        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now}
                    ],
                    "storedVersions": obj.pointer("/spec/versions").and_then(Value::as_array).map(|vs| vs.iter().filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true)).filter_map(|v| v.get("name").cloned()).collect::<Vec<_>>()).unwrap_or_default(),
                });
            }
            ("cert-manager.io", "certificaterequests") if self.set_cr_username => {
                super::auth::certificaterequest_identity(obj, o);
            }
            _ => {}
        }
    }

    /// Get one object.
    ///
    /// # Errors
    /// 404 when absent.
    pub fn get(&self, def: &ResourceDef, ns: &str, name: &str) -> Result<Bytes, ApiError> {
        let inner = def.coll.inner.read();
        let key = def.key(ns, name);
        inner
            .objects
            .get(&key)
            .map(|s| Self::out_bytes(def, s))
            .ok_or_else(|| ApiError::not_found(&def.plural, &def.group, name))
    }

    /// One stored object as stored and served in its storage version, managedFields included
    /// (harness helper).
    pub fn get_stored(&self, def: &ResourceDef, ns: &str, name: &str) -> Option<Value> {
        let inner = def.coll.inner.read();
        let s = inner.objects.get(&def.key(ns, name))?;
        serde_json::from_slice(&s.bytes).ok()
    }

    /// Get one object parsed, without its managedFields (harness and admission helper).
    pub fn get_value(&self, def: &ResourceDef, ns: &str, name: &str) -> Option<Arc<Value>> {
        let inner = def.coll.inner.read();
        let key = def.key(ns, name);
        inner.objects.get(&key).map(|s| s.obj.clone())
    }

    /// List objects as a `<Kind>List` JSON body; `limit`/`continue` page through one consistent
    /// snapshot, as kube-apiserver pages through one etcd revision: every page shows the objects
    /// as they were at the first page's resourceVersion, and the list carries that
    /// resourceVersion, so a watch from it misses no change made while the pages were read.
    ///
    /// # Errors
    /// 400 for a malformed continue token; 410 for one whose snapshot has expired.
    pub fn list(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        ls: &LabelSelector,
        fs: &FieldSelector,
        limit: Option<usize>,
        cont: Option<&str>,
    ) -> Result<(Bytes, usize), ApiError> {
        let limit = limit.filter(|l| *l > 0);
        let (rv, page, next) = match cont.filter(|c| !c.is_empty()) {
            Some(c) => self.snapshots.next_page(def, c, limit)?,
            None => {
                let inner = def.coll.inner.read();
                let rv = self.current_rv();
                let matching = Self::matching(def, &inner, ns, ls, fs);
                drop(inner);
                self.snapshots.first_page(def, rv, matching, limit)
            }
        };
        let mut body = Vec::with_capacity(256);
        body.extend_from_slice(b"{\"kind\":\"");
        body.extend_from_slice(def.kind.as_bytes());
        body.extend_from_slice(b"List\",\"apiVersion\":\"");
        body.extend_from_slice(def.api_version().as_bytes());
        body.extend_from_slice(b"\",\"items\":[");
        for (n, (obj, bytes)) in page.iter().enumerate() {
            if n > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&Self::render_for(def, obj, bytes));
        }
        body.extend_from_slice(b"],\"metadata\":{\"resourceVersion\":\"");
        body.extend_from_slice(rv.to_string().as_bytes());
        body.push(b'"');
        if let Some(tok) = next {
            body.extend_from_slice(b",\"continue\":\"");
            body.extend_from_slice(tok.as_bytes());
            body.push(b'"');
        }
        body.extend_from_slice(b"}}");
        Ok((Bytes::from(body), page.len()))
    }

    /// The objects of `def` a list with these selectors returns, in key order (cheap clones).
    fn matching(
        def: &ResourceDef,
        inner: &Inner,
        ns: Option<&str>,
        ls: &LabelSelector,
        fs: &FieldSelector,
    ) -> Vec<(Arc<Value>, Bytes)> {
        let range: Box<dyn Iterator<Item = (&(String, String), &Stored)>> = match ns {
            Some(n) if def.namespaced => Box::new(
                inner
                    .objects
                    .range((n.to_string(), String::new())..)
                    .take_while(move |(k, _)| k.0 == n),
            ),
            _ => Box::new(inner.objects.iter()),
        };
        let pinned = fs.pinned_name();
        range
            .filter(|(k, s)| {
                pinned.is_none_or(|p| p == k.1) && ls.matches(&s.obj) && fs.matches(&s.obj)
            })
            .map(|(_, s)| (s.obj.clone(), s.bytes.clone()))
            .collect()
    }

    /// Replace (PUT) an object or its status.
    ///
    /// # Errors
    /// 404, 409 (stale resourceVersion), 422.
    pub fn update(
        &self,
        def: &Arc<ResourceDef>,
        ns: &str,
        name: &str,
        status_only: bool,
        body: Value,
        o: &WriteOpts,
    ) -> Result<WriteOut, ApiError> {
        Self::check_type(def, &body)?;
        // Field ownership is judged in the shape the request used.
        let view_body = def.view().map(|_| body.clone());
        let body = match def.view() {
            Some(view) => (view.from_view)(body),
            None => body,
        };
        if meta_str(&body, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&body, "name").unwrap_or_default()
            )));
        }
        let want_rv = meta_str(&body, "resourceVersion")
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if want_rv.is_none() && !def.unconditional_update {
            return Err(ApiError::invalid(
                &def.kind,
                &def.group,
                name,
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: "Invalid value: 0: must be specified for an update".into(),
                    field: "metadata.resourceVersion".into(),
                }],
            ));
        }
        self.modify(def, ns, name, o, |old| {
            if let Some(w) = &want_rv
                && meta_str(&old.obj, "resourceVersion") != Some(w.as_str())
            {
                return Err(ApiError::conflict(&def.plural, &def.group, name, "the object has been modified; please apply your changes to the latest version and try again"));
            }
            let managers = match (&view_body, def.view()) {
                (Some(vb), Some(view)) => {
                    updated_managers(def, old, &(view.to_view)(&old.obj), vb, None, o)
                }
                _ => updated_managers(def, old, &old.obj, &body, None, o),
            };
            // (A copy of the body: a write that lost the race runs again on the new version.)
            Ok((self.merge_sub(def, &old.obj, body.clone(), status_only), Some(managers)))
        })
    }

    /// Take `status` from `new` (status write) or everything but status (main write).
    fn merge_sub(
        &self,
        def: &ResourceDef,
        old: &Value,
        mut new: Value,
        status_only: bool,
    ) -> Value {
        if status_only {
            // Everything but status comes from the stored object: copy it without its status
            // (which is replaced anyway) rather than copying the whole object and then overwriting.
            let Some(src) = old.as_object() else {
                let mut out = old.clone();
                match new.get_mut("status").map(Value::take) {
                    Some(s) => out["status"] = s,
                    None => {
                        if let Some(o) = out.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
                return out;
            };
            let mut status = new.get_mut("status").map(Value::take);
            let mut out = serde_json::Map::new();
            for (k, v) in src {
                if k == "status" {
                    if let Some(s) = status.take() {
                        out.insert(k.clone(), s);
                    }
                } else {
                    out.insert(k.clone(), v.clone());
                }
            }
            if let Some(s) = status
                && !out.contains_key("status")
            {
                out.insert("status".into(), s);
            }
            Value::Object(out)
        } else {
            if def.status {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(o) = new.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            new
        }
    }

    /// Patch an object or its status.
    ///
    /// # Errors
    /// 400 (bad patch), 404, 409, 415, 422.
    #[allow(clippy::too_many_arguments)] // mirrors the request: target, subresource, content type, body, options
    pub fn patch(
        &self,
        def: &Arc<ResourceDef>,
        ns: &str,
        name: &str,
        status_only: bool,
        content_type: &str,
        body: &[u8],
        o: &WriteOpts,
    ) -> Result<WriteOut, ApiError> {
        let ct = content_type.split(';').next().unwrap_or_default().trim();
        match ct {
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                // Clients send apply configurations as JSON (valid YAML) almost always: parse it
                // as JSON first, which is several times cheaper than the YAML parser.
                let cfg: Value = match serde_json::from_slice(body) {
                    Ok(cfg) => cfg,
                    Err(_) => serde_saphyr::from_slice_with_options(
                        body,
                        super::field_validation::yaml_options(),
                    )
                    .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
                };
                return self.apply(def, ns, name, status_only, cfg, o);
            }
            "application/merge-patch+json"
            | "application/json-patch+json"
            | "application/strategic-merge-patch+json" => {}
            other => return Err(ApiError::unsupported_media(other)),
        }
        let (patch, duplicates) = if ct == "application/json-patch+json" {
            let p: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            (p, Vec::new())
        } else {
            super::field_validation::parse_json(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
        };
        // Read once: the closure below runs again when another write wins the race.
        let mut patch = patch;
        let json_patch: Option<Result<json_patch::Patch, String>> = match ct {
            "application/json-patch+json" => Some(
                <json_patch::Patch as serde::Deserialize>::deserialize(&patch)
                    .map_err(|e| format!("invalid JSON patch: {e}")),
            ),
            "application/strategic-merge-patch+json" => {
                strip_directives(&mut patch);
                None
            }
            _ => None,
        };
        let with_dups;
        let o = if duplicates.is_empty() {
            o
        } else {
            with_dups = WriteOpts {
                duplicate_fields: duplicates,
                ..o.clone()
            };
            &with_dups
        };
        self.modify(def, ns, name, o, |old| {
            // A merge patch treats every top-level key on its own, so a /status merge patch only
            // needs the two keys its result is read from (metadata for the preconditions, status
            // for the write) instead of a deep copy of the whole object. A JSON patch may copy or
            // move between paths, so it gets the whole object.
            let partial = status_only && ct != "application/json-patch+json";
            // Without a metadata key in the patch the merged metadata is the stored one, whose
            // resourceVersion and name pass the checks below by construction: skip copying it.
            let meta_in_patch = !patch.is_object() || patch.get("metadata").is_some();
            let check_meta = !partial || meta_in_patch;
            let keys: &[&str] = if meta_in_patch { &["metadata", "status"] } else { &["status"] };
            let mut cur = if partial {
                let mut m = serde_json::Map::new();
                if let Some(src) = old.obj.as_object() {
                    for &k in keys {
                        if let Some(v) = src.get(k) {
                            m.insert(k.to_string(), v.clone());
                        }
                    }
                }
                Value::Object(m)
            } else {
                (*old.obj).clone()
            };
            // A view (events.k8s.io Events) is patched in its own shape, then stored converted.
            if let Some(view) = def.view() {
                cur = (view.to_view)(&cur);
            }
            match &json_patch {
                Some(Err(e)) => return Err(ApiError::bad_request(e.clone())),
                Some(Ok(p)) => {
                    // A JSON patch may test or copy the live managedFields, which `obj` does
                    // not hold: put them in.
                    if let (Some(mf), Some(m)) = (old.managers.value(), meta_mut(&mut cur)) {
                        m.insert("managedFields".into(), mf);
                    }
                    json_patch::patch(&mut cur, p).map_err(|e| ApiError::new(422, "Invalid", format!("the JSON patch could not be applied: {e}")))?;
                }
                None => json_patch::merge(&mut cur, &patch),
            }
            let managers = {
                let live_view = def.view().map(|v| (v.to_view)(&old.obj));
                let live = live_view.as_ref().unwrap_or(&old.obj);
                updated_managers(def, old, live, &cur, partial.then_some(keys), o)
            };
            if let Some(view) = def.view() {
                cur = (view.from_view)(cur);
            }
            // A resourceVersion carried by the patch is a precondition.
            if check_meta
                && let Some(w) = meta_str(&cur, "resourceVersion")
                && meta_str(&old.obj, "resourceVersion") != Some(w)
            {
                return Err(ApiError::conflict(&def.plural, &def.group, name, "the object has been modified; please apply your changes to the latest version and try again"));
            }
            if check_meta && meta_str(&cur, "name") != Some(name) {
                return Err(ApiError::bad_request("metadata.name may not be changed by a patch"));
            }
            Ok((self.merge_sub(def, &old.obj, cur, status_only), Some(managers)))
        })
    }

    fn apply(
        &self,
        def: &Arc<ResourceDef>,
        ns: &str,
        name: &str,
        status_only: bool,
        mut cfg: Value,
        o: &WriteOpts,
    ) -> Result<WriteOut, ApiError> {
        let Some(manager) = o.field_manager.clone().filter(|m| !m.is_empty()) else {
            return Err(ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        };
        Self::check_type(def, &cfg)?;
        if let Some(view) = def.view()
            && cfg.get("apiVersion").is_some()
        {
            cfg = (view.from_view)(cfg);
        }
        if cfg.get("apiVersion").is_none() || cfg.get("kind").is_none() {
            return Err(ApiError::bad_request(
                "invalid object type: apply configurations must set apiVersion and kind",
            ));
        }
        // Any managedFields but null (an empty list too) is refused.
        if meta(&cfg)
            .and_then(|m| m.get("managedFields"))
            .is_some_and(|v| !v.is_null())
        {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        let who = writer(def, o, Operation::Apply);
        let who = Entry {
            manager: manager.clone(),
            ..who
        };
        if let Some(schema) = def.compiled.as_ref().or(def.apply_schema.as_ref()) {
            // kube-apiserver converts the whole configuration (spec too on /status) to the typed
            // object before merging, and refuses what the schema lacks, whatever fieldValidation
            // says: no pruning for apply. Built-in kinds are typed by their API types' models.
            let undeclared = schema::undeclared_in_apply(schema, &cfg);
            if !undeclared.is_empty() {
                return Err(typed_patch_error(&cfg, &undeclared));
            }
        }
        if meta_str(&cfg, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&cfg, "name").unwrap_or_default()
            )));
        }
        let precondition = meta_str(&cfg, "resourceVersion").map(str::to_string);
        // Restrict the configuration to what this endpoint may change.
        if let Some(c) = cfg.as_object_mut() {
            c.remove("apiVersion");
            c.remove("kind");
            if status_only {
                c.retain(|k, _| k == "status");
            } else if def.status {
                c.remove("status");
            }
        }
        let exists = {
            let inner = def.coll.inner.read();
            inner.objects.contains_key(&def.key(ns, name))
        };
        if !exists {
            if status_only {
                return Err(ApiError::not_found(&def.plural, &def.group, name));
            }
            let mut obj = cfg.clone();
            obj["apiVersion"] = json!(def.api_version());
            obj["kind"] = json!(def.kind);
            if obj.get("metadata").is_none() {
                obj["metadata"] = json!({});
            }
            obj["metadata"]["name"] = json!(name);
            // Authorized before the create's admission and validation (kube-apiserver runs its
            // strategy's validation first: an invalid object from a caller without `create`
            // gets 403 here where the real server answers 422; refused either way).
            if let Some(check) = &o.authorize_create {
                (check.0)()?;
            }
            let schema = def.schema.as_deref();
            let mut applied = apply::apply(&json!({}), &cfg, schema, &[], &who, true)
                .map_err(|_| ApiError::internal("apply on an empty object cannot conflict"))?;
            if applied.changed {
                stamp(&mut applied.managers, &who);
            }
            return self.create_with(def, ns, obj, o, Some(applied.managers));
        }
        self.modify(def, ns, name, o, |old| {
            if let Some(w) = &precondition
                && meta_str(&old.obj, "resourceVersion") != Some(w.as_str())
            {
                return Err(ApiError::conflict(&def.plural, &def.group, name, "the object has been modified; please apply your changes to the latest version and try again"));
            }
            let schema = def.schema.as_deref();
            // An object nobody manages gets a `before-first-apply` updater owning what it holds.
            let mut base = old.managers.entries.clone();
            if base.is_empty() {
                let sub = o.subresource.as_deref().unwrap_or_default();
                let cmp = apply::compare(&create_baseline(def), &old.obj, schema, None, reset_fields(def, sub), false);
                let first = Entry { manager: "before-first-apply".into(), ..writer(def, o, Operation::Update) };
                managed::update(&mut base, cmp, &first, &now_rfc3339());
            }
            match apply::apply(&old.obj, &cfg, schema, &base, &who, o.force) {
                Ok(mut applied) => {
                    if applied.changed {
                        stamp(&mut applied.managers, &who);
                    }
                    Ok((applied.merged, Some(applied.managers)))
                }
                Err(conflicts) => {
                    let causes: Vec<Cause> = conflicts
                        .iter()
                        .map(|c| Cause { reason: "FieldManagerConflict".into(), message: format!("conflict with {}", c.manager_printed()), field: apply::render(&c.path) })
                        .collect();
                    let message = apply::conflict_message(&conflicts);
                    let mut e = ApiError::conflict(&def.plural, &def.group, name, &message);
                    e.message = message;
                    e.causes = causes;
                    Err(e)
                }
            }
        })
    }

    /// The shared read-modify-write path of update, patch and apply. Everything but the commit
    /// (`f`, the managedFields, admission, validation) runs on a snapshot of the stored version
    /// outside the resource's write lock; the commit takes the lock, checks that the object is
    /// still that version and otherwise starts over on the new one (kube-apiserver's
    /// `GuaranteedUpdate` retries the same way), so the lock is held only to store the result.
    fn modify(
        &self,
        def: &Arc<ResourceDef>,
        ns: &str,
        name: &str,
        o: &WriteOpts,
        mut f: impl FnMut(&Stored) -> Result<(Value, Option<Vec<Entry>>), ApiError>,
    ) -> Result<WriteOut, ApiError> {
        let coll = &def.coll;
        let key = def.key(ns, name);
        loop {
            let old = {
                let inner = coll.inner.read();
                match inner.objects.get(&key) {
                    Some(s) => s.clone(),
                    None => return Err(ApiError::not_found(&def.plural, &def.group, name)),
                }
            };
            let (mut new, entries) = f(&old)?;
            if !new.is_object() {
                return Err(ApiError::bad_request(
                    "the patched object is not a JSON object",
                ));
            }
            // The live encoding when the entries are unchanged, else encoded again (reusing the
            // `fieldsV1` of every entry whose set did not change).
            let managers = match entries {
                Some(e) if e != old.managers.entries => {
                    Arc::new(Managed::new(e, Some(&old.managers)))
                }
                _ => old.managers.clone(),
            };
            // Server-managed metadata always comes from the stored object.
            let no_meta = serde_json::Map::new();
            let old_meta = meta(&old.obj).unwrap_or(&no_meta);
            if !new.get("metadata").is_some_and(Value::is_object) {
                new["metadata"] = json!({});
            }
            if let Some(m) = meta_mut(&mut new) {
                for k in [
                    "name",
                    "namespace",
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                ] {
                    match old_meta.get(k) {
                        Some(v) => {
                            m.insert(k.into(), v.clone());
                        }
                        None => {
                            m.remove(k);
                        }
                    }
                }
                // The entries live beside the object (spliced into its serialization).
                m.remove("managedFields");
                m.insert(
                    "resourceVersion".into(),
                    old_meta
                        .get("resourceVersion")
                        .cloned()
                        .unwrap_or(json!("")),
                );
            }
            new["apiVersion"] = json!(def.storage_api_version());
            new["kind"] = json!(def.kind);
            if let Some(a) = self.admission.get() {
                a.update(self, def, &old.obj, &mut new, o)?;
            }
            let warnings = self.validate(def, &mut new, Some(&old.obj), o)?;
            if def.plural == "customresourcedefinitions" && def.group == "apiextensions.k8s.io" {
                let keep = old.obj.get("status").cloned();
                self.builtin_defaults(def, &mut new, o);
                if let (Some(k), Some(st)) = (keep, new.get_mut("status"))
                    && let Some(c) = k.get("conditions")
                {
                    st["conditions"] = c.clone();
                }
            }
            if old_meta.contains_key("generation") && spec_changed(&old.obj, &new, def.status) {
                let g = old_meta
                    .get("generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
                    + 1;
                new["metadata"]["generation"] = json!(g);
            }
            let deleting = old_meta.contains_key("deletionTimestamp")
                && meta(&new)
                    .and_then(|m| m.get("finalizers"))
                    .and_then(Value::as_array)
                    .is_none_or(|f| f.is_empty());
            // Nothing changes when the object and the served managedFields are the same (entries
            // that differ only in order are served the same).
            if !deleting && same_except_rv(&old.obj, &new) && managers.json() == old.managers.json()
            {
                let mut inner = coll.inner.write();
                let Some(s) = inner.objects.get_mut(&key).filter(|s| s.same_version(&old)) else {
                    continue;
                };
                s.managers = managers;
                return Ok(WriteOut {
                    code: 200,
                    body: Self::out_bytes(def, s),
                    warnings,
                });
            }
            if o.dry_run {
                let (_, body) = self.finish(
                    def,
                    &mut new,
                    self.current_rv(),
                    EventType::Modified,
                    &managers,
                )?;
                return Ok(WriteOut {
                    code: 200,
                    body,
                    warnings,
                });
            }
            let etype = if deleting {
                EventType::Deleted
            } else {
                EventType::Modified
            };
            let mut inner = coll.inner.write();
            if !inner
                .objects
                .get(&key)
                .is_some_and(|s| s.same_version(&old))
            {
                continue;
            }
            let (obj, bytes) = self.commit_version(
                def,
                coll,
                &mut inner,
                &key,
                new,
                etype,
                managers,
                Some(old.obj.clone()),
            )?;
            drop(inner);
            if def.plural == "customresourcedefinitions" && def.group == "apiextensions.k8s.io" {
                if deleting {
                    self.unregister_crd(&obj);
                } else {
                    self.register_crd(&obj)?;
                }
            }
            return Ok(WriteOut {
                code: 200,
                body: Self::render_for(def, &obj, &bytes),
                warnings,
            });
        }
    }

    /// Delete an object: immediate without finalizers, else `deletionTimestamp` is set.
    ///
    /// # Errors
    /// 404; 409 when a precondition (uid, resourceVersion) fails.
    pub fn delete(
        &self,
        def: &Arc<ResourceDef>,
        ns: &str,
        name: &str,
        opts: &Value,
        dry_run: bool,
    ) -> Result<Bytes, ApiError> {
        let coll = &def.coll;
        let key = def.key(ns, name);
        let mut inner = coll.inner.write();
        let Some(old) = inner.objects.get(&key) else {
            return Err(ApiError::not_found(&def.plural, &def.group, name));
        };
        if let Some(p) = opts.get("preconditions") {
            if let Some(uid) = p.get("uid").and_then(Value::as_str)
                && meta_str(&old.obj, "uid") != Some(uid)
            {
                return Err(ApiError::conflict(
                    &def.plural,
                    &def.group,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&old.obj, "uid").unwrap_or_default()
                    ),
                ));
            }
            if let Some(rv) = p.get("resourceVersion").and_then(Value::as_str)
                && meta_str(&old.obj, "resourceVersion") != Some(rv)
            {
                return Err(ApiError::conflict(
                    &def.plural,
                    &def.group,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        meta_str(&old.obj, "resourceVersion").unwrap_or_default()
                    ),
                ));
            }
        }
        if dry_run {
            return Ok(Self::out_bytes(def, old));
        }
        let has_finalizers = meta(&old.obj)
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let old_obj = old.obj.clone();
        let old_managers = old.managers.clone();
        if has_finalizers {
            if meta(&old_obj).is_some_and(|m| m.contains_key("deletionTimestamp")) {
                return Ok(Self::out_bytes(def, old));
            }
            let mut new = (*old_obj).clone();
            new["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if let Some(g) = meta(&old_obj)
                .and_then(|m| m.get("generation"))
                .and_then(Value::as_i64)
            {
                new["metadata"]["generation"] = json!(g + 1);
            }
            let (obj, bytes) = self.commit_version(
                def,
                coll,
                &mut inner,
                &key,
                new,
                EventType::Modified,
                old_managers,
                Some(old_obj),
            )?;
            return Ok(Self::render_for(def, &obj, &bytes));
        }
        let (obj, bytes) = self.commit_version(
            def,
            coll,
            &mut inner,
            &key,
            (*old_obj).clone(),
            EventType::Deleted,
            old_managers,
            Some(old_obj.clone()),
        )?;
        drop(inner);
        if def.plural == "customresourcedefinitions" && def.group == "apiextensions.k8s.io" {
            self.unregister_crd(&obj);
        }
        if def.plural == "namespaces" && def.group.is_empty() {
            self.purge_namespace(name);
        }
        Ok(Self::render_for(def, &obj, &bytes))
    }

    /// Names of the objects a delete-collection would remove.
    pub fn names(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        ls: &LabelSelector,
        fs: &FieldSelector,
    ) -> Vec<(String, String)> {
        let inner = def.coll.inner.read();
        inner
            .objects
            .iter()
            .filter(|(k, s)| {
                ns.is_none_or(|w| !def.namespaced || k.0 == w)
                    && ls.matches(&s.obj)
                    && fs.matches(&s.obj)
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn purge_namespace(&self, ns: &str) {
        let defs: Vec<Arc<ResourceDef>> = {
            let reg = self.registry.read();
            let mut seen = std::collections::HashSet::new();
            reg.gvs
                .values()
                .flat_map(|m| m.values())
                .filter(|d| d.namespaced && seen.insert(Arc::as_ptr(&d.coll) as usize))
                .cloned()
                .collect()
        };
        for d in defs {
            let keys: Vec<String> = d
                .coll
                .inner
                .read()
                .objects
                .keys()
                .filter(|k| k.0 == ns)
                .map(|k| k.1.clone())
                .collect();
            for k in keys {
                // Finalizers are ignored here: there is no namespace controller to wait for.
                let mut inner = d.coll.inner.write();
                if let Some(old) = inner.objects.remove(&(ns.to_string(), k)) {
                    let rv = self.rv.fetch_add(1, Ordering::SeqCst) + 1;
                    let mut last = (*old.obj).clone();
                    if let Ok((line, bytes)) =
                        self.finish(&d, &mut last, rv, EventType::Deleted, &old.managers)
                    {
                        self.record(
                            &d.coll,
                            &mut inner,
                            rv,
                            EventType::Deleted,
                            ns,
                            Arc::new(last),
                            Some(old.obj),
                            line,
                            bytes,
                        );
                    }
                }
            }
        }
    }

    /// Register (or refresh) the resources of a CRD object.
    fn register_crd(&self, crd: &Value) -> Result<(), ApiError> {
        let spec = crd
            .get("spec")
            .ok_or_else(|| ApiError::bad_request("CustomResourceDefinition has no spec"))?;
        let group = spec
            .get("group")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let names = spec.get("names").cloned().unwrap_or(json!({}));
        let plural = names
            .get("plural")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let singular = names
            .get("singular")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| kind.to_lowercase());
        let strs = |k: &str| {
            names
                .get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
        let versions = spec
            .get("versions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let storage = versions
            .iter()
            .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .or(versions.first())
            .and_then(|v| v.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("v1")
            .to_string();
        let mut reg = self.registry.write();
        let coll = reg
            .colls
            .entry((group.clone(), plural.clone()))
            .or_insert_with(|| Collection::new(self.watch_buffer))
            .clone();
        // Drop previously served versions of this resource, then add the current ones.
        for m in reg.gvs.values_mut() {
            m.retain(|p, d| !(d.group == group && *p == plural));
        }
        for v in versions
            .iter()
            .filter(|v| v.get("served").and_then(Value::as_bool) != Some(false))
        {
            let schema_v = Arc::new(v.pointer("/schema/openAPIV3Schema").cloned().unwrap_or(
                json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            ));
            let version = v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let def = ResourceDef {
                group: group.clone(),
                version,
                plural: plural.clone(),
                singular: singular.clone(),
                kind: kind.clone(),
                namespaced,
                status: v.pointer("/subresources/status").is_some(),
                short_names: strs("shortNames"),
                categories: strs("categories"),
                schema: Some(schema_v.clone()),
                compiled: Some(Arc::new(schema::Compiled::new(&schema_v))),
                apply_schema: None,
                storage_version: storage.clone(),
                unconditional_update: false,
                generation: true,
                printer_columns: v
                    .get("additionalPrinterColumns")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                coll: coll.clone(),
                convert: None,
            };
            reg.add(Arc::new(def));
        }
        reg.preferred.insert(group.clone(), storage);
        reg.gvs.retain(|_, m| !m.is_empty());
        Ok(())
    }

    fn unregister_crd(&self, crd: &Value) {
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let plural = crd
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut reg = self.registry.write();
        for m in reg.gvs.values_mut() {
            m.retain(|p, d| !(d.group == group && *p == plural));
        }
        reg.gvs.retain(|_, m| !m.is_empty());
        reg.colls.remove(&(group.clone(), plural));
        if !reg.gvs.keys().any(|(g, _)| *g == group) {
            reg.preferred.remove(&group);
            reg.group_order.retain(|g| *g != group);
        }
    }

    /// Force every collection's history to be forgotten: watches from any earlier rv get 410.
    pub fn compact(&self) {
        let rv = self.current_rv();
        let reg = self.registry.read();
        for c in reg.colls.values() {
            let mut inner = c.inner.write();
            inner.history.clear();
            inner.compacted = rv;
        }
    }
}

impl Store {
    /// Serve one more built-in (a release-dependent one, see `release.rs`): every version of a
    /// resource shares one collection, stored at `storage_version`.
    pub fn add_builtin(
        &self,
        bi: &Builtin,
        storage_version: &str,
        convert: Option<Arc<dyn Admission>>,
    ) {
        self.add_typed_builtin(bi, storage_version, convert, None);
    }

    /// [`Store::add_builtin`] with the schema server-side apply converts configurations to
    /// (undeclared fields are refused, see [`ResourceDef::apply_schema`]).
    pub fn add_typed_builtin(
        &self,
        bi: &Builtin,
        storage_version: &str,
        convert: Option<Arc<dyn Admission>>,
        apply_schema: Option<&Value>,
    ) {
        let mut reg = self.registry.write();
        let coll = reg
            .colls
            .entry((bi.group.to_string(), bi.plural.to_string()))
            .or_insert_with(|| Collection::new(self.watch_buffer))
            .clone();
        let mut def = ResourceDef::builtin(bi, storage_version, coll, convert);
        def.apply_schema = apply_schema.map(|s| Arc::new(schema::Compiled::new(s)));
        reg.add(Arc::new(def));
    }
}

impl ResourceDef {
    /// The definition of a built-in resource served from `coll`, stored at `storage_version`
    /// (every served version of a resource shares one collection).
    fn builtin(
        bi: &Builtin,
        storage_version: &str,
        coll: Arc<Collection>,
        convert: Option<Arc<dyn Admission>>,
    ) -> ResourceDef {
        ResourceDef {
            group: bi.group.into(),
            version: bi.version.into(),
            plural: bi.plural.into(),
            singular: bi.kind.to_lowercase(),
            kind: bi.kind.into(),
            namespaced: bi.namespaced,
            status: bi.status,
            short_names: bi.short.iter().map(|s| s.to_string()).collect(),
            categories: Vec::new(),
            schema: None,
            compiled: None,
            apply_schema: None,
            storage_version: storage_version.into(),
            // kube-apiserver's strategies for PodCertificateRequests and ClusterTrustBundles
            // refuse a PUT without resourceVersion (AllowUnconditionalUpdate false); the
            // CertificateSigningRequest strategy allows it, as the plain built-ins do.
            unconditional_update: !(bi.group == "certificates.k8s.io"
                && matches!(bi.plural, "podcertificaterequests" | "clustertrustbundles")),
            // Namespaces carry no generation even though they have a status subresource, and
            // neither do CertificateSigningRequests and PodCertificateRequests (their
            // strategies never set one).
            generation: bi.status
                && !matches!(
                    bi.plural,
                    "namespaces" | "certificatesigningrequests" | "podcertificaterequests"
                ),
            printer_columns: super::events::printer_columns(bi.group, bi.plural),
            coll,
            convert,
        }
    }
}

impl Registry {
    fn add(&mut self, def: Arc<ResourceDef>) {
        if !self.group_order.contains(&def.group) {
            self.group_order.push(def.group.clone());
        }
        self.preferred
            .entry(def.group.clone())
            .or_insert_with(|| def.version.clone());
        self.gvs
            .entry((def.group.clone(), def.version.clone()))
            .or_default()
            .insert(def.plural.clone(), def);
    }
}

/// Remove strategic-merge-patch directives (`$patch`, `$setElementOrder/...`, `$retainKeys`, ...).
fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            for x in m.values_mut() {
                strip_directives(x);
            }
        }
        Value::Array(a) => {
            for x in a {
                strip_directives(x);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 27^5 suffixes: by the birthday bound, 25,000 generated names collide ~20 times on average
    /// (the chance of none is below e^-20), so without the redraw this test fails in practice.
    #[test]
    fn colliding_generated_names_are_drawn_again() {
        let store = Store::new(100, false, DEFAULT_WATCH_BUFFER);
        let opts = WriteOpts::default();
        let def = store
            .lookup("", "v1", "configmaps")
            .expect("configmaps are built in");
        let mut names = std::collections::HashSet::new();
        for _ in 0..25_000 {
            let out = store
                .create(
                    &def,
                    "default",
                    json!({"metadata": {"generateName": "cm-"}}),
                    &opts,
                )
                .expect("a generated name never answers AlreadyExists");
            let obj: Value = serde_json::from_slice(&out.body).expect("created object");
            let name = obj["metadata"]["name"].as_str().expect("name").to_owned();
            assert!(name.starts_with("cm-"), "{name}");
            assert!(names.insert(name), "two objects were given one name");
        }
        assert_eq!(names.len(), 25_000);
    }

    /// Writes run outside the write lock and commit only onto the version they read: concurrent
    /// merge patches of one object each land (none is lost), and so do their managers.
    #[test]
    fn concurrent_patches_of_one_object_all_land() {
        let store = Store::new(1000, false, DEFAULT_WATCH_BUFFER);
        let def = store
            .lookup("", "v1", "configmaps")
            .expect("configmaps are built in");
        store
            .create(
                &def,
                "default",
                json!({"metadata": {"name": "c"}, "data": {"x": "y"}}),
                &WriteOpts::default(),
            )
            .expect("created");
        std::thread::scope(|s| {
            for t in 0..4 {
                let (store, def) = (&store, &def);
                s.spawn(move || {
                    for i in 0..50 {
                        let o = WriteOpts {
                            field_manager: Some(format!("m{t}")),
                            ..WriteOpts::default()
                        };
                        let body = format!(r#"{{"data":{{"k{t}-{i}":"v"}}}}"#);
                        store
                            .patch(
                                def,
                                "default",
                                "c",
                                false,
                                "application/merge-patch+json",
                                body.as_bytes(),
                                &o,
                            )
                            .expect("patched");
                    }
                });
            }
        });
        let inner = def.coll.inner.read();
        let stored = inner.objects.get(&def.key("default", "c")).expect("stored");
        let data = stored.obj["data"].as_object().expect("data");
        assert_eq!(data.len(), 201);
        for t in 0..4 {
            let m = stored
                .managers
                .entries
                .iter()
                .find(|e| e.manager == format!("m{t}"))
                .expect("one entry per manager");
            assert_eq!(m.fields.len(), 50, "its 50 keys");
        }
        let full: Value = serde_json::from_slice(&stored.bytes).expect("stored JSON");
        let served = full["metadata"]["managedFields"]
            .as_array()
            .map_or(0, Vec::len);
        assert_eq!(served, stored.managers.entries.len());
        assert_eq!(
            meta_str(&stored.obj, "resourceVersion"),
            Some(store.current_rv().to_string().as_str())
        );
    }
}
