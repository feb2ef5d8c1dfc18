//! Test-only builders for hand-made requests: encodings rcgen never produces (an RSA key without
//! NULL parameters, a key BIT STRING with unused bits, a PrintableString holding `?`), signed with
//! a real key so that only the defect under test differs from a good request.

use rcgen::{KeyPair, PublicKeyData, SigningKey};

use super::der;

pub(crate) const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
pub(crate) const OID_C: &[u8] = &[0x55, 0x04, 0x06];

/// One DER element.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

pub(crate) fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// A `Name` with one attribute per RDN: (OID contents, string tag, value).
pub(crate) fn name(attrs: &[(&[u8], u8, &str)]) -> Vec<u8> {
    seq(&attrs
        .iter()
        .map(|(oid, tag, value)| tlv(0x31, &seq(&[tlv(0x06, oid), tlv(*tag, value.as_bytes())])))
        .collect::<Vec<_>>())
}

/// The key's SubjectPublicKeyInfo split into its AlgorithmIdentifier's elements and the key bits
/// (the BIT STRING contents after the unused-bits octet).
pub(crate) fn spki_parts(key: &KeyPair) -> (Vec<Vec<u8>>, Vec<u8>) {
    let spki = key.subject_public_key_info();
    let (outer, _) = der::read_tlv(&spki, 0).unwrap();
    let fields = der::children(outer.content, 0).unwrap();
    let alg = der::children(fields[0].content, 0)
        .unwrap()
        .iter()
        .map(|t| t.raw.to_vec())
        .collect();
    assert_eq!(fields[1].content[0], 0, "rcgen writes no unused bits");
    (alg, fields[1].content[1..].to_vec())
}

/// A SubjectPublicKeyInfo from its parts, the BIT STRING declaring `unused` unused bits.
pub(crate) fn spki(alg: &[Vec<u8>], unused: u8, key_bits: &[u8]) -> Vec<u8> {
    let mut bits = vec![unused];
    bits.extend_from_slice(key_bits);
    seq(&[seq(alg), tlv(0x03, &bits)])
}

/// A version-1 request with `subject`, `spki` and a critical SAN holding `uri`, signed by `key`
/// with the signature algorithm that fits it.
pub(crate) fn csr_der(key: &KeyPair, spki: &[u8], subject: &[u8], uri: &str) -> Vec<u8> {
    let san = seq(&[tlv(0x86, uri.as_bytes())]);
    let extension = seq(&[
        tlv(0x06, &[0x55, 0x1d, 0x11]),
        tlv(0x01, &[0xff]),
        tlv(0x04, &san),
    ]);
    let extension_request = seq(&[
        tlv(
            0x06,
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e],
        ),
        tlv(0x31, &seq(&[extension])),
    ]);
    let info = seq(&[
        tlv(0x02, &[0]),
        subject.to_vec(),
        spki.to_vec(),
        tlv(0xa0, &extension_request),
    ]);
    let alg = key.algorithm();
    let sig_alg = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        seq(&[tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02])])
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        seq(&[tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03])])
    } else if alg == &rcgen::PKCS_ED25519 {
        seq(&[tlv(0x06, &[0x2b, 0x65, 0x70])])
    } else {
        seq(&[
            tlv(
                0x06,
                &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b],
            ),
            tlv(0x05, &[]),
        ])
    };
    let signature = key.sign(&info).unwrap();
    let mut sig_bits = vec![0];
    sig_bits.extend_from_slice(&signature);
    seq(&[info, sig_alg, tlv(0x03, &sig_bits)])
}

/// `csr_der` as PEM.
pub(crate) fn to_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der.to_vec()))
}

pub(crate) fn p256() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

pub(crate) fn ed25519() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap()
}

pub(crate) fn rsa2048() -> KeyPair {
    KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap()
}

/// A key whose last key-bits octet is even, so that declaring one unused bit leaves the padding
/// bit zero (as DER requires) and only the declared count is wrong.
pub(crate) fn with_even_last_octet(generate: fn() -> KeyPair) -> KeyPair {
    loop {
        let key = generate();
        if spki_parts(&key).1.last().is_some_and(|b| b & 1 == 0) {
            return key;
        }
    }
}

/// The request `key` would send, with one unused bit declared in its key BIT STRING.
pub(crate) fn csr_with_one_unused_key_bit(key: &KeyPair, uri: &str) -> Vec<u8> {
    let (alg, bits) = spki_parts(key);
    csr_der(key, &spki(&alg, 1, &bits), &name(&[]), uri)
}

/// The request an RSA `key` would send, with its AlgorithmIdentifier's NULL parameters left out.
pub(crate) fn rsa_csr_without_null_params(key: &KeyPair, uri: &str) -> Vec<u8> {
    let (alg, bits) = spki_parts(key);
    assert_eq!(alg.len(), 2, "rsaEncryption and NULL");
    csr_der(key, &spki(&alg[..1], 0, &bits), &name(&[]), uri)
}
