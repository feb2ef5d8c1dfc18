//! Go (`1h30m`) and ISO 8601 (`PT1H`, `P7D`) duration syntax, parsed and formatted; performs no I/O.
//!
//! Go durations come from cert-manager (`spec.duration`) and from our config file; ISO 8601 periods come
//! from TLSPC (`validityPeriod`). Zero, negative and overflowing values are errors in both: no caller
//! has a use for them, and rejecting them here means nobody forgets to.

use std::time::Duration;

/// Inputs longer than this are refused before parsing: no legitimate duration needs more.
const MAX_INPUT_LEN: usize = 64;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The string is empty.
    #[error("duration is empty")]
    Empty,
    /// Longer than any sensible duration.
    #[error("duration {value:?} is longer than {MAX_INPUT_LEN} characters")]
    TooLong {
        /// The input (truncated).
        value: String,
    },
    /// The string does not follow the syntax.
    #[error("duration {value:?} is not valid {syntax} syntax: {reason}")]
    Syntax {
        /// The input.
        value: String,
        /// `Go` or `ISO 8601`.
        syntax: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A unit that the syntax does not know.
    #[error("duration {value:?} has unknown unit {unit:?} (Go units: ns, us, µs, ms, s, m, h)")]
    UnknownUnit {
        /// The input.
        value: String,
        /// The unit as written.
        unit: String,
    },
    /// A negative duration.
    #[error("duration {value:?} is negative")]
    Negative {
        /// The input.
        value: String,
    },
    /// A zero duration.
    #[error("duration {value:?} is zero")]
    Zero {
        /// The input.
        value: String,
    },
    /// The value does not fit.
    #[error("duration {value:?} is too large")]
    Overflow {
        /// The input.
        value: String,
    },
}

fn truncated(s: &str) -> String {
    s.chars().take(MAX_INPUT_LEN).collect()
}

/// The checks every duration parser makes first: not empty, not longer than [`MAX_INPUT_LEN`].
fn check_length(s: &str) -> Result<(), DurationError> {
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.len() > MAX_INPUT_LEN {
        return Err(DurationError::TooLong {
            value: truncated(s),
        });
    }
    Ok(())
}

/// Parses a Go duration (`time.ParseDuration` syntax): `300ms`, `1.5h`, `1h0m0s`, `90m`.
///
/// # Errors
/// Empty, unknown unit, missing unit, negative, zero and overflowing values.
pub fn parse_go_duration(s: &str) -> Result<Duration, DurationError> {
    const GO: &str = "Go";
    check_length(s)?;
    let syntax = |reason| DurationError::Syntax {
        value: s.to_owned(),
        syntax: GO,
        reason,
    };
    let overflow = || DurationError::Overflow {
        value: s.to_owned(),
    };
    let mut rest = s;
    let mut negative = false;
    if let Some(r) = rest.strip_prefix('-') {
        negative = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Err(DurationError::Zero {
            value: s.to_owned(),
        });
    }
    if rest.is_empty() {
        return Err(syntax("no number"));
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let (int_part, frac_part, after) = split_number(rest);
        if int_part.is_empty() && frac_part.is_none_or(str::is_empty) {
            return Err(syntax("expected a number"));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let unit = &after[..unit_len];
        rest = &after[unit_len..];
        if unit.is_empty() {
            return Err(syntax("missing unit"));
        }
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(DurationError::UnknownUnit {
                    value: s.to_owned(),
                    unit: unit.to_owned(),
                });
            }
        };
        let nanos = scaled(int_part, frac_part.unwrap_or(""), unit_nanos).ok_or_else(overflow)?;
        total_nanos = total_nanos.checked_add(nanos).ok_or_else(overflow)?;
    }
    if negative && total_nanos > 0 {
        return Err(DurationError::Negative {
            value: s.to_owned(),
        });
    }
    nanos_to_duration(total_nanos, s)
}

/// Splits a leading `123.45` into ("123", Some("45"), rest).
fn split_number(s: &str) -> (&str, Option<&str>, &str) {
    let int_len = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let int_part = &s[..int_len];
    let after_int = &s[int_len..];
    match after_int.strip_prefix('.') {
        Some(frac_and_rest) => {
            let frac_len = frac_and_rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(frac_and_rest.len());
            (
                int_part,
                Some(&frac_and_rest[..frac_len]),
                &frac_and_rest[frac_len..],
            )
        }
        None => (int_part, None, after_int),
    }
}

/// `int.frac × unit` in nanoseconds, truncating below one nanosecond (as Go does); None on overflow.
fn scaled(int_part: &str, frac_part: &str, unit_nanos: u128) -> Option<u128> {
    let int: u128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let mut nanos = int.checked_mul(unit_nanos)?;
    let mut scale = unit_nanos;
    for digit in frac_part.bytes() {
        scale /= 10;
        if scale == 0 {
            break;
        }
        nanos = nanos.checked_add(u128::from(digit - b'0') * scale)?;
    }
    Some(nanos)
}

