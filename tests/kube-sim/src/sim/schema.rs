//! CRD `openAPIV3Schema` structural validation, pruning and defaulting of custom resources; pure functions.

use super::status::Cause;
use base64::Engine as _;
use serde_json::Value;

/// Outcome of validating one object.
#[derive(Debug, Default)]
pub struct Report {
    /// Violations (→ 422 Invalid).
    pub causes: Vec<Cause>,
    /// Paths of fields not declared in the schema (pruned; Strict → 400).
    pub unknown: Vec<String>,
}

fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause {
        reason: reason.to_string(),
        message,
        field: field.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A field path built on the stack and rendered only when a cause or unknown field needs it, so a
/// valid object costs no path allocations.
#[derive(Clone, Copy)]
enum Path<'a> {
    /// A path given as text (the root is "").
    Text(&'a str),
    /// `parent.key` (or `key` under an empty parent).
    Key(&'a Path<'a>, &'a str),
    /// `parent[i]`.
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        match self {
            Path::Text(s) => (*s).to_string(),
            Path::Key(p, k) => join(&p.render(), k),
            Path::Index(p, i) => format!("{}[{i}]", p.render()),
        }
    }
}

/// A CRD schema node with everything validation reads looked up once, when the CRD is registered,
/// instead of on every write (patterns are compiled here too).
#[derive(Debug, Default)]
pub struct Compiled {
    int_or_string: bool,
    /// `type` when it is a string.
    ty: Option<String>,
    /// `type` present at all.
    has_type: bool,
    nullable: bool,
    enumv: Option<Vec<Value>>,
    format: Option<String>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    /// The pattern and its regex (None when it does not compile: the check is skipped).
    pattern: Option<(String, Option<regex::Regex>)>,
    items: Option<Box<Compiled>>,
    list_keys: Option<Vec<String>>,
    /// `properties` when it is an object.
    props: Option<std::collections::BTreeMap<String, Compiled>>,
    /// `additionalProperties` when it is a schema.
    addl_schema: Option<Box<Compiled>>,
    /// `additionalProperties: true`.
    addl_true: bool,
    preserves: bool,
    /// Property defaults, in property order.
    defaults: Vec<(String, Value)>,
    /// `required` names that are strings.
    required: Vec<String>,
}

impl Compiled {
    /// Compile one schema node (and its children).
    pub fn new(schema: &Value) -> Compiled {
        let props_v = schema.get("properties").and_then(Value::as_object);
        let addl = schema.get("additionalProperties");
        Compiled {
            int_or_string: schema
                .get("x-kubernetes-int-or-string")
                .and_then(Value::as_bool)
                == Some(true),
            ty: schema
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_string),
            has_type: schema.get("type").is_some(),
            nullable: schema.get("nullable").and_then(Value::as_bool) == Some(true),
            enumv: schema.get("enum").and_then(Value::as_array).cloned(),
            format: schema
                .get("format")
                .and_then(Value::as_str)
                .map(str::to_string),
            minimum: schema.get("minimum").and_then(Value::as_f64),
            maximum: schema.get("maximum").and_then(Value::as_f64),
            min_items: schema.get("minItems").and_then(Value::as_u64),
            max_items: schema.get("maxItems").and_then(Value::as_u64),
            min_length: schema.get("minLength").and_then(Value::as_u64),
            max_length: schema.get("maxLength").and_then(Value::as_u64),
            pattern: schema
                .get("pattern")
                .and_then(Value::as_str)
                .map(|p| (p.to_string(), regex::Regex::new(p).ok())),
            items: schema.get("items").map(|i| Box::new(Compiled::new(i))),
            list_keys: map_list_keys(schema),
            props: props_v.map(|p| {
                p.iter()
                    .map(|(k, sub)| (k.clone(), Compiled::new(sub)))
                    .collect()
            }),
            addl_schema: match addl {
                Some(a @ Value::Object(_)) => Some(Box::new(Compiled::new(a))),
                _ => None,
            },
            addl_true: addl == Some(&Value::Bool(true)),
            preserves: schema
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                == Some(true),
            defaults: props_v
                .map(|p| {
                    p.iter()
                        .filter_map(|(k, sub)| sub.get("default").map(|d| (k.clone(), d.clone())))
                        .collect()
                })
                .unwrap_or_default(),
            required: schema
                .get("required")
                .and_then(Value::as_array)
                .map(|req| {
                    req.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// Validate `obj` against the CRD root schema, pruning unknown fields and applying defaults in place.
/// `apiVersion`, `kind` and `metadata` are checked by the caller, not here.
pub fn validate_root(schema: &Compiled, obj: &mut Value) -> Report {
    let mut r = Report::default();
    let Some(map) = obj.as_object_mut() else {
        r.causes.push(cause(
            "FieldValueTypeInvalid",
            "",
            "must be an object".into(),
        ));
        return r;
    };
    let props = schema.props.as_ref();
    // Removals wait until the walk is over (same keys, same order as removing in place).
    let mut remove: Vec<String> = Vec::new();
    for (k, v) in map.iter_mut() {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match props.and_then(|p| p.get(k)) {
            Some(sub) => {
                if v.is_null() && !sub.nullable {
                    remove.push(k.clone());
                    continue;
                }
                validate_at(sub, v, &Path::Key(&Path::Text(""), k), &mut r);
            }
            None if schema.preserves => {}
            None => {
                r.unknown.push(k.clone());
                remove.push(k.clone());
            }
        }
    }
    for k in &remove {
        map.remove(k);
    }
    apply_defaults_and_required(schema, map, &Path::Text(""), &mut r, true);
    r
}

/// Every field of an apply configuration that the CRD schema does not declare, as
/// structured-merge-diff names them (`.status.conditions[type="Ready"].observedGeneration`).
///
/// kube-apiserver converts an apply configuration to a typed object before merging it, and that
/// conversion refuses undeclared fields instead of pruning them (whatever `fieldValidation` says).
/// `metadata` is judged against `ObjectMeta`'s fields. Paths come back sorted.
pub fn undeclared_in_apply(schema: &Compiled, cfg: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(map) = cfg.as_object() else {
        return out;
    };
    for (k, v) in map {
        let path = SmdPath::Field(None, k);
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => undeclared_in_object_meta(v, &mut out),
            _ => match schema.props.as_ref().and_then(|p| p.get(k)) {
                Some(sub) => undeclared_at(sub, v, &path, &mut out),
                None if schema.preserves => {}
                None => {
                    // structured-merge-diff stops walking a map at its first undeclared key
                    // (in Go's random map order; kube-sim's is sorted, one answer it can give).
                    out.push(path.render());
                    break;
                }
            },
        }
    }
    out.sort();
    out
}

/// The property names of a Kubernetes type's published OpenAPI schema (k8s-openapi generates
/// its types and schemas from Kubernetes' own OpenAPI document).
fn declared_fields<T: k8s_openapi::schemars::JsonSchema>() -> Vec<String> {
    let schema = k8s_openapi::schemars::SchemaGenerator::default().into_root_schema_for::<T>();
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// The fields of meta/v1 `ObjectMeta`, and those of its `ownerReferences` items.
fn object_meta_fields() -> &'static (Vec<String>, Vec<String>) {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
    static FIELDS: std::sync::OnceLock<(Vec<String>, Vec<String>)> = std::sync::OnceLock::new();
    FIELDS.get_or_init(|| {
        (
            declared_fields::<ObjectMeta>(),
            declared_fields::<OwnerReference>(),
        )
    })
}

fn undeclared_in_object_meta(meta: &Value, out: &mut Vec<String>) {
    let path = ".metadata";
    let Some(map) = meta.as_object() else {
        return;
    };
    let (meta_fields, owner_fields) = object_meta_fields();
    for (k, v) in map {
        if !meta_fields.contains(k) {
            out.push(format!("{path}.{k}"));
            break;
        } else if k == "ownerReferences" {
            // A map list keyed by uid.
            for item in v.as_array().into_iter().flatten() {
                let Some(fields) = item.as_object() else {
                    continue;
                };
                let uid = item.get("uid").map(Value::to_string).unwrap_or_default();
                if let Some(f) = fields.keys().find(|f| !owner_fields.contains(f)) {
                    out.push(format!("{path}.ownerReferences[uid={uid}].{f}"));
                }
            }
        }
    }
}

/// A structured-merge-diff field path, rendered only when a field turns out undeclared.
#[derive(Clone, Copy)]
enum SmdPath<'a> {
    /// `.field` under a parent (the root has none).
    Field(Option<&'a SmdPath<'a>>, &'a str),
    /// A map-list element by its keys (`[type="Ready"]`).
    Keys(&'a SmdPath<'a>, &'a Value, &'a [String]),
    /// An atomic-list element by index.
    Index(&'a SmdPath<'a>, usize),
}

impl SmdPath<'_> {
    fn render(&self) -> String {
        match self {
            SmdPath::Field(parent, k) => {
                format!("{}.{k}", parent.map(SmdPath::render).unwrap_or_default())
            }
            SmdPath::Keys(parent, item, keys) => {
                // structured-merge-diff prints key fields sorted by name.
                let mut names: Vec<&String> = keys.iter().collect();
                names.sort();
                let parts: Vec<String> = names
                    .into_iter()
                    .filter_map(|k| item.get(k).map(|v| format!("{k}={v}")))
                    .collect();
                format!("{}[{}]", parent.render(), parts.join(","))
            }
            SmdPath::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }
}

fn undeclared_at(schema: &Compiled, v: &Value, at: &SmdPath<'_>, out: &mut Vec<String>) {
    if schema.preserves || schema.int_or_string {
        return;
    }
    match v {
        Value::Object(map) => {
            let props = schema.props.as_ref();
            let addl = schema.addl_schema.as_deref();
            for (k, cv) in map {
                let child = SmdPath::Field(Some(at), k);
                match props.and_then(|p| p.get(k)).or(addl) {
                    Some(sub) => undeclared_at(sub, cv, &child, out),
                    None if schema.addl_true => {}
                    None if props.is_none() && !schema.has_type => {}
                    None => {
                        out.push(child.render());
                        break;
                    }
                }
            }
        }
        Value::Array(items) => {
            let Some(sub) = schema.items.as_deref() else {
                return;
            };
            for (i, item) in items.iter().enumerate() {
                let element = match &schema.list_keys {
                    Some(keys) => SmdPath::Keys(at, item, keys),
                    None => SmdPath::Index(at, i),
                };
                undeclared_at(sub, item, &element, out);
            }
        }
        _ => {}
    }
}

fn apply_defaults_and_required(
    schema: &Compiled,
    map: &mut serde_json::Map<String, Value>,
    path: &Path<'_>,
    r: &mut Report,
    root: bool,
) {
    for (k, d) in &schema.defaults {
        if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if !map.contains_key(k) {
            map.insert(k.clone(), d.clone());
        }
    }
    for k in schema.required.iter().map(String::as_str) {
        if root && matches!(k, "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if !map.contains_key(k) {
            r.causes.push(cause(
                "FieldValueRequired",
                &join(&path.render(), k),
                "Required value".into(),
            ));
        }
    }
}

/// Validate one value against its schema node.
fn validate_at(schema: &Compiled, v: &mut Value, at: &Path<'_>, r: &mut Report) {
    if schema.int_or_string {
        if !(v.is_string() || type_name(v) == "integer") {
            let path = &at.render();
            r.causes.push(cause(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: \"{}\": {path} in body must be of type integer or string",
                    type_name(v)
                ),
            ));
        }
        return;
    }
    if let Some(t) = schema.ty.as_deref() {
        let actual = type_name(v);
        let ok = actual == t || (t == "number" && actual == "integer");
        if !ok {
            if v.is_null() && schema.nullable {
                return;
            }
            let path = &at.render();
            r.causes.push(cause(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: \"{actual}\": {path} in body must be of type {t}: \"{actual}\""
                ),
            ));
            return;
        }
    }
    if let Some(en) = &schema.enumv
        && !en.contains(v)
    {
        let allowed: Vec<String> = en.iter().map(|e| e.to_string()).collect();
        r.causes.push(cause(
            "FieldValueNotSupported",
            &at.render(),
            format!(
                "Unsupported value: {v}: supported values: {}",
                allowed.join(", ")
            ),
        ));
    }
    match v {
        Value::String(s) => check_string(schema, s, at, r),
        Value::Number(n) => {
            if let (Some(min), Some(x)) = (schema.minimum, n.as_f64())
                && x < min
            {
                let path = &at.render();
                r.causes.push(cause("FieldValueInvalid", path, format!("Invalid value: {n}: {path} in body should be greater than or equal to {min}")));
            }
            if let (Some(max), Some(x)) = (schema.maximum, n.as_f64())
                && x > max
            {
                let path = &at.render();
                r.causes.push(cause(
                    "FieldValueInvalid",
                    path,
                    format!(
                        "Invalid value: {n}: {path} in body should be less than or equal to {max}"
                    ),
                ));
            }
            if schema.format.as_deref() == Some("int32")
                && n.as_i64().is_none_or(|x| i32::try_from(x).is_err())
            {
                let path = &at.render();
                r.causes.push(cause(
                    "FieldValueInvalid",
                    path,
                    format!("Invalid value: {n}: {path} in body must be of type int32"),
                ));
            }
        }
        Value::Array(items) => {
            if let Some(min) = schema.min_items
                && (items.len() as u64) < min
            {
                let path = &at.render();
                r.causes.push(cause(
                    "FieldValueInvalid",
                    path,
                    format!(
                        "Invalid value: {}: {path} in body should have at least {min} items",
                        items.len()
                    ),
                ));
            }
            if let Some(max) = schema.max_items
                && (items.len() as u64) > max
            {
                r.causes.push(cause(
                    "TooMany",
                    &at.render(),
                    format!("Too many: {}: must have at most {max} items", items.len()),
                ));
            }
            if let Some(sub) = schema.items.as_deref() {
                for (i, item) in items.iter_mut().enumerate() {
                    validate_at(sub, item, &Path::Index(at, i), r);
                }
            }
            if let Some(keys) = &schema.list_keys {
                duplicates(items, keys, at, r);
            }
        }
        Value::Object(map) => {
            let props = schema.props.as_ref();
            let addl = schema.addl_schema.as_deref();
            // Removals wait until the walk is over (same keys, same order as removing in place).
            let mut remove: Vec<String> = Vec::new();
            for (k, cv) in map.iter_mut() {
                let sub = props.and_then(|p| p.get(k)).or(addl);
                let child = Path::Key(at, k);
                match sub {
                    Some(sub) => {
                        if cv.is_null() && !sub.nullable {
                            remove.push(k.clone());
                            continue;
                        }
                        validate_at(sub, cv, &child, r);
                    }
                    None if schema.preserves || schema.addl_true => {}
                    None if props.is_none() && !schema.has_type => {}
                    None => {
                        r.unknown.push(child.render());
                        remove.push(k.clone());
                    }
                }
            }
            for k in &remove {
                map.remove(k);
            }
            apply_defaults_and_required(schema, map, at, r, false);
        }
        _ => {}
    }
}

fn check_string(schema: &Compiled, s: &str, at: &Path<'_>, r: &mut Report) {
    match schema.format.as_deref() {
        Some("byte") if base64::engine::general_purpose::STANDARD.decode(s).is_err() => {
            let path = &at.render();
            r.causes.push(cause(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: \"{}\": {path} in body must be of type byte: \"{}\"",
                    short(s),
                    short(s)
                ),
            ));
        }
        Some("date-time") if s.parse::<jiff::Timestamp>().is_err() => {
            let path = &at.render();
            r.causes.push(cause(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: \"{s}\": {path} in body must be of type date-time: \"{s}\""
                ),
            ));
        }
        _ => {}
    }
    if let Some(max) = schema.max_length
        && s.chars().count() as u64 > max
    {
        let path = &at.render();
        r.causes.push(cause(
            "TooLong",
            path,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = schema.min_length
        && (s.chars().count() as u64) < min
    {
        let path = &at.render();
        r.causes.push(cause(
            "FieldValueInvalid",
            path,
            format!(
                "Invalid value: \"{}\": {path} in body should be at least {min} chars long",
                short(s)
            ),
        ));
    }
    if let Some((p, Some(re))) = &schema.pattern
        && !re.is_match(s)
    {
        let path = &at.render();
        r.causes.push(cause(
            "FieldValueInvalid",
            path,
            format!(
                "Invalid value: \"{}\": {path} in body should match '{p}'",
                short(s)
            ),
        ));
    }
}

static NULL: Value = Value::Null;

/// The key fields of a map-list item (missing ones as null, as `list_key` renders them).
fn key_fields<'v>(item: &'v Value, keys: &[String]) -> Vec<&'v Value> {
    keys.iter().map(|k| item.get(k).unwrap_or(&NULL)).collect()
}

/// Report items of a map list whose key fields repeat an earlier item's. Short lists (conditions)
/// compare keys in place; long ones use the rendered key in a set.
fn duplicates(items: &[Value], keys: &[String], at: &Path<'_>, r: &mut Report) {
    let mut dup = |i: usize, item: &Value| {
        let k = list_key(item, keys);
        r.causes.push(cause(
            "FieldValueDuplicate",
            &Path::Index(at, i).render(),
            format!("Duplicate value: {k}"),
        ));
    };
    if items.len() <= 16 {
        let ks: Vec<Vec<&Value>> = items.iter().map(|item| key_fields(item, keys)).collect();
        for (i, item) in items.iter().enumerate() {
            if ks[..i].contains(&ks[i]) {
                dup(i, item);
            }
        }
    } else {
        let mut seen = std::collections::HashSet::new();
        for (i, item) in items.iter().enumerate() {
            if !seen.insert(list_key(item, keys)) {
                dup(i, item);
            }
        }
    }
}

fn short(s: &str) -> String {
    if s.len() > 64 {
        format!("{}...", s.chars().take(61).collect::<String>())
    } else {
        s.to_string()
    }
}

/// The `x-kubernetes-list-map-keys` of a list schema declared `x-kubernetes-list-type: map`.
pub fn map_list_keys(schema: &Value) -> Option<Vec<String>> {
    if schema.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map") {
        return None;
    }
    let keys: Vec<String> = schema
        .get("x-kubernetes-list-map-keys")?
        .as_array()?
        .iter()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    (!keys.is_empty()).then_some(keys)
}

