//! Decodes and verifies certificate requests (PKCS#10) strictly: size cap, one PEM block, strict DER,
//! allowed keys and signature algorithms, only SAN/KU/EKU/BC extensions; performs no I/O.
//!
//! The result, [`CertificateRequest`], is what the rest of the core may look at; it carries no
//! unverified data: the signature has been checked against the request's own key before it exists.

pub mod der;
pub mod pem;

use std::borrow::Cow;
use std::net::IpAddr;

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, VerificationAlgorithm};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::policy::model::KeyAlgorithm;
use crate::policy::usage::{ExtendedKeyUsage, KeyUsage};

/// Requests larger than this are refused before any decoding (x509-svid §4). A 4096-bit RSA CSR
/// with a few SANs is under 2 KiB.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// No request structure nests deeper than this (CSR → info → attributes → attribute → set →
/// extensions → extension → value is 8); anything deeper is hostile.
pub const MAX_DER_DEPTH: usize = 12;

/// Why a request was refused. Every variant is a terminal, request-side error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// Nothing was sent.
    #[error("the certificate request is empty")]
    Empty,
    /// Bigger than [`MAX_REQUEST_BYTES`].
    #[error("the certificate request is {len} bytes; at most {max} are accepted")]
    TooLarge {
        /// Size in bytes.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// Not a PEM document.
    #[error("the certificate request is not PEM: {reason}")]
    NotPem {
        /// What is missing or wrong.
        reason: &'static str,
    },
    /// A private key was sent (never echoed back).
    #[error(
        "the request contains a PRIVATE KEY block; send only the certificate request and treat that key as exposed"
    )]
    PrivateKey,
    /// A PEM block with another label.
    #[error("PEM label is {label:?}; expected \"CERTIFICATE REQUEST\"")]
    WrongPemLabel {
        /// The label found.
        label: String,
    },
    /// More than one PEM block.
    #[error("the request has {count} PEM blocks; exactly one CERTIFICATE REQUEST is accepted")]
    MultiplePemBlocks {
        /// How many BEGIN lines.
        count: usize,
    },
    /// Text before or after the PEM block.
    #[error(
        "the request has data {position} the PEM block; send exactly one CERTIFICATE REQUEST block"
    )]
    TextOutsidePem {
        /// `before` or `after`.
        position: &'static str,
    },
    /// The PEM body is not valid base64.
    #[error("the PEM body is not valid base64: {reason}")]
    Base64 {
        /// The decoder's message.
        reason: String,
    },
    /// Not strict DER (BER, truncated, non-minimal, too deep, trailing bytes).
    #[error("the request is not strict DER: {violation}")]
    Der {
        /// What is wrong, with a byte offset.
        violation: String,
    },
    /// DER that is not a PKCS#10 CertificationRequest.
    #[error("the request is not a PKCS#10 certification request: {reason}")]
    Malformed {
        /// The parser's message.
        reason: String,
    },
    /// Version other than v1 (0).
    #[error("certification request version is {version}; only version 0 (v1) exists")]
    Version {
        /// The value found.
        version: u32,
    },
    /// The same attribute twice (or an extensionRequest with several values).
    #[error("attribute {oid} appears more than once")]
    DuplicateAttribute {
        /// Attribute OID.
        oid: String,
    },
    /// challengePassword or any attribute other than extensionRequest.
    #[error("attribute {name} ({oid}) is not accepted; only extensionRequest is")]
    UnsupportedAttribute {
        /// Attribute OID.
        oid: String,
        /// A readable name.
        name: &'static str,
    },
    /// The same extension twice.
    #[error("extension {oid} is requested more than once")]
    DuplicateExtension {
        /// Extension OID.
        oid: String,
    },
    /// An extension whose value does not parse.
    #[error("extension {oid} does not parse: {reason}")]
    ExtensionUnparsable {
        /// Extension OID.
        oid: String,
        /// The parser's message.
        reason: String,
    },
    /// Anything but SAN, KU, EKU, BC.
    #[error(
        "extension {oid} is not accepted; requests may carry only subjectAltName, keyUsage, extendedKeyUsage and basicConstraints"
    )]
    UnsupportedExtension {
        /// Extension OID.
        oid: String,
    },
    /// MD5, SHA-1, DSA.
    #[error("signature algorithm {algorithm} is too weak; use SHA-256 or stronger")]
    WeakSignatureAlgorithm {
        /// The algorithm's name.
        algorithm: &'static str,
    },
    /// Not one we verify.
    #[error(
        "signature algorithm {oid} is not supported (RSA PKCS#1 v1.5 with SHA-256/384/512, ECDSA with SHA-256/384, Ed25519)"
    )]
    UnsupportedSignatureAlgorithm {
        /// The OID.
        oid: String,
    },
    /// The signature algorithm does not fit the key (RSA signature with an EC key, ...).
    #[error("signature algorithm {signature} does not match the {key} public key")]
    AlgorithmKeyMismatch {
        /// The signature algorithm.
        signature: String,
        /// The key type.
        key: &'static str,
    },
    /// The signature does not verify with the request's own key.
    #[error(
        "the request's signature does not verify with its public key (the request was altered or signed with another key)"
    )]
    BadSignature,
    /// DSA, GOST, unknown keys.
    #[error("public key type {oid} is not accepted (RSA 2048/3072/4096, EC P-256/P-384, Ed25519)")]
    UnsupportedKeyType {
        /// The key algorithm OID.
        oid: String,
    },
    /// RSA below 2048 or an odd size.
    #[error("RSA key is {bits} bits; accepted sizes are 2048, 3072 and 4096")]
    RsaKeySize {
        /// The modulus size.
        bits: usize,
    },
    /// RSA public exponent other than 65537.
    #[error("RSA public exponent is {exponent}; only 65537 is accepted")]
    RsaExponent {
        /// The exponent (hex when too large for u64).
        exponent: String,
    },
    /// secp256k1, P-224, brainpool, P-521, ...
    #[error("elliptic curve {curve} is not accepted (P-256, P-384)")]
    UnsupportedCurve {
        /// Curve name or OID.
        curve: String,
    },
    /// A key that does not decode (an EC point not on the curve, a bad RSA encoding).
    #[error("the {key} public key is invalid: {reason}")]
    InvalidPublicKey {
        /// The key type.
        key: &'static str,
        /// What the crypto library rejected.
        reason: String,
    },
    /// basicConstraints CA:true.
    #[error(
        "the request asks for a CA certificate (basicConstraints CA:true); only leaf certificates are issued"
    )]
    CaRequested,
    /// keyCertSign or cRLSign.
    #[error("the request asks for key usage {usage}, which only CAs may have")]
    ForbiddenKeyUsage {
        /// The usage name.
        usage: &'static str,
    },
    /// anyExtendedKeyUsage, codeSigning, OCSPSigning, timeStamping.
    #[error(
        "the request asks for extended key usage {usage}, which workload certificates never get"
    )]
    ForbiddenExtendedKeyUsage {
        /// The usage name or OID.
        usage: String,
    },
    /// otherName, directoryName, x400, ediParty, registeredID, or an undecodable name.
    #[error("subjectAltName of type {kind} is not accepted (DNS, IP, email and URI are)")]
    UnsupportedSanType {
        /// The GeneralName type.
        kind: &'static str,
    },
    /// A SAN value that is not valid for its type.
    #[error("subjectAltName {kind} {value:?} is invalid: {reason}")]
    InvalidSan {
        /// DNS, IP, email or URI.
        kind: &'static str,
        /// The value (truncated).
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A subject attribute other than CN, O, OU, L, ST, C.
    #[error("subject attribute {oid} is not accepted (CN, O, OU, L, ST and C are)")]
    UnsupportedSubjectAttribute {
        /// The attribute OID.
        oid: String,
    },
    /// A subject attribute whose value is not a string.
    #[error("subject attribute {attribute} is not a valid string")]
    InvalidSubjectValue {
        /// The attribute name.
        attribute: &'static str,
    },
}

