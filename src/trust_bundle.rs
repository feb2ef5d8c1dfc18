//! ClusterTrustBundles for our pod-certificate signers: what a signer's bundle must hold (name,
//! label, `spec.signerName`, the trust-anchor PEM) and whether the one in the cluster differs;
//! performs no I/O (the publisher that watches and writes is [`publish`]).
//!
//! Pods that receive a pod certificate from us trust the TLSPC root, never the ephemeral sub-CA:
//! each signer gets one signer-linked bundle holding exactly the trust-anchor set
//! (`bootstrap.vaas.trustAnchorFile`, or the root pinned from the first sub-CA), which pods project
//! by name or by `signerName` plus the label selector.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use x509_parser::prelude::FromDer as _;

pub mod publish;

/// The label every bundle we publish carries (DESIGN §9), so that a `clusterTrustBundle`
/// projection by `signerName` can select ours with `labelSelector`.
pub const LABEL_KEY: &str = "firefly.venafi.com/trust-bundle";
/// The value of [`LABEL_KEY`]: the bundle holds the roots.
pub const LABEL_VALUE: &str = "root";
/// Largest `spec.trustBundle` the API server accepts (1 MiB).
pub const MAX_TRUST_BUNDLE: usize = 1024 * 1024;

/// The name of `signer`'s bundle: the signer name with `/` replaced by `:`, then `:root` (the API
/// server requires signer-linked bundles to start with that prefix).
pub fn bundle_name(signer: &str) -> String {
    format!("{}:root", signer.replace('/', ":"))
}

/// Why a trust-anchor set cannot be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// No anchor: the API server requires at least one.
    #[error("the trust-anchor set is empty")]
    Empty,
    /// An anchor does not parse as X.509.
    #[error("trust anchor {index} is not an X.509 certificate: {reason}")]
    NotX509 {
        /// Position in the set.
        index: usize,
        /// The parser's message.
        reason: String,
    },
    /// An anchor is not a CA certificate (the API server requires `IsCA`).
    #[error("trust anchor {index} ({subject}) is not a CA certificate")]
    NotCa {
        /// Position in the set.
        index: usize,
        /// Its subject.
        subject: String,
    },
    /// The PEM exceeds the API server's limit.
    #[error("the trust bundle is {size} bytes, over the API server's {MAX_TRUST_BUNDLE}")]
    TooLarge {
        /// Its size.
        size: usize,
    },
}

/// `spec.trustBundle` for `anchors` (DER): one `CERTIFICATE` block per anchor, in order,
/// duplicates once, no headers and no text between blocks.
///
/// # Errors
/// [`BundleError`] for a set the API server would refuse: empty, not X.509, not a CA, over 1 MiB.
pub fn trust_bundle_pem(anchors: &[Vec<u8>]) -> Result<String, BundleError> {
    let mut seen: Vec<&[u8]> = Vec::new();
    for (index, der) in anchors.iter().enumerate() {
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).map_err(|e| {
            BundleError::NotX509 {
                index,
                reason: e.to_string(),
            }
        })?;
        if !cert.is_ca() {
            return Err(BundleError::NotCa {
                index,
                subject: cert.subject().to_string(),
            });
        }
        if !seen.contains(&der.as_slice()) {
            seen.push(der);
        }
    }
    if seen.is_empty() {
        return Err(BundleError::Empty);
    }
    let pem: String = seen.iter().map(|der| certificate_pem(der)).collect();
    if pem.len() > MAX_TRUST_BUNDLE {
        return Err(BundleError::TooLarge { size: pem.len() });
    }
    Ok(pem)
}

/// One `CERTIFICATE` block, 64-column lines.
fn certificate_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    // base64 is ASCII: every 64-byte chunk is whole characters.
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// What the cluster holds for a signer's bundle, as far as the publisher cares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// `spec.signerName`.
    pub signer_name: String,
    /// `spec.trustBundle`.
    pub trust_bundle: String,
    /// The value of [`LABEL_KEY`], if set.
    pub label: Option<String>,
}

/// Whether `observed` (`None`: absent) must be written to hold `pem` for `signer`: only when
/// something we own differs, so an unchanged bundle costs no write.
pub fn needs_write(signer: &str, pem: &str, observed: Option<&Observed>) -> bool {
    observed.is_none_or(|o| {
        o.signer_name != signer || o.trust_bundle != pem || o.label.as_deref() != Some(LABEL_VALUE)
    })
}

/// Told the new detail (`None`: nothing to report) each time it may have changed.
pub type StatusObserver = Arc<dyn Fn(Option<String>) + Send + Sync>;

/// What the publisher has to say in readiness detail, by topic (the API, or a signer's bundle);
/// cheap to clone and read.
#[derive(Clone, Default)]
pub struct BundleStatus {
    problems: Arc<RwLock<BTreeMap<String, String>>>,
    observer: Option<StatusObserver>,
}

