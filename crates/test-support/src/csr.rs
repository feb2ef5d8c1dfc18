//! Builds PKCS#10 requests field by field, so tests can produce istio-agent's exact shape and every
//! deliberate defect of the bad-input corpus from code.

use rcgen::{KeyPair, PublicKeyData, SigningKey};

use super::der::*;

pub const OID_SAN: &[u64] = &[2, 5, 29, 17];
pub const OID_KU: &[u64] = &[2, 5, 29, 15];
pub const OID_EKU: &[u64] = &[2, 5, 29, 37];
pub const OID_BC: &[u64] = &[2, 5, 29, 19];
pub const OID_NAME_CONSTRAINTS: &[u64] = &[2, 5, 29, 30];
pub const OID_EXTENSION_REQUEST: &[u64] = &[1, 2, 840, 113549, 1, 9, 14];
pub const OID_CHALLENGE_PASSWORD: &[u64] = &[1, 2, 840, 113549, 1, 9, 7];
pub const OID_UNSTRUCTURED_NAME: &[u64] = &[1, 2, 840, 113549, 1, 9, 2];
pub const OID_CN: &[u64] = &[2, 5, 4, 3];
pub const OID_O: &[u64] = &[2, 5, 4, 10];
pub const OID_EMAIL_IN_DN: &[u64] = &[1, 2, 840, 113549, 1, 9, 1];
pub const OID_EC_PUBLIC_KEY: &[u64] = &[1, 2, 840, 10045, 2, 1];
pub const OID_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 1];
pub const OID_P256: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];
pub const OID_SECP256K1: &[u64] = &[1, 3, 132, 0, 10];
pub const OID_P224: &[u64] = &[1, 3, 132, 0, 33];
pub const OID_BRAINPOOL_P256R1: &[u64] = &[1, 3, 36, 3, 3, 2, 8, 1, 1, 7];
pub const OID_DSA: &[u64] = &[1, 2, 840, 10040, 4, 1];

pub const EKU_SERVER: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 1];
pub const EKU_CLIENT: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 2];
pub const EKU_CODE_SIGNING: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 3];
pub const EKU_OCSP: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 9];
pub const EKU_ANY: &[u64] = &[2, 5, 29, 37, 0];

/// Signature algorithm identifiers.
pub fn alg_ecdsa_sha256() -> Vec<u8> {
    seq(&[oid(&[1, 2, 840, 10045, 4, 3, 2])])
}
pub fn alg_ecdsa_sha384() -> Vec<u8> {
    seq(&[oid(&[1, 2, 840, 10045, 4, 3, 3])])
}
pub fn alg_rsa_sha256() -> Vec<u8> {
    seq(&[oid(&[1, 2, 840, 113549, 1, 1, 11]), null()])
}
pub fn alg_sha1_rsa() -> Vec<u8> {
    seq(&[oid(&[1, 2, 840, 113549, 1, 1, 5]), null()])
}
pub fn alg_md5_rsa() -> Vec<u8> {
    seq(&[oid(&[1, 2, 840, 113549, 1, 1, 4]), null()])
}
pub fn alg_ecdsa_sha1() -> Vec<u8> {
    seq(&[oid(&[1, 2, 840, 10045, 4, 1])])
}
pub fn alg_dsa_sha256() -> Vec<u8> {
    seq(&[oid(&[2, 16, 840, 1, 101, 3, 4, 3, 2])])
}
pub fn alg_ed25519() -> Vec<u8> {
    seq(&[oid(&[1, 3, 101, 112])])
}

/// The signature algorithm a key pair signs with.
pub fn alg_for(key: &KeyPair) -> Vec<u8> {
    let alg = key.algorithm();
    if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        alg_ecdsa_sha256()
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        alg_ecdsa_sha384()
    } else if alg == &rcgen::PKCS_ED25519 {
        alg_ed25519()
    } else {
        alg_rsa_sha256()
    }
}

/// `Name` with one attribute per RDN.
pub fn name(attrs: &[(&[u64], Vec<u8>)]) -> Vec<u8> {
    seq(&attrs
        .iter()
        .map(|(o, v)| set(&[seq(&[oid(o), v.clone()])]))
        .collect::<Vec<_>>())
}

pub fn extension(oid_arcs: &[u64], critical: bool, value: Vec<u8>) -> Vec<u8> {
    if critical {
        seq(&[oid(oid_arcs), boolean(true), octets(&value)])
    } else {
        seq(&[oid(oid_arcs), octets(&value)])
    }
}

/// An extensionRequest attribute holding these extensions.
pub fn extension_request(extensions: &[Vec<u8>]) -> Vec<u8> {
    seq(&[oid(OID_EXTENSION_REQUEST), set(&[seq(extensions)])])
}

pub fn san(names: &[Vec<u8>]) -> Vec<u8> {
    seq(names)
}
pub fn gn_uri(s: &str) -> Vec<u8> {
    ctx(6, false, s.as_bytes())
}
pub fn gn_uri_bytes(b: &[u8]) -> Vec<u8> {
    ctx(6, false, b)
}
pub fn gn_dns(s: &str) -> Vec<u8> {
    ctx(2, false, s.as_bytes())
}
pub fn gn_email(s: &str) -> Vec<u8> {
    ctx(1, false, s.as_bytes())
}
pub fn gn_ip(octets: &[u8]) -> Vec<u8> {
    ctx(7, false, octets)
}
pub fn gn_other_name() -> Vec<u8> {
    // otherName { type-id 1.3.6.1.4.1.311.20.2.3 (UPN), [0] UTF8String }
    ctx(
        0,
        true,
        &[
            oid(&[1, 3, 6, 1, 4, 1, 311, 20, 2, 3]),
            ctx(0, true, &utf8("user@example.com")),
        ]
        .concat(),
    )
}

