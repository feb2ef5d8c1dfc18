//! Decodes and verifies certificate requests (PKCS#10) strictly: size cap, one PEM block, strict DER,
//! allowed keys and signature algorithms, only SAN/KU/EKU/BC extensions; performs no I/O.
//!
//! The result, [`CertificateRequest`], is what the rest of the core may look at; it carries no
//! unverified data: the signature has been checked against the request's own key before it exists.

pub mod der;
mod error;
mod extensions;
mod key;
pub mod pem;
#[cfg(test)]
pub(crate) mod testing;

pub use error::CsrError;

use std::borrow::Cow;
use std::net::IpAddr;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use extensions::{apply_extension, decode_subject};
use key::{check_public_key, key_check_algorithm, parse_key, signature_verifier};

use crate::key::KeyAlgorithm;
use crate::usage::{ExtendedKeyUsage, KeyUsage};

/// Requests larger than this are refused before any decoding (x509-svid §4). A 4096-bit RSA CSR
/// with a few SANs is under 2 KiB.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// No request structure nests deeper than this (CSR → info → attributes → attribute → set →
/// extensions → extension → value is 8); anything deeper is hostile.
pub const MAX_DER_DEPTH: usize = 12;
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
    let csr = parse_version_1(der_bytes)?;
    let info = &csr.certification_request_info;
    check_attribute_list(info.raw)?;

    let key = check_public_key(&info.subject_pki)?;
    let verifier = signature_verifier(&csr, &key)?;
    parse_key(verifier, &key)?
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

/// A request made of a public key and an identity the front door asserts (PodCertificateRequest):
/// no CSR exists, so nothing but the key is taken from the caller, and the SANs are `sans`.
///
/// # Guarantees
/// The key passes the same size cap, strict DER and algorithm/size rules as a CSR's key, and it
/// decodes (a point on its curve, a well-formed modulus). Proof of possession is the front door's
/// concern (kube-apiserver checks it for PodCertificateRequests).
///
/// # Errors
/// [`CsrError`] naming the broken rule.
pub fn from_public_key(
    spki_der: &[u8],
    sans: RequestedSans,
) -> Result<CertificateRequest, CsrError> {
    let spki: SubjectPublicKeyInfo<'_> = parse_whole(spki_der)?;
    let key = check_public_key(&spki)?;
    parse_key(key_check_algorithm(key.algorithm), &key)?;
    Ok(CertificateRequest {
        key_algorithm: key.algorithm,
        public_key_der: spki.raw.to_vec(),
        public_key_bits: key.key_bytes.to_vec(),
        subject: RequestedSubject::default(),
        sans,
        san_critical: false,
        key_usages: Vec::new(),
        extended_key_usages: Vec::new(),
    })
}

/// The public key of a DER request whose signature someone else has verified (a
/// PodCertificateRequest's `stubPKCS10Request`: kube-apiserver verifies it at admission, as it
/// verifies `proofOfPossession` beside `pkixPublicKey`). Only the key is taken, exactly as
/// [`from_public_key`] takes it; subject, attributes and signature are not read.
///
/// # Errors
/// [`CsrError`] naming the broken rule: size, strict DER, not a version-1 request, or a key that
/// [`from_public_key`] refuses.
pub fn key_of_verified_der(der_bytes: &[u8]) -> Result<CertificateRequest, CsrError> {
    let csr = parse_version_1(der_bytes)?;
    from_public_key(
        csr.certification_request_info.subject_pki.raw,
        RequestedSans::default(),
    )
}

/// A DER request as [`parse_whole`] reads it, and of version 1 (0).
fn parse_version_1(der_bytes: &[u8]) -> Result<X509CertificationRequest<'_>, CsrError> {
    let csr: X509CertificationRequest<'_> = parse_whole(der_bytes)?;
    let version = csr.certification_request_info.version.0;
    if version != 0 {
        return Err(CsrError::Version { version });
    }
    Ok(csr)
}

