//! Judges a write body field by field against a published OpenAPI v3 schema (a CRD's
//! `openAPIV3Schema`): every field declared, of the declared type and format, enum values
//! respected, map-list keys present and unique, required fields present. Used on what the
//! controller sends, against cert-manager's published CertificateRequest CRD and our own CRDs.

use base64::Engine as _;
use serde_json::Value;

/// The fields of meta/v1 `ObjectMeta`, from its published OpenAPI schema (k8s-openapi generates
/// its types and schemas from Kubernetes' own OpenAPI document).
fn object_meta_fields() -> Vec<String> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let schema =
        k8s_openapi::schemars::SchemaGenerator::default().into_root_schema_for::<ObjectMeta>();
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// The `openAPIV3Schema` of the named version of a CRD given as YAML (several documents allowed).
pub fn crd_schema(crds_yaml: &str, crd_name: &str, version: &str) -> Value {
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(crds_yaml).expect("CRD YAML parses");
    for crd in docs {
        if crd.pointer("/metadata/name").and_then(Value::as_str) != Some(crd_name) {
            continue;
        }
        let versions = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .expect("CRD has versions");
        let v = versions
            .iter()
            .find(|v| v["name"] == version)
            .unwrap_or_else(|| panic!("{crd_name} has no version {version}"));
        return v["schema"]["openAPIV3Schema"].clone();
    }
    panic!("no CRD named {crd_name}")
}

/// Every way `body` breaks `schema`, one line each naming the field; empty when it conforms.
/// `required` is checked inside every object the body carries (so a partial apply configuration
/// passes, but each condition it sends must be whole).
pub fn violations(schema: &Value, body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(map) = body.as_object() else {
        return vec!["the body is not an object".into()];
    };
    for (k, v) in map {
        let path = format!(".{k}");
        match k.as_str() {
            "apiVersion" | "kind" => {
                if !v.is_string() {
                    out.push(format!("{path}: must be a string"));
                }
            }
            "metadata" => match v.as_object() {
                Some(m) => {
                    let declared = object_meta_fields();
                    for f in m.keys() {
                        if !declared.contains(f) {
                            out.push(format!("{path}.{f}: not a field of ObjectMeta"));
                        }
                    }
                }
                None => out.push(format!("{path}: must be an object")),
            },
            _ => match schema.pointer(&format!("/properties/{k}")) {
                Some(sub) => check(sub, v, &path, &mut out),
                None => out.push(format!("{path}: field not declared in schema")),
            },
        }
    }
    out
}

fn check(schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str);
    let actual = match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if let Some(t) = ty
        && t != actual
        && !(t == "number" && actual == "integer")
    {
        out.push(format!("{path}: declared {t}, sent {actual}"));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        out.push(format!("{path}: {v} is not one of {allowed:?}"));
    }
    match v {
        Value::String(s) => match schema.get("format").and_then(Value::as_str) {
            Some("byte") if base64::engine::general_purpose::STANDARD.decode(s).is_err() => {
                out.push(format!("{path}: not base64 (format byte)"));
            }
            Some("date-time") if s.parse::<jiff::Timestamp>().is_err() => {
                out.push(format!("{path}: {s:?} is not an RFC 3339 date-time"));
            }
            _ => {}
        },
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (k, cv) in map {
                let child = format!("{path}.{k}");
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => check(sub, cv, &child, out),
                    None => match additional {
                        Some(sub @ Value::Object(_)) => check(sub, cv, &child, out),
                        Some(Value::Bool(true)) => {}
                        _ => out.push(format!("{child}: field not declared in schema")),
                    },
                }
            }
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !map.contains_key(r) {
                    out.push(format!("{path}.{r}: required and missing"));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
            if schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
                let keys: Vec<&str> = schema
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let mut seen = std::collections::BTreeSet::new();
                for (i, item) in items.iter().enumerate() {
                    let key: Vec<String> = keys
                        .iter()
                        .map(|k| item.get(*k).map(Value::to_string).unwrap_or_default())
                        .collect();
                    if key.iter().any(String::is_empty) {
                        out.push(format!(
                            "{path}[{i}]: map-list item without its key {keys:?}"
                        ));
                    } else if !seen.insert(key.clone()) {
                        out.push(format!("{path}[{i}]: duplicate map-list key {key:?}"));
                    }
                }
            }
        }
        _ => {}
    }
}