fn nanos_to_duration(nanos: u128, input: &str) -> Result<Duration, DurationError> {
    if nanos == 0 {
        return Err(DurationError::Zero {
            value: input.to_owned(),
        });
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| DurationError::Overflow {
        value: input.to_owned(),
    })?;
    // Go durations are int64 nanoseconds; refusing beyond that keeps the round trip exact.
    if nanos > i64::MAX as u128 {
        return Err(DurationError::Overflow {
            value: input.to_owned(),
        });
    }
    // The remainder is < 1e9, so it fits in u32.
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// Formats a duration as Go's `Duration.String()` does: `1h0m0s`, `1m30s`, `1.5s`, `500ms`, `0s`.
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", fraction(nanos, 1_000_000));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = (nanos / 60_000_000_000) % 60;
    let sec_nanos = nanos % 60_000_000_000;
    let seconds = fraction(sec_nanos, 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `value / unit` with the fractional digits Go prints (trailing zeros trimmed).
fn fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Parses an ISO 8601 duration as TLSPC writes `validityPeriod`: `PT1H`, `P7D`, `P1Y2M3DT4H5M6S`,
/// `P2W`. `Y` counts as 365 days and the date-part `M` as 30 days; the smallest unit may have a
/// decimal fraction (`PT1.5H`, with `.` or `,`).
///
/// # Errors
/// Syntax errors, zero, negative and overflowing values.
pub fn parse_iso8601_duration(s: &str) -> Result<Duration, DurationError> {
    const ISO: &str = "ISO 8601";
    check_length(s)?;
    let syntax = |reason| DurationError::Syntax {
        value: s.to_owned(),
        syntax: ISO,
        reason,
    };
    let overflow = || DurationError::Overflow {
        value: s.to_owned(),
    };
    if s.starts_with('-') {
        return Err(DurationError::Negative {
            value: s.to_owned(),
        });
    }
    let Some(mut rest) = s.strip_prefix('P') else {
        return Err(syntax("must start with 'P'"));
    };
    if rest.is_empty() {
        return Err(syntax("no components after 'P'"));
    }
    const DAY: u128 = 86_400_000_000_000;
    let mut in_time = false;
    let mut total: u128 = 0;
    let mut saw_component = false;
    let mut saw_fraction = false;
    // Units must appear in this order, each at most once.
    let mut last_rank = 0u8;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('T') {
            if in_time {
                return Err(syntax("'T' appears twice"));
            }
            in_time = true;
            rest = r;
            if rest.is_empty() {
                return Err(syntax("no time components after 'T'"));
            }
            continue;
        }
        if saw_fraction {
            return Err(syntax("only the smallest unit may have a fraction"));
        }
        let normalised;
        let number_source = if rest.contains(',') {
            normalised = rest.replacen(',', ".", 1);
            normalised.as_str()
        } else {
            rest
        };
        let (int_part, frac_part, after) = split_number(number_source);
        if int_part.is_empty() {
            return Err(syntax("expected a number"));
        }
        let consumed = number_source.len() - after.len();
        let Some(unit) = after.chars().next() else {
            return Err(syntax("missing unit"));
        };
        let (rank, unit_nanos) = match (in_time, unit) {
            (false, 'Y') => (1, 365 * DAY),
            (false, 'M') => (2, 30 * DAY),
            (false, 'W') => (3, 7 * DAY),
            (false, 'D') => (4, DAY),
            (true, 'H') => (5, 3_600_000_000_000),
            (true, 'M') => (6, 60_000_000_000),
            (true, 'S') => (7, 1_000_000_000),
            (false, 'H' | 'S') => return Err(syntax("hours and seconds belong after 'T'")),
            (true, 'Y' | 'W' | 'D') => {
                return Err(syntax("years, weeks and days belong before 'T'"));
            }
            _ => {
                return Err(syntax(
                    "unknown unit (use Y, M, W, D, or H, M, S after 'T')",
                ));
            }
        };
        if rank <= last_rank {
            return Err(syntax("units out of order or repeated"));
        }
        last_rank = rank;
        if let Some(frac) = frac_part {
            if frac.is_empty() {
                return Err(syntax("empty fraction"));
            }
            saw_fraction = true;
        }
        total = total
            .checked_add(
                scaled(int_part, frac_part.unwrap_or(""), unit_nanos).ok_or_else(overflow)?,
            )
            .ok_or_else(overflow)?;
        saw_component = true;
        // `consumed` counts bytes of the (possibly ','→'.' normalised) text; both are one byte.
        rest = &rest[consumed + unit.len_utf8()..];
    }
    if !saw_component {
        return Err(syntax("no components"));
    }
    nanos_to_duration(total, s)
}

/// Formats a duration as an ISO 8601 period in the units TLSPC uses (`P7D`, `PT1H`, `PT1H30M`).
pub fn format_iso8601_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return "PT0S".to_owned();
    }
    let days = secs / 86_400;
    let h = (secs / 3600) % 24;
    let m = (secs / 60) % 60;
    let s = secs % 60;
    let mut out = String::from("P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if h > 0 || m > 0 || s > 0 {
        out.push('T');
        if h > 0 {
            out.push_str(&format!("{h}H"));
        }
        if m > 0 {
            out.push_str(&format!("{m}M"));
        }
        if s > 0 {
            out.push_str(&format!("{s}S"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;

    #[test]
    fn go_durations_parse_like_time_parse_duration() {
        assert_eq!(parse_go_duration("1h0m0s"), Ok(Duration::from_secs(H)));
        assert_eq!(parse_go_duration("90m"), Ok(Duration::from_secs(90 * 60)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(90 * 60)));
        assert_eq!(
            parse_go_duration("2160h"),
            Ok(Duration::from_secs(2160 * H))
        );
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("1µs"), Ok(Duration::from_micros(1)));
        assert_eq!(parse_go_duration("1us2ns"), Ok(Duration::from_nanos(1002)));
        assert_eq!(parse_go_duration(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("+10s"), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn go_duration_refuses_zero_negative_overflow_and_garbage() {
        assert!(matches!(parse_go_duration(""), Err(DurationError::Empty)));
        assert!(matches!(
            parse_go_duration("0"),
            Err(DurationError::Zero { .. })
        ));
        assert!(matches!(
            parse_go_duration("0s"),
            Err(DurationError::Zero { .. })
        ));
        assert!(matches!(
            parse_go_duration("-1h"),
            Err(DurationError::Negative { .. })
        ));
        assert!(matches!(
            parse_go_duration("1d"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration("10"),
            Err(DurationError::Syntax { .. })
        ));
        assert!(matches!(
            parse_go_duration("h"),
            Err(DurationError::Syntax { .. })
        ));
        assert!(matches!(
            parse_go_duration("1h 2m"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration("9999999999999999h"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(matches!(
            parse_go_duration("2562048h"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(matches!(
            parse_go_duration(&"1".repeat(100)),
            Err(DurationError::TooLong { .. })
        ));
    }

    #[test]
    fn go_duration_formats_like_go_and_round_trips() {
        for (d, s) in [
            (Duration::from_secs(H), "1h0m0s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_nanos(1500), "1.5µs"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(format_go_duration(d), s);
            if !d.is_zero() {
                assert_eq!(parse_go_duration(s), Ok(d));
            }
        }
    }

    #[test]
    fn iso8601_periods_use_tlspc_day_counts() {
        assert_eq!(parse_iso8601_duration("PT1H"), Ok(Duration::from_secs(H)));
        assert_eq!(
            parse_iso8601_duration("P7D"),
            Ok(Duration::from_secs(7 * 24 * H))
        );
        assert_eq!(
            parse_iso8601_duration("P1Y"),
            Ok(Duration::from_secs(365 * 24 * H))
        );
        assert_eq!(
            parse_iso8601_duration("P1M"),
            Ok(Duration::from_secs(30 * 24 * H))
        );
        assert_eq!(parse_iso8601_duration("PT1M"), Ok(Duration::from_secs(60)));
        assert_eq!(
            parse_iso8601_duration("P2W"),
            Ok(Duration::from_secs(14 * 24 * H))
        );
        assert_eq!(
            parse_iso8601_duration("PT1.5H"),
            Ok(Duration::from_secs(90 * 60))
        );
        assert_eq!(
            parse_iso8601_duration("PT0,5H"),
            Ok(Duration::from_secs(30 * 60))
        );
        assert_eq!(
            parse_iso8601_duration("P1DT2H3M4S"),
            Ok(Duration::from_secs(24 * H + 2 * H + 3 * 60 + 4))
        );
    }

    #[test]
    fn iso8601_refuses_malformed_periods() {
        for bad in [
            "", "P", "PT", "1H", "PT1D", "P1H", "P1DT", "PT1H1H", "PT1M1H", "PT1.5H1M", "PTXH",
            "PT1", "P1X",
        ] {
            assert!(parse_iso8601_duration(bad).is_err(), "{bad:?} parsed");
        }
        assert!(matches!(
            parse_iso8601_duration("PT0S"),
            Err(DurationError::Zero { .. })
        ));
        assert!(matches!(
            parse_iso8601_duration("-PT1H"),
            Err(DurationError::Negative { .. })
        ));
        assert!(matches!(
            parse_iso8601_duration("P99999999999999999999Y"),
            Err(DurationError::Overflow { .. })
        ));
    }

    #[test]
    fn iso8601_format_round_trips() {
        for s in ["PT1H", "P7D", "PT1H30M", "P1DT1S"] {
            let d = parse_iso8601_duration(s).unwrap();
            assert_eq!(format_iso8601_duration(d), s);
        }
    }
}
