//! One `allowedValues` entry compiled to a matcher (regex, literal, or `*.` wildcard); performs no I/O.

use regex::Regex;

/// Compiled regexes are capped so a hostile policy cannot exhaust memory; the `regex` crate already
/// guarantees linear-time matching.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// A DNS label is at most 63 octets (RFC 1035).
const MAX_DNS_LABEL: usize = 63;

/// An `allowedValues` entry, compiled (tlspc.md §2).
#[derive(Debug, Clone)]
pub enum Pattern {
    /// `^...`: a regular expression matched against the whole value.
    Regex {
        /// The entry as the policy wrote it.
        source: String,
        /// `^(?:...)$`.
        regex: Regex,
    },
    /// `*.suffix`: exactly one DNS label, then `.suffix` literally.
    Wildcard {
        /// The entry as the policy wrote it.
        source: String,
    },
    /// Any other entry: the value must equal it.
    Literal(String),
}

impl Pattern {
    /// Compiles one entry.
    ///
    /// # Errors
    /// The `regex` crate's message when a `^` entry does not compile (or exceeds the size cap).
    pub fn compile(entry: &str) -> Result<Pattern, String> {
        if let Some(body) = entry.strip_prefix('^') {
            // Wrapping makes the match whole-value even when the author forgot the `$`, and keeps
            // alternations (`^a|b`) from escaping the anchors.
            let anchored = format!("^(?:{body})$");
            let regex = regex::RegexBuilder::new(&anchored)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| e.to_string())?;
            return Ok(Pattern::Regex {
                source: entry.to_owned(),
                regex,
            });
        }
        if entry.starts_with("*.") {
            return Ok(Pattern::Wildcard {
                source: entry.to_owned(),
            });
        }
        Ok(Pattern::Literal(entry.to_owned()))
    }

    /// True when `value` is allowed by this entry.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Regex { regex, .. } => regex.is_match(value),
            Pattern::Literal(lit) => lit == value,
            Pattern::Wildcard { source } => {
                let suffix = &source[1..]; // ".example.com"
                match value.strip_suffix(suffix) {
                    Some(label) => is_dns_label(label),
                    None => false,
                }
            }
        }
    }

    /// The entry as written in the policy.
    pub fn source(&self) -> &str {
        match self {
            Pattern::Regex { source, .. } | Pattern::Wildcard { source } => source,
            Pattern::Literal(lit) => lit,
        }
    }
}

fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_DNS_LABEL
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(entry: &str, value: &str) -> bool {
        Pattern::compile(entry).unwrap().matches(value)
    }

    #[test]
    fn caret_entries_match_the_whole_value() {
        let p = r"^spiffe://cluster\.local/ns/.*/sa/.*";
        assert!(m(p, "spiffe://cluster.local/ns/a/sa/b"));
        assert!(!m(p, "xspiffe://cluster.local/ns/a/sa/b"));
        assert!(m("^abc", "abc"));
        assert!(!m("^abc", "abcd"), "an implicit $ is added");
        assert!(!m("^a|b", "xb"), "alternation stays inside the anchors");
    }

    #[test]
    fn other_entries_are_literals() {
        assert!(m("a.b", "a.b"));
        assert!(
            !m("a.b", "axb"),
            "a dot in a literal is not a regex wildcard"
        );
        assert!(!m("abc$", "abc"));
    }

    #[test]
    fn star_dot_matches_exactly_one_label() {
        assert!(m("*.example.com", "www.example.com"));
        assert!(!m("*.example.com", "a.b.example.com"));
        assert!(!m("*.example.com", "example.com"));
        assert!(!m("*.example.com", ".example.com"));
        assert!(!m("*.example.com", "wwwxexample.com"));
    }

    #[test]
    fn bad_regex_is_an_error() {
        assert!(Pattern::compile("^(").is_err());
        assert!(
            Pattern::compile("^a{1000}{1000}{1000}").is_err(),
            "size cap"
        );
    }
}
