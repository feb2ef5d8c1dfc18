//! Key algorithms and sizes, as requests, policies and sub-CAs name them; performs no I/O.

use serde::{Deserialize, Serialize};

/// A key algorithm and size (serialized as TLSPC spells them, which is also how errors name them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// RSA, 2048-bit modulus.
    #[serde(rename = "RSA_2048")]
    Rsa2048,
    /// RSA, 3072-bit modulus.
    #[serde(rename = "RSA_3072")]
    Rsa3072,
    /// RSA, 4096-bit modulus.
    #[serde(rename = "RSA_4096")]
    Rsa4096,
    /// ECDSA on P-256.
    #[serde(rename = "EC_P256")]
    EcP256,
    /// ECDSA on P-384.
    #[serde(rename = "EC_P384")]
    EcP384,
    /// ECDSA on P-521.
    #[serde(rename = "EC_P521")]
    EcP521,
    /// Ed25519.
    #[serde(rename = "EC_ED25519")]
    EcEd25519,
}

impl KeyAlgorithm {
    /// The name TLSPC uses on the wire, and our messages use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rsa2048 => "RSA_2048",
            Self::Rsa3072 => "RSA_3072",
            Self::Rsa4096 => "RSA_4096",
            Self::EcP256 => "EC_P256",
            Self::EcP384 => "EC_P384",
            Self::EcP521 => "EC_P521",
            Self::EcEd25519 => "EC_ED25519",
        }
    }
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
