//! The active sub-CA: its certificate checked against C5, C8, C10–C13, C23 and C25, its chain
//! verified, its rcgen `Issuer` built once; performs no I/O.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{Issuer, PublicKeyData, SignatureAlgorithm, SigningKey};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::spiffe::SpiffeId;

/// Why a sub-CA (or its chain) cannot be used to sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// A certificate does not parse.
    #[error("{which} certificate does not parse: {reason}")]
    Parse {
        /// `sub-CA` or `issuer chain [i]`.
        which: String,
        /// The parser's message.
        reason: String,
    },
    /// C5: basicConstraints CA:true is missing.
    #[error("{which} certificate is not a CA (basicConstraints CA:true missing) (C5)")]
    NotCa {
        /// Which certificate.
        which: String,
    },
    /// C5: the sub-CA's pathLen is not 0.
    #[error("sub-CA pathLenConstraint is {found}; it must be 0 (C5)")]
    PathLen {
        /// The value found (`absent` when missing).
        found: String,
    },
    /// C6/C8: keyUsage missing, not critical, or without keyCertSign.
    #[error("sub-CA keyUsage is unusable: {detail} (C6, C8)")]
    KeyUsage {
        /// What is wrong.
        detail: String,
    },
    /// C10: an EKU other than none or exactly serverAuth+clientAuth.
    #[error(
        "sub-CA extendedKeyUsage must be absent or exactly serverAuth+clientAuth (C10): {detail}"
    )]
    ExtendedKeyUsage {
        /// What was found.
        detail: String,
    },
    /// C11–C12: a URI SAN that is not a bare trust-domain SPIFFE ID.
    #[error("sub-CA URI SAN {uri:?} is not a trust-domain SPIFFE ID without path (C11, C12)")]
    UriSan {
        /// The URI.
        uri: String,
    },
    /// C13: URI name constraints.
    #[error("sub-CA carries URI name constraints, which rustls-webpki (ztunnel) rejects (C13)")]
    UriNameConstraints,
    /// C23: no subjectKeyIdentifier to put in the leaves' AKI.
    #[error(
        "sub-CA has no subjectKeyIdentifier; leaves could not carry a matching authorityKeyIdentifier (C23)"
    )]
    NoSubjectKeyIdentifier,
    /// The certificate's key is not the key we hold.
    #[error("sub-CA certificate's public key is not our signing key")]
    KeyMismatch,
    /// C25: no issuer chain: a self-signed sub-CA is not accepted.
    #[error("the sub-CA has no issuer chain; it must chain to the enterprise root (C25)")]
    NoIssuerChain,
    /// A link of the chain does not verify.
    #[error("chain link {index} ({subject}) is not signed by the next certificate: {reason}")]
    ChainBroken {
        /// Position (0 = sub-CA).
        index: usize,
        /// The certificate's subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// The last certificate is not a self-signed root.
    #[error("the last certificate of the chain ({subject}) is not a self-signed root")]
    RootNotSelfSigned {
        /// Its subject.
        subject: String,
    },
    /// The sub-CA's validity window is empty or unrepresentable.
    #[error("sub-CA validity is unusable: {detail}")]
    Validity {
        /// What is wrong.
        detail: String,
    },
    /// rcgen refused the issuer.
    #[error("cannot build the issuer: {0}")]
    Issuer(String),
    /// The key's algorithm has no verifier, or its public key does not parse for it.
    #[error("cannot verify signatures of the sub-CA key: {0}")]
    VerifyingKey(String),
}

/// The signing key shared between the bootstrap (which owns it) and the issuer.
#[derive(Clone)]
pub struct SharedKey(pub Arc<dyn SigningKey + Send + Sync>);

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedKey(...)")
    }
}

impl PublicKeyData for SharedKey {
    fn der_bytes(&self) -> &[u8] {
        self.0.der_bytes()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.0.algorithm()
    }
}

impl SigningKey for SharedKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg)
    }
}

/// An active signing authority: sub-CA certificate, key and chain, checked and built once, then
/// reused for every signature.
pub struct SubCa {
    cert_der: Vec<u8>,
    not_before: SystemTime,
    not_after: SystemTime,
    ski: Vec<u8>,
    subject_raw: Vec<u8>,
    issuer: Issuer<'static, SharedKey>,
    /// The sub-CA's public key, parsed once, to verify every leaf's signature (C14).
    verifier: aws_lc_rs::signature::ParsedPublicKey,
    root_pem: String,
    chain_pems: Vec<String>,
    chain_tail_pem: String,
}

impl fmt::Debug for SubCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubCa")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("key", &"...")
            .finish_non_exhaustive()
    }
}

