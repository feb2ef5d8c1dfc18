//! What Go's `crypto/x509` refuses in certificates that x509-parser reads: kube-apiserver parses
//! every certificate a signer writes with Go, so kube-sim must refuse at least as much.
//!
//! Covered (Go 1.23+, the toolchains kube-apiserver 1.35+ is built with):
//! - the serial number: a DER INTEGER in minimal form, not negative;
//! - the subjectAltName extension: DER structure (definite minimal lengths, low tag numbers), the
//!   rfc822Name, dNSName and URI entries IA5 (ASCII), URIs that `net/url` parses and whose host
//!   is a valid domain (non-empty labels, no trailing dot, printable ASCII), IP addresses of 4 or
//!   16 bytes;
//! - trailing data after a certificate given alone.
//!
//! Pure functions.

use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME;

/// Parse one DER certificate as Go's `x509.ParseCertificate` accepts it: the certificate, or
/// the refusal.
pub(super) fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err("x509: trailing data".into());
    }
    refusal(&cert).map_or(Ok(cert), Err)
}

/// Parse concatenated DER certificates as Go's `x509.ParseCertificates` does (one PEM block of a
/// CSR's `status.certificate` may hold several): their number, or the first refusal.
pub(super) fn parse_certificates(mut der: &[u8]) -> Result<usize, String> {
    let mut n = 0;
    while !der.is_empty() {
        let (rest, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
        if let Some(why) = refusal(&cert) {
            return Err(why);
        }
        der = rest;
        n += 1;
    }
    Ok(n)
}

/// Why Go refuses a certificate x509-parser read, if it does.
pub(super) fn refusal(cert: &X509Certificate<'_>) -> Option<String> {
    if let Some(why) = serial_refusal(cert.tbs_certificate.raw_serial()) {
        return Some(why);
    }
    cert.extensions()
        .iter()
        .filter(|e| e.oid == OID_X509_EXT_SUBJECT_ALT_NAME)
        .find_map(|e| san_refusal(e.value).err())
}

fn serial_refusal(raw: &[u8]) -> Option<String> {
    let minimal = match raw {
        [] => false,
        [0x00, next, ..] => next & 0x80 != 0,
        [0xff, next, ..] => next & 0x80 == 0,
        _ => true,
    };
    if !minimal {
        return Some("x509: malformed serial number".into());
    }
    (raw[0] & 0x80 != 0).then(|| "x509: negative serial number".into())
}

/// A DER reader with the rules of Go's `cryptobyte` (`ReadASN1`, `ReadAnyASN1`).
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// One element: (tag byte, contents); `None` for what cryptobyte refuses (high tag numbers,
    /// indefinite or non-minimal lengths, truncation).
    fn read_any(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first & 0x80 == 0 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let (bytes, rest) = rest.split_at(n);
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            if len < 128 || bytes[0] == 0 {
                return None;
            }
            (len, rest)
        };
        if rest.len() < len {
            return None;
        }
        let (contents, rest) = rest.split_at(len);
        self.0 = rest;
        Some((tag, contents))
    }
}

