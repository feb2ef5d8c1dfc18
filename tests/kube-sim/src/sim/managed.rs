//! `metadata.managedFields`: the entries kube-apiserver keeps (k8s.io/apimachinery's
//! `pkg/util/managedfields`), their FieldsV1 encoding (structured-merge-diff's `Set.ToJSON`), the
//! ownership an `Update` operation (create, PUT, JSON/merge/strategic patch) takes, the cap on
//! update managers and the order entries are served in. Pure functions; `apply.rs` does apply.

use super::apply::{self, Entry, Operation, Path, Seg};
use super::json_out;
use bytes::Bytes;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};

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

/// A set as structured-merge-diff encodes it (`Set.ToJSON`), as a JSON value (the tests' reference
/// for [`fields_v1_bytes`]).
#[cfg(test)]
pub fn fields_v1(set: &BTreeSet<Path>) -> Value {
    // The set's order is the tree's depth-first order (a path sorts before its extensions, and
    // `Seg` sorts fields, keys, values), so each node's children are runs of paths sharing the
    // segment at that depth.
    let paths: Vec<&[Seg]> = set.iter().map(Vec::as_slice).collect();
    fn node(paths: &[&[Seg]], depth: usize) -> Value {
        let mut m = Map::new();
        let mut i = 0;
        if paths.first().is_some_and(|p| p.len() == depth) {
            if paths.len() > 1 {
                m.insert(".".into(), Value::Object(Map::new()));
            }
            i = 1;
        }
        while i < paths.len() {
            let seg = &paths[i][depth];
            let mut j = i + 1;
            while j < paths.len() && paths[j].get(depth) == Some(seg) {
                j += 1;
            }
            let key = match seg {
                Seg::Field(f) => {
                    let mut k = String::with_capacity(f.len() + 2);
                    k.push_str("f:");
                    k.push_str(f);
                    k
                }
                Seg::Key(k) => format!("k:{}", go_json(k)),
                Seg::Value(v) => format!("v:{}", go_json(v)),
            };
            m.insert(key, node(&paths[i..j], depth + 1));
            i = j;
        }
        Value::Object(m)
    }
    node(&paths, 0)
}

/// A child's key in a FieldsV1 object: its prefix (`f:`, `k:`, `v:`) and the rest.
type Child<'a> = (&'static str, std::borrow::Cow<'a, str>);