impl SubCa {
    /// Checks the sub-CA and its chain and prepares the issuer.
    ///
    /// `issuer_chain_der`: the sub-CA's issuer upward, the self-signed root last.
    ///
    /// # Errors
    /// Every [`CaError`]: a sub-CA that is not a usable CA (C5, C6, C8, C10–C13, C23), a key that is
    /// not ours, a missing or broken chain (C25).
    pub fn new(
        cert_der: Vec<u8>,
        issuer_chain_der: Vec<Vec<u8>>,
        key: Arc<dyn SigningKey + Send + Sync>,
    ) -> Result<SubCa, CaError> {
        let parse = |which: String, der: &[u8]| -> Result<(), CaError> {
            match X509Certificate::from_der(der) {
                Ok(([], _)) => Ok(()),
                Ok(_) => Err(CaError::Parse {
                    which,
                    reason: "trailing data".to_owned(),
                }),
                Err(e) => Err(CaError::Parse {
                    which,
                    reason: e.to_string(),
                }),
            }
        };
        parse("sub-CA".to_owned(), &cert_der)?;
        for (i, der) in issuer_chain_der.iter().enumerate() {
            parse(format!("issuer chain [{i}]"), der)?;
        }
        // Parsed above; re-parsing keeps the borrow simple and happens once per sub-CA.
        let (_, cert) = X509Certificate::from_der(&cert_der).map_err(|e| CaError::Parse {
            which: "sub-CA".into(),
            reason: e.to_string(),
        })?;
        check_sub_ca_profile(&cert)?;
        let shared = SharedKey(key);
        if cert.tbs_certificate.subject_pki.raw != shared.subject_public_key_info().as_slice() {
            return Err(CaError::KeyMismatch);
        }
        let ski = cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .ok_or(CaError::NoSubjectKeyIdentifier)?;
        let not_before = to_system_time(cert.validity().not_before.timestamp())?;
        let not_after = to_system_time(cert.validity().not_after.timestamp())?;
        if not_after <= not_before {
            return Err(CaError::Validity {
                detail: "NotAfter is not after NotBefore".to_owned(),
            });
        }
        verify_chain(&cert_der, &issuer_chain_der)?;
        let verifier = verifier_for(&shared)?;

        let issuer = Issuer::from_ca_cert_der(&cert_der.as_slice().into(), shared)
            .map_err(|e| CaError::Issuer(e.to_string()))?;
        let subject_raw = cert.tbs_certificate.subject.as_raw().to_vec();
        let pems: Vec<String> = issuer_chain_der
            .iter()
            .map(|d| super::pem_encode(d))
            .collect();
        let root_pem = pems.last().cloned().ok_or(CaError::NoIssuerChain)?;
        let mut chain_tail_pem = super::pem_encode(&cert_der);
        for p in &pems[..pems.len() - 1] {
            chain_tail_pem.push_str(p);
        }
        let chain_pems = pems.into_iter().rev().collect();
        Ok(SubCa {
            cert_der,
            not_before,
            not_after,
            ski,
            subject_raw,
            issuer,
            verifier,
            root_pem,
            chain_pems,
            chain_tail_pem,
        })
    }

    /// The sub-CA's NotBefore.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// The sub-CA's NotAfter.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The sub-CA certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The root, PEM (for `status.ca`).
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// The issuer chain in root … issuer order (for `/chain`).
    pub fn chain_pems(&self) -> Vec<String> {
        self.chain_pems.clone()
    }

    /// Sub-CA and intermediates, PEM, appended to every leaf.
    pub(crate) fn chain_tail_pem(&self) -> &str {
        &self.chain_tail_pem
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, SharedKey> {
        &self.issuer
    }

    /// Verifies a signature made by the sub-CA key over `message` (a leaf's TBSCertificate).
    pub(crate) fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verifier.verify_sig(message, signature).is_ok()
    }

    pub(crate) fn subject_key_identifier(&self) -> &[u8] {
        &self.ski
    }

    pub(crate) fn subject_raw(&self) -> &[u8] {
        &self.subject_raw
    }
}

/// The verifier for signatures of `key`, with the algorithm rcgen signs leaves with.
fn verifier_for(key: &SharedKey) -> Result<aws_lc_rs::signature::ParsedPublicKey, CaError> {
    use aws_lc_rs::signature as sig;
    let alg = key.algorithm();
    let verification: &'static dyn sig::VerificationAlgorithm =
        if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
            &sig::ECDSA_P256_SHA256_ASN1
        } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
            &sig::ECDSA_P384_SHA384_ASN1
        } else if alg == &rcgen::PKCS_ED25519 {
            &sig::ED25519
        } else if alg == &rcgen::PKCS_RSA_SHA256 {
            &sig::RSA_PKCS1_2048_8192_SHA256
        } else {
            return Err(CaError::VerifyingKey(format!(
                "no verifier for signature algorithm {alg:?}"
            )));
        };
    sig::ParsedPublicKey::new(verification, key.der_bytes())
        .map_err(|_| CaError::VerifyingKey("the public key does not parse".to_owned()))
}

