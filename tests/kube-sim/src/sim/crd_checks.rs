//! What kube-apiserver checks in a CustomResourceDefinition before serving it that kube-sim also
//! needs: every `pattern` must compile (kube-sim compiles with Rust's `regex`, which accepts the
//! RE2 syntax Go uses apart from the differences listed in the README), and `selectableFields`
//! decide which field selectors the custom resource accepts.

use super::status::Cause;
use super::store::{ResourceDef, Store};
use serde_json::Value;

/// Causes (422) for the CRD's schemas that kube-sim could not enforce: patterns that do not compile.
pub fn check_crd(crd: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, v) in versions.iter().enumerate() {
        if let Some(s) = v.pointer("/schema/openAPIV3Schema") {
            walk(
                s,
                &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                &mut causes,
            );
        }
    }
    causes
}

fn walk(s: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(m) = s.as_object() else {
        return;
    };
    if let Some(p) = m.get("pattern").and_then(Value::as_str)
        && let Err(e) = regex::Regex::new(p)
    {
        let why = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        causes.push(Cause {
            reason: "FieldValueInvalid".into(),
            message: format!(
                "Invalid value: {p:?}: must be a valid regular expression, but isn't: {why}"
            ),
            field: format!("{path}.pattern"),
        });
    }
    for key in [
        "properties",
        "patternProperties",
        "definitions",
        "dependencies",
    ] {
        if let Some(props) = m.get(key).and_then(Value::as_object) {
            for (k, sub) in props {
                walk(sub, &format!("{path}.{key}[{k}]"), causes);
            }
        }
    }
    for key in ["items", "additionalProperties", "not", "additionalItems"] {
        if let Some(sub) = m.get(key) {
            walk(sub, &format!("{path}.{key}"), causes);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = m.get(key).and_then(Value::as_array) {
            for (i, sub) in list.iter().enumerate() {
                walk(sub, &format!("{path}.{key}[{i}]"), causes);
            }
        }
    }
}

impl Store {
    /// The `selectableFields` a CRD declares for this version of its custom resource, as field
    /// labels (`spec.color` for `jsonPath: .spec.color`).
    pub fn selectable_fields(&self, def: &ResourceDef) -> Vec<String> {
        let Some(crds) = self.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        else {
            return Vec::new();
        };
        let Some(crd) = self.get_value(&crds, "", &format!("{}.{}", def.plural, def.group)) else {
            return Vec::new();
        };
        crd.pointer("/spec/versions")
            .and_then(Value::as_array)
            .and_then(|vs| {
                vs.iter()
                    .find(|v| v.get("name").and_then(Value::as_str) == Some(def.version.as_str()))
            })
            .and_then(|v| v.get("selectableFields"))
            .and_then(Value::as_array)
            .map(|fs| {
                fs.iter()
                    .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
                    .map(|p| p.trim_start_matches('.').to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pattern_rust_cannot_compile_is_named_with_its_path() {
        let crd = json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {
                "ok": {"type": "string", "pattern": "^[a-z]+$"},
                "bad": {"type": "array", "items": {"type": "string", "pattern": "^(?=x)"}}
            }}}
        }}}]}});
        let causes = check_crd(&crd);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(
            causes[0].field,
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[bad].items.pattern"
        );
        assert!(
            causes[0]
                .message
                .starts_with("Invalid value: \"^(?=x)\": must be a valid regular expression")
        );
    }
}
