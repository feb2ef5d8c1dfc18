//! Server-side apply: field ownership per manager, conflict detection, map-list merging; pure functions.

use super::schema::{child, list_key, map_list_keys};
use serde_json::Value;
use std::collections::BTreeSet;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    /// An object field.
    Field(String),
    /// A map-list item, by its canonical key JSON.
    Key(String),
}

/// A field path from the object root.
pub type Path = Vec<Seg>;

/// Fields owned by one apply manager on one (sub)resource.
#[derive(Debug, Clone)]
pub struct Applier {
    /// `fieldManager`.
    pub manager: String,
    /// Whether these fields were applied through `/status`.
    pub status: bool,
    /// Owned paths.
    pub fields: BTreeSet<Path>,
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
        }
    }
    s
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

/// Collect the leaf paths set by an apply configuration.
pub fn collect(cfg: &Value, schema: Option<&Value>, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    let Value::Object(map) = cfg else {
        out.insert(prefix.clone());
        return;
    };
    if map.is_empty() && !prefix.is_empty() {
        out.insert(prefix.clone());
        return;
    }
    for (k, v) in map {
        if prefix.is_empty() && matches!(k.as_str(), "apiVersion" | "kind") {
            continue;
        }
        if prefix.len() == 1
            && prefix[0] == Seg::Field("metadata".into())
            && matches!(
                k.as_str(),
                "name"
                    | "namespace"
                    | "resourceVersion"
                    | "uid"
                    | "managedFields"
                    | "creationTimestamp"
                    | "generation"
            )
        {
            continue;
        }
        let sub = child(schema, k);
        prefix.push(Seg::Field(k.clone()));
        match v {
            Value::Object(_) => collect(v, sub, prefix, out),
            Value::Array(items) => match keys_for(sub, k, items) {
                Some(keys) => {
                    let item_schema = sub.and_then(|s| s.get("items"));
                    for item in items {
                        prefix.push(Seg::Key(list_key(item, &keys)));
                        out.insert(prefix.clone());
                        collect(item, item_schema, prefix, out);
                        prefix.pop();
                    }
                    if items.is_empty() {
                        out.insert(prefix.clone());
                    }
                }
                None => {
                    out.insert(prefix.clone());
                }
            },
            _ => {
                out.insert(prefix.clone());
            }
        }
        prefix.pop();
    }
}

