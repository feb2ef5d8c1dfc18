//! Serde field helpers of the configuration file: Go durations and optional paths; performs no I/O.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// `#[serde(with = "fields::go_duration")]`: a Go duration string (`90s`, `1h30m`, `1.5h`).
pub mod go_duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(|rule| {
            serde::de::Error::custom(format!("{text:?} is not a Go duration: {rule}"))
        })
    }
}

/// Empty string or absent → `None`: the chart renders unset paths as `""`.
pub fn empty_path_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    Ok(text.filter(|t| !t.is_empty()).map(PathBuf::from))
}

/// Formats as Go does for whole seconds and above (`1h30m0s`); sub-second values as `ms`.
pub fn format_duration(d: Duration) -> String {
    let total = d.as_secs();
    if total == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// Parses a positive Go duration: a sequence of decimal numbers with units ns, us, µs, ms, s, m, h.
// Kept private to the configuration; the issuing core's `duration` module owns the general parser
// used for request durations.
fn parse(text: &str) -> Result<Duration, &'static str> {
    if text.is_empty() {
        return Err("empty");
    }
    if text.starts_with('-') {
        return Err("must be positive");
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or("missing unit (ns, us, ms, s, m, h)")?;
        if num_len == 0 {
            return Err("expected a number");
        }
        let (number, after) = rest.split_at(num_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err("unknown unit (ns, us, ms, s, m, h)"),
        };
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
            return Err("malformed number");
        }
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| "number too large")?
        };
        let mut value = int.checked_mul(scale).ok_or("too large")?;
        let mut frac_scale = scale;
        for digit in frac_part.chars().take(18) {
            frac_scale /= 10;
            value += u128::from(digit.to_digit(10).ok_or("malformed number")?) * frac_scale;
        }
        nanos = nanos.checked_add(value).ok_or("too large")?;
        rest = after;
    }
    if nanos == 0 {
        return Err("must be positive");
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| "too large")?;
    // The remainder of a division by 1e9 always fits in u32.
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1h0m0s"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in [
            "",
            "5",
            "-1s",
            "0s",
            "1d",
            "s",
            "1..5s",
            "5 minutes",
            "99999999999999999999h",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn format_is_go_like() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m0s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
    }
}