/// Go's `parseSANExtension` on the extension's value.
fn san_refusal(value: &[u8]) -> Result<(), String> {
    let mut outer = Der(value);
    let names = match outer.read_any() {
        Some((0x30, names)) => names,
        _ => return Err("x509: invalid subject alternative names".into()),
    };
    let mut names = Der(names);
    while !names.0.is_empty() {
        let (tag, data) = names
            .read_any()
            .ok_or("x509: invalid subject alternative name")?;
        let ia5 = data.is_ascii();
        match tag ^ 0x80 {
            1 if !ia5 => return Err("x509: SAN rfc822Name is malformed".into()),
            2 if !ia5 => return Err("x509: SAN dNSName is malformed".into()),
            6 if !ia5 => return Err("x509: SAN uniformResourceIdentifier is malformed".into()),
            6 => {
                let uri = std::str::from_utf8(data).unwrap_or_default();
                match url_host(uri) {
                    Err(e) => return Err(format!("x509: cannot parse URI {uri:?}: {e}")),
                    Ok(host) if !host.is_empty() && !domain_name_valid(&host) => {
                        return Err(format!("x509: cannot parse URI {uri:?}: invalid domain"));
                    }
                    Ok(_) => {}
                }
            }
            7 if data.len() != 4 && data.len() != 16 => {
                return Err(format!(
                    "x509: cannot parse IP address of length {}",
                    data.len()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Go's `domainNameValid(s, false)`: printable ASCII (33..=126), no empty label, no trailing dot.
fn domain_name_valid(s: &[u8]) -> bool {
    s.last() != Some(&b'.')
        && s.split(|b| *b == b'.')
            .all(|label| !label.is_empty() && label.iter().all(|b| (33..=126).contains(b)))
}

/// The host (with its port) `net/url`'s `Parse` gives for `raw`, unescaped, or its error text.
fn url_host(raw: &str) -> Result<Vec<u8>, String> {
    let parse_error = |e: &str| format!("parse {raw:?}: {e}");
    let (u, fragment) = raw
        .split_once('#')
        .map_or((raw, None), |(u, f)| (u, Some(f)));
    let parse_error_u = |e: &str| format!("parse {u:?}: {e}");
    if u.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(parse_error_u("net/url: invalid control character in URL"));
    }
    if u == "*" {
        return Ok(Vec::new());
    }
    let (scheme, rest) = scheme_of(u).map_err(parse_error_u)?;
    let rest = if rest.ends_with('?') && rest.matches('?').count() == 1 {
        &rest[..rest.len() - 1]
    } else {
        rest.split_once('?').map_or(rest, |(r, _)| r)
    };
    if !rest.starts_with('/')
        && scheme.is_none()
        && rest.split('/').next().is_some_and(|s| s.contains(':'))
    {
        return Err(parse_error_u(
            "first path segment in URL cannot contain colon",
        ));
    }
    let mut host = Vec::new();
    let mut path = rest;
    if !rest.starts_with('/') && scheme.is_some() {
        // Opaque: nothing more is parsed.
        path = "";
    } else if (scheme.is_some() || !rest.starts_with("///")) && rest.starts_with("//") {
        let authority = &rest[2..];
        let (authority, p) = authority
            .find('/')
            .map_or((authority, ""), |i| authority.split_at(i));
        path = p;
        host = parse_authority(authority).map_err(|e| parse_error_u(&e))?;
    }
    unescape(path, Mode::Other).map_err(|e| parse_error_u(&e))?;
    if let Some(f) = fragment.filter(|f| !f.is_empty()) {
        unescape(f, Mode::Other).map_err(|e| parse_error(&e))?;
    }
    Ok(host)
}

/// `getScheme`: (scheme, rest); a ':' first is an error.
fn scheme_of(u: &str) -> Result<(Option<&str>, &str), &'static str> {
    for (i, c) in u.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return Err("missing protocol scheme"),
            b':' => return Ok((Some(&u[..i]), &u[i + 1..])),
            _ => return Ok((None, u)),
        }
    }
    Ok((None, u))
}

/// `parseAuthority`: the unescaped host (with port).
fn parse_authority(authority: &str) -> Result<Vec<u8>, String> {
    let (userinfo, host) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let host = parse_host(host)?;
    if let Some(u) = userinfo {
        let valid = u
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&b));
        if !valid {
            return Err("net/url: invalid userinfo".into());
        }
        for part in u.splitn(2, ':') {
            unescape(part, Mode::Other)?;
        }
    }
    Ok(host)
}

/// `parseHost`: ports must be digits; the host is unescaped in host mode.
fn parse_host(host: &str) -> Result<Vec<u8>, String> {
    let valid_port = |p: &str| {
        p.is_empty() || (p.starts_with(':') && p[1..].bytes().all(|b| b.is_ascii_digit()))
    };
    if host.starts_with('[') {
        let Some(i) = host.rfind(']') else {
            return Err("missing ']' in host".into());
        };
        let port = &host[i + 1..];
        if !valid_port(port) {
            return Err(format!("invalid port {port:?} after host"));
        }
    } else if let Some(i) = host.rfind(':') {
        let port = &host[i..];
        if !valid_port(port) {
            return Err(format!("invalid port {port:?} after host"));
        }
    }
    unescape(host, Mode::Host)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Host,
    Other,
}

