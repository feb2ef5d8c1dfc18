//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`): the `k8s\0` envelope
//! around a `runtime.Unknown`, decoded into the object's JSON form for the kinds kubectl and Helm
//! send that way (see README "Content-Types"). A hand-written table of field numbers per message,
//! taken from the Kubernetes `generated.proto` files; pure functions, no I/O.
//!
//! The JSON produced follows the Go types' JSON tags as kube-apiserver would print the decoded
//! object: empty strings and zero integers are left out unless the JSON field is required, a
//! `metav1.Time` is RFC 3339 in seconds (an empty one is absent), `bytes` are base64, nested
//! messages present on the wire are kept (Go's JSON keeps non-pointer structs even when empty).

use super::status::ApiError;
use base64::Engine as _;
use serde_json::{Map, Value, json};

/// The protobuf media type Kubernetes clients send.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The 4-byte prefix of every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// How one field maps to JSON.
#[derive(Debug, Clone, Copy)]
enum T {
    /// `string`, left out when empty (`omitempty`).
    Str,
    /// `string` whose JSON field has no `omitempty` (kept when empty).
    StrKeep,
    /// `bytes` → base64.
    Bytes,
    /// `bool` (a pointer in Go: kept whenever present on the wire).
    Bool,
    /// `int32`/`int64`, left out when 0.
    Int,
    /// `*int32`/`*int64`: kept whenever present on the wire.
    OptInt,
    /// `metav1.Time`: RFC 3339, seconds precision.
    Time,
    /// `metav1.MicroTime`: RFC 3339 with six fractional digits.
    MicroTime,
    /// Nested message.
    Msg(&'static Message),
    /// `repeated string`.
    RepStr,
    /// `repeated` message.
    RepMsg(&'static Message),
    /// `map<string, string>`.
    MapStr,
    /// `map<string, bytes>` (values base64).
    MapBytes,
    /// `map<string, Message>`.
    MapMsg(&'static Message),
    /// `metav1.FieldsV1`: its `Raw` bytes are JSON, embedded as is.
    FieldsV1,
}

/// One protobuf message: its name (for errors) and fields by number.
#[derive(Debug)]
pub struct Message {
    name: &'static str,
    fields: &'static [(u32, &'static str, T)],
}

macro_rules! message {
    ($id:ident, $name:literal, [$(($n:literal, $json:literal, $t:expr)),* $(,)?]) => {
        static $id: Message = Message { name: $name, fields: &[$(($n, $json, $t)),*] };
    };
}

use T::*;

message!(
    OWNER_REFERENCE,
    "meta.v1.OwnerReference",
    [
        (5, "apiVersion", StrKeep),
        (1, "kind", StrKeep),
        (3, "name", StrKeep),
        (4, "uid", StrKeep),
        (6, "controller", Bool),
        (7, "blockOwnerDeletion", Bool),
    ]
);
message!(FIELDS_V1, "meta.v1.FieldsV1", []);
message!(
    MANAGED_FIELDS_ENTRY,
    "meta.v1.ManagedFieldsEntry",
    [
        (1, "manager", Str),
        (2, "operation", Str),
        (3, "apiVersion", Str),
        (4, "time", Time),
        (6, "fieldsType", Str),
        (7, "fieldsV1", FieldsV1),
        (8, "subresource", Str),
    ]
);
message!(
    OBJECT_META,
    "meta.v1.ObjectMeta",
    [
        (1, "name", Str),
        (2, "generateName", Str),
        (3, "namespace", Str),
        (4, "selfLink", Str),
        (5, "uid", Str),
        (6, "resourceVersion", Str),
        (7, "generation", Int),
        (8, "creationTimestamp", Time),
        (9, "deletionTimestamp", Time),
        (10, "deletionGracePeriodSeconds", OptInt),
        (11, "labels", MapStr),
        (12, "annotations", MapStr),
        (13, "ownerReferences", RepMsg(&OWNER_REFERENCE)),
        (14, "finalizers", RepStr),
        (17, "managedFields", RepMsg(&MANAGED_FIELDS_ENTRY)),
    ]
);
message!(
    LABEL_SELECTOR_REQUIREMENT,
    "meta.v1.LabelSelectorRequirement",
    [
        (1, "key", StrKeep),
        (2, "operator", StrKeep),
        (3, "values", RepStr),
    ]
);
message!(
    LABEL_SELECTOR,
    "meta.v1.LabelSelector",
    [
        (1, "matchLabels", MapStr),
        (2, "matchExpressions", RepMsg(&LABEL_SELECTOR_REQUIREMENT)),
    ]
);

// core/v1
message!(
    NAMESPACE_SPEC,
    "core.v1.NamespaceSpec",
    [(1, "finalizers", RepStr)]
);
message!(
    NAMESPACE_CONDITION,
    "core.v1.NamespaceCondition",
    [
        (1, "type", StrKeep),
        (2, "status", StrKeep),
        (4, "lastTransitionTime", Time),
        (5, "reason", Str),
        (6, "message", Str),
    ]
);
message!(
    NAMESPACE_STATUS,
    "core.v1.NamespaceStatus",
    [
        (1, "phase", Str),
        (2, "conditions", RepMsg(&NAMESPACE_CONDITION)),
    ]
);
message!(
    NAMESPACE,
    "core.v1.Namespace",
    [
        (1, "metadata", Msg(&OBJECT_META)),
        (2, "spec", Msg(&NAMESPACE_SPEC)),
        (3, "status", Msg(&NAMESPACE_STATUS)),
    ]
);
message!(
    CONFIG_MAP,
    "core.v1.ConfigMap",
    [
        (1, "metadata", Msg(&OBJECT_META)),
        (4, "immutable", Bool),
        (2, "data", MapStr),
        (3, "binaryData", MapBytes),
    ]
);
message!(
    SECRET,
    "core.v1.Secret",
    [
        (1, "metadata", Msg(&OBJECT_META)),
        (5, "immutable", Bool),
        (2, "data", MapBytes),
        (4, "stringData", MapStr),
        (3, "type", Str),
    ]
);
message!(
    OBJECT_REFERENCE,
    "core.v1.ObjectReference",
    [
        (1, "kind", Str),
        (2, "namespace", Str),
        (3, "name", Str),
        (4, "uid", Str),
        (5, "apiVersion", Str),
        (6, "resourceVersion", Str),
        (7, "fieldPath", Str),
    ]
);
message!(
    LOCAL_OBJECT_REFERENCE,
    "core.v1.LocalObjectReference",
    [(1, "name", Str)]
);
message!(
    SERVICE_ACCOUNT,
    "core.v1.ServiceAccount",
    [
        (1, "metadata", Msg(&OBJECT_META)),
        (2, "secrets", RepMsg(&OBJECT_REFERENCE)),
        (3, "imagePullSecrets", RepMsg(&LOCAL_OBJECT_REFERENCE)),
        (4, "automountServiceAccountToken", Bool),
    ]
);

message!(
    EVENT_SOURCE,
    "core.v1.EventSource",
    [(1, "component", Str), (2, "host", Str)]
);
message!(
    EVENT_SERIES,
    "core.v1.EventSeries",
    [(1, "count", Int), (2, "lastObservedTime", MicroTime)]
);
message!(
    EVENT,
    "core.v1.Event",
    [
        (1, "metadata", Msg(&OBJECT_META)),
        (2, "involvedObject", Msg(&OBJECT_REFERENCE)),
        (3, "reason", Str),
        (4, "message", Str),
        (5, "source", Msg(&EVENT_SOURCE)),
        (6, "firstTimestamp", Time),
        (7, "lastTimestamp", Time),
        (8, "count", Int),
        (9, "type", Str),
        (10, "eventTime", MicroTime),
        (11, "series", Msg(&EVENT_SERIES)),
        (12, "action", Str),
        (13, "related", Msg(&OBJECT_REFERENCE)),
        (14, "reportingComponent", StrKeep),
        (15, "reportingInstance", StrKeep),
    ]
);
message!(
    EVENTS_V1_SERIES,
    "events.v1.EventSeries",
    [(1, "count", Int), (2, "lastObservedTime", MicroTime)]
);
message!(
    EVENTS_V1_EVENT,
    "events.v1.Event",
    [
        (1, "metadata", Msg(&OBJECT_META)),
        (2, "eventTime", MicroTime),
        (3, "series", Msg(&EVENTS_V1_SERIES)),
        (4, "reportingController", Str),
        (5, "reportingInstance", Str),
        (6, "action", Str),
        (7, "reason", Str),
        (8, "regarding", Msg(&OBJECT_REFERENCE)),
        (9, "related", Msg(&OBJECT_REFERENCE)),
        (10, "note", Str),
        (11, "type", Str),
        (12, "deprecatedSource", Msg(&EVENT_SOURCE)),
        (13, "deprecatedFirstTimestamp", Time),
        (14, "deprecatedLastTimestamp", Time),
        (15, "deprecatedCount", Int),
    ]
);

// rbac.authorization.k8s.io/v1
message!(
    POLICY_RULE,
    "rbac.v1.PolicyRule",
    [
        (1, "verbs", RepStr),
        (2, "apiGroups", RepStr),
        (3, "resources", RepStr),
        (4, "resourceNames", RepStr),
        (5, "nonResourceURLs", RepStr),
    ]
);
message!(
    AGGREGATION_RULE,
    "rbac.v1.AggregationRule",
    [(1, "clusterRoleSelectors", RepMsg(&LABEL_SELECTOR)),]
);
message!(
    SUBJECT,
    "rbac.v1.Subject",
    [
        (1, "kind", StrKeep),
        (2, "apiGroup", Str),
        (3, "name", StrKeep),
        (4, "namespace", Str),
    ]
);
message!(
    ROLE_REF,
    "rbac.v1.RoleRef",
    [
        (1, "apiGroup", StrKeep),
        (2, "kind", StrKeep),
        (3, "name", StrKeep),
    ]
);
message!(
    ROLE,
    "rbac.v1.Role",
    [
        (1, "metadata", Msg(&OBJECT_META)),
        (2, "rules", RepMsg(&POLICY_RULE)),
    ]
);
message!(
    CLUSTER_ROLE,
    "rbac.v1.ClusterRole",
    [
        (1, "metadata", Msg(&OBJECT_META)),
        (2, "rules", RepMsg(&POLICY_RULE)),
        (3, "aggregationRule", Msg(&AGGREGATION_RULE)),
    ]
);
message!(
    ROLE_BINDING,
    "rbac.v1.RoleBinding",
    [
        (1, "metadata", Msg(&OBJECT_META)),
        (2, "subjects", RepMsg(&SUBJECT)),
        (3, "roleRef", Msg(&ROLE_REF)),
    ]
);

// certificates.k8s.io/v1 (what `kubectl certificate approve|deny` sends to /approval)
message!(
    EXTRA_VALUE,
    "certificates.v1.ExtraValue",
    [(1, "items", RepStr)]
);
message!(
    CSR_SPEC,
    "certificates.v1.CertificateSigningRequestSpec",
    [
        (1, "request", Bytes),
        (7, "signerName", StrKeep),
        (8, "expirationSeconds", OptInt),
        (5, "usages", RepStr),
        (2, "username", Str),
        (3, "uid", Str),
        (4, "groups", RepStr),
        (6, "extra", MapMsg(&EXTRA_VALUE)),
    ]
);
message!(
    CSR_CONDITION,
    "certificates.v1.CertificateSigningRequestCondition",
    [
        (1, "type", StrKeep),
        (6, "status", StrKeep),
        (2, "reason", Str),
        (3, "message", Str),
        (4, "lastUpdateTime", Time),
        (5, "lastTransitionTime", Time),
    ]
);
message!(
    CSR_STATUS,
    "certificates.v1.CertificateSigningRequestStatus",
    [
        (1, "conditions", RepMsg(&CSR_CONDITION)),
        (2, "certificate", Bytes),
    ]
);
message!(
    CSR,
    "certificates.v1.CertificateSigningRequest",
    [
        (1, "metadata", Msg(&OBJECT_META)),
        (2, "spec", Msg(&CSR_SPEC)),
        (3, "status", Msg(&CSR_STATUS)),
    ]
);

/// The kinds whose protobuf form is decoded: (apiVersion, kind, message).
const KINDS: &[(&str, &str, &Message)] = &[
    ("v1", "Namespace", &NAMESPACE),
    ("v1", "ConfigMap", &CONFIG_MAP),
    ("v1", "Secret", &SECRET),
    ("v1", "ServiceAccount", &SERVICE_ACCOUNT),
    ("v1", "Event", &EVENT),
    ("events.k8s.io/v1", "Event", &EVENTS_V1_EVENT),
    ("rbac.authorization.k8s.io/v1", "Role", &ROLE),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", &CLUSTER_ROLE),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", &ROLE_BINDING),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        &ROLE_BINDING,
    ),
    ("certificates.k8s.io/v1", "CertificateSigningRequest", &CSR),
];