impl CsrError {
    /// True when the bytes are not a request at all (not PEM, not DER, truncated, oversized), as
    /// opposed to a well-formed request that breaks a rule (weak key, bad signature, forbidden
    /// extension).
    pub fn is_unparseable(&self) -> bool {
        matches!(
            self,
            CsrError::Empty
                | CsrError::TooLarge { .. }
                | CsrError::NotPem { .. }
                | CsrError::PrivateKey
                | CsrError::WrongPemLabel { .. }
                | CsrError::MultiplePemBlocks { .. }
                | CsrError::TextOutsidePem { .. }
                | CsrError::Base64 { .. }
                | CsrError::Der { .. }
                | CsrError::Malformed { .. }
        )
    }
}

/// A request that decoded and verified: the only things the issuer may look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRequest {
    /// The key type and size, in TLSPC's names.
    pub key_algorithm: KeyAlgorithm,
    /// The SubjectPublicKeyInfo, DER: the only thing copied into the certificate.
    pub public_key_der: Vec<u8>,
    /// The subjectPublicKey BIT STRING contents (the key without its algorithm identifier).
    pub public_key_bits: Vec<u8>,
    /// Subject attributes; empty strings (istio's `O=`) are dropped.
    pub subject: RequestedSubject,
    /// Subject alternative names, in request order.
    pub sans: RequestedSans,
    /// True when the SAN extension was marked critical.
    pub san_critical: bool,
    /// keyUsage bits requested, if the extension was present.
    pub key_usages: Vec<KeyUsage>,
    /// extendedKeyUsages requested, if the extension was present.
    pub extended_key_usages: Vec<ExtendedKeyUsage>,
}

