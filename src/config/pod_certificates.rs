//! `controller.podCertificates` (DESIGN §9): the PodCertificateRequest signers and their start-up
//! validation (signer-name rule of kube-apiserver, the reserved `kubernetes.io` domain, required
//! `namespaces`, no duplicates); performs no I/O.

use serde::Deserialize;

use super::ConfigError;

/// `controller.podCertificates`: off by default.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PodCertificatesConfig {
    /// Serve PodCertificateRequests addressed to `signers`.
    pub enabled: bool,
    /// The signers served.
    pub signers: Vec<PodSignerConfig>,
}

/// One entry of `controller.podCertificates.signers`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodSignerConfig {
    /// What pods name in a `podCertificate` projection (`firefly.venafi.com/istio-mtls`).
    pub signer_name: String,
    /// The TLSPC policy that decides key types, lifetime and usages.
    pub policy_name: String,
    /// The identity's trust domain: `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`.
    pub trust_domain: String,
    /// The namespaces served (required): `"*"` for every namespace, `[]` refuses everything.
    #[serde(default)]
    pub namespaces: Option<Vec<String>>,
    /// Cross-check pod, UID, service account and node against the pod cache before signing.
    #[serde(default)]
    pub verify_pod: bool,
    /// Publish the trust anchors as ClusterTrustBundle `<signerName with / as :>:root`.
    #[serde(default)]
    pub cluster_trust_bundle: bool,
}

impl PodSignerConfig {
    /// The namespaces served (validation guarantees they are set).
    pub fn namespaces(&self) -> &[String] {
        self.namespaces.as_deref().unwrap_or_default()
    }
}

impl PodCertificatesConfig {
    /// The signers whose trust anchors are published as a ClusterTrustBundle (empty when the
    /// door is off).
    pub fn trust_bundle_signers(&self) -> Vec<&PodSignerConfig> {
        if !self.enabled {
            return Vec::new();
        }
        self.signers
            .iter()
            .filter(|s| s.cluster_trust_bundle)
            .collect()
    }

    /// Checks every signer; errors name the key (`controller.podCertificates.signers[1].signerName`).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for the first broken rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: String, value: &str, rule: &str| ConfigError::Invalid {
            key,
            value: value.to_owned(),
            rule: rule.to_owned(),
        };
        if self.enabled && self.signers.is_empty() {
            return Err(invalid(
                "controller.podCertificates.signers".into(),
                "[]",
                "list at least one signer when controller.podCertificates.enabled is true",
            ));
        }
        for (i, s) in self.signers.iter().enumerate() {
            let key = |field: &str| format!("controller.podCertificates.signers[{i}].{field}");
            check_signer_name(&s.signer_name)
                .map_err(|rule| invalid(key("signerName"), &s.signer_name, &rule))?;
            if self.signers[..i]
                .iter()
                .any(|o| o.signer_name == s.signer_name)
            {
                return Err(invalid(
                    key("signerName"),
                    &s.signer_name,
                    "is listed twice: each signer name may appear once",
                ));
            }
            if s.policy_name.trim().is_empty() {
                return Err(invalid(
                    key("policyName"),
                    &s.policy_name,
                    "must name a policy of the TLSPC configuration",
                ));
            }
            if let Err(e) = s.trust_domain.parse::<firefly_core::spiffe::TrustDomain>() {
                return Err(invalid(
                    key("trustDomain"),
                    &s.trust_domain,
                    &format!("must be a SPIFFE trust domain: {e}"),
                ));
            }
            let Some(namespaces) = &s.namespaces else {
                return Err(invalid(
                    key("namespaces"),
                    "",
                    "is required: list the namespaces served, [\"*\"] for every namespace ([] refuses everything)",
                ));
            };
            if let Some(bad) = namespaces
                .iter()
                .find(|n| n.as_str() != "*" && !super::is_namespace_name(n))
            {
                return Err(invalid(
                    key("namespaces"),
                    bad,
                    "entries must be namespace names or \"*\"",
                ));
            }
        }
        Ok(())
    }
}

/// kube-apiserver's signer-name rule for PodCertificateRequests, plus the reserved
/// `kubernetes.io` domain: exactly one `/`; the domain at most 253 characters of at least two
/// dot-separated DNS-1123 labels; the path dot-separated DNS-1123 subdomains; at most 571
/// characters in all.
///
/// # Errors
/// The rule broken, in words.
pub fn check_signer_name(name: &str) -> Result<(), String> {
    const MAX: usize = 253 + 63 + 1 + 253 + 1;
    if name.len() > MAX {
        return Err(format!("is {} characters long, at most {MAX}", name.len()));
    }
    let mut parts = name.split('/');
    let (Some(domain), Some(path), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(
            "must be <domain>/<path> with exactly one '/' (firefly.venafi.com/istio-mtls)".into(),
        );
    };
    if domain.len() > 253 {
        return Err(format!(
            "domain {domain:?} is {} characters long, at most 253",
            domain.len()
        ));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "domain {domain:?} needs at least two dot-separated labels"
        ));
    }
    if let Some(bad) = labels.iter().find(|l| !is_dns_label(l)) {
        return Err(format!(
            "domain label {bad:?} is not a DNS-1123 label (lowercase letters, digits, '-', at most 63)"
        ));
    }
    if domain == "kubernetes.io" || domain.ends_with(".kubernetes.io") {
        return Err(format!(
            "domain {domain:?} is reserved for Kubernetes' own signers"
        ));
    }
    if path.is_empty() || !path.split('.').all(is_dns_label) {
        return Err(format!(
            "path {path:?} must be dot-separated DNS-1123 subdomains"
        ));
    }
    Ok(())
}

fn is_dns_label(l: &str) -> bool {
    let b = l.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signer_names_follow_the_api_server_rule() {
        for ok in [
            "firefly.venafi.com/istio-mtls",
            "example.com/a.b-c",
            "a.b/c",
        ] {
            assert_eq!(check_signer_name(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("firefly.venafi.com", "exactly one '/'"),
            ("a.b/c/d", "exactly one '/'"),
            ("localhost/x", "two dot-separated labels"),
            ("Example.com/x", "DNS-1123 label"),
            ("kubernetes.io/x", "reserved"),
            ("pods.kubernetes.io/x", "reserved"),
            ("example.com/", "path"),
            ("example.com/a..b", "path"),
            ("example.com/A", "path"),
        ] {
            let err = check_signer_name(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        let long = format!("{}.com/x", "a".repeat(250));
        assert!(
            check_signer_name(&long)
                .unwrap_err()
                .contains("at most 253")
        );
        let longest = format!("{}.com/{}", "a".repeat(60), ["b"; 300].join("."));
        assert!(check_signer_name(&longest).unwrap_err().contains("at most"));
    }
}