/// Merge an apply configuration into the live object: maps recursively, map lists by key, the rest replaced.
pub fn merge(live: &mut Value, cfg: &Value, schema: Option<&Value>, field: &str) {
    match (live, cfg) {
        (Value::Object(l), Value::Object(c)) => {
            for (k, cv) in c {
                let sub = child(schema, k);
                match l.get_mut(k) {
                    Some(lv) => merge(lv, cv, sub, k),
                    None => {
                        l.insert(k.clone(), cv.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(c)) => match keys_for(schema, field, c) {
            Some(keys) if l.iter().all(|i| i.is_object()) => {
                let item_schema = schema.and_then(|s| s.get("items"));
                for ci in c {
                    let ck = list_key(ci, &keys);
                    match l.iter_mut().find(|li| list_key(li, &keys) == ck) {
                        Some(li) => merge(li, ci, item_schema, ""),
                        None => l.push(ci.clone()),
                    }
                }
            }
            _ => *l = c.clone(),
        },
        (l, c) => *l = c.clone(),
    }
}

/// The value at a path, if present.
pub fn get<'a>(v: &'a Value, p: &[Seg]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in p {
        cur = match seg {
            Seg::Field(f) => cur.get(f)?,
            Seg::Key(k) => {
                let items = cur.as_array()?;
                let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, Value>>(k)
                    .ok()?
                    .keys()
                    .cloned()
                    .collect();
                items.iter().find(|i| &list_key(i, &keys) == k)?
            }
        };
    }
    Some(cur)
}

/// Remove the field or map-list item at a path (no-op when absent).
pub fn remove(v: &mut Value, p: &[Seg]) {
    let Some((last, parent)) = p.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parent {
        let next = match seg {
            Seg::Field(f) => cur.get_mut(f),
            Seg::Key(k) => {
                let keys: Vec<String> =
                    match serde_json::from_str::<serde_json::Map<String, Value>>(k) {
                        Ok(m) => m.keys().cloned().collect(),
                        Err(_) => return,
                    };
                cur.as_array_mut()
                    .and_then(|a| a.iter_mut().find(|i| &list_key(i, &keys) == k))
            }
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        Seg::Field(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        Seg::Key(k) => {
            let keys: Vec<String> = match serde_json::from_str::<serde_json::Map<String, Value>>(k)
            {
                Ok(m) => m.keys().cloned().collect(),
                Err(_) => return,
            };
            if let Some(a) = cur.as_array_mut() {
                a.retain(|i| &list_key(i, &keys) != k);
            }
        }
    }
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// The contested field.
    pub path: Path,
}

/// Apply `cfg` as `manager` onto `live` (returns the merged object and the updated appliers), or the conflicts.
pub fn apply(
    live: &Value,
    cfg: &Value,
    schema: Option<&Value>,
    appliers: &[Applier],
    manager: &str,
    status: bool,
    force: bool,
) -> Result<(Value, Vec<Applier>), Vec<Conflict>> {
    let mut fields = BTreeSet::new();
    collect(cfg, schema, &mut Vec::new(), &mut fields);
    let mut others: Vec<Applier> = Vec::with_capacity(appliers.len() + 1);
    let mut mine_before = BTreeSet::new();
    for a in appliers {
        if a.manager == manager && a.status == status {
            mine_before = a.fields.clone();
        } else {
            others.push(a.clone());
        }
    }
    let mut conflicts = Vec::new();
    for p in &fields {
        if matches!(p.last(), Some(Seg::Key(_))) {
            continue;
        }
        for o in others.iter_mut() {
            if o.manager == manager || !o.fields.contains(p) {
                continue;
            }
            if get(live, p) != get(cfg, p) {
                if force {
                    o.fields.remove(p);
                } else {
                    conflicts.push(Conflict {
                        manager: o.manager.clone(),
                        path: p.clone(),
                    });
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let mut merged = live.clone();
    merge(&mut merged, cfg, schema, "");
    // Fields this manager set before and no longer sets are removed unless someone else still owns them.
    let mut dropped: Vec<&Path> = mine_before
        .difference(&fields)
        .filter(|p| !others.iter().any(|o| o.fields.contains(*p)))
        .collect();
    dropped.sort_by_key(|p| p.len());
    for p in dropped {
        remove(&mut merged, p);
    }
    others.retain(|o| !o.fields.is_empty());
    others.push(Applier {
        manager: manager.to_string(),
        status,
        fields,
    });
    Ok((merged, others))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_from_two_managers_are_merged_by_type() {
        let live = json!({"status": {}});
        let (o1, a1) = apply(
            &live,
            &json!({"status": {"conditions": [{"type": "Approved", "status": "True"}]}}),
            None,
            &[],
            "approver",
            true,
            false,
        )
        .unwrap();
        let (o2, a2) = apply(
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
        let (o3, _) = apply(
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
        let (o1, a1) = apply(
            &json!({}),
            &json!({"spec": {"x": 1}}),
            None,
            &[],
            "a",
            false,
            false,
        )
        .unwrap();
        let err = apply(
            &o1,
            &json!({"spec": {"x": 2}}),
            None,
            &a1,
            "b",
            false,
            false,
        )
        .unwrap_err();
        assert_eq!(err[0].manager, "a");
        assert_eq!(render(&err[0].path), ".spec.x");
        let (o2, a2) = apply(&o1, &json!({"spec": {"x": 2}}), None, &a1, "b", false, true).unwrap();
        assert_eq!(o2["spec"]["x"], 2);
        assert_eq!(a2.len(), 1);
    }
}

#[cfg(test)]
mod schema_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schema_declared_map_list_merges_by_key() {
        let schema = json!({"type": "object", "properties": {"status": {"type": "object", "properties": {"conditions": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
            "items": {"type": "object", "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}
        }}}}});
        let live = json!({"metadata": {"name": "x"}, "spec": {}});
        let (o1, a1) = apply(
            &live,
            &json!({"status": {"conditions": [{"type": "Approved", "status": "True"}]}}),
            Some(&schema),
            &[],
            "approver",
            true,
            false,
        )
        .unwrap();
        let (o2, _) = apply(
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
