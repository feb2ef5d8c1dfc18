//! SPIFFE identity newtypes (`SpiffeId`, `TrustDomain`) parsed by the rules C15–C18; performs no I/O.
//!
//! Parse, don't validate: a value of these types is always well-formed, so code that holds one never
//! re-checks it. Parsing is strict (no normalisation): the emitted form is the parsed form, so two IDs
//! compare exactly.

use std::fmt;
use std::str::FromStr;

/// The only accepted scheme, in the only accepted case (C15, C18).
const SCHEME_PREFIX: &str = "spiffe://";
/// C18: the whole ID is at most 2048 bytes.
pub const MAX_ID_LEN: usize = 2048;
/// C16: the trust domain is at most 255 bytes.
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// Why a string is not a SPIFFE ID or trust domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeError {
    /// The input is empty.
    #[error("SPIFFE ID is empty")]
    Empty,
    /// C18: longer than 2048 bytes.
    #[error("SPIFFE ID is {len} bytes long; at most {MAX_ID_LEN} are allowed (C18)")]
    TooLong {
        /// Length in bytes.
        len: usize,
    },
    /// C18: a non-ASCII byte, a space or a control character (NUL included).
    #[error(
        "SPIFFE ID contains a character that is not printable ASCII (non-ASCII, space or control) at byte {index} (C18)"
    )]
    NotAscii {
        /// Byte offset of the offending character.
        index: usize,
    },
    /// C15: the scheme is not `spiffe`.
    #[error("{value:?} does not start with \"spiffe://\" (C15)")]
    WrongScheme {
        /// The offending input (truncated).
        value: String,
    },
    /// C18: `Spiffe://` or `SPIFFE://`: the scheme must be lowercase.
    #[error("{value:?}: the scheme must be lowercase \"spiffe://\" (C18)")]
    SchemeNotLowercase {
        /// The offending input (truncated).
        value: String,
    },
    /// C15: no trust domain between `spiffe://` and the path.
    #[error("SPIFFE ID has an empty trust domain (C15)")]
    EmptyTrustDomain,
    /// C16: longer than 255 bytes.
    #[error("trust domain is {len} bytes long; at most {MAX_TRUST_DOMAIN_LEN} are allowed (C16)")]
    TrustDomainTooLong {
        /// Length in bytes.
        len: usize,
    },
    /// C16: an uppercase letter in the trust domain.
    #[error(
        "trust domain {value:?} contains an uppercase letter; trust domains are lowercase (C16)"
    )]
    TrustDomainUppercase {
        /// The trust domain.
        value: String,
    },
    /// C15: `host:port`.
    #[error("trust domain {value:?} contains a port; SPIFFE IDs carry no port (C15)")]
    Port {
        /// The authority.
        value: String,
    },
    /// C15: `user@host`.
    #[error("trust domain {value:?} contains userinfo ('@'); SPIFFE IDs carry no userinfo (C15)")]
    UserInfo {
        /// The authority.
        value: String,
    },
    /// C16/C17: `%xx` escapes are not allowed anywhere.
    #[error("SPIFFE ID {value:?} is percent-encoded; percent-encoding is not allowed (C16, C17)")]
    PercentEncoded {
        /// The offending input (truncated).
        value: String,
    },
    /// C16: a character outside `[a-z0-9._-]` in the trust domain.
    #[error("trust domain {value:?} contains {ch:?}; only [a-z0-9._-] are allowed (C16)")]
    TrustDomainCharacter {
        /// The trust domain.
        value: String,
        /// The first offending character.
        ch: char,
    },
    /// C15: a `?query`.
    #[error("SPIFFE ID {value:?} has a query; queries are not allowed (C15)")]
    Query {
        /// The offending input (truncated).
        value: String,
    },
    /// C15: a `#fragment`.
    #[error("SPIFFE ID {value:?} has a fragment; fragments are not allowed (C15)")]
    Fragment {
        /// The offending input (truncated).
        value: String,
    },
    /// C17: `//` in the path.
    #[error("SPIFFE ID {value:?} has an empty path segment (\"//\") (C17)")]
    EmptySegment {
        /// The offending input (truncated).
        value: String,
    },
    /// C17: a `.` or `..` segment.
    #[error(
        "SPIFFE ID {value:?} has a {segment:?} path segment; relative segments are not allowed (C17)"
    )]
    DotSegment {
        /// The offending input (truncated).
        value: String,
        /// `.` or `..`.
        segment: String,
    },
    /// C17: the path ends with `/`.
    #[error("SPIFFE ID {value:?} ends with '/' (C17)")]
    TrailingSlash {
        /// The offending input (truncated).
        value: String,
    },
    /// C17: a character outside `[a-zA-Z0-9._-]` in a path segment.
    #[error("SPIFFE ID {value:?} has {ch:?} in its path; only [a-zA-Z0-9._-] are allowed (C17)")]
    PathCharacter {
        /// The offending input (truncated).
        value: String,
        /// The first offending character.
        ch: char,
    },
    /// C3: `spiffe://td` names a trust domain, not a workload.
    #[error("SPIFFE ID {value:?} has no path; a workload identity needs one (C3)")]
    NoPath {
        /// The ID.
        value: String,
    },
}