/// Subject attributes of a request, by type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestedSubject {
    /// CN values.
    pub common_name: Vec<String>,
    /// O values.
    pub organization: Vec<String>,
    /// OU values.
    pub organizational_unit: Vec<String>,
    /// L values.
    pub locality: Vec<String>,
    /// ST values.
    pub state_or_province: Vec<String>,
    /// C values.
    pub country: Vec<String>,
}

impl RequestedSubject {
    /// True when no attribute has a value.
    pub fn is_empty(&self) -> bool {
        self.common_name.is_empty()
            && self.organization.is_empty()
            && self.organizational_unit.is_empty()
            && self.locality.is_empty()
            && self.state_or_province.is_empty()
            && self.country.is_empty()
    }
}

/// Subject alternative names of a request, by type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestedSans {
    /// dNSName values.
    pub dns_names: Vec<String>,
    /// iPAddress values.
    pub ip_addresses: Vec<IpAddr>,
    /// rfc822Name values.
    pub rfc822_names: Vec<String>,
    /// uniformResourceIdentifier values (checked as SPIFFE IDs later, by the issuer).
    pub uris: Vec<String>,
}

/// Decodes a PEM request, checks its structure and verifies its signature.
///
/// # Errors
/// Every item of x509-svid.md §4 "Requests" that concerns the request's encoding, key, signature
/// and extensions, each as its own [`CsrError`] variant.
pub fn decode_pem(input: &[u8]) -> Result<CertificateRequest, CsrError> {
    if input.len() > MAX_REQUEST_BYTES {
        return Err(CsrError::TooLarge {
            len: input.len(),
            max: MAX_REQUEST_BYTES,
        });
    }
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(CsrError::Empty);
    }
    let der = pem::decode_single_block(input)?;
    decode_der(&der)
}

