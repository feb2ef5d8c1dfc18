//! Server-side apply: field ownership per manager, conflict detection, merging; pure functions.
//!
//! The rules are structured-merge-diff's (the library kube-apiserver uses), judged by
//! `tests/smd_differential.rs` against that library itself (`tests/smd-oracle`):
//! - A configuration's field set holds its leaves (scalars, atomic lists and maps, empty maps and
//!   nulls), every map-list or set item, and every entry of a map that is not a declared property
//!   (`additionalProperties`, `x-kubernetes-preserve-unknown-fields`). An empty granular list owns
//!   nothing. Server-managed metadata (`name`, `resourceVersion`, ...) is owned by no one.
//! - Lists are atomic unless declared `x-kubernetes-list-type: map` or `set`; maps are granular
//!   unless declared `x-kubernetes-map-type: atomic`. Without any schema (kube-sim's built-ins),
//!   every object key is a field and a `conditions` list of typed items is keyed by `type`.
//! - Merging keeps the live order of list items and appends new ones.
//! - A field another manager owns conflicts when the merged object changes it; `force` takes it
//!   over. A field removed from the object leaves every manager's set.
//! - A field the applier owned, no longer applies and nobody else owns is removed, together with
//!   the enclosing fields nobody owns anything under any more.

use super::schema::{child, list_key, map_list_keys};
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::BTreeSet;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    /// An object field.
    Field(String),
    /// A map-list item, by its canonical key JSON.
    Key(String),
    /// A set item, by its JSON value.
    Value(String),
}

/// A field path from the object root.
pub type Path = Vec<Seg>;

/// The operation a managedFields entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write (create, update, JSON/merge/strategic patch).
    Update,
}

impl Operation {
    /// The wire name (`Apply`, `Update`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `metadata.managedFields` entry: the fields one manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `fieldManager` (or the User-Agent's prefix).
    pub manager: String,
    /// Apply or Update.
    pub operation: Operation,
    /// The group/version of the request that last wrote the entry.
    pub api_version: String,
    /// `status` and the like, or empty for the main resource.
    pub subresource: String,
    /// When the entry's operation last changed the object (RFC 3339 seconds), if it ever did.
    pub time: Option<String>,
    /// Owned paths.
    pub fields: BTreeSet<Path>,
}

impl Entry {
    /// Whether `self` and `other` are the same manager, as kube-apiserver keys managers: appliers
    /// by (manager, subresource), updaters by (manager, apiVersion, subresource).
    pub fn same_manager(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    /// kube-apiserver's manager identifier (`BuildManagerIdentifier`): the entry without its
    /// time, fields and (for appliers) apiVersion, as Go's encoding/json writes it.
    pub fn key(&self) -> String {
        let mut s = String::from("{\"manager\":");
        go_json_string(&mut s, &self.manager, true);
        s.push_str(",\"operation\":\"");
        s.push_str(self.operation.as_str());
        s.push('"');
        if self.operation == Operation::Update && !self.api_version.is_empty() {
            s.push_str(",\"apiVersion\":");
            go_json_string(&mut s, &self.api_version, true);
        }
        if !self.subresource.is_empty() {
            s.push_str(",\"subresource\":");
            go_json_string(&mut s, &self.subresource, true);
        }
        s.push('}');
        s
    }

    /// How kube-apiserver names this manager in conflict messages.
    pub fn printed(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {:?}", self.subresource);
        }
        if self.operation == Operation::Update {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }
}

/// Append `v` as a JSON string the way Go's encoding/json writes it (`html`: `<`, `>` and `&`
/// escaped too); U+2028 and U+2029 are always escaped.
pub fn go_json_string(out: &mut String, v: &str, html: bool) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if html => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One manager's owned fields as the test harness reads them ([`crate::KubeSim::apply_owners`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApplyOwner {
    /// `fieldManager`.
    pub manager: String,
    /// `status` when applied through the `/status` subresource, else empty.
    pub subresource: String,
    /// Owned fields as structured-merge-diff prints paths, sorted.
    pub fields: Vec<String>,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The entry's apiVersion.
    pub api_version: String,
}

/// The harness view of an entry.
pub fn owner(a: &Entry) -> ApplyOwner {
    let mut fields: Vec<String> = a.fields.iter().map(render).collect();
    fields.sort();
    ApplyOwner {
        manager: a.manager.clone(),
        subresource: a.subresource.clone(),
        fields,
        operation: a.operation.as_str().to_string(),
        api_version: a.api_version.clone(),
    }
}

/// Render a path the way apply conflicts name fields (`.status.conditions[type="Ready"].status`).
pub fn render(p: &Path) -> String {
    let mut s = String::new();
    for seg in p {
        match seg {
            Seg::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Seg::Key(k) => {
                let inner = serde_json::from_str::<serde_json::Map<String, Value>>(k)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_else(|_| k.clone());
                s.push('[');
                s.push_str(&inner);
                s.push(']');
            }
            Seg::Value(v) => {
                s.push_str("[=");
                s.push_str(v);
                s.push(']');
            }
        }
    }
    s
}

