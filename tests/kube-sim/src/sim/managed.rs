//! `metadata.managedFields`: the entries kube-apiserver keeps (k8s.io/apimachinery's
//! `pkg/util/managedfields`), their FieldsV1 encoding (structured-merge-diff's `Set.ToJSON`), the
//! ownership an `Update` operation (create, PUT, JSON/merge/strategic patch) takes, the cap on
//! update managers and the order entries are served in. Pure functions; `apply.rs` does apply.

use super::apply::{self, Entry, Operation, Path, Seg};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// At most this many `Update` entries are kept (`DefaultMaxUpdateManagers`).
pub const MAX_UPDATE_MANAGERS: usize = 10;
/// The entry the oldest update managers are merged into, one per apiVersion.
pub const ANCIENT_CHANGES: &str = "ancient-changes";
/// The longest manager a User-Agent gives (`FieldManagerMaxLength`, bytes).
pub const MAX_MANAGER_LEN: usize = 128;
/// The manager of writes kube-sim makes itself (no HTTP request, no fieldManager).
pub const INTERNAL_MANAGER: &str = "kube-apiserver";

/// The manager of a non-apply write: `fieldManager`, else the User-Agent up to its first `/`
/// without unprintable characters and cut to 128 bytes (at a character boundary), else `unknown`.
pub fn manager_for(field_manager: Option<&str>, user_agent: Option<&str>) -> String {
    if let Some(m) = field_manager.filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let mut out = String::new();
    let prefix = user_agent
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default();
    for c in prefix.chars() {
        if !printable(c) {
            continue;
        }
        if out.len() + c.len_utf8() > MAX_MANAGER_LEN {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        "unknown".to_string()
    } else {
        out
    }
}

/// Go's `unicode.IsPrint` approximated: no control, format or separator characters except the
/// ASCII space.
fn printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c as u32, 0xad | 0x600..=0x605 | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x2064 | 0xfeff))
}

// ---- FieldsV1 ----

#[derive(Default)]
struct Node<'a> {
    member: bool,
    children: BTreeMap<SegOrder<'a>, Node<'a>>,
}

/// A path element in structured-merge-diff's order: fields, then keys, then values.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct SegOrder<'a>(u8, &'a str);

fn order(s: &Seg) -> SegOrder<'_> {
    match s {
        Seg::Field(f) => SegOrder(0, f),
        Seg::Key(k) => SegOrder(1, k),
        Seg::Value(v) => SegOrder(2, v),
    }
}

/// A set as structured-merge-diff encodes it (`Set.ToJSON`): `f:<field>`, `k:<key JSON>`,
/// `v:<value JSON>`, a member that also has children marked by `".": {}`.
pub fn fields_v1(set: &BTreeSet<Path>) -> Value {
    let mut root = Node::default();
    for p in set {
        let mut n = &mut root;
        for seg in p {
            n = n.children.entry(order(seg)).or_default();
        }
        n.member = true;
    }
    fn emit(n: &Node<'_>) -> Value {
        let mut m = Map::new();
        if n.member && !n.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (SegOrder(kind, s), child) in &n.children {
            let key = match kind {
                0 => format!("f:{s}"),
                1 => format!("k:{}", go_json(s)),
                _ => format!("v:{}", go_json(s)),
            };
            m.insert(key, emit(child));
        }
        Value::Object(m)
    }
    emit(&root)
}

/// kube-sim's canonical JSON of a key or value (serde_json, sorted keys) as structured-merge-diff
/// writes it (Go's escaping: `<`, `>`, `&` in strings as `\u003c` …).
fn go_json(s: &str) -> String {
    let plain = !s
        .chars()
        .any(|c| matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}'))
        && !s.contains("\\b")
        && !s.contains("\\f");
    if plain {
        return s.to_string();
    }
    match serde_json::from_str::<Value>(s) {
        Ok(v) => {
            let mut out = String::new();
            write_go(&mut out, &v, true);
            out
        }
        Err(_) => s.to_string(),
    }
}