/// A set as structured-merge-diff encodes it (`Set.ToJSON`): `f:<field>`, `k:<key JSON>`,
/// `v:<value JSON>`, a member that also has children marked by `".": {}`; the bytes serde_json
/// writes for that object (keys sorted as text), without building it.
pub fn fields_v1_bytes(set: &BTreeSet<Path>) -> Bytes {
    let paths: Vec<&[Seg]> = set.iter().map(Vec::as_slice).collect();
    fn node(out: &mut Vec<u8>, paths: &[&[Seg]], depth: usize) {
        out.push(b'{');
        let mut i = 0;
        let mut first = true;
        if paths.first().is_some_and(|p| p.len() == depth) {
            if paths.len() > 1 {
                out.extend_from_slice(b"\".\":{}");
                first = false;
            }
            i = 1;
        }
        // (key, first path, end): serde_json's maps write keys sorted as text, which for `k:`
        // and `v:` (Go-escaped JSON) need not be the set's order.
        let mut children: Vec<(Child<'_>, usize, usize)> = Vec::new();
        let mut sorted = true;
        while i < paths.len() {
            let seg = &paths[i][depth];
            let mut j = i + 1;
            while j < paths.len() && paths[j].get(depth) == Some(seg) {
                j += 1;
            }
            let key: (&str, std::borrow::Cow<'_, str>) = match seg {
                Seg::Field(f) => ("f:", f.as_str().into()),
                Seg::Key(k) => {
                    sorted = false;
                    ("k:", go_json(k))
                }
                Seg::Value(v) => {
                    sorted = false;
                    ("v:", go_json(v))
                }
            };
            children.push((key, i, j));
            i = j;
        }
        if !sorted {
            children.sort_by(|a, b| a.0.cmp(&b.0));
        }
        for (key, from, to) in &children {
            if !first {
                out.push(b',');
            }
            first = false;
            json_out::write_prefixed_str(out, key.0, &key.1);
            out.push(b':');
            node(out, &paths[*from..*to], depth + 1);
        }
        out.push(b'}');
    }
    let mut out = Vec::with_capacity(32 * paths.len() + 2);
    node(&mut out, &paths, 0);
    Bytes::from(out)
}

/// kube-sim's canonical JSON of a key or value (serde_json, sorted keys) as structured-merge-diff
/// writes it (Go's escaping: `<`, `>`, `&` in strings as `\u003c` …).
fn go_json(s: &str) -> std::borrow::Cow<'_, str> {
    let plain = !s
        .chars()
        .any(|c| matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}'))
        && !s.contains("\\b")
        && !s.contains("\\f");
    if plain {
        return s.into();
    }
    match serde_json::from_str::<Value>(s) {
        Ok(v) => {
            let mut out = String::new();
            write_go(&mut out, &v, true);
            out.into()
        }
        Err(_) => s.into(),
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

/// The managers of a stored object with their encoding, made once per version: the served
/// `metadata.managedFields` list as JSON bytes (spliced into the serialized object, which
/// itself holds no managedFields) and each entry's `fieldsV1`, reused by the next version for
/// every entry whose set did not change.
#[derive(Debug, Clone, Default)]
pub struct Managed {
    /// The entries (in no particular order).
    pub entries: Vec<Entry>,
    /// `entries[i]`'s `fieldsV1` JSON.
    fields: Vec<Bytes>,
    /// The `managedFields` list as served (`None`: no entries, the field is left out).
    json: Option<Bytes>,
}

impl Managed {
    /// Encode `entries`, reusing the `fieldsV1` of `old`'s entries whose manager and set are
    /// unchanged.
    pub fn new(entries: Vec<Entry>, old: Option<&Managed>) -> Managed {
        let fields: Vec<Bytes> = entries
            .iter()
            .map(|e| {
                old.and_then(|o| {
                    o.entries
                        .iter()
                        .position(|x| x.same_manager(e) && x.fields == e.fields)
                        .map(|i| o.fields[i].clone())
                })
                .unwrap_or_else(|| fields_v1_bytes(&e.fields))
            })
            .collect();
        let json = (!entries.is_empty()).then(|| {
            let mut order: Vec<usize> = (0..entries.len()).collect();
            order.sort_by(|&p, &q| served_order(&entries[p], &entries[q]));
            let mut out = Vec::with_capacity(256 * entries.len());
            out.push(b'[');
            for (n, &i) in order.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_entry(&mut out, &entries[i], &fields[i]);
            }
            out.push(b']');
            Bytes::from(out)
        });
        Managed {
            entries,
            fields,
            json,
        }
    }

    /// The served `managedFields` JSON (`None`: the field is left out).
    pub fn json(&self) -> Option<&Bytes> {
        self.json.as_ref()
    }

    /// The served `managedFields` as a JSON value (for the writes that compare or patch it).
    pub fn value(&self) -> Option<Value> {
        self.json
            .as_ref()
            .and_then(|j| serde_json::from_slice(j).ok())
    }
}

/// One entry as serde_json writes the object kube-apiserver serves (keys sorted: apiVersion,
/// fieldsType, fieldsV1, manager, operation, subresource, time; empty strings and a missing
/// time left out).
fn write_entry(out: &mut Vec<u8>, e: &Entry, fields: &[u8]) {
    out.push(b'{');
    if !e.api_version.is_empty() {
        out.extend_from_slice(b"\"apiVersion\":");
        json_out::write_str(out, &e.api_version);
        out.push(b',');
    }
    out.extend_from_slice(b"\"fieldsType\":\"FieldsV1\",\"fieldsV1\":");
    out.extend_from_slice(fields);
    if !e.manager.is_empty() {
        out.extend_from_slice(b",\"manager\":");
        json_out::write_str(out, &e.manager);
    }
    out.extend_from_slice(b",\"operation\":\"");
    out.extend_from_slice(e.operation.as_str().as_bytes());
    out.push(b'"');
    if !e.subresource.is_empty() {
        out.extend_from_slice(b",\"subresource\":");
        json_out::write_str(out, &e.subresource);
    }
    if let Some(t) = &e.time {
        out.extend_from_slice(b",\"time\":");
        json_out::write_str(out, t);
    }
    out.push(b'}');
}

// ---- updates ----

/// An `Update` operation by `who` (manager, apiVersion, subresource) that changed what `cmp`
/// says, at `now`: the changed fields leave every other manager and join `who`'s set (the
/// server-owned metadata excepted), removed fields leave every manager, emptied entries go, and
/// `who`'s time is `now` when it took any field. Then the update managers are capped.
pub fn update(entries: &mut Vec<Entry>, cmp: apply::Comparison, who: &Entry, now: &str) {
    if !cmp.changed.is_empty() || !cmp.removed.is_empty() {
        for e in entries.iter_mut() {
            e.fields
                .retain(|p| !cmp.changed.contains(p) && !cmp.removed.contains(p));
        }
    }
    entries.retain(|e| !e.fields.is_empty());
    let mut current = cmp.changed;
    apply::strip_server_owned(&mut current);
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
        assert_eq!(
            fields_v1_bytes(&set),
            serde_json::to_vec(&v).unwrap(),
            "the bytes are serde_json's"
        );
        // Keys and values that Go escapes: text order of the escaped keys.
        let odd: BTreeSet<Path> = [
            vec![f("s"), Seg::Value(r#""&""#.into())],
            vec![f("s"), Seg::Value(r#""%""#.into())],
            vec![f("s"), Seg::Value(r#""'""#.into())],
            vec![f("m"), Seg::Key(r#"{"k":"a>b"}"#.into()), f("x")],
            vec![f("m"), Seg::Key(r#"{"k":"a\"b"}"#.into())],
        ]
        .into();
        assert_eq!(
            fields_v1_bytes(&odd),
            serde_json::to_vec(&fields_v1(&odd)).unwrap()
        );
    }

    /// The spliced serialization is byte for byte serde_json's of the object holding the list,
    /// as served before the list was kept as bytes.
    #[test]
    fn spliced_managed_fields_are_serde_jsons_bytes() {
        let entry =
            |m: &str, op, av: &str, sub: &str, time: Option<&str>, paths: Vec<Path>| Entry {
                manager: m.into(),
                operation: op,
                api_version: av.into(),
                subresource: sub.into(),
                time: time.map(str::to_string),
                fields: paths.into_iter().collect(),
            };
        let entries = vec![
            entry(
                "kube\"ctl<&>",
                Operation::Update,
                "v1",
                "",
                Some("2026-01-01T00:00:01Z"),
                vec![vec![f("data"), f("a\nb")]],
            ),
            entry(
                "m",
                Operation::Apply,
                "",
                "status",
                None,
                vec![
                    vec![
                        f("status"),
                        f("conditions"),
                        Seg::Key(r#"{"type":"<Ready>"}"#.into()),
                    ],
                    vec![
                        f("status"),
                        f("conditions"),
                        Seg::Key(r#"{"type":"<Ready>"}"#.into()),
                        f("status"),
                    ],
                ],
            ),
        ];
        let m = Managed::new(entries.clone(), None);
        let again = Managed::new(entries, Some(&m));
        assert_eq!(m.json(), again.json());
        let list = m.value().expect("a list");
        assert_eq!(list[0]["operation"], "Apply");
        assert!(list[0].get("apiVersion").is_none() && list[0].get("time").is_none());
        assert_eq!(list[1]["manager"], "kube\"ctl<&>");
        for meta in [
            json!({"labels": {"a": "b"}, "name": "x", "namespace": "d"}),
            json!({"annotations": {}}),
            json!({"name": "x"}),
            json!({}),
        ] {
            let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "z": 1});
            let mut spliced = Vec::new();
            json_out::write_with_managed(&mut spliced, &obj, m.json().map(|b| &b[..]));
            let mut whole = obj.clone();
            whole["metadata"]["managedFields"] = list.clone();
            assert_eq!(
                String::from_utf8(spliced).unwrap(),
                serde_json::to_string(&whole).unwrap()
            );
        }
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
