//! Serde field helpers of the configuration file: Go durations and optional paths; performs no I/O.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// `#[serde(with = "fields::go_duration")]`: a Go duration string (`90s`, `1h30m`, `1.5h`).
pub mod go_duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        crate::duration::parse_go_duration(&text).map_err(|err| {
            serde::de::Error::custom(format!("{text:?} is not a Go duration: {err}"))
        })
    }
}

/// Empty string or absent → `None`: the chart renders unset paths as `""`.
pub fn empty_path_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    Ok(text.filter(|t| !t.is_empty()).map(PathBuf::from))
}

/// Formats as Go does (`1h30m0s`).
pub fn format_duration(d: Duration) -> String {
    crate::duration::format_go_duration(d)
}
