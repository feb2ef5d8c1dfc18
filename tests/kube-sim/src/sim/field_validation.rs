//! `fieldValidation=Ignore|Warn|Strict` as kube-apiserver applies it to create, update and
//! merge/strategic-merge patches: unknown fields and duplicate fields of the request body are
//! dropped silently (Ignore), reported in `Warning` headers (Warn, also when the parameter is
//! absent) or refused with 400 `strict decoding error: ...` (Strict). Pure functions.
//!
//! Unknown fields are found with the CRD schema for custom resources (`schema.rs`) and with the
//! protobuf field tables (`protobuf.rs`) for the built-in kinds listed there; other built-ins are
//! stored as sent. Duplicate fields are found while parsing a JSON body, in one pass.

use super::status::ApiError;
use super::store::{ResourceDef, WriteOpts};
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::fmt;

/// The `fieldValidation` directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Drop unknown/duplicate fields silently.
    Ignore,
    /// Drop them with a `Warning` header each (the default).
    #[default]
    Warn,
    /// Refuse the request.
    Strict,
}

/// Parse the `fieldValidation` query parameter (absent or empty = Warn).
///
/// # Errors
/// 400 naming the supported values for anything else.
pub fn mode(param: Option<&str>) -> Result<Mode, ApiError> {
    match param.unwrap_or_default() {
        "" | "Warn" => Ok(Mode::Warn),
        "Ignore" => Ok(Mode::Ignore),
        "Strict" => Ok(Mode::Strict),
        other => Err(ApiError::bad_request(format!(
            "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
        ))),
    }
}

/// Warnings for the unknown fields of a write and the duplicate fields of its body, or the
/// Strict refusal.
///
/// # Errors
/// 400 `strict decoding error: unknown field "a", duplicate field "b"` under Strict.
pub fn verdict(o: &WriteOpts, unknown: &[String]) -> Result<Vec<String>, ApiError> {
    if o.ignore_fields || (unknown.is_empty() && o.duplicate_fields.is_empty()) {
        return Ok(Vec::new());
    }
    let msgs: Vec<String> = unknown
        .iter()
        .map(|u| format!("unknown field \"{u}\""))
        .chain(
            o.duplicate_fields
                .iter()
                .map(|d| format!("duplicate field \"{d}\"")),
        )
        .collect();
    if o.strict {
        return Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            msgs.join(", ")
        )));
    }
    Ok(msgs)
}

/// Unknown fields of a built-in object whose fields kube-sim knows (the kinds of `protobuf.rs`);
/// they are removed from `obj` as the API server's decoder drops them.
pub fn unknown_builtin(def: &ResourceDef, obj: &mut Value, out: &mut Vec<String>) {
    // A view's body is already in the stored shape here: its apiVersion says which one.
    let av = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .map_or_else(|| def.api_version(), str::to_string);
    super::protobuf::prune_unknown(&av, &def.kind, obj, out);
}

/// A field path built on the stack; rendered only for a duplicate.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        match self {
            Path::Root => String::new(),
            Path::Key(Path::Root, k) => (*k).to_string(),
            Path::Key(p, k) => format!("{}.{k}", p.render()),
            Path::Index(p, i) => format!("{}[{i}]", p.render()),
        }
    }
}

struct Seed<'a, 'p> {
    path: &'p Path<'p>,
    dups: &'a RefCell<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            let p = Path::Index(self.path, out.len());
            match seq.next_element_seed(Seed {
                path: &p,
                dups: self.dups,
            })? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = {
                let p = Path::Key(self.path, &k);
                map.next_value_seed(Seed {
                    path: &p,
                    dups: self.dups,
                })?
            };
            if let Some(v0) = out.get_mut(&k) {
                // The last occurrence wins, as in Go's decoder.
                *v0 = v;
                self.dups
                    .borrow_mut()
                    .push(Path::Key(self.path, &k).render());
            } else {
                out.insert(k, v);
            }
        }
        Ok(Value::Object(out))
    }
}

/// Parse a JSON body, also returning the paths of duplicated object keys (the last value wins).
///
/// # Errors
/// The body is not JSON.
pub fn parse_json(body: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    let dups = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = Seed {
        path: &Path::Root,
        dups: &dups,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((v, dups.into_inner()))
}

/// Parse a YAML body, also returning the paths of duplicated mapping keys (the last value wins).
///
/// # Errors
/// The body is not YAML with string keys.
pub fn parse_yaml(body: &[u8]) -> Result<(Value, Vec<String>), serde_saphyr::Error> {
    let dups = RefCell::new(Vec::new());
    let v = serde_saphyr::with_deserializer_from_slice_with_options(body, yaml_options(), |de| {
        Seed {
            path: &Path::Root,
            dups: &dups,
        }
        .deserialize(de)
    })?;
    Ok((v, dups.into_inner()))
}

/// How request bodies and manifests are read as YAML: repeated keys reach the visitor (which
/// keeps the last, as Go's decoder does, and reports it), and only YAML 1.2 booleans are booleans.
pub fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    options.strict_booleans = true;
    options
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicates_are_found_with_their_paths_and_the_last_wins() {
        let (v, d) =
            parse_json(br#"{"a":1,"spec":{"x":[{"n":1,"n":2}],"y":1,"y":3},"a":2}"#).unwrap();
        assert_eq!(v, json!({"a": 2, "spec": {"x": [{"n": 2}], "y": 3}}));
        assert_eq!(d, vec!["spec.x[0].n", "spec.y", "a"]);
        let (_, d) = parse_json(br#"{"a":{"b":1},"c":[1,2]}"#).unwrap();
        assert!(d.is_empty());
        assert!(parse_json(b"{} x").is_err());
        let (v, d) = parse_yaml(b"a: 1\nb: {c: x, c: y}\n").unwrap();
        assert_eq!(v, json!({"a": 1, "b": {"c": "y"}}));
        assert_eq!(d, vec!["b.c"]);
    }

    #[test]
    fn modes_decide_between_nothing_warnings_and_refusal() {
        assert_eq!(mode(None).unwrap(), Mode::Warn);
        assert!(mode(Some("strict")).is_err());
        let unknown = vec!["spec.u".to_string()];
        let mut o = WriteOpts {
            duplicate_fields: vec!["spec.d".into()],
            ..Default::default()
        };
        assert_eq!(
            verdict(&o, &unknown).unwrap(),
            vec!["unknown field \"spec.u\"", "duplicate field \"spec.d\""]
        );
        o.strict = true;
        assert_eq!(
            verdict(&o, &unknown).unwrap_err().message,
            "strict decoding error: unknown field \"spec.u\", duplicate field \"spec.d\""
        );
        o.strict = false;
        o.ignore_fields = true;
        assert!(verdict(&o, &unknown).unwrap().is_empty());
    }
}