/// `apiVersion kind` of every kind [`decode`] understands (for error messages and the README).
pub fn supported_kinds() -> Vec<String> {
    KINDS.iter().map(|(av, k, _)| format!("{k}.{av}")).collect()
}

/// Whether a Content-Type is the Kubernetes protobuf one.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

fn bad(msg: String) -> ApiError {
    ApiError::bad_request(format!("error decoding protobuf body: {msg}"))
}

/// A cursor over protobuf wire bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// One field read from the wire.
enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Fixed,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self, msg: &str) -> Result<u64, ApiError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(bad(format!("{msg}: truncated varint")));
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad(format!("{msg}: varint longer than 10 bytes")))
    }

    /// The next (field number, value), or None at the end.
    fn next(&mut self, msg: &str) -> Result<Option<(u32, Wire<'a>)>, ApiError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint(msg)?;
        let field = u32::try_from(key >> 3)
            .map_err(|_| bad(format!("{msg}: field number out of range")))?;
        let w = match key & 7 {
            0 => Wire::Varint(self.varint(msg)?),
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                if self.pos + n > self.buf.len() {
                    return Err(bad(format!("{msg}: truncated fixed-width field {field}")));
                }
                self.pos += n;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint(msg)?)
                    .map_err(|_| bad(format!("{msg}: length out of range")))?;
                let end = self
                    .pos
                    .checked_add(len)
                    .filter(|e| *e <= self.buf.len())
                    .ok_or_else(|| bad(format!("{msg}: field {field} is longer than the body")))?;
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Wire::Len(s)
            }
            t => {
                return Err(bad(format!(
                    "{msg}: unsupported wire type {t} (field {field})"
                )));
            }
        };
        Ok(Some((field, w)))
    }
}