/// What the schema says about one node.
#[derive(Debug, Clone, Copy)]
enum Ty<'a> {
    /// No schema at all (kube-sim's built-ins): object keys are fields, lists atomic except
    /// `conditions` keyed by `type`.
    Untyped,
    /// `x-kubernetes-preserve-unknown-fields` (or an undeclared field): object keys are map
    /// entries, lists atomic.
    Deduced,
    /// A schema node.
    Schema(&'a Value),
    /// The object root (its `metadata` is ObjectMeta whatever the CRD schema says).
    Root(Option<&'a Value>),
}

/// ObjectMeta as the API server types it for apply.
fn object_meta() -> &'static Value {
    static META: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    META.get_or_init(|| {
        let s = serde_json::json!({"type": "string"});
        let string_map = serde_json::json!({"type": "object", "additionalProperties": s});
        serde_json::json!({"type": "object", "properties": {
            "annotations": string_map, "labels": string_map,
            "creationTimestamp": s, "deletionTimestamp": s, "deletionGracePeriodSeconds": {"type": "integer"},
            "finalizers": {"type": "array", "x-kubernetes-list-type": "set", "items": s},
            "generateName": s, "generation": {"type": "integer"}, "name": s, "namespace": s,
            "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            "ownerReferences": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"],
                "items": {"type": "object", "properties": {
                    "apiVersion": s, "kind": s, "name": s, "uid": s,
                    "controller": {"type": "boolean"}, "blockOwnerDeletion": {"type": "boolean"}}}},
            "resourceVersion": s, "selfLink": s, "uid": s
        }})
    })
}

/// How a list merges.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ListKind {
    Atomic,
    Set,
    Keys(Vec<String>),
}

fn ty_of(schema: Option<&Value>) -> Ty<'_> {
    match schema {
        None => Ty::Untyped,
        Some(s) => {
            let preserve = s
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                == Some(true);
            if s.get("type").is_none() && preserve {
                Ty::Deduced
            } else {
                Ty::Schema(s)
            }
        }
    }
}

/// The type of child `key` of a map, and whether it is a declared (named) field.
fn child_ty<'a>(parent: Ty<'a>, key: &str) -> (Ty<'a>, bool) {
    match parent {
        Ty::Root(_) if key == "metadata" => (Ty::Schema(object_meta()), true),
        Ty::Root(s) => child_ty(ty_of(s), key),
        Ty::Untyped => (Ty::Untyped, true),
        Ty::Deduced => (Ty::Deduced, false),
        Ty::Schema(s) => {
            if let Some(p) = s.get("properties").and_then(|p| p.get(key)) {
                return (ty_of(Some(p)), true);
            }
            match child(Some(s), key) {
                Some(a) => (ty_of(Some(a)), false),
                None => (Ty::Deduced, false),
            }
        }
    }
}