/// Decodes a DER request (see [`decode_pem`]).
///
/// # Errors
/// As [`decode_pem`], minus the PEM items.
pub fn decode_der(der_bytes: &[u8]) -> Result<CertificateRequest, CsrError> {
    if der_bytes.is_empty() {
        return Err(CsrError::Empty);
    }
    if der_bytes.len() > MAX_REQUEST_BYTES {
        return Err(CsrError::TooLarge {
            len: der_bytes.len(),
            max: MAX_REQUEST_BYTES,
        });
    }
    der::check_strict(der_bytes, MAX_DER_DEPTH).map_err(|v| CsrError::Der {
        violation: v.to_string(),
    })?;
    let (rest, csr) =
        X509CertificationRequest::from_der(der_bytes).map_err(|e| CsrError::Malformed {
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(CsrError::Der {
            violation: format!("{} bytes of trailing data", rest.len()),
        });
    }
    let info = &csr.certification_request_info;
    if info.version.0 != 0 {
        return Err(CsrError::Version {
            version: info.version.0,
        });
    }
    check_attribute_list(info.raw)?;

    let key = check_public_key(&info.subject_pki)?;
    let verifier = signature_verifier(&csr, &key)?;
    let parsed =
        ParsedPublicKey::new(verifier, key.key_bytes).map_err(|e| CsrError::InvalidPublicKey {
            key: key.kind,
            reason: e.to_string(),
        })?;
    parsed
        .verify_sig(info.raw, &csr.signature_value.data)
        .map_err(|_| CsrError::BadSignature)?;

    let subject = decode_subject(&info.subject)?;
    let mut out = CertificateRequest {
        key_algorithm: key.algorithm,
        public_key_der: info.subject_pki.raw.to_vec(),
        public_key_bits: key.key_bytes.to_vec(),
        subject,
        sans: RequestedSans::default(),
        san_critical: false,
        key_usages: Vec::new(),
        extended_key_usages: Vec::new(),
    };
    for attribute in info.iter_attributes() {
        match attribute.parsed_attribute() {
            ParsedCriAttribute::ExtensionRequest(request) => {
                let mut seen: Vec<Cow<'static, str>> = Vec::new();
                for ext in &request.extensions {
                    let oid = oid_str(&ext.oid);
                    if seen.contains(&oid) {
                        return Err(CsrError::DuplicateExtension {
                            oid: oid.into_owned(),
                        });
                    }
                    seen.push(oid.clone());
                    apply_extension(
                        &mut out,
                        &oid,
                        ext.critical,
                        ext.value,
                        ext.parsed_extension(),
                    )?;
                }
            }
            // check_attribute_list refused every other attribute.
            _ => {
                return Err(CsrError::UnsupportedAttribute {
                    oid: attribute.oid.to_id_string(),
                    name: "unknown",
                });
            }
        }
    }
    Ok(out)
}

/// The dotted form of an OID. The OIDs every request carries are looked up by their encoding,
/// because formatting an OID costs more than the lookup and this runs for every request.
pub(crate) fn oid_str(oid: &x509_parser::der_parser::oid::Oid<'_>) -> Cow<'static, str> {
    const KNOWN: &[(&[u8], &str)] = &[
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e],
            "1.2.840.113549.1.9.14",
        ),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x07],
            "1.2.840.113549.1.9.7",
        ),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
            "1.2.840.113549.1.1.1",
        ),
        (
            &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01],
            "1.2.840.10045.2.1",
        ),
        (&[0x2b, 0x65, 0x70], "1.3.101.112"),
        (
            &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            "1.2.840.10045.3.1.7",
        ),
        (&[0x2b, 0x81, 0x04, 0x00, 0x22], "1.3.132.0.34"),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b],
            "1.2.840.113549.1.1.11",
        ),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c],
            "1.2.840.113549.1.1.12",
        ),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d],
            "1.2.840.113549.1.1.13",
        ),
        (
            &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02],
            "1.2.840.10045.4.3.2",
        ),
        (
            &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
            "1.2.840.10045.4.3.3",
        ),
        (&[0x55, 0x04, 0x03], "2.5.4.3"),
        (&[0x55, 0x04, 0x0a], "2.5.4.10"),
        (&[0x55, 0x04, 0x0b], "2.5.4.11"),
        (&[0x55, 0x04, 0x07], "2.5.4.7"),
        (&[0x55, 0x04, 0x08], "2.5.4.8"),
        (&[0x55, 0x04, 0x06], "2.5.4.6"),
        (&[0x55, 0x1d, 0x11], "2.5.29.17"),
        (&[0x55, 0x1d, 0x0f], "2.5.29.15"),
        (&[0x55, 0x1d, 0x25], "2.5.29.37"),
        (&[0x55, 0x1d, 0x13], "2.5.29.19"),
        (&[0x55, 0x1d, 0x0e], "2.5.29.14"),
        (&[0x55, 0x1d, 0x23], "2.5.29.35"),
    ];
    let bytes = oid.as_bytes();
    match KNOWN.iter().find(|(encoded, _)| *encoded == bytes) {
        Some((_, dotted)) => Cow::Borrowed(dotted),
        None => Cow::Owned(oid.to_id_string()),
    }
}

const OID_EXTENSION_REQUEST: &str = "1.2.840.113549.1.9.14";
const OID_CHALLENGE_PASSWORD: &str = "1.2.840.113549.1.9.7";

