//! YAML documents read into typed values through serde-saphyr, with the full key path of the first
//! bad key: the one reader of the configuration file and the mock's seed. Pure: takes text.

use serde::de::DeserializeOwned;

/// A YAML document that does not fit its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlError {
    /// Full path of the bad key (`bootstrap.vaas.url`, `serviceAccounts[0].clientId`), the
    /// unknown or missing key included; empty for the document itself (bad syntax).
    pub key: String,
    /// What is wrong, on one line, with the line and column serde-saphyr reports.
    pub message: String,
}

/// Parses `text` as a `T`: YAML 1.2 booleans only (`enabled: no` is an error, not `false`),
/// duplicate keys refused.
///
/// # Errors
/// [`YamlError`] naming the key path of the first unknown, missing, duplicate or ill-typed key,
/// or the document for bad syntax.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let mut options = serde_saphyr::Options::default();
    // One-line messages (the key path and the line/column), no source excerpt.
    options.with_snippet = false;
    options.strict_booleans = true;
    // serde_path_to_error wraps the deserializer to record the key path of a typed error;
    // the closure hands the error itself back, so parsing stops there.
    let mut path = None;
    serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, T>(de).map_err(|err| {
            path = Some(err.path().to_string());
            err.into_inner()
        })
    })
    .map_err(|err| parse_error(path.as_deref(), &err))
}

/// Turns a parse error into one naming the full key path (`path`, recorded while deserializing;
/// none for a syntax error), including the unknown or missing key.
fn parse_error(path: Option<&str>, err: &serde_saphyr::Error) -> YamlError {
    let mut key = path.filter(|p| *p != ".").unwrap_or_default().to_string();
    let message = one_line(&err.to_string());
    // serde reports a missing field at the path of its parent; name the field itself.
    // (An unknown field is already the last element of the path.)
    if let Some(at) = message.find("missing field `")
        && let Some(field) = message[at + "missing field `".len()..].split('`').next()
    {
        key = if key.is_empty() {
            field.to_string()
        } else {
            format!("{key}.{field}")
        };
    }
    // A key that appears twice is reported below its map, at an unnamed (`?`) element.
    if let Some(dup) = message.strip_prefix("duplicate mapping key: ")
        && let Some(name) = dup.split([',', ' ']).next()
    {
        let parent = key.trim_end_matches('?').trim_end_matches('.');
        key = if parent.is_empty() {
            name.to_string()
        } else {
            format!("{parent}.{name}")
        };
    }
    // The line and column serde-saphyr reports stay: they help find the key in the file.
    YamlError { key, message }
}

/// serde-saphyr's messages may span lines; an error message is one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