fn item_ty(list: Ty<'_>) -> Ty<'_> {
    match list {
        Ty::Untyped | Ty::Root(_) => Ty::Untyped,
        Ty::Deduced => Ty::Deduced,
        Ty::Schema(s) => match s.get("items") {
            Some(i) => ty_of(Some(i)),
            None => Ty::Deduced,
        },
    }
}

fn map_atomic(t: Ty<'_>) -> bool {
    matches!(t, Ty::Schema(s) if s.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic"))
}

fn list_kind(t: Ty<'_>, field: &str, items: &[Value]) -> ListKind {
    match t {
        Ty::Untyped | Ty::Root(_) => match keys_for(None, field, items) {
            Some(k) => ListKind::Keys(k),
            None => ListKind::Atomic,
        },
        Ty::Deduced => ListKind::Atomic,
        Ty::Schema(s) => {
            if let Some(k) = map_list_keys(s) {
                return ListKind::Keys(k);
            }
            match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => ListKind::Set,
                _ => ListKind::Atomic,
            }
        }
    }
}

/// The keys of a map list: from the schema, else `type` for a `conditions` list whose items all carry a string `type`.
pub fn keys_for(schema: Option<&Value>, field: &str, items: &[Value]) -> Option<Vec<String>> {
    if let Some(k) = schema.and_then(map_list_keys) {
        return Some(k);
    }
    let declared_atomic = schema
        .and_then(|s| s.get("x-kubernetes-list-type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t != "map");
    if !declared_atomic
        && field == "conditions"
        && items
            .iter()
            .all(|i| i.get("type").and_then(Value::as_str).is_some())
    {
        return Some(vec!["type".to_string()]);
    }
    None
}

fn item_seg(kind: &ListKind, item: &Value) -> Seg {
    match kind {
        ListKind::Keys(keys) => Seg::Key(list_key(item, keys)),
        _ => Seg::Value(item.to_string()),
    }
}

/// The server-owned fields of `metadata`.
const META_SERVER_OWNED: &[&str] = &[
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

/// Paths no manager owns: the server manages them.
pub fn server_owned(p: &Path) -> bool {
    match p.as_slice() {
        [Seg::Field(f)] => matches!(f.as_str(), "apiVersion" | "kind" | "metadata"),
        [Seg::Field(m), Seg::Field(f)] if m == "metadata" => {
            META_SERVER_OWNED.contains(&f.as_str())
        }
        _ => false,
    }
}

fn to_set(v: &Value, t: Ty<'_>, field: &str, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    match v {
        Value::Object(map) => {
            if map_atomic(t) {
                out.insert(prefix.clone());
                return;
            }
            for (k, cv) in map {
                let (ct, named) = child_ty(t, k);
                prefix.push(Seg::Field(k.clone()));
                to_set(cv, ct, k, prefix, out);
                let empty_map = cv.as_object().is_some_and(serde_json::Map::is_empty);
                if cv.is_null() || empty_map || !named {
                    out.insert(prefix.clone());
                }
                prefix.pop();
            }
        }
        Value::Array(items) => {
            let kind = list_kind(t, field, items);
            if kind == ListKind::Atomic {
                out.insert(prefix.clone());
                return;
            }
            let it = item_ty(t);
            for item in items {
                prefix.push(item_seg(&kind, item));
                to_set(item, it, "", prefix, out);
                out.insert(prefix.clone());
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// Merge an apply configuration into the live object: maps recursively, map lists and sets by
/// item (live order, new items appended), the rest replaced.
fn merge_ty(live: &mut Value, cfg: &Value, t: Ty<'_>, field: &str) {
    match (live, cfg) {
        (Value::Object(l), Value::Object(c))
            if !map_atomic(t) && (!l.is_empty() || !c.is_empty()) =>
        {
            for (k, cv) in c {
                let (ct, _) = child_ty(t, k);
                match l.get_mut(k) {
                    Some(lv) => merge_ty(lv, cv, ct, k),
                    None => {
                        l.insert(k.clone(), cv.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(c)) if !(l.is_empty() && c.is_empty()) => {
            let kind = list_kind(t, field, if c.is_empty() { l } else { c });
            if kind == ListKind::Atomic {
                *l = c.clone();
                return;
            }
            let it = item_ty(t);
            for ci in c {
                let ck = item_seg(&kind, ci);
                match l.iter_mut().find(|li| item_seg(&kind, li) == ck) {
                    Some(li) => merge_ty(li, ci, it, ""),
                    None => l.push(ci.clone()),
                }
            }
        }
        (l, c) => *l = c.clone(),
    }
}

fn item_matches(item: &Value, seg: &Seg) -> bool {
    match seg {
        Seg::Field(_) => false,
        Seg::Key(k) => {
            let keys: Vec<String> = match serde_json::from_str::<serde_json::Map<String, Value>>(k)
            {
                Ok(m) => m.keys().cloned().collect(),
                Err(_) => return false,
            };
            &list_key(item, &keys) == k
        }
        Seg::Value(v) => &item.to_string() == v,
    }
}

/// The value at a path, if present.
pub fn get<'a>(v: &'a Value, p: &[Seg]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in p {
        cur = match seg {
            Seg::Field(f) => cur.as_object()?.get(f)?,
            _ => cur.as_array()?.iter().find(|i| item_matches(i, seg))?,
        };
    }
    Some(cur)
}

/// A value's field set with every ancestor of its paths.
fn field_set(v: &Value, root: Ty<'_>) -> BTreeSet<Path> {
    let mut set = BTreeSet::new();
    to_set(v, root, "", &mut Vec::new(), &mut set);
    with_ancestors([&set].into_iter())
}

fn has_under(set: &BTreeSet<Path>, prefix: &Path) -> bool {
    use std::ops::Bound;
    set.range((Bound::Excluded(prefix.clone()), Bound::Unbounded))
        .next()
        .is_some_and(|p| p.starts_with(prefix))
}

/// The value without the fields and items at `set`'s paths; like structured-merge-diff, a map
/// or list left empty by the removal (or an atomic one reached by it) becomes null.
fn remove_items(
    v: &Value,
    set: &BTreeSet<Path>,
    t: Ty<'_>,
    field: &str,
    prefix: &mut Path,
) -> Value {
    match v {
        Value::Object(m) => {
            if m.is_empty() || map_atomic(t) {
                return Value::Null;
            }
            let mut out = serde_json::Map::new();
            for (k, cv) in m {
                prefix.push(Seg::Field(k.clone()));
                if !set.contains(prefix) {
                    let nv = if has_under(set, prefix) {
                        remove_items(cv, set, child_ty(t, k).0, k, prefix)
                    } else {
                        cv.clone()
                    };
                    out.insert(k.clone(), nv);
                }
                prefix.pop();
            }
            if out.is_empty() {
                Value::Null
            } else {
                Value::Object(out)
            }
        }
        Value::Array(items) => {
            let kind = list_kind(t, field, items);
            if items.is_empty() || kind == ListKind::Atomic {
                return Value::Null;
            }
            let it = item_ty(t);
            let mut out = Vec::new();
            for item in items {
                prefix.push(item_seg(&kind, item));
                if !set.contains(prefix) {
                    out.push(if has_under(set, prefix) {
                        remove_items(item, set, it, "", prefix)
                    } else {
                        item.clone()
                    });
                }
                prefix.pop();
            }
            if out.is_empty() {
                Value::Null
            } else {
                Value::Array(out)
            }
        }
        _ => v.clone(),
    }
}

/// The type at a path (for the comparison of live and merged values).
fn ty_at<'a>(root: Ty<'a>, p: &[Seg]) -> Ty<'a> {
    let mut t = root;
    for seg in p {
        t = match seg {
            Seg::Field(f) => child_ty(t, f).0,
            _ => item_ty(t),
        };
    }
    t
}

/// How a path's value changed between the live and the merged object.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    Same,
    Added,
    Removed,
    Modified,
}

fn change(live: &Value, merged: &Value, p: &Path, root: Ty<'_>) -> Change {
    match (get(live, p), get(merged, p)) {
        (None, None) => Change::Same,
        (None, Some(_)) => Change::Added,
        (Some(_), None) => Change::Removed,
        (Some(a), Some(b)) if a == b => Change::Same,
        (Some(a), Some(b)) => {
            // Only leaves are compared by value: a granular map or list that changed inside
            // is not itself modified.
            let t = ty_at(root, p);
            let field = match p.last() {
                Some(Seg::Field(f)) => f.as_str(),
                _ => "",
            };
            // A null stands for an empty map or list here (what a removal leaves behind).
            let empty = |v: &Value| {
                v.is_null()
                    || v.as_object().is_some_and(serde_json::Map::is_empty)
                    || v.as_array().is_some_and(Vec::is_empty)
            };
            let both_empty = empty(a) && empty(b);
            let maps = (a.is_object() || a.is_null()) && (b.is_object() || b.is_null());
            let lists = (a.is_array() || a.is_null()) && (b.is_array() || b.is_null());
            let granular = if maps {
                !map_atomic(t) && !both_empty
            } else if lists {
                let items: &[Value] = match (a.as_array(), b.as_array()) {
                    (_, Some(y)) if !y.is_empty() => y,
                    (Some(x), _) => x,
                    _ => &[],
                };
                !both_empty && list_kind(t, field, items) != ListKind::Atomic
            } else {
                false
            };
            if granular {
                Change::Same
            } else {
                Change::Modified
            }
        }
    }
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone)]
pub struct Conflict {
    /// The other manager (its fields left empty).
    pub owner: Entry,
    /// The contested field.
    pub path: Path,
}

impl Conflict {
    /// The manager as kube-apiserver names it in conflict messages.
    pub fn manager_printed(&self) -> String {
        self.owner.printed()
    }

    /// kube-apiserver's identifier of the manager (what its messages sort by).
    fn manager_key(&self) -> String {
        self.owner.key()
    }
}

/// kube-apiserver's message for an apply that conflicts (the 409's `message`).
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.manager_printed(),
            render(&c.path)
        );
    }
    let mut sorted: Vec<&Conflict> = conflicts.iter().collect();
    sorted.sort_by(|a, b| {
        a.manager_key()
            .cmp(&b.manager_key())
            .then_with(|| set_order(&a.path, &b.path))
    });
    let mut lines = Vec::new();
    let mut last: Option<String> = None;
    for c in sorted {
        let k = c.manager_key();
        if last.as_ref() != Some(&k) {
            lines.push(format!("conflicts with {}:", c.manager_printed()));
            last = Some(k);
        }
        lines.push(format!("- {}", render(&c.path)));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

fn seg_order(a: &Seg, b: &Seg) -> Ordering {
    fn rank(s: &Seg) -> u8 {
        match s {
            Seg::Field(_) => 0,
            Seg::Key(_) => 1,
            Seg::Value(_) => 2,
        }
    }
    rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
}

/// The order structured-merge-diff lists a set's paths in: at each level the set's own members
/// first, then what lies under each child.
fn set_order(a: &Path, b: &Path) -> Ordering {
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    match (a.len() == common, b.len() == common) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    let a_member = a.len() == common + 1;
    let b_member = b.len() == common + 1;
    match (a_member, b_member) {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => seg_order(&a[common], &b[common]),
    }
}

/// The conflicts as structured-merge-diff reports them. Its `ConflictsFromManagers` keeps the
/// path that `Set.Iterate` hands to its callback, and Iterate builds those paths with Go's
/// `append` on a shared prefix: when the prefix has spare capacity, later paths overwrite earlier
/// ones, so a manager with several conflicting fields under one parent is reported with the
/// same (last-written) path several times. That is the code of every SMD read here (v4.1.2,
/// built and run by the tests; v5, read); kube-sim reproduces it so that a client sees the
/// server's own message. The fields taken over under `force` are the true ones.
fn as_reported(conflicts: Vec<Conflict>) -> Vec<Conflict> {
    let mut by_manager: Vec<(Entry, BTreeSet<Path>)> = Vec::new();
    for c in conflicts {
        match by_manager
            .iter_mut()
            .find(|(k, _)| k.same_manager(&c.owner))
        {
            Some((_, set)) => {
                set.insert(c.path);
            }
            None => by_manager.push((c.owner, BTreeSet::from([c.path]))),
        }
    }
    let mut out = Vec::new();
    for (owner, set) in by_manager {
        for path in go_iterate(&set) {
            out.push(Conflict {
                owner: owner.clone(),
                path,
            });
        }
    }
    out
}

/// One level of a field set, as SMD stores it: its members and its children, each sorted.
#[derive(Default)]
struct SetNode {
    members: Vec<Seg>,
    children: Vec<(Seg, SetNode)>,
}

impl SetNode {
    fn insert(&mut self, p: &[Seg]) {
        match p {
            [] => {}
            [last] => {
                if !self.members.contains(last) {
                    self.members.push(last.clone());
                    self.members.sort_by(seg_order);
                }
            }
            [first, rest @ ..] => {
                let i = match self.children.iter().position(|(s, _)| s == first) {
                    Some(i) => i,
                    None => {
                        self.children.push((first.clone(), SetNode::default()));
                        self.children.sort_by(|a, b| seg_order(&a.0, &b.0));
                        self.children
                            .iter()
                            .position(|(s, _)| s == first)
                            .unwrap_or(0)
                    }
                };
                self.children[i].1.insert(rest);
            }
        }
    }
}

/// A Go slice of path elements: backing array, length, capacity.
#[derive(Clone, Copy)]
struct GoSlice {
    array: usize,
    len: usize,
    cap: usize,
}

/// `Set.Iterate` with Go's slice semantics (`append` writes in place while capacity lasts,
/// else copies into an array twice as large), returning the paths as the callback kept them.
fn go_iterate(set: &BTreeSet<Path>) -> Vec<Path> {
    fn append(arrays: &mut Vec<Vec<Option<Seg>>>, s: GoSlice, pe: &Seg) -> GoSlice {
        if s.len < s.cap {
            arrays[s.array][s.len] = Some(pe.clone());
            return GoSlice {
                len: s.len + 1,
                ..s
            };
        }
        let cap = if s.cap == 0 { 1 } else { s.cap * 2 };
        let mut a: Vec<Option<Seg>> = vec![None; cap];
        a[..s.len].clone_from_slice(&arrays[s.array][..s.len]);
        a[s.len] = Some(pe.clone());
        arrays.push(a);
        GoSlice {
            array: arrays.len() - 1,
            len: s.len + 1,
            cap,
        }
    }
    fn walk(
        node: &SetNode,
        prefix: GoSlice,
        arrays: &mut Vec<Vec<Option<Seg>>>,
        out: &mut Vec<GoSlice>,
    ) {
        for m in &node.members {
            let p = append(arrays, prefix, m);
            out.push(p);
        }
        for (pe, child) in &node.children {
            let p = append(arrays, prefix, pe);
            walk(child, p, arrays, out);
        }
    }
    let mut root = SetNode::default();
    for p in set {
        root.insert(p);
    }
    let mut arrays: Vec<Vec<Option<Seg>>> = vec![Vec::new()];
    let mut kept = Vec::new();
    let start = GoSlice {
        array: 0,
        len: 0,
        cap: 0,
    };
    walk(&root, start, &mut arrays, &mut kept);
    kept.iter()
        .map(|s| arrays[s.array][..s.len].iter().flatten().cloned().collect())
        .collect()
}

/// The paths of the sets, plus every prefix of them that ends in a declared (named) field.
fn named_ancestors<'a>(
    sets: impl Iterator<Item = &'a BTreeSet<Path>>,
    root: Ty<'_>,
) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    for s in sets {
        for p in s {
            let mut t = root;
            for n in 1..p.len() {
                let named = match &p[n - 1] {
                    Seg::Field(f) => {
                        let (ct, named) = child_ty(t, f);
                        t = ct;
                        named
                    }
                    _ => {
                        t = item_ty(t);
                        false
                    }
                };
                if named {
                    out.insert(p[..n].to_vec());
                }
            }
            out.insert(p.clone());
        }
    }
    out
}

/// Every non-empty prefix of every path in the sets.
fn with_ancestors<'a>(sets: impl Iterator<Item = &'a BTreeSet<Path>>) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    for s in sets {
        for p in s {
            for n in 1..=p.len() {
                out.insert(p[..n].to_vec());
            }
        }
    }
    out
}

/// What an apply produced.
#[derive(Debug)]
pub struct Applied {
    /// The merged object.
    pub merged: Value,
    /// Every manager afterwards (the applier's entry keeps its previous time: the caller stamps
    /// it when `changed`).
    pub managers: Vec<Entry>,
    /// Whether the merged object differs from the live one (structured-merge-diff then returns
    /// a new object and kube-apiserver stamps the applier's time).
    pub changed: bool,
}

/// Apply `cfg` as `who` (an `Apply` entry: manager, subresource, apiVersion) onto `live`, or
/// the conflicts.
pub fn apply(
    live: &Value,
    cfg: &Value,
    schema: Option<&Value>,
    managers: &[Entry],
    who: &Entry,
    force: bool,
) -> Result<Applied, Vec<Conflict>> {
    let root = Ty::Root(schema);
    // The server strips its own metadata fields from the applier's set only after the merge,
    // so pruning still sees them as applied.
    let mut applied = BTreeSet::new();
    to_set(cfg, root, "", &mut Vec::new(), &mut applied);
    let fields: BTreeSet<Path> = applied
        .iter()
        .filter(|p| !server_owned(p))
        .cloned()
        .collect();
    let mut others: Vec<Entry> = Vec::with_capacity(managers.len() + 1);
    let mut mine_before = BTreeSet::new();
    let mut my_time = None;
    for a in managers {
        if a.same_manager(who) {
            mine_before = a.fields.clone();
            my_time = a.time.clone();
        } else {
            others.push(a.clone());
        }
    }
    let mut merged = live.clone();
    merge_ty(&mut merged, cfg, root, "");
    // Prune what this manager applied before, no longer applies and nobody else owns,
    // following structured-merge-diff's three steps (remove everything applied last time, add
    // back what anyone owns, add back what was not applied last time).
    if !mine_before.is_empty() {
        // Only declared fields stand for what lies under them (SMD's
        // `EnsureNamedFieldsAreMembers`): a map entry or list item someone owns a part of, but
        // not the item itself, goes when its owner prunes it.
        let last = named_ancestors([&mine_before].into_iter(), root);
        let managed = named_ancestors(others.iter().map(|o| &o.fields).chain([&applied]), root);
        let merged_set = field_set(&merged, root);
        let pruned = remove_items(&merged, &last, root, "", &mut Vec::new());
        let pruned_set = field_set(&pruned, root);
        let unowned: BTreeSet<Path> = merged_set
            .iter()
            .filter(|p| !pruned_set.contains(*p) && !managed.contains(*p))
            .cloned()
            .collect();
        let pruned = remove_items(&merged, &unowned, root, "", &mut Vec::new());
        let pruned_set = field_set(&pruned, root);
        let dropped: BTreeSet<Path> = merged_set
            .iter()
            .filter(|p| !pruned_set.contains(*p) && last.contains(*p))
            .cloned()
            .collect();
        merged = remove_items(&merged, &dropped, root, "", &mut Vec::new());
    }
    // Conflicts: another manager's field that the merged object adds or changes.
    let mut conflicts = Vec::new();
    for o in others.iter_mut() {
        let mut lost = Vec::new();
        for p in &o.fields {
            match change(live, &merged, p, root) {
                Change::Added | Change::Modified => {
                    conflicts.push(Conflict {
                        owner: Entry {
                            fields: BTreeSet::new(),
                            ..o.clone_id()
                        },
                        path: p.clone(),
                    });
                    lost.push(p.clone());
                }
                Change::Removed => lost.push(p.clone()),
                Change::Same => {}
            }
        }
        for p in lost {
            o.fields.remove(&p);
        }
    }
    if !force && !conflicts.is_empty() {
        return Err(as_reported(conflicts));
    }
    // ObjectMeta is typed with omitempty fields: a null there is no field (the server decodes
    // the merged object after the ownership is settled).
    if let Some(meta) = merged.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|_, v| !v.is_null());
    }
    others.retain(|o| !o.fields.is_empty());
    if !fields.is_empty() {
        others.push(Entry {
            time: my_time,
            fields,
            ..who.clone_id()
        });
    }
    let changed = merged != *live;
    Ok(Applied {
        merged,
        managers: others,
        changed,
    })
}