/// Canonical key of a map-list item: JSON object of the key fields.
pub fn list_key(item: &Value, keys: &[String]) -> String {
    let mut m = serde_json::Map::new();
    for k in keys {
        m.insert(k.clone(), item.get(k).cloned().unwrap_or(Value::Null));
    }
    Value::Object(m).to_string()
}

/// The schema node for child `key` of an object schema.
pub fn child<'a>(schema: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    let s = schema?;
    s.get("properties")
        .and_then(|p| p.get(key))
        .or_else(|| match s.get("additionalProperties") {
            Some(a @ Value::Object(_)) => Some(a),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["request"], "properties": {
                "request": {"type": "string", "format": "byte"},
                "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }}
        }})
    }

    #[test]
    fn missing_required_field_and_bad_enum_are_reported_with_paths() {
        let mut o = json!({"spec": {"mode": "c"}});
        let r = validate_root(&Compiled::new(&schema()), &mut o);
        let fields: Vec<&str> = r.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["spec.mode", "spec.request"]);
    }

    #[test]
    fn unknown_fields_are_pruned_unless_preserved_and_defaults_applied() {
        let mut o = json!({"spec": {"request": "aGk=", "bogus": 1, "extra": {"any": 1}}});
        let r = validate_root(&Compiled::new(&schema()), &mut o);
        assert!(r.causes.is_empty(), "{:?}", r.causes);
        assert_eq!(r.unknown, vec!["spec.bogus"]);
        assert_eq!(
            o,
            json!({"spec": {"request": "aGk=", "mode": "a", "extra": {"any": 1}}})
        );
    }

    fn conditions_schema() -> Value {
        json!({"type": "object", "properties": {"status": {"type": "object", "properties": {
            "conditions": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
                "items": {"type": "object", "required": ["type"], "properties": {
                    "type": {"type": "string"},
                    "lastTransitionTime": {"type": "string", "format": "date-time"}}}}}}}})
    }

    #[test]
    fn duplicate_map_list_keys_are_reported_for_short_and_long_lists() {
        for len in [3usize, 40] {
            let mut items: Vec<Value> =
                (0..len).map(|i| json!({"type": format!("T{i}")})).collect();
            items.push(json!({"type": "T1"}));
            let mut o = json!({"status": {"conditions": items}});
            let r = validate_root(&Compiled::new(&conditions_schema()), &mut o);
            let got: Vec<(&str, &str)> = r
                .causes
                .iter()
                .map(|c| (c.field.as_str(), c.message.as_str()))
                .collect();
            let field = format!("status.conditions[{len}]");
            assert_eq!(
                got,
                vec![(field.as_str(), r#"Duplicate value: {"type":"T1"}"#)]
            );
        }
    }

    #[test]
    fn nested_causes_and_unknown_fields_carry_full_paths() {
        let mut o = json!({"status": {"conditions": [
            {"type": "Ready", "lastTransitionTime": "yesterday", "extra": 1},
            {"lastTransitionTime": null}
        ]}});
        let r = validate_root(&Compiled::new(&conditions_schema()), &mut o);
        let fields: Vec<&str> = r.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "status.conditions[0].lastTransitionTime",
                "status.conditions[1].type"
            ]
        );
        assert_eq!(r.unknown, vec!["status.conditions[0].extra"]);
        assert_eq!(o["status"]["conditions"][1], json!({}));
    }

    #[test]
    fn compiled_pattern_is_checked_and_an_invalid_pattern_is_ignored() {
        let c = Compiled::new(&json!({"type": "object", "properties": {
            "a": {"type": "string", "pattern": "^[a-z]+$"},
            "b": {"type": "string", "pattern": "("}}}));
        let mut o = json!({"a": "ABC", "b": "anything"});
        let r = validate_root(&c, &mut o);
        let got: Vec<(&str, &str)> = r
            .causes
            .iter()
            .map(|c| (c.field.as_str(), c.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![(
                "a",
                "Invalid value: \"ABC\": a in body should match '^[a-z]+$'"
            )]
        );
    }

    #[test]
    fn byte_format_rejects_non_base64() {
        let mut o = json!({"spec": {"request": "not base64!"}});
        let r = validate_root(&Compiled::new(&schema()), &mut o);
        assert_eq!(r.causes.len(), 1);
        assert!(r.causes[0].message.contains("byte"));
    }
}