/// `unescape`: well-formed `%XX` escapes; in a host only escapes of non-ASCII bytes (or `%25`)
/// and the characters a host may hold.
fn unescape(s: &str, mode: Mode) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let (Some(hi), Some(lo)) = (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) else {
                    let end = (i + 3).min(b.len());
                    return Err(format!(
                        "invalid URL escape {:?}",
                        String::from_utf8_lossy(&b[i..end])
                    ));
                };
                if mode == Mode::Host && hi < 8 && &b[i..i + 3] != b"%25" {
                    return Err(format!(
                        "invalid URL escape {:?}",
                        String::from_utf8_lossy(&b[i..i + 3])
                    ));
                }
                // Both digits are below 16, so the byte fits.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or_default());
                i += 3;
            }
            c => {
                let host_char = c >= 0x80
                    || c.is_ascii_alphanumeric()
                    || b"-._~!$&'()*+,;=:[]<>\"".contains(&c);
                if mode == Mode::Host && !host_char {
                    return Err(format!(
                        "invalid character {:?} in host name",
                        (c as char).to_string()
                    ));
                }
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_hosts_follow_go() {
        for ok in [
            "spiffe://td.example/ns/a/sa/b",
            "spiffe://td.example",
            "https://user:pw@host.example:8443/p?q#f",
            "urn:uuid:1234",
            "spiffe:///no-host",
            "http://[::1]:80/",
            "mailto:a@b",
        ] {
            let host = url_host(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert!(host.is_empty() || domain_name_valid(&host), "{ok}");
        }
        for (bad, why) in [
            ("spiffe://td..example/x", "invalid domain"),
            ("spiffe://td.example./x", "invalid domain"),
            ("spiffe://.td.example/x", "invalid domain"),
            ("spiffe://td.example:x/", "invalid port"),
            ("spiffe://td{x}.example/", "invalid character"),
            ("spiffe://td.example/%zz", "invalid URL escape"),
            ("spiffe://td%41.example/", "invalid URL escape"),
            ("://x", "missing protocol scheme"),
            ("1a:b/c", "first path segment"),
            ("x:y/z\u{7f}", "control character"),
            ("http://[::1/", "missing ']'"),
        ] {
            let got = match url_host(bad) {
                Err(e) => e,
                Ok(host) if !host.is_empty() && !domain_name_valid(&host) => {
                    "invalid domain".into()
                }
                Ok(_) => panic!("{bad} parsed"),
            };
            assert!(got.contains(why), "{bad}: {got}");
        }
    }

    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        if contents.len() < 128 {
            v.push(contents.len() as u8);
        } else {
            v.extend([0x81, contents.len() as u8]);
        }
        v.extend_from_slice(contents);
        v
    }

    #[test]
    fn san_entries_follow_go() {
        let san = |names: &[Vec<u8>]| tlv(0x30, &names.concat());
        assert!(san_refusal(&san(&[tlv(0x86, b"spiffe://td/x"), tlv(0x82, b"a.b")])).is_ok());
        assert!(
            san_refusal(&san(&[tlv(0xa0, &[0xff; 3])])).is_ok(),
            "otherName is skipped"
        );
        let refused = |v: &[u8]| san_refusal(v).unwrap_err();
        assert!(refused(&san(&[tlv(0x82, "é.example".as_bytes())])).contains("dNSName"));
        assert!(refused(&san(&[tlv(0x81, "é@x".as_bytes())])).contains("rfc822Name"));
        assert!(refused(&san(&[tlv(0x86, "spiffe://é/x".as_bytes())])).contains("uniformResource"));
        assert!(refused(&san(&[tlv(0x87, &[1, 2, 3])])).contains("IP address of length 3"));
        assert!(refused(&san(&[tlv(0x86, b"spiffe://td..x/y")])).contains("invalid domain"));
        assert!(refused(&tlv(0x31, &[])).contains("invalid subject alternative names"));
        // A non-minimal length and a truncated entry.
        assert!(
            refused(&san(&[vec![0x82, 0x81, 0x03, b'a', b'.', b'b']])).contains("alternative name")
        );
        assert!(refused(&san(&[vec![0x82, 0x05, b'a']])).contains("alternative name"));
    }

    #[test]
    fn a_leaf_x509_parser_reads_is_refused_where_go_refuses_it() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://td..example/x".try_into().unwrap(),
        ));
        let cert = p.self_signed(&key).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        assert!(
            parsed.subject_alternative_name().is_ok(),
            "x509-parser reads it"
        );
        let e = parse_certificate(cert.der()).unwrap_err();
        assert_eq!(
            e,
            r#"x509: cannot parse URI "spiffe://td..example/x": invalid domain"#
        );
        p.subject_alt_names = vec![rcgen::SanType::URI(
            "spiffe://td.example/x".try_into().unwrap(),
        )];
        let good = p.self_signed(&key).unwrap();
        assert!(parse_certificate(good.der()).is_ok());
        let mut two = good.der().to_vec();
        two.extend_from_slice(good.der());
        assert_eq!(parse_certificates(&two), Ok(2));
        assert_eq!(
            parse_certificate(&two).map(|_| ()),
            Err("x509: trailing data".to_string())
        );
    }

    #[test]
    fn serials_follow_go() {
        assert_eq!(serial_refusal(&[0x01]), None);
        assert_eq!(serial_refusal(&[0x00, 0x80]), None);
        assert_eq!(
            serial_refusal(&[0x80]).as_deref(),
            Some("x509: negative serial number")
        );
        assert_eq!(
            serial_refusal(&[0x00, 0x01]).as_deref(),
            Some("x509: malformed serial number")
        );
        assert_eq!(
            serial_refusal(&[]).as_deref(),
            Some("x509: malformed serial number")
        );
    }
}