fn utf8<'a>(b: &'a [u8], msg: &str, json: &str) -> Result<&'a str, ApiError> {
    std::str::from_utf8(b).map_err(|_| bad(format!("{msg}.{json}: not UTF-8")))
}

/// `metav1.Time` / `MicroTime` message → RFC 3339 (None for the zero time, which Go leaves
/// empty). `Time` drops the nanoseconds as Go's decoder does; `MicroTime` keeps microseconds.
fn time(b: &[u8], msg: &str, json: &str, micro: bool) -> Result<Option<String>, ApiError> {
    let mut r = Reader::new(b);
    let (mut secs, mut nanos): (i64, i64) = (0, 0);
    let mut seen = false;
    while let Some((f, w)) = r.next(msg)? {
        match (f, w) {
            (1, Wire::Varint(v)) => {
                // int64 on the wire: two's complement in 64 bits.
                secs = v as i64;
                seen = true;
            }
            (2, Wire::Varint(v)) => {
                nanos = i64::from(v as u32 as i32);
                seen = true;
            }
            _ => return Err(bad(format!("{msg}.{json}: malformed Time"))),
        }
    }
    if !seen {
        return Ok(None);
    }
    let t = jiff::Timestamp::from_second(secs)
        .map_err(|e| bad(format!("{msg}.{json}: time out of range: {e}")))?;
    let base = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    Ok(Some(if micro {
        format!("{base}.{:06}Z", nanos.clamp(0, 999_999_999) / 1000)
    } else {
        format!("{base}Z")
    }))
}