/// Walks the attributes ourselves: x509-parser reads only the first value of an attribute's SET and
/// keeps duplicates, and both hide a second extensionRequest.
fn check_attribute_list(info_raw: &[u8]) -> Result<(), CsrError> {
    let der_err = |v: der::DerViolation| CsrError::Der {
        violation: v.to_string(),
    };
    let (info, _) = der::read_tlv(info_raw, 0).map_err(der_err)?;
    let fields = der::children(info.content, 0).map_err(der_err)?;
    let Some(attributes) = fields.iter().find(|t| t.tag == 0xa0) else {
        return Err(CsrError::Malformed {
            reason: "the attributes field [0] is missing".to_owned(),
        });
    };
    let mut seen: Vec<Cow<'static, str>> = Vec::new();
    for attribute in der::children(attributes.content, 0).map_err(der_err)? {
        let parts = der::children(attribute.content, 0).map_err(der_err)?;
        let [oid_tlv, values] = parts.as_slice() else {
            return Err(CsrError::Malformed {
                reason: "an attribute is not SEQUENCE { type, values }".to_owned(),
            });
        };
        if oid_tlv.tag != 0x06 || values.tag != 0x31 {
            return Err(CsrError::Malformed {
                reason: "an attribute is not SEQUENCE { OID, SET }".to_owned(),
            });
        }
        let oid = oid_str(&x509_parser::der_parser::oid::Oid::new(
            oid_tlv.content.into(),
        ));
        match &*oid {
            OID_EXTENSION_REQUEST => {}
            OID_CHALLENGE_PASSWORD => {
                return Err(CsrError::UnsupportedAttribute {
                    oid: oid.to_string(),
                    name: "challengePassword",
                });
            }
            _ => {
                return Err(CsrError::UnsupportedAttribute {
                    oid: oid.to_string(),
                    name: "unknown attribute",
                });
            }
        }
        let value_count = der::children(values.content, 0).map_err(der_err)?.len();
        if seen.contains(&oid) || value_count != 1 {
            return Err(CsrError::DuplicateAttribute {
                oid: oid.to_string(),
            });
        }
        seen.push(oid);
    }
    Ok(())
}

struct CheckedKey<'a> {
    algorithm: KeyAlgorithm,
    kind: &'static str,
    key_bytes: &'a [u8],
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

fn check_public_key<'a>(
    spki: &'a x509_parser::x509::SubjectPublicKeyInfo<'a>,
) -> Result<CheckedKey<'a>, CsrError> {
    let oid = oid_str(&spki.algorithm.algorithm);
    let key_bytes: &'a [u8] = &spki.subject_public_key.data;
    match &*oid {
        OID_RSA => {
            let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
                return Err(CsrError::InvalidPublicKey {
                    key: "RSA",
                    reason: "the RSAPublicKey does not decode".to_owned(),
                });
            };
            let modulus = strip_leading_zeros(rsa.modulus);
            let bits = match modulus.first() {
                Some(top) => modulus.len() * 8 - top.leading_zeros() as usize,
                None => 0,
            };
            let algorithm = match bits {
                2048 => KeyAlgorithm::Rsa2048,
                3072 => KeyAlgorithm::Rsa3072,
                4096 => KeyAlgorithm::Rsa4096,
                _ => return Err(CsrError::RsaKeySize { bits }),
            };
            let exponent = strip_leading_zeros(rsa.exponent);
            if exponent != [0x01, 0x00, 0x01] {
                let text = if exponent.len() <= 8 {
                    exponent
                        .iter()
                        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
                        .to_string()
                } else {
                    format!("0x{}", hex(exponent))
                };
                return Err(CsrError::RsaExponent { exponent: text });
            }
            Ok(CheckedKey {
                algorithm,
                kind: "RSA",
                key_bytes,
            })
        }
        OID_EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| oid_str(&o))
                .ok_or(CsrError::InvalidPublicKey {
                    key: "EC",
                    reason: "the curve parameter is missing".to_owned(),
                })?;
            let algorithm = match &*curve {
                OID_P256 => KeyAlgorithm::EcP256,
                OID_P384 => KeyAlgorithm::EcP384,
                other => {
                    return Err(CsrError::UnsupportedCurve {
                        curve: curve_name(other),
                    });
                }
            };
            Ok(CheckedKey {
                algorithm,
                kind: "EC",
                key_bytes,
            })
        }
        OID_ED25519 => {
            if spki.algorithm.parameters.is_some() {
                return Err(CsrError::InvalidPublicKey {
                    key: "Ed25519",
                    reason: "parameters must be absent".to_owned(),
                });
            }
            Ok(CheckedKey {
                algorithm: KeyAlgorithm::EcEd25519,
                kind: "Ed25519",
                key_bytes,
            })
        }
        "1.2.840.10040.4.1" => Err(CsrError::UnsupportedKeyType {
            oid: format!("{oid} (DSA)"),
        }),
        _ => Err(CsrError::UnsupportedKeyType {
            oid: oid.to_string(),
        }),
    }
}

