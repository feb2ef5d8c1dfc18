//! Writes a JSON value byte for byte as `serde_json::to_writer` does, faster on the long strings
//! with nothing to escape that stored objects carry (base64 certificates, CSRs and chains): such a
//! string is copied whole instead of being scanned byte by byte. Pure.

use serde_json::Value;

/// [`write`] of an object whose `metadata` holds no `managedFields`, with `managed` (JSON) written
/// as `metadata.managedFields` where serde_json would write that key: the same bytes as
/// [`write`] of the object with the list in it.
pub fn write_with_managed(out: &mut Vec<u8>, value: &Value, managed: Option<&[u8]>) {
    let (Some(managed), Value::Object(map)) = (managed, value) else {
        return write(out, value);
    };
    if !map.get("metadata").is_some_and(Value::is_object) {
        return write(out, value);
    }
    out.push(b'{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        match v {
            Value::Object(meta) if k == "metadata" => {
                out.push(b'{');
                let mut first = true;
                let mut pending = true;
                for (mk, mv) in meta {
                    if mk == "managedFields" {
                        continue;
                    }
                    if pending && mk.as_str() > "managedFields" {
                        if !first {
                            out.push(b',');
                        }
                        out.extend_from_slice(b"\"managedFields\":");
                        out.extend_from_slice(managed);
                        first = false;
                        pending = false;
                    }
                    if !first {
                        out.push(b',');
                    }
                    write_str(out, mk);
                    out.push(b':');
                    write(out, mv);
                    first = false;
                }
                if pending {
                    if !first {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"\"managedFields\":");
                    out.extend_from_slice(managed);
                }
                out.push(b'}');
            }
            _ => write(out, v),
        }
    }
    out.push(b'}');
}

/// Appends `value` as compact JSON to `out`: the same bytes as `serde_json::to_writer`.
pub fn write(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write(out, v);
            }
            out.push(b'}');
        }
    }
}

/// Appends `s` as a JSON string (serde_json's escaping).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    if nothing_to_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Appends `prefix` followed by `s` as one JSON string (`prefix` needs no escaping).
pub fn write_prefixed_str(out: &mut Vec<u8>, prefix: &str, s: &str) {
    if nothing_to_escape(s.as_bytes()) {
        out.reserve(prefix.len() + s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        write_str(out, &format!("{prefix}{s}"));
    }
}

/// No `"`, no `\` and no control character below 0x20: what serde_json escapes. Tested 32 bytes
/// at a time without an early exit inside a block, which the compiler turns into vector code.
fn nothing_to_escape(bytes: &[u8]) -> bool {
    bytes.chunks(32).all(|block| {
        !block.iter().fold(false, |bad, &b| {
            bad | (b < 0x20) | (b == b'"') | (b == b'\\')
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn same_as_serde_json(value: &Value) {
        let mut ours = Vec::new();
        write(&mut ours, value);
        let theirs = serde_json::to_vec(value).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }

    #[test]
    fn every_kind_of_value_is_written_as_serde_json_writes_it() {
        let long_plain = "TUlJQ2VEQ0NBaCtnQXdJQkFnSVJB".repeat(200);
        let long_escaped = format!("{}\n-----END CERTIFICATE-----\n", "MIIB".repeat(100));
        same_as_serde_json(&json!({
            "apiVersion": "cert-manager.io/v1",
            "metadata": {"name": "istio-csr-x7k2p", "labels": {}, "annotations": {"a\"b": "c\\d"}},
            "spec": {"request": long_plain, "usages": ["client auth", "server auth"], "isCA": false},
            "status": {"certificate": long_escaped, "conditions": [{"type": "Ready", "status": "True"}]},
            "numbers": [0, -1, 1.5, -2.25e-7, 1e300, u64::MAX, i64::MIN, 3.0],
            "text": ["", "tab\there", "\u{1}\u{1f}", "ünïcødé ✓ 𝄞", "slash / and \u{7f}", "quote \" end"],
            "null": null,
            "empty": [],
            "nested": [[{}], [[]]],
        }));
    }

    #[test]
    fn an_escape_anywhere_in_a_long_string_is_found() {
        let base = "A".repeat(100);
        for at in [0, 1, 31, 32, 33, 63, 64, 99] {
            for bad in ['"', '\\', '\n', '\u{0}', '\u{1f}'] {
                let mut s = base.clone();
                s.replace_range(at..at + 1, &bad.to_string());
                same_as_serde_json(&Value::String(s));
            }
        }
    }
}