/// A `map<string, X>` entry: (key, value bytes or varint).
fn map_entry<'a>(
    b: &'a [u8],
    msg: &str,
    json: &str,
) -> Result<(String, Option<&'a [u8]>), ApiError> {
    let mut r = Reader::new(b);
    let (mut k, mut v) = (String::new(), None);
    while let Some((f, w)) = r.next(msg)? {
        match (f, w) {
            (1, Wire::Len(s)) => k = utf8(s, msg, json)?.to_string(),
            (2, Wire::Len(s)) => v = Some(s),
            _ => return Err(bad(format!("{msg}.{json}: malformed map entry"))),
        }
    }
    Ok((k, v))
}

fn decode_message(m: &Message, b: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    let mut r = Reader::new(b);
    while let Some((num, w)) = r.next(m.name)? {
        let Some(&(_, json, t)) = m.fields.iter().find(|f| f.0 == num) else {
            return Err(bad(format!(
                "{} field {num} is not known to kube-sim (it decodes the fields of Kubernetes v1.32); send this object as application/json",
                m.name
            )));
        };
        let wrong = || bad(format!("{}.{json}: unexpected wire type", m.name));
        match (t, w) {
            (Str | StrKeep, Wire::Len(s)) => {
                let s = utf8(s, m.name, json)?;
                if !s.is_empty() || matches!(t, StrKeep) {
                    out.insert(json.into(), json!(s));
                }
            }
            (Bytes, Wire::Len(s)) => {
                out.insert(
                    json.into(),
                    json!(base64::engine::general_purpose::STANDARD.encode(s)),
                );
            }
            (Bool, Wire::Varint(v)) => {
                out.insert(json.into(), json!(v != 0));
            }
            (Int | OptInt, Wire::Varint(v)) => {
                let v = v as i64;
                if v != 0 || matches!(t, OptInt) {
                    out.insert(json.into(), json!(v));
                }
            }
            (Time | MicroTime, Wire::Len(s)) => {
                if let Some(t) = time(s, m.name, json, matches!(t, MicroTime))? {
                    out.insert(json.into(), json!(t));
                }
            }
            (Msg(sub), Wire::Len(s)) => {
                out.insert(json.into(), Value::Object(decode_message(sub, s)?));
            }
            (RepStr, Wire::Len(s)) => {
                let s = utf8(s, m.name, json)?;
                push(&mut out, json, json!(s));
            }
            (RepMsg(sub), Wire::Len(s)) => {
                push(&mut out, json, Value::Object(decode_message(sub, s)?));
            }
            (MapStr | MapBytes | MapMsg(_), Wire::Len(s)) => {
                let (k, v) = map_entry(s, m.name, json)?;
                let v = v.unwrap_or_default();
                let val = match t {
                    MapStr => json!(utf8(v, m.name, json)?),
                    MapBytes => json!(base64::engine::general_purpose::STANDARD.encode(v)),
                    MapMsg(sub) => Value::Object(decode_message(sub, v)?),
                    _ => return Err(wrong()),
                };
                let e = out.entry(json).or_insert_with(|| Value::Object(Map::new()));
                if let Some(o) = e.as_object_mut() {
                    o.insert(k, val);
                }
            }
            (FieldsV1, Wire::Len(s)) => {
                let mut raw = None;
                let mut fr = Reader::new(s);
                while let Some((f, w)) = fr.next(FIELDS_V1.name)? {
                    if let (1, Wire::Len(b)) = (f, w) {
                        raw = Some(b);
                    }
                }
                if let Some(b) = raw {
                    let v: Value = serde_json::from_slice(b)
                        .map_err(|e| bad(format!("{}.{json}: not JSON: {e}", m.name)))?;
                    out.insert(json.into(), v);
                }
            }
            _ => return Err(wrong()),
        }
    }
    Ok(out)
}

