//! Signer names of the CertificateSigningRequest front door, in cert-manager's convention for
//! external issuers: `issuers.<group>/<namespace>.<name>` and `clusterissuers.<group>/<name>`;
//! pure parsing, performs no I/O.

use crate::issuer::decide::IssuerKind;

/// The issuer a signer name of ours addresses.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IssuerTarget {
    /// Issuer or ClusterIssuer.
    pub kind: IssuerKind,
    /// The Issuer's namespace (`None` for a ClusterIssuer).
    pub namespace: Option<String>,
    /// The issuer's name.
    pub name: String,
}

impl IssuerTarget {
    /// `namespace/name` for an Issuer, `name` for a ClusterIssuer (for messages).
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind.as_str(), self.name),
            None => format!("{} {}", self.kind.as_str(), self.name),
        }
    }
}

/// What a signer name means to us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignerName {
    /// Another signer's name (another group, `kubernetes.io/…`): not ours, left untouched.
    NotOurs,
    /// Ours, addressing this issuer.
    Ours(IssuerTarget),
    /// Our domain, but the path does not name an issuer: the message says which rule it breaks.
    Malformed(String),
}

/// Longest DNS label (a namespace).
const MAX_LABEL: usize = 63;
/// Longest DNS subdomain (an issuer name).
const MAX_SUBDOMAIN: usize = 253;

/// Parses `signer_name` for our API group `group` (`controller.cert-manager.groupName`).
///
/// # Guarantees
/// Only the domains `issuers.<group>` and `clusterissuers.<group>` are ours; for the namespaced
/// form the path splits at its first `.`: the namespace is a DNS label and the name (which may
/// hold dots) a DNS subdomain.
pub fn parse(signer_name: &str, group: &str) -> SignerName {
    let Some((domain, path)) = signer_name.split_once('/') else {
        return SignerName::NotOurs;
    };
    let kind = match domain.split_once('.') {
        Some(("issuers", g)) if g == group => IssuerKind::Issuer,
        Some(("clusterissuers", g)) if g == group => IssuerKind::ClusterIssuer,
        _ => return SignerName::NotOurs,
    };
    let malformed = |why: String| {
        SignerName::Malformed(format!(
            "signer name {signer_name:?} is ours ({domain}) but {why}; the forms are issuers.{group}/<namespace>.<name> and clusterissuers.{group}/<name>"
        ))
    };
    match kind {
        IssuerKind::Issuer => {
            let Some((namespace, name)) = path.split_once('.') else {
                return malformed(format!(
                    "its path {path:?} has no '.' between the namespace and the issuer name"
                ));
            };
            if let Err(why) = dns_label(namespace) {
                return malformed(format!("its namespace {namespace:?} {why}"));
            }
            if let Err(why) = dns_subdomain(name) {
                return malformed(format!("its issuer name {name:?} {why}"));
            }
            SignerName::Ours(IssuerTarget {
                kind,
                namespace: Some(namespace.to_owned()),
                name: name.to_owned(),
            })
        }
        IssuerKind::ClusterIssuer => {
            if let Err(why) = dns_subdomain(path) {
                return malformed(format!("its ClusterIssuer name {path:?} {why}"));
            }
            SignerName::Ours(IssuerTarget {
                kind,
                namespace: None,
                name: path.to_owned(),
            })
        }
    }
}

/// The signer name that addresses `target` (the inverse of [`parse`]).
pub fn format(target: &IssuerTarget, group: &str) -> String {
    match &target.namespace {
        Some(ns) => format!("issuers.{group}/{ns}.{}", target.name),
        None => format!("clusterissuers.{group}/{}", target.name),
    }
}