fn curve_name(oid: &str) -> String {
    let name = match oid {
        "1.3.132.0.10" => "secp256k1",
        "1.3.132.0.33" => "P-224 (secp224r1)",
        "1.3.132.0.35" => "P-521 (secp521r1)",
        "1.2.840.10045.3.1.1" => "P-192 (secp192r1)",
        o if o.starts_with("1.3.36.3.3.2.8.1.1.") => "brainpool",
        _ => return oid.to_owned(),
    };
    format!("{name} ({oid})")
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[start..]
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn signature_verifier(
    csr: &X509CertificationRequest<'_>,
    key: &CheckedKey<'_>,
) -> Result<&'static dyn VerificationAlgorithm, CsrError> {
    let alg = &csr.signature_algorithm;
    let oid = oid_str(&alg.algorithm);
    let params_absent = alg.parameters.is_none();
    let params_null_or_absent = params_absent
        || alg
            .parameters
            .as_ref()
            .is_some_and(|p| p.tag() == x509_parser::der_parser::asn1_rs::Tag::Null);
    let mismatch = |name: &str| CsrError::AlgorithmKeyMismatch {
        signature: name.to_owned(),
        key: key.kind,
    };
    let bad_params = |name: &str| CsrError::Malformed {
        reason: format!("{name} signature algorithm has unexpected parameters"),
    };
    match &*oid {
        "1.2.840.113549.1.1.2" => Err(CsrError::WeakSignatureAlgorithm {
            algorithm: "md2WithRSAEncryption",
        }),
        "1.2.840.113549.1.1.4" => Err(CsrError::WeakSignatureAlgorithm {
            algorithm: "md5WithRSAEncryption",
        }),
        "1.2.840.113549.1.1.5" | "1.3.14.3.2.29" => Err(CsrError::WeakSignatureAlgorithm {
            algorithm: "sha1WithRSAEncryption",
        }),
        "1.2.840.10045.4.1" => Err(CsrError::WeakSignatureAlgorithm {
            algorithm: "ecdsa-with-SHA1",
        }),
        "1.2.840.10040.4.3" => Err(CsrError::WeakSignatureAlgorithm {
            algorithm: "dsa-with-SHA1",
        }),
        "2.16.840.1.101.3.4.3.2" | "2.16.840.1.101.3.4.3.1" => {
            Err(CsrError::WeakSignatureAlgorithm { algorithm: "DSA" })
        }
        rsa @ ("1.2.840.113549.1.1.11" | "1.2.840.113549.1.1.12" | "1.2.840.113549.1.1.13") => {
            let name = match rsa {
                "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
                "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
                _ => "sha512WithRSAEncryption",
            };
            if key.kind != "RSA" {
                return Err(mismatch(name));
            }
            if !params_null_or_absent {
                return Err(bad_params(name));
            }
            Ok(match rsa {
                "1.2.840.113549.1.1.11" => &sig::RSA_PKCS1_2048_8192_SHA256,
                "1.2.840.113549.1.1.12" => &sig::RSA_PKCS1_2048_8192_SHA384,
                _ => &sig::RSA_PKCS1_2048_8192_SHA512,
            })
        }
        ec @ ("1.2.840.10045.4.3.2" | "1.2.840.10045.4.3.3") => {
            let name = if ec.ends_with(".2") {
                "ecdsa-with-SHA256"
            } else {
                "ecdsa-with-SHA384"
            };
            if key.kind != "EC" {
                return Err(mismatch(name));
            }
            if !params_absent {
                return Err(bad_params(name));
            }
            Ok(match (key.algorithm, ec.ends_with(".2")) {
                (KeyAlgorithm::EcP256, true) => &sig::ECDSA_P256_SHA256_ASN1,
                (KeyAlgorithm::EcP256, false) => &sig::ECDSA_P256_SHA384_ASN1,
                (_, true) => &sig::ECDSA_P384_SHA256_ASN1,
                (_, false) => &sig::ECDSA_P384_SHA384_ASN1,
            })
        }
        OID_ED25519 => {
            if key.kind != "Ed25519" {
                return Err(mismatch("Ed25519"));
            }
            if !params_absent {
                return Err(bad_params("Ed25519"));
            }
            Ok(&sig::ED25519)
        }
        _ => Err(CsrError::UnsupportedSignatureAlgorithm {
            oid: oid.to_string(),
        }),
    }
}