/// Error values quote at most this many bytes of input, so a 1 MiB garbage string does not end up
/// in a Kubernetes event.
const QUOTE_LIMIT: usize = 256;

fn quote(s: &str) -> String {
    crate::util::truncate_at_char_boundary(s, QUOTE_LIMIT)
}

/// A SPIFFE trust domain (C16): lowercase `[a-z0-9._-]`, 1–255 bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// The trust domain as text (also its canonical form).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The trust-domain SPIFFE ID `spiffe://<td>` (what a signing certificate may carry, C12).
    pub fn id_string(&self) -> String {
        format!("{SCHEME_PREFIX}{}", self.0)
    }
}

impl FromStr for TrustDomain {
    type Err = SpiffeError;

    /// Parses a bare trust domain (`cluster.local`); `spiffe://cluster.local` is also accepted, as
    /// SPIFFE tooling often spells it that way, but only without a path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bare = match s.strip_prefix(SCHEME_PREFIX) {
            Some(rest) => rest,
            None => s,
        };
        if let Some(i) = bare.bytes().position(|b| !(0x21..0x7f).contains(&b)) {
            return Err(SpiffeError::NotAscii { index: i });
        }
        if bare.contains('/') {
            return Err(SpiffeError::TrustDomainCharacter {
                value: quote(bare),
                ch: '/',
            });
        }
        check_trust_domain(bare)?;
        Ok(TrustDomain(bare.to_owned()))
    }
}

fn check_trust_domain(td: &str) -> Result<(), SpiffeError> {
    if td.is_empty() {
        return Err(SpiffeError::EmptyTrustDomain);
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeError::TrustDomainTooLong { len: td.len() });
    }
    if td.contains('@') {
        return Err(SpiffeError::UserInfo { value: quote(td) });
    }
    if td.contains(':') {
        return Err(SpiffeError::Port { value: quote(td) });
    }
    if td.contains('%') {
        return Err(SpiffeError::PercentEncoded { value: quote(td) });
    }
    if td.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(SpiffeError::TrustDomainUppercase { value: quote(td) });
    }
    if let Some(ch) = td
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_'))
    {
        return Err(SpiffeError::TrustDomainCharacter {
            value: quote(td),
            ch,
        });
    }
    Ok(())
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustDomain({:?})", self.0)
    }
}

/// A SPIFFE ID (C15–C18): `spiffe://<trust domain><path>`.
///
/// The path may be empty (`spiffe://td` is the trust domain's own ID, which a signing certificate may
/// carry, C12); a workload identity needs one: see [`SpiffeId::parse_workload`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    full: String,
    /// Byte offset where the path starts in `full` (== full.len() when the path is empty).
    path_start: usize,
    trust_domain: TrustDomain,
}