/// RFC 1123 label: 1–63 of `[a-z0-9-]`, starting and ending alphanumeric.
fn dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".to_owned());
    }
    if s.len() > MAX_LABEL {
        return Err(format!("is {} characters, over {MAX_LABEL}", s.len()));
    }
    let ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-';
    let b = s.as_bytes();
    if !b.iter().all(|&c| ok(c)) || b[0] == b'-' || b[b.len() - 1] == b'-' {
        return Err(
            "is not a DNS label (lower-case letters, digits and '-', starting and ending with a letter or digit)"
                .to_owned(),
        );
    }
    Ok(())
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
fn dns_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".to_owned());
    }
    if s.len() > MAX_SUBDOMAIN {
        return Err(format!("is {} characters, over {MAX_SUBDOMAIN}", s.len()));
    }
    if s.split('.').any(|l| dns_label(l).is_err()) {
        return Err("is not a DNS subdomain (dot-separated DNS labels)".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: &str = "firefly.venafi.com";

    fn ours(kind: IssuerKind, ns: Option<&str>, name: &str) -> SignerName {
        SignerName::Ours(IssuerTarget {
            kind,
            namespace: ns.map(str::to_owned),
            name: name.to_owned(),
        })
    }

    #[test]
    fn signer_names_of_ours_parse_into_the_issuer_they_address() {
        use IssuerKind::{ClusterIssuer, Issuer};
        let cases = [
            (
                "issuers.firefly.venafi.com/sandbox.my-issuer",
                ours(Issuer, Some("sandbox"), "my-issuer"),
            ),
            // The path splits at the first dot: the name keeps the rest, dots included.
            (
                "issuers.firefly.venafi.com/istio-system.mesh.ca.v2",
                ours(Issuer, Some("istio-system"), "mesh.ca.v2"),
            ),
            (
                "clusterissuers.firefly.venafi.com/istio-ca",
                ours(ClusterIssuer, None, "istio-ca"),
            ),
            (
                "clusterissuers.firefly.venafi.com/mesh.ca",
                ours(ClusterIssuer, None, "mesh.ca"),
            ),
            // Other signers are not ours: left untouched.
            (
                "issuers.cert-manager.io/sandbox.my-issuer",
                SignerName::NotOurs,
            ),
            (
                "clusterissuers.cert-manager.io/istio-ca",
                SignerName::NotOurs,
            ),
            ("kubernetes.io/kube-apiserver-client", SignerName::NotOurs),
            ("firefly.venafi.com/istio-mtls", SignerName::NotOurs),
            ("certificates.firefly.venafi.com/x", SignerName::NotOurs),
            (
                "issuers.firefly.venafi.com.evil.io/ns.x",
                SignerName::NotOurs,
            ),
            ("no-slash", SignerName::NotOurs),
        ];
        for (name, want) in cases {
            assert_eq!(parse(name, G), want, "{name}");
        }
    }

    #[test]
    fn malformed_names_of_ours_say_which_rule_they_break() {
        let cases = [
            ("issuers.firefly.venafi.com/no-namespace", "has no '.'"),
            (
                "issuers.firefly.venafi.com/.name",
                "namespace \"\" is empty",
            ),
            ("issuers.firefly.venafi.com/Sandbox.x", "is not a DNS label"),
            ("issuers.firefly.venafi.com/-ns.x", "is not a DNS label"),
            (
                "issuers.firefly.venafi.com/ns.",
                "issuer name \"\" is empty",
            ),
            (
                "issuers.firefly.venafi.com/ns.a..b",
                "is not a DNS subdomain",
            ),
            (
                "issuers.firefly.venafi.com/ns.UPPER",
                "is not a DNS subdomain",
            ),
            (
                "clusterissuers.firefly.venafi.com/",
                "ClusterIssuer name \"\" is empty",
            ),
            (
                "clusterissuers.firefly.venafi.com/a/b",
                "is not a DNS subdomain",
            ),
            (
                "clusterissuers.firefly.venafi.com/under_score",
                "is not a DNS subdomain",
            ),
        ];
        for (name, want) in cases {
            match parse(name, G) {
                SignerName::Malformed(m) => {
                    assert!(m.contains(want), "{name}: {m}");
                    assert!(
                        m.contains("issuers.firefly.venafi.com/<namespace>.<name>"),
                        "{m}"
                    );
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        let long = format!("issuers.{G}/{}.x", "a".repeat(64));
        assert!(matches!(parse(&long, G), SignerName::Malformed(m) if m.contains("over 63")));
    }

    #[test]
    fn format_is_the_inverse_of_parse() {
        for name in [
            "issuers.firefly.venafi.com/sandbox.my.issuer",
            "clusterissuers.firefly.venafi.com/istio-ca",
        ] {
            let SignerName::Ours(t) = parse(name, G) else {
                panic!("{name}")
            };
            assert_eq!(format(&t, G), name);
        }
    }
}