impl Entry {
    /// The entry's identity and time, without its fields.
    pub fn clone_id(&self) -> Entry {
        Entry {
            manager: self.manager.clone(),
            operation: self.operation,
            api_version: self.api_version.clone(),
            subresource: self.subresource.clone(),
            time: self.time.clone(),
            fields: BTreeSet::new(),
        }
    }
}

/// structured-merge-diff's comparison of two objects (`TypedValue.Compare`): the leaves (scalars,
/// atomic lists and maps, maps and lists empty on both sides) added, removed or modified, and the
/// granular maps, lists and items added or removed.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Added or modified paths.
    pub changed: BTreeSet<Path>,
    /// Removed paths.
    pub removed: BTreeSet<Path>,
}

/// The paths a comparison finds, as the walk finds them.
#[derive(Default)]
struct Acc {
    changed: Vec<Path>,
    removed: Vec<Path>,
}

/// Compare `live` and `new` under `schema`, looking only at the top-level keys `only` (all when
/// `None`) and leaving out `metadata.managedFields` and every path under an `ignored` top-level
/// field (kube-apiserver's reset fields of the endpoint written).
pub fn compare(
    live: &Value,
    new: &Value,
    schema: Option<&Value>,
    only: Option<&[&str]>,
    ignored: &[&str],
    server_owned_too: bool,
) -> Comparison {
    let mut c = Acc::default();
    let root = Ty::Root(schema);
    let (l, r) = (live.as_object(), new.as_object());
    let keys = union_keys(l, r);
    let mut path = Vec::new();
    for k in keys {
        if ignored.contains(&k.as_str())
            || only.is_some_and(|o| !o.contains(&k.as_str()))
            || (!server_owned_too && (k == "apiVersion" || k == "kind"))
        {
            continue;
        }
        let (lv, rv) = (l.and_then(|m| m.get(k)), r.and_then(|m| m.get(k)));
        let t = child_ty(root, k).0;
        path.push(Seg::Field(k.clone()));
        if k == "metadata" {
            compare_meta(lv, rv, t, &mut path, &mut c, !server_owned_too);
        } else {
            compare_at(lv, rv, t, k, &mut path, &mut c);
        }
        path.pop();
    }
    // Collected in walk order, sorted once (each path is found once).
    Comparison {
        changed: c.changed.into_iter().collect(),
        removed: c.removed.into_iter().collect(),
    }
}