impl SpiffeId {
    /// Parses an ID that must name a workload: the rules of [`FromStr`] plus a non-empty path (C3).
    ///
    /// # Errors
    /// Every rule of C3 and C15–C18, each with its own [`SpiffeError`] variant.
    pub fn parse_workload(s: &str) -> Result<Self, SpiffeError> {
        let id: SpiffeId = s.parse()?;
        if id.path().is_empty() {
            return Err(SpiffeError::NoPath { value: id.full });
        }
        Ok(id)
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The path, starting with `/`, or empty for a trust-domain ID.
    pub fn path(&self) -> &str {
        &self.full[self.path_start..]
    }

    /// The whole ID.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// True when the path is non-empty (the ID names a workload, C3).
    pub fn is_workload(&self) -> bool {
        self.path_start < self.full.len()
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(SpiffeError::Empty);
        }
        if s.len() > MAX_ID_LEN {
            return Err(SpiffeError::TooLong { len: s.len() });
        }
        if let Some(index) = s.bytes().position(|b| !(0x21..0x7f).contains(&b)) {
            return Err(SpiffeError::NotAscii { index });
        }
        let Some(rest) = s.strip_prefix(SCHEME_PREFIX) else {
            let lower_prefix = s.get(..SCHEME_PREFIX.len()).map(str::to_ascii_lowercase);
            if lower_prefix.as_deref() == Some(SCHEME_PREFIX) {
                return Err(SpiffeError::SchemeNotLowercase { value: quote(s) });
            }
            return Err(SpiffeError::WrongScheme { value: quote(s) });
        };
        if s.contains('#') {
            return Err(SpiffeError::Fragment { value: quote(s) });
        }
        if s.contains('?') {
            return Err(SpiffeError::Query { value: quote(s) });
        }
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let td = &rest[..authority_end];
        check_trust_domain(td)?;
        let path = &rest[authority_end..];
        check_path(s, path)?;
        Ok(SpiffeId {
            full: s.to_owned(),
            path_start: SCHEME_PREFIX.len() + authority_end,
            trust_domain: TrustDomain(td.to_owned()),
        })
    }
}

