//! The request's public key: allowed algorithms and sizes, and the signature algorithm that must
//! match it; performs no I/O.

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, VerificationAlgorithm};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::public_key::PublicKey;

use super::{CsrError, oid_str};
use crate::key::KeyAlgorithm;

pub(super) struct CheckedKey<'a> {
    pub(super) algorithm: KeyAlgorithm,
    pub(super) kind: &'static str,
    pub(super) key_bytes: &'a [u8],
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

pub(super) fn check_public_key<'a>(
    spki: &'a x509_parser::x509::SubjectPublicKeyInfo<'a>,
) -> Result<CheckedKey<'a>, CsrError> {
    let oid = oid_str(&spki.algorithm.algorithm);
    let key_bytes: &'a [u8] = &spki.subject_public_key.data;
    // Every key we accept is whole octets (RFC 3279 §2.3, RFC 5480 §2.2, RFC 8410 §4): a
    // subjectPublicKey declaring unused bits is not the key the leaf would carry (rcgen writes
    // none), so the post-sign key comparison (C19) would fail on every attempt.
    let unused_bits = spki.subject_public_key.unused_bits;
    if unused_bits != 0 && matches!(&*oid, OID_RSA | OID_EC | OID_ED25519) {
        return Err(CsrError::InvalidPublicKey {
            key: key_kind(&oid),
            reason: format!(
                "the subjectPublicKey BIT STRING declares {unused_bits} unused bit(s); a key has none"
            ),
        });
    }
    match &*oid {
        OID_RSA => {
            // RFC 3279 §2.3.1: the rsaEncryption parameters MUST be present and NULL.
            let null_params = spki.algorithm.parameters.as_ref().is_some_and(|p| {
                p.tag() == x509_parser::der_parser::asn1_rs::Tag::Null && p.data.is_empty()
            });
            if !null_params {
                return Err(CsrError::InvalidPublicKey {
                    key: "RSA",
                    reason: "the rsaEncryption AlgorithmIdentifier parameters must be NULL \
                             (RFC 3279 §2.3.1)"
                        .to_owned(),
                });
            }
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
                    format!("0x{}", crate::util::hex_lower(exponent))
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

/// The name, for messages, of an accepted key type (RSA, EC or Ed25519) before its key is checked.
fn key_kind(oid: &str) -> &'static str {
    match oid {
        OID_RSA => "RSA",
        OID_EC => "EC",
        _ => "Ed25519",
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

pub(super) fn signature_verifier(
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

/// The verification algorithm that proves a bare key decodes (a point on its curve, a well-formed
/// RSA modulus) when no signature comes with it.
pub(super) fn key_check_algorithm(algorithm: KeyAlgorithm) -> &'static dyn VerificationAlgorithm {
    match algorithm {
        KeyAlgorithm::EcP256 => &sig::ECDSA_P256_SHA256_ASN1,
        KeyAlgorithm::EcP384 => &sig::ECDSA_P384_SHA384_ASN1,
        KeyAlgorithm::EcEd25519 => &sig::ED25519,
        // check_public_key admits no other curve, so only RSA sizes reach this arm.
        _ => &sig::RSA_PKCS1_2048_8192_SHA256,
    }
}

/// Parses `key` for `verifier`, so that a key that does not decode is refused by name.
pub(super) fn parse_key(
    verifier: &'static dyn VerificationAlgorithm,
    key: &CheckedKey<'_>,
) -> Result<ParsedPublicKey, CsrError> {
    ParsedPublicKey::new(verifier, key.key_bytes).map_err(|e| CsrError::InvalidPublicKey {
        key: key.kind,
        reason: e.to_string(),
    })
}