fn decode_subject(name: &x509_parser::x509::X509Name<'_>) -> Result<RequestedSubject, CsrError> {
    let mut subject = RequestedSubject::default();
    for attr in name.iter_attributes() {
        let oid = oid_str(attr.attr_type());
        let (label, slot) = match &*oid {
            "2.5.4.3" => ("CN", &mut subject.common_name),
            "2.5.4.10" => ("O", &mut subject.organization),
            "2.5.4.11" => ("OU", &mut subject.organizational_unit),
            "2.5.4.7" => ("L", &mut subject.locality),
            "2.5.4.8" => ("ST", &mut subject.state_or_province),
            "2.5.4.6" => ("C", &mut subject.country),
            _ => {
                return Err(CsrError::UnsupportedSubjectAttribute {
                    oid: oid.to_string(),
                });
            }
        };
        let value = attr
            .as_str()
            .map_err(|_| CsrError::InvalidSubjectValue { attribute: label })?;
        if value.chars().any(char::is_control) {
            return Err(CsrError::InvalidSubjectValue { attribute: label });
        }
        // istio-agent sends `O=` (an empty organization): it counts as absent.
        if !value.is_empty() {
            slot.push(value.to_owned());
        }
    }
    Ok(subject)
}

const OID_SAN: &str = "2.5.29.17";
const OID_KU: &str = "2.5.29.15";
const OID_EKU: &str = "2.5.29.37";
const OID_BC: &str = "2.5.29.19";

fn apply_extension(
    out: &mut CertificateRequest,
    oid: &str,
    critical: bool,
    value: &[u8],
    parsed: &ParsedExtension<'_>,
) -> Result<(), CsrError> {
    if ![OID_SAN, OID_KU, OID_EKU, OID_BC].contains(&oid) {
        return Err(CsrError::UnsupportedExtension {
            oid: oid.to_owned(),
        });
    }
    let unparsable = |reason: String| CsrError::ExtensionUnparsable {
        oid: oid.to_owned(),
        reason,
    };
    der::check_strict(value, MAX_DER_DEPTH).map_err(|v| unparsable(v.to_string()))?;
    match parsed {
        ParsedExtension::SubjectAlternativeName(san) => {
            if san.general_names.is_empty() {
                return Err(unparsable("subjectAltName is empty".to_owned()));
            }
            out.san_critical = critical;
            for name in &san.general_names {
                add_san(&mut out.sans, name)?;
            }
        }
        ParsedExtension::KeyUsage(ku) => {
            for usage in KeyUsage::ALL {
                if ku.flags & (1 << usage.bit()) != 0 {
                    if matches!(usage, KeyUsage::KeyCertSign | KeyUsage::CrlSign) {
                        return Err(CsrError::ForbiddenKeyUsage {
                            usage: usage.tlspc_name(),
                        });
                    }
                    out.key_usages.push(usage);
                }
            }
        }
        ParsedExtension::ExtendedKeyUsage(eku) => {
            let forbidden = [
                (eku.any, "anyExtendedKeyUsage"),
                (eku.code_signing, "codeSigning"),
                (eku.ocsp_signing, "OCSPSigning"),
                (eku.time_stamping, "timeStamping"),
            ];
            if let Some((_, name)) = forbidden.iter().find(|(set, _)| *set) {
                return Err(CsrError::ForbiddenExtendedKeyUsage {
                    usage: (*name).to_owned(),
                });
            }
            for (set, usage) in [
                (eku.server_auth, ExtendedKeyUsage::ServerAuth),
                (eku.client_auth, ExtendedKeyUsage::ClientAuth),
                (eku.email_protection, ExtendedKeyUsage::EmailProtection),
            ] {
                if set {
                    out.extended_key_usages.push(usage);
                }
            }
            for other in &eku.other {
                let arcs: Option<Vec<u64>> = other.iter().map(Iterator::collect);
                match arcs.as_deref().and_then(ExtendedKeyUsage::from_oid) {
                    Some(usage) => out.extended_key_usages.push(usage),
                    None => {
                        return Err(CsrError::ForbiddenExtendedKeyUsage {
                            usage: other.to_id_string(),
                        });
                    }
                }
            }
        }
        ParsedExtension::BasicConstraints(bc) => {
            if bc.ca {
                return Err(CsrError::CaRequested);
            }
        }
        ParsedExtension::ParseError { error } => return Err(unparsable(error.to_string())),
        _ => return Err(unparsable("unexpected content".to_owned())),
    }
    Ok(())
}