/// The keys of two maps in order, each once, without collecting them (serde_json's maps iterate
/// their keys sorted).
fn union_keys<'a>(
    l: Option<&'a serde_json::Map<String, Value>>,
    r: Option<&'a serde_json::Map<String, Value>>,
) -> impl Iterator<Item = &'a String> {
    let mut a = l.into_iter().flat_map(|m| m.keys()).peekable();
    let mut b = r.into_iter().flat_map(|m| m.keys()).peekable();
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) => match x.cmp(y) {
            Ordering::Less => a.next(),
            Ordering::Greater => b.next(),
            Ordering::Equal => {
                b.next();
                a.next()
            }
        },
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

/// ObjectMeta without its managedFields (walked in place: no copy of the metadata).
fn compare_meta(
    l: Option<&Value>,
    r: Option<&Value>,
    t: Ty<'_>,
    path: &mut Path,
    c: &mut Acc,
    skip_owned: bool,
) {
    let needs = |v: Option<&Value>| v.and_then(|v| v.get("managedFields")).is_some();
    let map_or_none = |v: Option<&Value>| v.is_none_or(|v| v.is_object() || v.is_null());
    if !(needs(l) || needs(r) || skip_owned) {
        return compare_at(l, r, t, "metadata", path, c);
    }
    let empty = |v: Option<&Value>| {
        v.is_none_or(|v| {
            v.is_null()
                || v.as_object()
                    .is_some_and(|m| m.keys().all(|k| k == "managedFields"))
        })
    };
    if !(map_or_none(l) && map_or_none(r)) || (empty(l) && empty(r)) {
        // One side is not a map, or both are empty: compared as a leaf, without the
        // managedFields (small copies).
        let strip = |v: Option<&Value>| -> Option<Value> {
            v.map(|v| match v.as_object() {
                Some(m) => Value::Object(
                    m.iter()
                        .filter(|(k, _)| *k != "managedFields")
                        .map(|(k, x)| (k.clone(), x.clone()))
                        .collect(),
                ),
                None => v.clone(),
            })
        };
        let (l, r) = (strip(l), strip(r));
        return compare_at(l.as_ref(), r.as_ref(), t, "metadata", path, c);
    }
    // As `compare_at` on two maps with the key left out (ObjectMeta is a granular map).
    let (lm, rm) = (l.and_then(Value::as_object), r.and_then(Value::as_object));
    // Without any manager owning a server-owned field, the ones that changed need not be found:
    // they would leave no set and join none.
    compare_fields(lm, rm, t, path, c, |k| {
        k == "managedFields" || (skip_owned && META_SERVER_OWNED.contains(&k))
    });
    one_sided(l, r, path, c);
}