fn write_go(out: &mut String, v: &Value, top: bool) {
    match v {
        Value::String(s) => apply::go_json_string(out, s, true),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go(out, x, false);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // A key's field names are written without HTML escaping, nested maps with it.
                apply::go_json_string(out, k, !top);
                out.push(':');
                write_go(out, x, false);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Decode a FieldsV1 object into paths (`Set.FromJSON`); `i:` (list indexes) is not supported.
///
/// # Errors
/// A malformed encoding.
pub fn parse_fields_v1(v: &Value) -> Result<BTreeSet<Path>, String> {
    fn walk(
        m: &Map<String, Value>,
        prefix: &mut Path,
        out: &mut BTreeSet<Path>,
    ) -> Result<(), String> {
        for (k, child) in m {
            if k == "." {
                if !prefix.is_empty() {
                    out.insert(prefix.clone());
                }
                continue;
            }
            let seg = if let Some(f) = k.strip_prefix("f:") {
                Seg::Field(f.to_string())
            } else if let Some(j) = k.strip_prefix("k:") {
                let key: Map<String, Value> =
                    serde_json::from_str(j).map_err(|e| format!("invalid key {k:?}: {e}"))?;
                Seg::Key(Value::Object(key).to_string())
            } else if let Some(j) = k.strip_prefix("v:") {
                let val: Value =
                    serde_json::from_str(j).map_err(|e| format!("invalid value {k:?}: {e}"))?;
                Seg::Value(val.to_string())
            } else {
                return Err(format!("unsupported path element {k:?}"));
            };
            let Some(cm) = child.as_object() else {
                return Err(format!("{k:?} is not an object"));
            };
            prefix.push(seg);
            if cm.is_empty() {
                out.insert(prefix.clone());
            } else {
                walk(cm, prefix, out)?;
            }
            prefix.pop();
        }
        Ok(())
    }
    let Some(m) = v.as_object() else {
        return Err("fieldsV1 is not an object".into());
    };
    let mut out = BTreeSet::new();
    walk(m, &mut Vec::new(), &mut out)?;
    Ok(out)
}

// ---- entries on the wire ----

/// What a write's `metadata.managedFields` asks for.
#[derive(Debug)]
pub enum Sent {
    /// Absent, null, empty after decoding or invalid: the live entries are kept.
    Live,
    /// `[]` or `[{}]`: reset to nothing.
    Reset,
    /// Valid entries that replace the live ones.
    Entries(Vec<Entry>),
}

/// Read the managedFields of a create/update body as kube-apiserver does (`decodeLiveOrNew`).
pub fn sent(meta_managed: Option<&Value>) -> Sent {
    let Some(Value::Array(items)) = meta_managed else {
        return Sent::Live;
    };
    let zero = |v: &Value| {
        v.as_object().is_some_and(|m| {
            m.iter().all(|(k, x)| match k.as_str() {
                "time" | "fieldsV1" => x.is_null(),
                "manager" | "operation" | "apiVersion" | "fieldsType" | "subresource" => {
                    x.is_null() || x.as_str() == Some("")
                }
                _ => true,
            })
        })
    };
    match items.as_slice() {
        [] => return Sent::Reset,
        [one] if zero(one) => return Sent::Reset,
        _ => {}
    }
    match decode(items) {
        Ok(e) if !e.is_empty() => Sent::Entries(e),
        _ => Sent::Live,
    }
}

/// `DecodeManagedFields`: every entry needs operation `Apply` or `Update`, an apiVersion and
/// fieldsType `FieldsV1`; a later entry of the same manager replaces an earlier one.
///
/// # Errors
/// The first invalid entry.
pub fn decode(items: &[Value]) -> Result<Vec<Entry>, String> {
    let mut out: Vec<Entry> = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let s = |k: &str| {
            it.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let operation = match s("operation").as_str() {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err("operation must be `Apply` or `Update`".into()),
        };
        let api_version = s("apiVersion");
        if api_version.is_empty() {
            return Err("apiVersion must not be empty".into());
        }
        match s("fieldsType").as_str() {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            t => {
                return Err(format!(
                    "invalid fieldsType {t:?} in managed fields entry {i}"
                ));
            }
        }
        let fields = match it.get("fieldsV1") {
            None | Some(Value::Null) => BTreeSet::new(),
            Some(f) => parse_fields_v1(f)?,
        };
        let e = Entry {
            manager: s("manager"),
            operation,
            api_version,
            subresource: s("subresource"),
            time: it.get("time").and_then(Value::as_str).map(str::to_string),
            fields,
        };
        match out.iter_mut().find(|o| o.same_manager(&e)) {
            Some(o) => *o = e,
            None => out.push(e),
        }
    }
    Ok(out)
}

fn seconds(t: Option<&str>) -> i64 {
    t.and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or(0, |t| t.as_second())
}

/// Times compared by their seconds; kube-sim's own (`YYYY-MM-DDTHH:MM:SSZ`) as text, which is
/// the same order without parsing.
fn time_cmp(a: Option<&str>, b: Option<&str>) -> std::cmp::Ordering {
    let own = |t: Option<&str>| t.is_some_and(|t| t.len() == 20 && t.ends_with('Z'));
    if own(a) && own(b) {
        a.cmp(&b)
    } else {
        seconds(a).cmp(&seconds(b))
    }
}

/// The order kube-apiserver serves entries in: operation (`Apply` first), time (seconds),
/// manager, apiVersion, subresource.
fn served_order(p: &Entry, q: &Entry) -> std::cmp::Ordering {
    p.operation
        .cmp(&q.operation)
        .then_with(|| time_cmp(p.time.as_deref(), q.time.as_deref()))
        .then_with(|| p.manager.cmp(&q.manager))
        .then_with(|| p.api_version.cmp(&q.api_version))
        .then_with(|| p.subresource.cmp(&q.subresource))
}

/// The `managedFields` JSON of sorted entries (`None`: no entries, the field is left out).
pub fn encode(entries: &[Entry]) -> Option<Value> {
    encode_reusing(entries, &[], None)
}

/// [`encode`], taking the `fieldsV1` of an entry whose set did not change from `old_json` (the
/// encoding of `old`) instead of rendering it again.
pub fn encode_reusing(entries: &[Entry], old: &[Entry], old_json: Option<&Value>) -> Option<Value> {
    if entries.is_empty() {
        return None;
    }
    let reuse = |e: &Entry| -> Option<Value> {
        let o = old
            .iter()
            .find(|o| o.same_manager(e) && o.fields == e.fields)?;
        old_json?.as_array()?.iter().find_map(|j| {
            let s = |k: &str| j.get(k).and_then(Value::as_str).unwrap_or_default();
            (s("manager") == o.manager
                && s("operation") == o.operation.as_str()
                && s("apiVersion") == o.api_version
                && s("subresource") == o.subresource)
                .then(|| j.get("fieldsV1").cloned())
                .flatten()
        })
    };
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|p, q| served_order(p, q));
    Some(Value::Array(
        sorted
            .iter()
            .map(|e| {
                let mut m = Map::new();
                if !e.manager.is_empty() {
                    m.insert("manager".into(), Value::String(e.manager.clone()));
                }
                m.insert(
                    "operation".into(),
                    Value::String(e.operation.as_str().into()),
                );
                if !e.api_version.is_empty() {
                    m.insert("apiVersion".into(), Value::String(e.api_version.clone()));
                }
                if let Some(t) = &e.time {
                    m.insert("time".into(), Value::String(t.clone()));
                }
                m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
                m.insert(
                    "fieldsV1".into(),
                    reuse(e).unwrap_or_else(|| fields_v1(&e.fields)),
                );
                if !e.subresource.is_empty() {
                    m.insert("subresource".into(), Value::String(e.subresource.clone()));
                }
                Value::Object(m)
            })
            .collect(),
    ))
}

// ---- updates ----

/// An `Update` operation by `who` (manager, apiVersion, subresource) that changed what `cmp`
/// says, at `now`: the changed fields leave every other manager and join `who`'s set (the
/// server-owned metadata excepted), removed fields leave every manager, emptied entries go, and
/// `who`'s time is `now` when it took any field. Then the update managers are capped.
pub fn update(entries: &mut Vec<Entry>, cmp: &apply::Comparison, who: &Entry, now: &str) {
    let mut current: BTreeSet<Path> = cmp.changed.clone();
    apply::strip_server_owned(&mut current);
    for e in entries.iter_mut() {
        e.fields
            .retain(|p| !cmp.changed.contains(p) && !cmp.removed.contains(p));
    }
    entries.retain(|e| !e.fields.is_empty());
    if !current.is_empty() {
        match entries.iter_mut().find(|e| e.same_manager(who)) {
            Some(e) => {
                e.fields.extend(current);
                e.api_version.clone_from(&who.api_version);
                e.time = Some(now.to_string());
            }
            None => entries.push(Entry {
                time: Some(now.to_string()),
                fields: current,
                ..who.clone_id()
            }),
        }
    }
    cap(entries, MAX_UPDATE_MANAGERS);
}

/// `capUpdateManagers`: with more than `max` update entries, the oldest are merged, per
/// apiVersion, into an `ancient-changes` entry (the first one of a version seen becomes that
/// entry when a second one of the version is merged), keeping the time of the last merged.
pub fn cap(entries: &mut Vec<Entry>, max: usize) {
    if entries
        .iter()
        .filter(|e| e.operation == Operation::Update)
        .count()
        <= max
    {
        return;
    }
    let mut updaters: Vec<(i64, String)> = entries
        .iter()
        .filter(|e| e.operation == Operation::Update)
        .map(|e| (seconds(e.time.as_deref()), e.key()))
        .collect();
    if updaters.len() <= max {
        return;
    }
    updaters.sort();
    let mut first_of: HashMap<String, String> = HashMap::new();
    let mut length = updaters.len();
    for (_, key) in &updaters {
        if length <= max {
            break;
        }
        let Some(vs) = entries.iter().find(|e| e.key() == *key).cloned() else {
            continue;
        };
        let bucket = Entry {
            manager: ANCIENT_CHANGES.into(),
            operation: Operation::Update,
            api_version: vs.api_version.clone(),
            subresource: String::new(),
            time: None,
            fields: BTreeSet::new(),
        };
        let bucket_key = bucket.key();
        match first_of.get(&vs.api_version) {
            Some(first) => {
                if !entries.iter().any(|e| e.key() == bucket_key)
                    && let Some(f) = entries.iter_mut().find(|e| e.key() == *first)
                {
                    f.manager = bucket.manager.clone();
                    f.subresource = String::new();
                }
                if let Some(b) = entries.iter_mut().find(|e| e.key() == bucket_key) {
                    b.fields.extend(vs.fields.iter().cloned());
                    b.api_version.clone_from(&vs.api_version);
                    b.time.clone_from(&vs.time);
                }
                // The merged manager leaves (when it is the bucket itself, so does the bucket,
                // as in kube-apiserver).
                entries.retain(|e| e.key() != *key);
                length -= 1;
            }
            None => {
                first_of.insert(vs.api_version.clone(), key.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(s: &str) -> Seg {
        Seg::Field(s.into())
    }

    #[test]
    fn fields_v1_marks_owned_parents_with_a_dot() {
        let set: BTreeSet<Path> = [
            vec![f("metadata"), f("labels")],
            vec![f("metadata"), f("labels"), f("a")],
            vec![f("spec"), f("ports"), Seg::Key(r#"{"name":"http"}"#.into())],
            vec![
                f("spec"),
                f("ports"),
                Seg::Key(r#"{"name":"http"}"#.into()),
                f("port"),
            ],
            vec![f("spec"), f("set"), Seg::Value(r#""x""#.into())],
        ]
        .into();
        let v = fields_v1(&set);
        assert_eq!(
            v,
            json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}},
                   "f:spec": {"f:ports": {"k:{\"name\":\"http\"}": {".": {}, "f:port": {}}},
                              "f:set": {"v:\"x\"": {}}}})
        );
        assert_eq!(parse_fields_v1(&v).unwrap(), set);
    }

    #[test]
    fn user_agent_prefix_is_the_manager() {
        assert_eq!(
            manager_for(None, Some("kubectl/v1.32.0 (linux/amd64)")),
            "kubectl"
        );
        assert_eq!(manager_for(Some("m"), Some("kubectl/v1")), "m");
        assert_eq!(manager_for(None, None), "unknown");
        assert_eq!(manager_for(None, Some(&"é".repeat(100))).len(), 128);
    }

    #[test]
    fn reset_and_invalid_sent_entries() {
        assert!(matches!(sent(Some(&json!([]))), Sent::Reset));
        assert!(matches!(sent(Some(&json!([{}]))), Sent::Reset));
        assert!(matches!(sent(Some(&json!([{"manager": "x"}]))), Sent::Live));
        assert!(matches!(sent(None), Sent::Live));
        let ok = json!([{"manager": "x", "operation": "Update", "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}}]);
        assert!(matches!(sent(Some(&ok)), Sent::Entries(e) if e.len() == 1));
    }

    #[test]
    fn the_oldest_update_managers_merge_into_ancient_changes() {
        let mut entries: Vec<Entry> = (0..12)
            .map(|i| Entry {
                manager: format!("m{i:02}"),
                operation: Operation::Update,
                api_version: "v1".into(),
                subresource: String::new(),
                time: Some(format!("2026-01-01T00:00:{i:02}Z")),
                fields: [vec![f("data"), f(&format!("k{i}"))]].into(),
            })
            .collect();
        cap(&mut entries, MAX_UPDATE_MANAGERS);
        assert_eq!(entries.len(), 10);
        let b = entries
            .iter()
            .find(|e| e.manager == ANCIENT_CHANGES)
            .unwrap();
        assert_eq!(b.fields.len(), 3);
        assert_eq!(b.time.as_deref(), Some("2026-01-01T00:00:02Z"));
        assert!(
            !entries
                .iter()
                .any(|e| ["m00", "m01", "m02"].contains(&e.manager.as_str()))
        );
    }
}