/// keyUsage BIT STRING value for the given bit numbers.
pub fn key_usage(bits_set: &[u32]) -> Vec<u8> {
    let mut v: u16 = 0;
    for b in bits_set {
        v |= 1 << (15 - b);
    }
    let bytes = v.to_be_bytes();
    let used = if bytes[1] == 0 {
        &bytes[..1]
    } else {
        &bytes[..]
    };
    let last = *used.last().unwrap_or(&0);
    let unused = if last == 0 {
        0
    } else {
        last.trailing_zeros() as u8
    };
    let mut content = vec![unused];
    content.extend_from_slice(used);
    tlv(0x03, &content)
}

pub fn eku(oids: &[&[u64]]) -> Vec<u8> {
    seq(&oids.iter().map(|o| oid(o)).collect::<Vec<_>>())
}

pub fn basic_constraints(ca: bool) -> Vec<u8> {
    if ca { seq(&[boolean(true)]) } else { seq(&[]) }
}

/// A request assembled from parts; `build` signs the info with the given signer.
#[derive(Clone)]
pub struct RawCsr {
    pub version: u64,
    pub subject: Vec<u8>,
    pub spki: Vec<u8>,
    pub attributes: Vec<Vec<u8>>,
    pub sig_alg: Vec<u8>,
}

impl RawCsr {
    /// istio-agent's shape: subject `O=` (empty), a critical SAN with one URI, the key's algorithm.
    pub fn istio(key: &KeyPair, uri: &str) -> RawCsr {
        RawCsr {
            version: 0,
            subject: name(&[(OID_O, utf8(""))]),
            spki: key.subject_public_key_info(),
            attributes: vec![extension_request(&[extension(
                OID_SAN,
                true,
                san(&[gn_uri(uri)]),
            )])],
            sig_alg: alg_for(key),
        }
    }

    /// Replaces the extensions with these.
    pub fn with_extensions(mut self, extensions: &[Vec<u8>]) -> RawCsr {
        self.attributes = vec![extension_request(extensions)];
        self
    }

    /// A request whose SAN holds these names (critical, empty subject as istio does).
    pub fn with_sans(self, names: &[Vec<u8>]) -> RawCsr {
        self.with_extensions(&[extension(OID_SAN, true, san(names))])
    }

    /// A request with these URI SANs.
    pub fn with_uris(self, uris: &[&str]) -> RawCsr {
        let names: Vec<Vec<u8>> = uris.iter().map(|u| gn_uri(u)).collect();
        self.with_sans(&names)
    }

    pub fn info(&self) -> Vec<u8> {
        seq(&[
            uint(self.version),
            self.subject.clone(),
            self.spki.clone(),
            ctx(0, true, &self.attributes.concat()),
        ])
    }

    /// DER, signed by `key` over the info.
    pub fn build(&self, key: &KeyPair) -> Vec<u8> {
        let info = self.info();
        let signature = key.sign(&info).expect("sign");
        Self::assemble(info, &self.sig_alg, &signature)
    }

    /// DER with a given signature value.
    pub fn build_with_signature(&self, signature: &[u8]) -> Vec<u8> {
        Self::assemble(self.info(), &self.sig_alg, signature)
    }

    pub fn assemble(info: Vec<u8>, sig_alg: &[u8], signature: &[u8]) -> Vec<u8> {
        seq(&[info, sig_alg.to_vec(), bits(signature)])
    }

    pub fn pem(&self, key: &KeyPair) -> String {
        to_pem(&self.build(key))
    }
}

pub fn to_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der.to_vec()))
}

pub fn p256() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key")
}
pub fn p384() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("P-384 key")
}
pub fn ed25519() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("Ed25519 key")
}
pub fn rsa(bits: usize) -> KeyPair {
    let size = match bits {
        2048 => rcgen::RsaKeySize::_2048,
        3072 => rcgen::RsaKeySize::_3072,
        _ => rcgen::RsaKeySize::_4096,
    };
    KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size).expect("RSA key")
}

/// An RSA SubjectPublicKeyInfo with a made-up modulus of `bits` bits and exponent `e`.
pub fn fake_rsa_spki(size: usize, e: u64) -> Vec<u8> {
    let mut modulus = vec![0xa5u8; size.div_ceil(8)];
    let top_bits = size % 8;
    modulus[0] = if top_bits == 0 {
        0xc5
    } else {
        (1u8 << (top_bits - 1)) | 1
    };
    let key = seq(&[uint_bytes(&modulus), uint(e)]);
    seq(&[seq(&[oid(OID_RSA), null()]), bits(&key)])
}

/// An EC SubjectPublicKeyInfo on `curve` with a made-up uncompressed point of `len` coordinate bytes.
pub fn fake_ec_spki(curve: &[u64], coordinate_len: usize) -> Vec<u8> {
    let mut point = vec![0x04];
    point.extend(std::iter::repeat_n(0x11u8, coordinate_len * 2));
    seq(&[seq(&[oid(OID_EC_PUBLIC_KEY), oid(curve)]), bits(&point)])
}