/// `T` from DER that is non-empty, within the size cap, strict DER, with nothing after it.
fn parse_whole<'a, T>(der_bytes: &'a [u8]) -> Result<T, CsrError>
where
    T: FromDer<'a, x509_parser::error::X509Error>,
{
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
    let (rest, parsed) = T::from_der(der_bytes).map_err(|e| CsrError::Malformed {
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(CsrError::Der {
            violation: format!("{} bytes of trailing data", rest.len()),
        });
    }
    Ok(parsed)
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
    fn a_verified_request_gives_only_its_key_and_its_signature_is_not_read() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pem = csr_pem(&key, &["spiffe://cluster.local/ns/default/sa/other"]);
        let mut der = pem::decode_single_block(pem.as_bytes()).unwrap();
        *der.last_mut().unwrap() ^= 1;
        assert_eq!(decode_der(&der), Err(CsrError::BadSignature));
        let req = key_of_verified_der(&der).unwrap();
        assert_eq!(req.key_algorithm, KeyAlgorithm::EcP256);
        assert_eq!(
            req.public_key_der,
            rcgen::PublicKeyData::subject_public_key_info(&key)
        );
        assert!(req.sans.uris.is_empty(), "nothing but the key is taken");
        assert!(req.subject.is_empty());
        assert_eq!(key_of_verified_der(b""), Err(CsrError::Empty));
        assert!(matches!(
            key_of_verified_der(&der[..der.len() - 1]),
            Err(CsrError::Der { .. } | CsrError::Malformed { .. })
        ));
    }

    /// RFC 3279 §2.3.1: rsaEncryption's parameters MUST be NULL. A request without them used to
    /// decode, and the leaf (whose SPKI rcgen writes with NULL) then always failed the post-sign
    /// key comparison (C19).
    #[test]
    fn an_rsa_key_without_null_parameters_is_refused_at_decode() {
        let key = testing::rsa2048();
        let der = testing::rsa_csr_without_null_params(&key, URI);
        let err = decode_der(&der).unwrap_err();
        assert!(
            matches!(err, CsrError::InvalidPublicKey { key: "RSA", ref reason } if reason.contains("NULL")),
            "{err:?}"
        );
        assert!(!err.is_unparseable(), "a specific request error: {err}");
        let spki_der = testing::spki(
            &testing::spki_parts(&key).0[..1],
            0,
            &testing::spki_parts(&key).1,
        );
        assert!(matches!(
            from_public_key(&spki_der, RequestedSans::default()),
            Err(CsrError::InvalidPublicKey { key: "RSA", .. })
        ));
    }

    /// A subjectPublicKey BIT STRING declaring unused bits: the key decodes from its octets, but the
    /// leaf's SPKI (no unused bits) never equals the request's (C19).
    #[test]
    fn a_key_bit_string_with_unused_bits_is_refused_at_decode() {
        for (kind, key) in [
            ("EC", testing::with_even_last_octet(testing::p256)),
            ("Ed25519", testing::with_even_last_octet(testing::ed25519)),
        ] {
            let der = testing::csr_with_one_unused_key_bit(&key, URI);
            let err = decode_der(&der).unwrap_err();
            assert!(
                matches!(err, CsrError::InvalidPublicKey { key, ref reason } if key == kind && reason.contains("unused bit")),
                "{kind}: {err:?}"
            );
            let (alg, bits) = testing::spki_parts(&key);
            assert!(
                matches!(
                    from_public_key(&testing::spki(&alg, 1, &bits), RequestedSans::default()),
                    Err(CsrError::InvalidPublicKey { .. })
                ),
                "{kind}: an asserted key is held to the same rule"
            );
            // The same request with no unused bits decodes: only the declared count is at fault.
            let good = testing::csr_der(
                &key,
                &testing::spki(&alg, 0, &bits),
                &testing::name(&[]),
                URI,
            );
            assert!(decode_der(&good).is_ok(), "{kind}");
        }
        let rsa = testing::rsa2048();
        assert!(
            decode_der(&testing::csr_der(
                &rsa,
                &rcgen::PublicKeyData::subject_public_key_info(&rsa),
                &testing::name(&[]),
                URI
            ))
            .is_ok()
        );
    }

    const URI: &str = "spiffe://cluster.local/ns/default/sa/sleep";

    #[test]
    fn empty_and_oversized_inputs_are_refused_before_decoding() {
        assert_eq!(decode_pem(b""), Err(CsrError::Empty));
        assert_eq!(decode_pem(b" \n"), Err(CsrError::Empty));
        let big = vec![b'A'; MAX_REQUEST_BYTES + 1];
        assert!(matches!(decode_pem(&big), Err(CsrError::TooLarge { .. })));
    }
}