/// [`compare_at`] on each field of two maps of type `t` (in sorted key order), but those `skip`
/// names.
fn compare_fields(
    lm: Option<&serde_json::Map<String, Value>>,
    rm: Option<&serde_json::Map<String, Value>>,
    t: Ty<'_>,
    path: &mut Path,
    c: &mut Acc,
    skip: impl Fn(&str) -> bool,
) {
    for k in union_keys(lm, rm) {
        if skip(k) {
            continue;
        }
        let (ct, _) = child_ty(t, k);
        path.push(Seg::Field(k.clone()));
        compare_at(
            lm.and_then(|m| m.get(k)),
            rm.and_then(|m| m.get(k)),
            ct,
            k,
            path,
            c,
        );
        path.pop();
    }
}

fn compare_at(
    l: Option<&Value>,
    r: Option<&Value>,
    t: Ty<'_>,
    field: &str,
    path: &mut Path,
    c: &mut Acc,
) {
    let leaf = |c: &mut Acc, path: &Path| match (l, r) {
        (Some(a), Some(b)) if a != b => c.changed.push(path.clone()),
        _ => one_sided(l, r, path, c),
    };
    let is_map = |v: Option<&Value>| v.is_none_or(|v| v.is_object() || v.is_null());
    let is_list = |v: Option<&Value>| v.is_none_or(|v| v.is_array() || v.is_null());
    let empty = |v: Option<&Value>| {
        v.is_none_or(|v| {
            v.is_null()
                || v.as_object().is_some_and(serde_json::Map::is_empty)
                || v.as_array().is_some_and(Vec::is_empty)
        })
    };
    // A map (or list) on one side and something else on the other is compared as a leaf.
    let maps = is_map(l)
        && is_map(r)
        && (l.is_some_and(Value::is_object) || r.is_some_and(Value::is_object));
    let lists = is_list(l)
        && is_list(r)
        && (l.is_some_and(Value::is_array) || r.is_some_and(Value::is_array));
    if maps {
        if map_atomic(t) || (empty(l) && empty(r)) {
            return leaf(c, path);
        }
        let (lm, rm) = (l.and_then(Value::as_object), r.and_then(Value::as_object));
        compare_fields(lm, rm, t, path, c, |_| false);
    } else if lists {
        let (la, ra): (&[Value], &[Value]) = (
            l.and_then(Value::as_array).map_or(&[], Vec::as_slice),
            r.and_then(Value::as_array).map_or(&[], Vec::as_slice),
        );
        let kind = list_kind(t, field, if ra.is_empty() { la } else { ra });
        if kind == ListKind::Atomic || (la.is_empty() && ra.is_empty()) {
            return leaf(c, path);
        }
        let it = item_ty(t);
        let mut seen: Vec<Seg> = Vec::with_capacity(la.len());
        for li in la {
            let seg = item_seg(&kind, li);
            if seen.contains(&seg) {
                continue;
            }
            let ri = ra.iter().find(|ri| item_seg(&kind, ri) == seg);
            seen.push(seg.clone());
            path.push(seg);
            compare_at(Some(li), ri, it, "", path, c);
            path.pop();
        }
        let mut added: Vec<Seg> = Vec::new();
        for ri in ra {
            let seg = item_seg(&kind, ri);
            if seen.contains(&seg) || added.contains(&seg) {
                continue;
            }
            added.push(seg.clone());
            path.push(seg);
            compare_at(None, Some(ri), it, "", path, c);
            path.pop();
        }
    } else {
        return leaf(c, path);
    }
    // A granular map or list (or list item) present on one side only.
    one_sided(l, r, path, c);
}

