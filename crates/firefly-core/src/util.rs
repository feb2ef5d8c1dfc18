//! Small text helpers every crate shares (hex, bounded quoting); pure functions, no I/O.

/// Lowercase hex, two digits per byte, written without per-byte formatting (this runs for the
/// serial of every leaf).
pub fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// `s` cut to at most `max` bytes at a character boundary, with `…` appended when it was cut:
/// keeps a hostile 1 MiB value out of an event, a log line or a status message.
pub fn truncate_at_char_boundary(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_two_digits_per_octet() {
        assert_eq!(hex_lower(&[0x00, 0x0f, 0xa0, 0xff, 0x4b]), "000fa0ff4b");
        assert_eq!(hex_lower(&[]), "");
    }

    #[test]
    fn truncation_keeps_short_text_and_cuts_long_text_on_a_char_boundary() {
        assert_eq!(truncate_at_char_boundary("abc", 3), "abc");
        assert_eq!(truncate_at_char_boundary("abcd", 3), "abc…");
        // 'é' is two bytes: a cut at byte 2 would split it, so the cut moves back to byte 1.
        assert_eq!(truncate_at_char_boundary("aéz", 2), "a…");
        assert_eq!(truncate_at_char_boundary("", 0), "");
    }
}