fn push(out: &mut Map<String, Value>, key: &str, v: Value) {
    let e = out.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if let Some(a) = e.as_array_mut() {
        a.push(v);
    }
}

/// Remove the fields of `obj` that its kind does not have, appending their paths to `out`; kinds
/// without a table here are left alone.
pub fn prune_unknown(api_version: &str, kind: &str, obj: &mut Value, out: &mut Vec<String>) {
    if let Some(&(_, _, m)) = KINDS
        .iter()
        .find(|(av, k, _)| *av == api_version && *k == kind)
    {
        prune(m, obj, "", true, out);
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

fn prune(m: &Message, v: &mut Value, path: &str, top: bool, out: &mut Vec<String>) {
    let Some(map) = v.as_object_mut() else {
        return;
    };
    map.retain(|k, x| {
        if top && (k == "apiVersion" || k == "kind") {
            return true;
        }
        let Some(&(_, _, t)) = m.fields.iter().find(|f| f.1 == k) else {
            out.push(join(path, k));
            return false;
        };
        match (t, x) {
            (Msg(sub), x @ Value::Object(_)) => prune(sub, x, &join(path, k), false, out),
            (RepMsg(sub), Value::Array(items)) => {
                for (i, it) in items.iter_mut().enumerate() {
                    prune(sub, it, &format!("{}[{i}]", join(path, k)), false, out);
                }
            }
            (MapMsg(sub), Value::Object(entries)) => {
                for (mk, mv) in entries.iter_mut() {
                    prune(sub, mv, &join(&join(path, k), mk), false, out);
                }
            }
            _ => {}
        }
        true
    });
}

/// Decode a Kubernetes protobuf body (`k8s\0` + `runtime.Unknown`) into the object's JSON.
///
/// # Errors
/// 400 when the body is not a Kubernetes protobuf envelope or a field cannot be decoded; 415 when
/// the kind is not one kube-sim decodes (the message names the ones it does).
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let Some(rest) = body.strip_prefix(MAGIC) else {
        return Err(bad(
            "the body does not start with the Kubernetes protobuf prefix \"k8s\\x00\"".into(),
        ));
    };
    let mut r = Reader::new(rest);
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    while let Some((f, w)) = r.next("runtime.Unknown")? {
        match (f, w) {
            (1, Wire::Len(tm)) => {
                let mut tr = Reader::new(tm);
                while let Some((f, w)) = tr.next("runtime.TypeMeta")? {
                    match (f, w) {
                        (1, Wire::Len(s)) => {
                            api_version = utf8(s, "runtime.TypeMeta", "apiVersion")?.into();
                        }
                        (2, Wire::Len(s)) => kind = utf8(s, "runtime.TypeMeta", "kind")?.into(),
                        _ => return Err(bad("malformed runtime.TypeMeta".into())),
                    }
                }
            }
            (2, Wire::Len(s)) => raw = Some(s),
            (3, Wire::Len(s)) if !s.is_empty() => {
                return Err(bad(format!(
                    "contentEncoding {:?} is not supported",
                    String::from_utf8_lossy(s)
                )));
            }
            (3 | 4, Wire::Len(_)) => {}
            _ => return Err(bad("malformed runtime.Unknown".into())),
        }
    }
    let Some(&(_, _, msg)) = KINDS
        .iter()
        .find(|(av, k, _)| *av == api_version && *k == kind)
    else {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "kube-sim does not decode {kind} ({api_version}) from {MEDIA_TYPE}; it decodes {}; send application/json",
                supported_kinds().join(", ")
            ),
        ));
    };
    let mut obj = decode_message(msg, raw.unwrap_or_default())?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn len_field(n: u32, b: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(n) << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }
    fn envelope(av: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = Vec::new();
        len_field(1, av.as_bytes(), &mut tm);
        len_field(2, kind.as_bytes(), &mut tm);
        let mut out = b"k8s\0".to_vec();
        len_field(1, &tm, &mut out);
        len_field(2, raw, &mut out);
        out
    }

    #[test]
    fn secret_with_bytes_map_time_and_empty_strings() {
        let mut meta = Vec::new();
        len_field(1, b"s1", &mut meta);
        len_field(2, b"", &mut meta); // generateName "" → omitted
        len_field(8, b"", &mut meta); // zero creationTimestamp → omitted
        let mut entry = Vec::new();
        len_field(1, b"k", &mut entry);
        len_field(2, b"\x00\xffv", &mut entry);
        let mut raw = Vec::new();
        len_field(1, &meta, &mut raw);
        len_field(2, &entry, &mut raw);
        len_field(3, b"Opaque", &mut raw);
        let v = decode(&envelope("v1", "Secret", &raw)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1"}, "data": {"k": "AP92"}, "type": "Opaque"})
        );
    }

    #[test]
    fn time_is_rfc3339_seconds() {
        let mut t = Vec::new();
        varint(1 << 3, &mut t);
        varint(1_700_000_000, &mut t);
        let mut meta = Vec::new();
        len_field(8, &t, &mut meta);
        let mut raw = Vec::new();
        len_field(1, &meta, &mut raw);
        let v = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(
            v["metadata"]["creationTimestamp"],
            json!("2023-11-14T22:13:20Z")
        );
    }

    #[test]
    fn bad_bodies_get_specific_errors() {
        assert!(decode(b"{}").unwrap_err().message.contains("k8s"));
        let e = decode(&envelope("apps/v1", "Deployment", b"")).unwrap_err();
        assert_eq!(e.code, 415);
        assert!(e.message.contains("Deployment") && e.message.contains("ConfigMap.v1"));
        let mut raw = Vec::new();
        len_field(99, b"x", &mut raw);
        let e = decode(&envelope("v1", "ConfigMap", &raw)).unwrap_err();
        assert!(
            e.message.contains("core.v1.ConfigMap field 99"),
            "{}",
            e.message
        );
        let mut trunc = envelope("v1", "ConfigMap", b"\x0a\x05ab");
        trunc.truncate(trunc.len() - 1);
        assert_eq!(decode(&trunc).unwrap_err().code, 400);
    }

    #[test]
    fn unknown_fields_of_known_kinds_are_pruned_with_paths() {
        let mut o = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "r", "bogus": 1},
            "rules": [{"verbs": ["get"], "nope": true}], "extra": 1});
        let mut out = Vec::new();
        prune_unknown("rbac.authorization.k8s.io/v1", "Role", &mut o, &mut out);
        assert_eq!(out, vec!["extra", "metadata.bogus", "rules[0].nope"]);
        assert_eq!(
            o,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "r"}, "rules": [{"verbs": ["get"]}]})
        );
        let mut d = json!({"spec": {"x": 1}});
        prune_unknown("apps/v1", "Deployment", &mut d, &mut out);
        assert_eq!(
            d,
            json!({"spec": {"x": 1}}),
            "kinds without a table are stored as sent"
        );
    }
}
