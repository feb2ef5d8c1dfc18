//! Key types, proof-of-possession and PKCS#10 signature checks with aws-lc-rs (x509-parser only parses).

use aws_lc_rs::signature::{self, RsaPssSaltLength, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA,
    OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384,
    OID_SIG_ECDSA_WITH_SHA512, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// The key types PodCertificateRequests accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// RSA 3072
    Rsa3072,
    /// RSA 4096
    Rsa4096,
    /// ECDSA P-256
    P256,
    /// ECDSA P-384
    P384,
    /// ECDSA P-521
    P521,
    /// Ed25519
    Ed25519,
}

/// The key type of a SubjectPublicKeyInfo, or why it is not accepted.
pub fn key_type(spki: &SubjectPublicKeyInfo<'_>) -> Result<KeyType, String> {
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_PKCS1_RSAENCRYPTION {
        let bits = match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(r)) => r.key_size(),
            _ => return Err("the RSA public key does not parse".into()),
        };
        return match bits {
            3072 => Ok(KeyType::Rsa3072),
            4096 => Ok(KeyType::Rsa4096),
            b => Err(format!("RSA keys must be 3072 or 4096 bits (got {b} bits)")),
        };
    }
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or("the EC public key names no curve")?;
        return if curve == OID_EC_P256 {
            Ok(KeyType::P256)
        } else if curve == OID_NIST_EC_P384 {
            Ok(KeyType::P384)
        } else if curve == OID_NIST_EC_P521 {
            Ok(KeyType::P521)
        } else {
            Err(format!(
                "EC curve {curve} is not supported (P-256, P-384, P-521 are)"
            ))
        };
    }
    if *alg == OID_SIG_ED25519 {
        return Ok(KeyType::Ed25519);
    }
    Err(format!(
        "key algorithm {alg} is not supported (RSA 3072/4096, ECDSA P-256/P-384/P-521, Ed25519 are)"
    ))
}

/// Parse a PKIX (SubjectPublicKeyInfo) DER key.
pub fn parse_spki(der: &[u8]) -> Result<SubjectPublicKeyInfo<'_>, String> {
    match SubjectPublicKeyInfo::from_der(der) {
        Ok(([], spki)) => Ok(spki),
        Ok(_) => Err("trailing data after the public key".into()),
        Err(e) => Err(format!("the public key is not PKIX DER: {e}")),
    }
}

fn verify_with(
    alg: &'static dyn VerificationAlgorithm,
    key: &[u8],
    msg: &[u8],
    sig: &[u8],
) -> bool {
    UnparsedPublicKey::new(alg, key).verify(msg, sig).is_ok()
}

const PSS_MAX: signature::RsaParameters =
    signature::RSA_PSS_2048_8192_SHA256.with_pss_salt_length(RsaPssSaltLength::Max);

/// Verify a proof of possession over `pod_uid` as kube-apiserver does: Ed25519 over the UID,
/// ECDSA (ASN.1) over sha256(UID), RSA-PSS over sha256(UID) with any salt length Go produces.
pub fn verify_pop(
    spki: &SubjectPublicKeyInfo<'_>,
    pod_uid: &str,
    pop: &[u8],
) -> Result<(), String> {
    let kt = key_type(spki)?;
    let key = &spki.subject_public_key.data;
    let msg = pod_uid.as_bytes();
    let ok = match kt {
        KeyType::Ed25519 => verify_with(&signature::ED25519, key, msg, pop),
        KeyType::P256 => verify_with(&signature::ECDSA_P256_SHA256_ASN1, key, msg, pop),
        KeyType::P384 => verify_with(&signature::ECDSA_P384_SHA256_ASN1, key, msg, pop),
        KeyType::P521 => verify_with(&signature::ECDSA_P521_SHA256_ASN1, key, msg, pop),
        KeyType::Rsa3072 | KeyType::Rsa4096 => {
            verify_with(&signature::RSA_PSS_2048_8192_SHA256, key, msg, pop)
                || verify_with(&PSS_MAX, key, msg, pop)
        }
    };
    if ok {
        Ok(())
    } else {
        Err("could not verify proof-of-possession signature".into())
    }
}

/// Verify a PKCS#10 request's self-signature.
pub fn verify_csr(
    csr: &x509_parser::certification_request::X509CertificationRequest<'_>,
) -> Result<(), String> {
    let spki = &csr.certification_request_info.subject_pki;
    let key = &spki.subject_public_key.data;
    let msg = csr.certification_request_info.raw;
    let sig = &csr.signature_value.data;
    let oid = &csr.signature_algorithm.algorithm;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    let alg: &'static dyn VerificationAlgorithm = if *oid == OID_SIG_ED25519 {
        &signature::ED25519
    } else if *oid == OID_PKCS1_SHA256WITHRSA {
        &signature::RSA_PKCS1_2048_8192_SHA256
    } else if *oid == OID_PKCS1_SHA384WITHRSA {
        &signature::RSA_PKCS1_2048_8192_SHA384
    } else if *oid == OID_PKCS1_SHA512WITHRSA {
        &signature::RSA_PKCS1_2048_8192_SHA512
    } else if *oid == OID_SIG_ECDSA_WITH_SHA256
        || *oid == OID_SIG_ECDSA_WITH_SHA384
        || *oid == OID_SIG_ECDSA_WITH_SHA512
    {
        let c = curve.ok_or("the EC key names no curve")?;
        let h = if *oid == OID_SIG_ECDSA_WITH_SHA256 {
            256
        } else if *oid == OID_SIG_ECDSA_WITH_SHA384 {
            384
        } else {
            512
        };
        match (
            c == OID_EC_P256,
            c == OID_NIST_EC_P384,
            c == OID_NIST_EC_P521,
            h,
        ) {
            (true, _, _, 256) => &signature::ECDSA_P256_SHA256_ASN1,
            (true, _, _, 384) => &signature::ECDSA_P256_SHA384_ASN1,
            (_, true, _, 256) => &signature::ECDSA_P384_SHA256_ASN1,
            (_, true, _, 384) => &signature::ECDSA_P384_SHA384_ASN1,
            (_, _, true, 256) => &signature::ECDSA_P521_SHA256_ASN1,
            (_, _, true, 384) => &signature::ECDSA_P521_SHA384_ASN1,
            (_, _, true, 512) => &signature::ECDSA_P521_SHA512_ASN1,
            _ => {
                return Err(format!(
                    "unsupported ECDSA curve/hash combination ({c}, SHA-{h})"
                ));
            }
        }
    } else {
        return Err(format!("unsupported signature algorithm {oid}"));
    };
    if verify_with(alg, key, msg, sig) {
        Ok(())
    } else {
        Err("the signature of the PKCS#10 request does not verify".into())
    }
}