fn add_san(sans: &mut RequestedSans, name: &GeneralName<'_>) -> Result<(), CsrError> {
    let invalid = |kind: &'static str, value: &str, reason: &'static str| CsrError::InvalidSan {
        kind,
        value: value.chars().take(256).collect(),
        reason,
    };
    match name {
        GeneralName::DNSName(dns) => {
            if dns.is_empty() || !dns.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid("DNS", dns, "not a printable ASCII host name"));
            }
            sans.dns_names.push((*dns).to_owned());
        }
        GeneralName::RFC822Name(email) => {
            if email.is_empty() || !email.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid("email", email, "not a printable ASCII address"));
            }
            sans.rfc822_names.push((*email).to_owned());
        }
        GeneralName::URI(uri) => {
            if uri.is_empty() {
                return Err(invalid("URI", uri, "empty"));
            }
            sans.uris.push((*uri).to_owned());
        }
        GeneralName::IPAddress(bytes) => {
            let ip = match bytes.len() {
                4 => IpAddr::from(
                    <[u8; 4]>::try_from(*bytes).map_err(|_| invalid("IP", "", "bad length"))?,
                ),
                16 => IpAddr::from(
                    <[u8; 16]>::try_from(*bytes).map_err(|_| invalid("IP", "", "bad length"))?,
                ),
                _ => return Err(invalid("IP", &hex(bytes), "not 4 or 16 octets")),
            };
            sans.ip_addresses.push(ip);
        }
        GeneralName::OtherName(..) => {
            return Err(CsrError::UnsupportedSanType { kind: "otherName" });
        }
        GeneralName::X400Address(..) => {
            return Err(CsrError::UnsupportedSanType {
                kind: "x400Address",
            });
        }
        GeneralName::DirectoryName(..) => {
            return Err(CsrError::UnsupportedSanType {
                kind: "directoryName",
            });
        }
        GeneralName::EDIPartyName(..) => {
            return Err(CsrError::UnsupportedSanType {
                kind: "ediPartyName",
            });
        }
        GeneralName::RegisteredID(..) => {
            return Err(CsrError::UnsupportedSanType {
                kind: "registeredID",
            });
        }
        GeneralName::Invalid(..) => {
            return Err(CsrError::UnsupportedSanType {
                kind: "undecodable name",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr_pem(key: &rcgen::KeyPair, uris: &[&str]) -> String {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "");
        params.subject_alt_names = uris
            .iter()
            .map(|u| rcgen::SanType::URI(rcgen::string::Ia5String::try_from(*u).unwrap()))
            .collect();
        params.serialize_request(key).unwrap().pem().unwrap()
    }

    #[test]
    fn istio_shaped_p256_request_decodes() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let req =
            decode_pem(csr_pem(&key, &["spiffe://cluster.local/ns/default/sa/sleep"]).as_bytes())
                .unwrap();
        assert_eq!(req.key_algorithm, KeyAlgorithm::EcP256);
        assert_eq!(
            req.sans.uris,
            vec!["spiffe://cluster.local/ns/default/sa/sleep"]
        );
        assert!(req.subject.is_empty(), "O= counts as absent");
        assert_eq!(
            req.public_key_der,
            rcgen::PublicKeyData::subject_public_key_info(&key)
        );
    }

    #[test]
    fn empty_and_oversized_inputs_are_refused_before_decoding() {
        assert_eq!(decode_pem(b""), Err(CsrError::Empty));
        assert_eq!(decode_pem(b" \n"), Err(CsrError::Empty));
        let big = vec![b'A'; MAX_REQUEST_BYTES + 1];
        assert!(matches!(decode_pem(&big), Err(CsrError::TooLarge { .. })));
    }
}