fn to_system_time(unix: i64) -> Result<SystemTime, CaError> {
    let secs = u64::try_from(unix).map_err(|_| CaError::Validity {
        detail: format!("time {unix} is before 1970"),
    })?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Whether an extendedKeyUsage is exactly serverAuth + clientAuth, the only EKU a mesh sub-CA
/// may carry (C10).
pub(crate) fn is_exactly_mesh_eku(e: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> bool {
    e.server_auth
        && e.client_auth
        && !e.any
        && !e.code_signing
        && !e.email_protection
        && !e.time_stamping
        && !e.ocsp_signing
        && e.other.is_empty()
}

pub fn check_sub_ca_profile(cert: &X509Certificate<'_>) -> Result<(), CaError> {
    let mut bc = None;
    let mut ku = None;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(b) => bc = Some(b),
            ParsedExtension::KeyUsage(k) => ku = Some((k, ext.critical)),
            ParsedExtension::ExtendedKeyUsage(e) if !is_exactly_mesh_eku(e) => {
                return Err(CaError::ExtendedKeyUsage {
                    detail: format!("{e:?}"),
                });
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    if let GeneralName::URI(uri) = name {
                        let ok = uri
                            .parse::<SpiffeId>()
                            .map(|id| !id.is_workload())
                            .unwrap_or(false);
                        if !ok {
                            return Err(CaError::UriSan {
                                uri: (*uri).to_owned(),
                            });
                        }
                    }
                }
            }
            ParsedExtension::NameConstraints(nc) => {
                let has_uri = |trees: &Option<Vec<x509_parser::extensions::GeneralSubtree<'_>>>| {
                    trees
                        .iter()
                        .flatten()
                        .any(|t| matches!(t.base, GeneralName::URI(_)))
                };
                if has_uri(&nc.permitted_subtrees) || has_uri(&nc.excluded_subtrees) {
                    return Err(CaError::UriNameConstraints);
                }
            }
            // A profile extension that does not parse is not silently skipped.
            ParsedExtension::ParseError { error } => {
                return Err(CaError::Parse {
                    which: format!("sub-CA extension {}", ext.oid),
                    reason: error.to_string(),
                });
            }
            _ => {}
        }
    }
    match bc {
        Some(b) if b.ca => {
            if b.path_len_constraint != Some(0) {
                return Err(CaError::PathLen {
                    found: b
                        .path_len_constraint
                        .map_or("absent".to_owned(), |p| p.to_string()),
                });
            }
        }
        _ => {
            return Err(CaError::NotCa {
                which: "sub-CA".to_owned(),
            });
        }
    }
    match ku {
        None => {
            return Err(CaError::KeyUsage {
                detail: "keyUsage is missing".to_owned(),
            });
        }
        Some((_, false)) => {
            return Err(CaError::KeyUsage {
                detail: "keyUsage is not critical".to_owned(),
            });
        }
        Some((k, true)) if !k.key_cert_sign() => {
            return Err(CaError::KeyUsage {
                detail: "keyCertSign is missing".to_owned(),
            });
        }
        Some(_) => {}
    }
    Ok(())
}

fn verify_chain(sub_ca: &[u8], chain: &[Vec<u8>]) -> Result<(), CaError> {
    if chain.is_empty() {
        return Err(CaError::NoIssuerChain);
    }
    let all: Vec<&[u8]> = std::iter::once(sub_ca)
        .chain(chain.iter().map(Vec::as_slice))
        .collect();
    let parsed: Vec<X509Certificate<'_>> = all
        .iter()
        .enumerate()
        .map(|(i, d)| {
            X509Certificate::from_der(d)
                .map(|(_, c)| c)
                .map_err(|e| CaError::Parse {
                    which: format!("chain [{i}]"),
                    reason: e.to_string(),
                })
        })
        .collect::<Result<_, _>>()?;
    for i in 0..parsed.len() {
        let cert = &parsed[i];
        let is_last = i + 1 == parsed.len();
        let signer = if is_last { cert } else { &parsed[i + 1] };
        if i > 0 && !cert.is_ca() {
            return Err(CaError::NotCa {
                which: format!("issuer chain [{}] ({})", i - 1, cert.subject()),
            });
        }
        // The last certificate must sign itself; any other, be signed by the next one.
        let broken = |reason: String| {
            if is_last {
                CaError::RootNotSelfSigned {
                    subject: cert.subject().to_string(),
                }
            } else {
                CaError::ChainBroken {
                    index: i,
                    subject: cert.subject().to_string(),
                    reason,
                }
            }
        };
        if cert.issuer().as_raw() != signer.subject().as_raw() {
            return Err(broken(format!(
                "its issuer is {}, the next certificate is {}",
                cert.issuer(),
                signer.subject()
            )));
        }
        if let Err(e) = cert.verify_signature(Some(signer.public_key())) {
            return Err(broken(e.to_string()));
        }
    }
    Ok(())
}
