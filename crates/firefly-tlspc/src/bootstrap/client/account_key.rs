//! The service-account private key and the login assertion (JWT bearer grant) it signs; the key
//! never reaches a log line or an error.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use serde::Serialize;
use zeroize::Zeroizing;

use super::ClientError;
use crate::wire;

/// A service-account private key, ready to sign login JWTs. `Debug` prints a placeholder.
///
/// Its parsed form is jsonwebtoken's `EncodingKey`, which zeroizes its bytes on drop (checked at
/// compile time below); every intermediate copy made while reading the file is a `Zeroizing`.
pub struct ServiceAccountKey {
    algorithm: jsonwebtoken::Algorithm,
    key: jsonwebtoken::EncodingKey,
}

// The key's only field holding secret bytes wipes itself on drop; a jsonwebtoken release that
// stopped doing so would fail to compile here.
impl zeroize::ZeroizeOnDrop for ServiceAccountKey {}
const _: fn() = || {
    fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    wiped_on_drop::<jsonwebtoken::EncodingKey>();
};

/// A signed login assertion (a JWT bearer grant): zeroized on drop; `Debug` prints a placeholder.
pub struct ClientAssertion(Zeroizing<String>);

impl ClientAssertion {
    /// The JWT, for the login form only.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for ClientAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientAssertion(<redacted>)")
    }
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceAccountKey({:?}, <redacted>)", self.algorithm)
    }
}

impl ServiceAccountKey {
    /// Reads a PEM key file (`PRIVATE KEY`, `EC PRIVATE KEY` or `RSA PRIVATE KEY`).
    ///
    /// # Errors
    /// [`ClientError::ReadKey`] or [`ClientError::BadKey`] naming the file and the problem.
    pub fn load(path: &Path) -> Result<ServiceAccountKey, ClientError> {
        let text = Zeroizing::new(std::fs::read(path).map_err(|source| ClientError::ReadKey {
            path: path.to_path_buf(),
            source,
        })?);
        Self::from_pem(&text).map_err(|reason| ClientError::BadKey {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        })
    }

    /// Parses a PEM private key and picks the JWT algorithm from it (RS256, ES256, ES384, EdDSA).
    ///
    /// # Errors
    /// A short reason (never key material) when the PEM is not a supported private key.
    pub fn from_pem(pem_text: &[u8]) -> Result<ServiceAccountKey, &'static str> {
        let block = pem::parse(pem_text).map_err(|_| "not a PEM private key")?;
        let der = Zeroizing::new(block.contents().to_vec());
        use jsonwebtoken::{Algorithm, EncodingKey};
        match block.tag() {
            "PRIVATE KEY" => {
                if EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                    .is_ok()
                {
                    Ok(Self {
                        algorithm: Algorithm::ES256,
                        key: EncodingKey::from_ec_der(&der),
                    })
                } else if EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                    &der,
                )
                .is_ok()
                {
                    Ok(Self {
                        algorithm: Algorithm::ES384,
                        key: EncodingKey::from_ec_der(&der),
                    })
                } else if Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).is_ok() {
                    Ok(Self {
                        algorithm: Algorithm::EdDSA,
                        key: EncodingKey::from_ed_der(&der),
                    })
                } else if let Ok(pair) = RsaKeyPair::from_pkcs8(&der) {
                    Self::rsa(&pair)
                } else {
                    Err("PKCS#8 key is not RSA, EC P-256/P-384 or Ed25519")
                }
            }
            "EC PRIVATE KEY" => {
                // jsonwebtoken reads EC keys as PKCS#8 only: convert SEC1 through aws-lc-rs.
                for (alg, jwt) in [
                    (
                        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                        Algorithm::ES256,
                    ),
                    (
                        &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                        Algorithm::ES384,
                    ),
                ] {
                    if let Ok(pair) = EcdsaKeyPair::from_private_key_der(alg, &der) {
                        let pkcs8 = pair
                            .to_pkcs8v1()
                            .map_err(|_| "cannot convert the EC key to PKCS#8")?;
                        return Ok(Self {
                            algorithm: jwt,
                            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
                        });
                    }
                }
                Err("EC key is not on P-256 or P-384")
            }
            "RSA PRIVATE KEY" => {
                let pair =
                    RsaKeyPair::from_der(&der).map_err(|_| "not a valid PKCS#1 RSA private key")?;
                Self::rsa(&pair)
            }
            "ENCRYPTED PRIVATE KEY" => {
                Err("encrypted keys are not supported: provide an unencrypted PKCS#8 key")
            }
            _ => Err("PEM label must be PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY"),
        }
    }

    fn rsa(pair: &RsaKeyPair) -> Result<ServiceAccountKey, &'static str> {
        if pair.public_modulus_len() < 256 {
            return Err("RSA keys must have at least 2048 bits");
        }
        // jsonwebtoken's aws-lc backend signs with PKCS#1; its PEM reader unwraps PKCS#8 for us.
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(pair)
            .map_err(|_| "cannot encode the RSA key")?;
        let pem_text = Zeroizing::new(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            pkcs8.as_ref().to_vec(),
        )));
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem_text.as_bytes())
            .map_err(|_| "cannot load the RSA key")?;
        Ok(Self {
            algorithm: jsonwebtoken::Algorithm::RS256,
            key,
        })
    }

    /// The JWT algorithm this key signs with.
    pub fn algorithm(&self) -> jsonwebtoken::Algorithm {
        self.algorithm
    }

    /// Mints the login assertion for `client_id` at `now`.
    ///
    /// # Errors
    /// A short reason when signing fails.
    pub fn mint_assertion(
        &self,
        client_id: &str,
        now: SystemTime,
    ) -> Result<ClientAssertion, &'static str> {
        let iat = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| "clock before 1970")?
            .as_secs();
        let claims = AssertionClaims {
            iss: client_id,
            sub: client_id,
            aud: wire::TOKEN_AUDIENCE,
            iat,
            exp: iat + ASSERTION_LIFETIME.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let header = jsonwebtoken::Header::new(self.algorithm);
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map(|jwt| ClientAssertion(Zeroizing::new(jwt)))
            .map_err(|_| "JWT signing failed")
    }
}

/// Lifetime of the login assertion: short, inside the contract's 1–30 min.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(5 * 60);

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}