/// Records `path` of a granular map or list present on one side only: changed when only the new
/// object has it, removed when only the old one does.
fn one_sided(l: Option<&Value>, r: Option<&Value>, path: &Path, c: &mut Acc) {
    match (l, r) {
        (None, Some(_)) => c.changed.push(path.clone()),
        (Some(_), None) => c.removed.push(path.clone()),
        _ => {}
    }
}

/// Paths no manager owns: the server strips them from the writer's set after every operation.
pub fn strip_server_owned(set: &mut BTreeSet<Path>) {
    set.retain(|p| !server_owned(p));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `apply` as manager `m` (through `/status` when `status`), returning the object and managers.
    pub(super) fn ap(
        live: &Value,
        cfg: &Value,
        schema: Option<&Value>,
        managers: &[Entry],
        m: &str,
        status: bool,
        force: bool,
    ) -> Result<(Value, Vec<Entry>), Vec<Conflict>> {
        let who = Entry {
            manager: m.into(),
            operation: Operation::Apply,
            api_version: "v1".into(),
            subresource: if status {
                "status".into()
            } else {
                String::new()
            },
            time: None,
            fields: BTreeSet::new(),
        };
        apply(live, cfg, schema, managers, &who, force).map(|a| (a.merged, a.managers))
    }

    #[test]
    fn conditions_from_two_managers_are_merged_by_type() {
        let live = json!({"status": {}});
        let (o1, a1) = ap(
            &live,
            &json!({"status": {"conditions": [{"type": "Approved", "status": "True"}]}}),
            None,
            &[],
            "approver",
            true,
            false,
        )
        .unwrap();
        let (o2, a2) = ap(
            &o1,
            &json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            None,
            &a1,
            "issuer",
            true,
            false,
        )
        .unwrap();
        assert_eq!(o2["status"]["conditions"].as_array().unwrap().len(), 2);
        // The issuer re-applies without Ready: only its own condition disappears.
        let (o3, _) = ap(
            &o2,
            &json!({"status": {"conditions": []}}),
            None,
            &a2,
            "issuer",
            true,
            false,
        )
        .unwrap();
        assert_eq!(
            o3["status"]["conditions"],
            json!([{"type": "Approved", "status": "True"}])
        );
    }

    #[test]
    fn changing_another_managers_field_conflicts_unless_forced() {
        let (o1, a1) = ap(
            &json!({}),
            &json!({"spec": {"x": 1}}),
            None,
            &[],
            "a",
            false,
            false,
        )
        .unwrap();
        let err = ap(
            &o1,
            &json!({"spec": {"x": 2}}),
            None,
            &a1,
            "b",
            false,
            false,
        )
        .unwrap_err();
        assert_eq!(err[0].owner.manager, "a");
        assert_eq!(render(&err[0].path), ".spec.x");
        let (o2, a2) = ap(&o1, &json!({"spec": {"x": 2}}), None, &a1, "b", false, true).unwrap();
        assert_eq!(o2["spec"]["x"], 2);
        assert_eq!(a2.len(), 1);
    }
}

