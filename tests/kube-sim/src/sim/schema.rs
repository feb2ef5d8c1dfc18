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

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

/// Validate `obj` against the CRD root schema, pruning unknown fields and applying defaults in place.
/// `apiVersion`, `kind` and `metadata` are checked by the caller, not here.
pub fn validate_root(schema: &Value, obj: &mut Value) -> Report {
    let mut r = Report::default();
    let Some(map) = obj.as_object_mut() else {
        r.causes.push(cause(
            "FieldValueTypeInvalid",
            "",
            "must be an object".into(),
        ));
        return r;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    // Removals wait until the walk is over (same keys, same order as removing in place).
    let mut remove: Vec<String> = Vec::new();
    for (k, v) in map.iter_mut() {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match props.and_then(|p| p.get(k)) {
            Some(sub) => {
                if v.is_null() && sub.get("nullable").and_then(Value::as_bool) != Some(true) {
                    remove.push(k.clone());
                    continue;
                }
                validate_at(sub, v, &Path::Key(&Path::Text(""), k), &mut r);
            }
            None if preserves(schema) => {}
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

fn apply_defaults_and_required(
    schema: &Value,
    map: &mut serde_json::Map<String, Value>,
    path: &Path<'_>,
    r: &mut Report,
    root: bool,
) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, sub) in props {
            if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if !map.contains_key(k)
                && let Some(d) = sub.get("default")
            {
                map.insert(k.clone(), d.clone());
            }
        }
    }
    if let Some(req) = schema.get("required").and_then(Value::as_array) {
        for k in req.iter().filter_map(Value::as_str) {
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
}

/// Validate one value against its schema node.
fn validate_at(schema: &Value, v: &mut Value, at: &Path<'_>, r: &mut Report) {
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    if int_or_string {
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
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(v);
        let ok = actual == t || (t == "number" && actual == "integer");
        if !ok {
            if v.is_null() && schema.get("nullable").and_then(Value::as_bool) == Some(true) {
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
    if let Some(en) = schema.get("enum").and_then(Value::as_array)
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
            if let (Some(min), Some(x)) =
                (schema.get("minimum").and_then(Value::as_f64), n.as_f64())
                && x < min
            {
                let path = &at.render();
                r.causes.push(cause("FieldValueInvalid", path, format!("Invalid value: {n}: {path} in body should be greater than or equal to {min}")));
            }
            if let (Some(max), Some(x)) =
                (schema.get("maximum").and_then(Value::as_f64), n.as_f64())
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
            if schema.get("format").and_then(Value::as_str) == Some("int32")
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
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
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
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > max
            {
                r.causes.push(cause(
                    "TooMany",
                    &at.render(),
                    format!("Too many: {}: must have at most {max} items", items.len()),
                ));
            }
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    validate_at(sub, item, &Path::Index(at, i), r);
                }
            }
            if let Some(keys) = map_list_keys(schema) {
                duplicates(items, &keys, at, r);
            }
        }
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let addl = schema.get("additionalProperties");
            // Removals wait until the walk is over (same keys, same order as removing in place).
            let mut remove: Vec<String> = Vec::new();
            for (k, cv) in map.iter_mut() {
                let sub = props.and_then(|p| p.get(k)).or(match addl {
                    Some(Value::Object(_)) => addl,
                    _ => None,
                });
                let child = Path::Key(at, k);
                match sub {
                    Some(sub) => {
                        if cv.is_null()
                            && sub.get("nullable").and_then(Value::as_bool) != Some(true)
                        {
                            remove.push(k.clone());
                            continue;
                        }
                        validate_at(sub, cv, &child, r);
                    }
                    None if preserves(schema) || addl == Some(&Value::Bool(true)) => {}
                    None if props.is_none() && schema.get("type").is_none() => {}
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

fn check_string(schema: &Value, s: &str, at: &Path<'_>, r: &mut Report) {
    match schema.get("format").and_then(Value::as_str) {
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
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && s.chars().count() as u64 > max
    {
        let path = &at.render();
        r.causes.push(cause(
            "TooLong",
            path,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
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
    if let Some(p) = schema.get("pattern").and_then(Value::as_str)
        && let Ok(re) = regex::Regex::new(p)
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
        let r = validate_root(&schema(), &mut o);
        let fields: Vec<&str> = r.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["spec.mode", "spec.request"]);
    }

    #[test]
    fn unknown_fields_are_pruned_unless_preserved_and_defaults_applied() {
        let mut o = json!({"spec": {"request": "aGk=", "bogus": 1, "extra": {"any": 1}}});
        let r = validate_root(&schema(), &mut o);
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
            let r = validate_root(&conditions_schema(), &mut o);
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
        let r = validate_root(&conditions_schema(), &mut o);
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
    fn byte_format_rejects_non_base64() {
        let mut o = json!({"spec": {"request": "not base64!"}});
        let r = validate_root(&schema(), &mut o);
        assert_eq!(r.causes.len(), 1);
        assert!(r.causes[0].message.contains("byte"));
    }
}
