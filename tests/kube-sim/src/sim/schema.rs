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
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match props.and_then(|p| p.get(&k)) {
            Some(sub) => {
                if let Some(v) = map.get_mut(&k) {
                    if v.is_null() && sub.get("nullable").and_then(Value::as_bool) != Some(true) {
                        map.remove(&k);
                        continue;
                    }
                    validate(sub, v, &k, &mut r);
                }
            }
            None if preserves(schema) => {}
            None => {
                r.unknown.push(k.clone());
                map.remove(&k);
            }
        }
    }
    apply_defaults_and_required(schema, map, "", &mut r, true);
    r
}

fn apply_defaults_and_required(
    schema: &Value,
    map: &mut serde_json::Map<String, Value>,
    path: &str,
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
                    &join(path, k),
                    "Required value".into(),
                ));
            }
        }
    }
}

/// Validate one value against its schema node.
pub fn validate(schema: &Value, v: &mut Value, path: &str, r: &mut Report) {
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    if int_or_string {
        if !(v.is_string() || type_name(v) == "integer") {
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
            path,
            format!(
                "Unsupported value: {v}: supported values: {}",
                allowed.join(", ")
            ),
        ));
    }
    match v {
        Value::String(s) => check_string(schema, s, path, r),
        Value::Number(n) => {
            if let (Some(min), Some(x)) =
                (schema.get("minimum").and_then(Value::as_f64), n.as_f64())
                && x < min
            {
                r.causes.push(cause("FieldValueInvalid", path, format!("Invalid value: {n}: {path} in body should be greater than or equal to {min}")));
            }
            if let (Some(max), Some(x)) =
                (schema.get("maximum").and_then(Value::as_f64), n.as_f64())
                && x > max
            {
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
                    path,
                    format!("Too many: {}: must have at most {max} items", items.len()),
                ));
            }
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    validate(sub, item, &format!("{path}[{i}]"), r);
                }
            }
            if let Some(keys) = map_list_keys(schema) {
                let mut seen = std::collections::HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    let k = list_key(item, &keys);
                    if !seen.insert(k.clone()) {
                        r.causes.push(cause(
                            "FieldValueDuplicate",
                            &format!("{path}[{i}]"),
                            format!("Duplicate value: {k}"),
                        ));
                    }
                }
            }
        }
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let addl = schema.get("additionalProperties");
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let sub = props.and_then(|p| p.get(&k)).or(match addl {
                    Some(Value::Object(_)) => addl,
                    _ => None,
                });
                let child = join(path, &k);
                match sub {
                    Some(sub) => {
                        if let Some(cv) = map.get_mut(&k) {
                            if cv.is_null()
                                && sub.get("nullable").and_then(Value::as_bool) != Some(true)
                            {
                                map.remove(&k);
                                continue;
                            }
                            validate(sub, cv, &child, r);
                        }
                    }
                    None if preserves(schema) || addl == Some(&Value::Bool(true)) => {}
                    None if props.is_none() && schema.get("type").is_none() => {}
                    None => {
                        r.unknown.push(child);
                        map.remove(&k);
                    }
                }
            }
            apply_defaults_and_required(schema, map, path, r, false);
        }
        _ => {}
    }
}

fn check_string(schema: &Value, s: &str, path: &str, r: &mut Report) {
    match schema.get("format").and_then(Value::as_str) {
        Some("byte") if base64::engine::general_purpose::STANDARD.decode(s).is_err() => {
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
        r.causes.push(cause(
            "TooLong",
            path,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && (s.chars().count() as u64) < min
    {
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

    #[test]
    fn byte_format_rejects_non_base64() {
        let mut o = json!({"spec": {"request": "not base64!"}});
        let r = validate_root(&schema(), &mut o);
        assert_eq!(r.causes.len(), 1);
        assert!(r.causes[0].message.contains("byte"));
    }
}