#[cfg(test)]
mod schema_tests {
    use super::tests::ap;
    use serde_json::json;

    #[test]
    fn schema_declared_map_list_merges_by_key() {
        let schema = json!({"type": "object", "properties": {"status": {"type": "object", "properties": {"conditions": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
            "items": {"type": "object", "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}
        }}}}});
        let live = json!({"metadata": {"name": "x"}, "spec": {}});
        let (o1, a1) = ap(
            &live,
            &json!({"status": {"conditions": [{"type": "Approved", "status": "True"}]}}),
            Some(&schema),
            &[],
            "approver",
            true,
            false,
        )
        .unwrap();
        let (o2, _) = ap(
            &o1,
            &json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            Some(&schema),
            &a1,
            "issuer",
            true,
            false,
        )
        .unwrap();
        assert_eq!(
            o2["status"]["conditions"],
            json!([{"type": "Approved", "status": "True"}, {"type": "Ready", "status": "True"}])
        );
    }
}

#[cfg(test)]
mod reported_paths {
    use super::*;

    fn f(s: &str) -> Seg {
        Seg::Field(s.into())
    }

    #[test]
    fn go_append_reuse_repeats_the_last_sibling_only_where_the_prefix_has_spare_capacity() {
        // Depth 3 siblings: the prefix (len 2, cap 2) is full, every append copies.
        let shallow: BTreeSet<Path> = [
            vec![f("spec"), f("a"), f("x")],
            vec![f("spec"), f("a"), f("y")],
        ]
        .into();
        assert_eq!(
            go_iterate(&shallow),
            shallow.iter().cloned().collect::<Vec<_>>()
        );
        // Depth 4 siblings: the prefix has len 3 and cap 4, so both kept paths share one array.
        let item = Seg::Key(r#"{"type":"Ready"}"#.into());
        let deep: BTreeSet<Path> = [
            vec![f("status"), f("conditions"), item.clone(), f("reason")],
            vec![f("status"), f("conditions"), item.clone(), f("status")],
        ]
        .into();
        let got: Vec<String> = go_iterate(&deep).iter().map(render).collect();
        assert_eq!(got, vec![r#".status.conditions[type="Ready"].status"#; 2]);
    }
}