impl std::fmt::Debug for BundleStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleStatus")
            .field("detail", &self.detail())
            .finish_non_exhaustive()
    }
}

impl BundleStatus {
    /// A status that also tells `observer` (a readiness line) about every change.
    pub fn with_observer(observer: StatusObserver) -> Self {
        BundleStatus {
            problems: Arc::default(),
            observer: Some(observer),
        }
    }

    /// The problems now, joined; `None` when every bundle is published.
    pub fn detail(&self) -> Option<String> {
        let problems = self
            .problems
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (!problems.is_empty()).then(|| problems.values().cloned().collect::<Vec<_>>().join("; "))
    }

    /// Forgets every problem (the publisher stopped: a standby has nothing to say).
    pub(crate) fn clear(&self) {
        self.problems
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        self.notify();
    }

    pub(crate) fn set(&self, topic: &str, problem: Option<String>) {
        {
            let mut problems = self
                .problems
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match problem {
                Some(p) => {
                    problems.insert(topic.to_owned(), p);
                }
                None => {
                    problems.remove(topic);
                }
            }
        }
        self.notify();
    }

    fn notify(&self) {
        if let Some(observer) = &self.observer {
            observer(self.detail());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: &str, ca: bool) -> Vec<u8> {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        if ca {
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        p.self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .der()
            .to_vec()
    }

    #[test]
    fn the_bundle_name_is_the_signer_with_colons_and_root() {
        assert_eq!(
            bundle_name("firefly.venafi.com/istio-mtls"),
            "firefly.venafi.com:istio-mtls:root"
        );
    }

    #[test]
    fn the_pem_holds_each_anchor_once_in_order_without_headers() {
        let (a, b) = (cert("A", true), cert("B", true));
        let pem = trust_bundle_pem(&[a.clone(), b.clone(), a.clone()]).unwrap();
        let blocks = pem::parse_many(&pem).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].contents(), a.as_slice());
        assert_eq!(blocks[1].contents(), b.as_slice());
        assert!(blocks.iter().all(|b| b.tag() == "CERTIFICATE"));
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n") && pem.ends_with("-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
    }

    #[test]
    fn a_set_the_api_server_would_refuse_is_not_published() {
        assert_eq!(trust_bundle_pem(&[]), Err(BundleError::Empty));
        let leaf = trust_bundle_pem(&[cert("A", true), cert("Leaf", false)]).unwrap_err();
        assert_eq!(
            leaf.to_string(),
            "trust anchor 1 (CN=Leaf) is not a CA certificate"
        );
        assert!(matches!(
            trust_bundle_pem(&[b"junk".to_vec()]),
            Err(BundleError::NotX509 { index: 0, .. })
        ));
        // Distinct anchors (a CN of 2,000 bytes, in subject and issuer, makes each block about
        // 5.8 KiB) up to and past the API server's 1 MiB.
        let big = |i: usize| cert(&format!("{i:04}{}", "x".repeat(2_000)), true);
        let fits: Vec<Vec<u8>> = (0..150).map(big).collect();
        let fit = trust_bundle_pem(&fits);
        assert!(fit.is_ok(), "{:?}", fit.err());
        let over: Vec<Vec<u8>> = (0..200).map(big).collect();
        match trust_bundle_pem(&over) {
            Err(BundleError::TooLarge { size }) => assert!(size > MAX_TRUST_BUNDLE, "{size}"),
            other => panic!("not refused as too large: {other:?}"),
        }
    }

    #[test]
    fn only_a_difference_in_what_we_own_needs_a_write() {
        let signer = "firefly.venafi.com/a";
        let same = Observed {
            signer_name: signer.into(),
            trust_bundle: "PEM".into(),
            label: Some(LABEL_VALUE.into()),
        };
        assert!(!needs_write(signer, "PEM", Some(&same)));
        assert!(needs_write(signer, "PEM", None));
        assert!(needs_write(signer, "OTHER", Some(&same)));
        let unlabelled = Observed {
            label: None,
            ..same.clone()
        };
        assert!(needs_write(signer, "PEM", Some(&unlabelled)));
    }

    #[test]
    fn the_status_joins_problems_and_clears_them() {
        let told = Arc::new(RwLock::new(Vec::new()));
        let sink = told.clone();
        let status = BundleStatus::with_observer(Arc::new(move |d| sink.write().unwrap().push(d)));
        assert_eq!(status.detail(), None);
        status.set("b", Some("two".into()));
        status.set("a", Some("one".into()));
        assert_eq!(status.detail().as_deref(), Some("one; two"));
        status.set("a", None);
        status.set("b", None);
        assert_eq!(status.detail(), None);
        assert_eq!(
            told.read().unwrap().last(),
            Some(&None),
            "the observer hears the last change"
        );
        assert_eq!(told.read().unwrap()[1].as_deref(), Some("one; two"));
    }
}