fn check_path(whole: &str, path: &str) -> Result<(), SpiffeError> {
    if path.is_empty() {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(SpiffeError::TrailingSlash {
            value: quote(whole),
        });
    }
    if path.contains('%') {
        return Err(SpiffeError::PercentEncoded {
            value: quote(whole),
        });
    }
    // `path` starts with '/', so the first split element is the empty string before it.
    for segment in path.split('/').skip(1) {
        match segment {
            "" => {
                return Err(SpiffeError::EmptySegment {
                    value: quote(whole),
                });
            }
            "." | ".." => {
                return Err(SpiffeError::DotSegment {
                    value: quote(whole),
                    segment: segment.to_owned(),
                });
            }
            _ => {}
        }
        if let Some(ch) = segment
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_'))
        {
            return Err(SpiffeError::PathCharacter {
                value: quote(whole),
                ch,
            });
        }
    }
    Ok(())
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({:?})", self.full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> SpiffeError {
        match s.parse::<SpiffeId>() {
            Ok(id) => panic!("{s:?} parsed as {id:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn istio_workload_id_parses_into_trust_domain_and_path() {
        let id: SpiffeId = "spiffe://cluster.local/ns/default/sa/sleep"
            .parse()
            .unwrap();
        assert_eq!(id.trust_domain().as_str(), "cluster.local");
        assert_eq!(id.path(), "/ns/default/sa/sleep");
        assert!(id.is_workload());
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/default/sa/sleep");
    }

    #[test]
    fn trust_domain_id_parses_but_is_not_a_workload() {
        let id: SpiffeId = "spiffe://cluster.local".parse().unwrap();
        assert_eq!(id.path(), "");
        assert!(!id.is_workload());
        assert!(matches!(
            SpiffeId::parse_workload("spiffe://cluster.local"),
            Err(SpiffeError::NoPath { .. })
        ));
    }

    #[test]
    fn every_malformed_shape_gets_its_own_error() {
        assert_eq!(err(""), SpiffeError::Empty);
        assert!(matches!(
            err("https://cluster.local/x"),
            SpiffeError::WrongScheme { .. }
        ));
        assert!(matches!(
            err("Spiffe://cluster.local/x"),
            SpiffeError::SchemeNotLowercase { .. }
        ));
        assert!(matches!(
            err("SPIFFE://cluster.local/x"),
            SpiffeError::SchemeNotLowercase { .. }
        ));
        assert!(matches!(err("spiffe:///x"), SpiffeError::EmptyTrustDomain));
        assert!(matches!(
            err("spiffe://Cluster.local/x"),
            SpiffeError::TrustDomainUppercase { .. }
        ));
        assert!(matches!(
            err("spiffe://cluster%2elocal/x"),
            SpiffeError::PercentEncoded { .. }
        ));
        assert!(matches!(
            err("spiffe://cluster.local:443/x"),
            SpiffeError::Port { .. }
        ));
        assert!(matches!(
            err("spiffe://u@cluster.local/x"),
            SpiffeError::UserInfo { .. }
        ));
        assert!(matches!(
            err("spiffe://cluster.local/"),
            SpiffeError::TrailingSlash { .. }
        ));
        assert!(matches!(
            err("spiffe://cluster.local/ns/a/"),
            SpiffeError::TrailingSlash { .. }
        ));
        assert!(matches!(
            err("spiffe://cluster.local/ns//sa"),
            SpiffeError::EmptySegment { .. }
        ));
        assert!(matches!(
            err("spiffe://cluster.local/ns/./sa"),
            SpiffeError::DotSegment { .. }
        ));
        assert!(matches!(
            err("spiffe://cluster.local/ns/../sa/x"),
            SpiffeError::DotSegment { .. }
        ));
        assert!(matches!(
            err("spiffe://cluster.local/ns/a?x=1"),
            SpiffeError::Query { .. }
        ));
        assert!(matches!(
            err("spiffe://cluster.local/ns/a#frag"),
            SpiffeError::Fragment { .. }
        ));
        assert!(matches!(
            err("spiffe://cluster.local/ns/a%2Fb"),
            SpiffeError::PercentEncoded { .. }
        ));
        assert!(matches!(
            err("spiffe://cluster.local/ns/\u{e9}"),
            SpiffeError::NotAscii { .. }
        ));
        assert!(matches!(
            err("spiffe://cluster.local/ns/a\0"),
            SpiffeError::NotAscii { .. }
        ));
        assert!(matches!(
            err("spiffe://cluster.local/ns/a b"),
            SpiffeError::NotAscii { .. }
        ));
        assert!(matches!(
            err("spiffe://cluster.local/ns/a,b"),
            SpiffeError::PathCharacter { ch: ',', .. }
        ));
        assert!(matches!(
            err("spiffe://clu$ter.local/ns"),
            SpiffeError::TrustDomainCharacter { ch: '$', .. }
        ));
    }

    #[test]
    fn trust_domain_parses_bare_or_as_id_without_path() {
        assert_eq!(
            "cluster.local".parse::<TrustDomain>().unwrap().as_str(),
            "cluster.local"
        );
        assert_eq!(
            "spiffe://cluster.local"
                .parse::<TrustDomain>()
                .unwrap()
                .as_str(),
            "cluster.local"
        );
        assert!("spiffe://cluster.local/ns".parse::<TrustDomain>().is_err());
        assert!(matches!(
            "".parse::<TrustDomain>(),
            Err(SpiffeError::EmptyTrustDomain)
        ));
        assert!(matches!(
            "Example.org".parse::<TrustDomain>(),
            Err(SpiffeError::TrustDomainUppercase { .. })
        ));
    }

    #[test]
    fn long_error_values_are_truncated() {
        let long = format!("https://{}", "a".repeat(1000));
        let msg = err(&long).to_string();
        assert!(msg.len() < 400, "{msg}");
    }
}
