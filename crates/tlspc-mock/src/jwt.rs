//! Service-account keys and JWT-assertion validation for the mock's token endpoint; performs no I/O.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use firefly_core::KeyAlgorithm;
use firefly_tlspc::wire::TOKEN_AUDIENCE;

/// Longest assertion lifetime accepted (`exp - now`); the contract says 1–30 minutes, plus skew.
const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(31 * 60);
/// Clock skew tolerated on `iat` and `exp`.
const SKEW: Duration = Duration::from_secs(60);

/// A registered service-account public key with the JWT algorithms it may sign with.
#[derive(Clone)]
pub struct AccountKey {
    /// The public key as PEM (`PUBLIC KEY`).
    pub public_pem: String,
    decoding: DecodingKey,
    algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountKey")
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl AccountKey {
    /// Parses a `PUBLIC KEY` PEM (RSA ≥ 2048, EC P-256/P-384, Ed25519).
    ///
    /// # Errors
    /// A message saying what is wrong with the key.
    pub fn from_public_pem(pem_text: &str) -> Result<AccountKey, String> {
        let block =
            pem::parse(pem_text.trim()).map_err(|e| format!("not a PEM public key: {e}"))?;
        if block.tag() != "PUBLIC KEY" {
            return Err(format!(
                "PEM label is {:?}; expected \"PUBLIC KEY\"",
                block.tag()
            ));
        }
        let (_, spki) = SubjectPublicKeyInfo::from_der(block.contents())
            .map_err(|e| format!("public key does not parse: {e}"))?;
        let parsed = spki
            .parsed()
            .map_err(|e| format!("public key does not parse: {e}"))?;
        let bytes = pem_text.trim().as_bytes();
        let (decoding, algorithms) = match parsed {
            PublicKey::RSA(rsa) => {
                let bits = rsa.key_size();
                if bits < 2048 {
                    return Err(format!(
                        "RSA key of {bits} bits; at least 2048 are required"
                    ));
                }
                let key = DecodingKey::from_rsa_pem(bytes)
                    .map_err(|e| format!("RSA key refused: {e}"))?;
                (
                    key,
                    vec![Algorithm::RS256, Algorithm::RS384, Algorithm::RS512],
                )
            }
            PublicKey::EC(_) => {
                let curve = super::ca::ec_curve_oid(&spki);
                let alg = match curve.as_str() {
                    "1.2.840.10045.3.1.7" => Algorithm::ES256,
                    "1.3.132.0.34" => Algorithm::ES384,
                    other => {
                        return Err(format!(
                            "EC curve {other} is not supported; use P-256 or P-384"
                        ));
                    }
                };
                let key =
                    DecodingKey::from_ec_pem(bytes).map_err(|e| format!("EC key refused: {e}"))?;
                (key, vec![alg])
            }
            _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => {
                let key = DecodingKey::from_ed_pem(bytes)
                    .map_err(|e| format!("Ed25519 key refused: {e}"))?;
                (key, vec![Algorithm::EdDSA])
            }
            _ => {
                return Err(format!(
                    "key algorithm {} is not supported; use RSA, EC P-256/P-384 or Ed25519",
                    spki.algorithm.algorithm.to_id_string()
                ));
            }
        };
        Ok(AccountKey {
            public_pem: pem_text.trim().to_owned() + "\n",
            decoding,
            algorithms,
        })
    }
}

/// Whether the mock can generate an account key of this algorithm.
pub fn can_generate(alg: KeyAlgorithm) -> bool {
    matches!(
        alg,
        KeyAlgorithm::Rsa2048
            | KeyAlgorithm::Rsa3072
            | KeyAlgorithm::Rsa4096
            | KeyAlgorithm::EcP256
            | KeyAlgorithm::EcP384
            | KeyAlgorithm::EcEd25519
    )
}

/// Generates an account key pair; returns (PKCS#8 private PEM, public PEM).
///
/// # Errors
/// A message when the algorithm cannot be generated.
pub fn generate_account_key(alg: KeyAlgorithm) -> Result<(String, String), String> {
    use rcgen::{KeyPair, RsaKeySize};
    let kp = match alg {
        KeyAlgorithm::EcP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyAlgorithm::EcP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyAlgorithm::EcEd25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
        KeyAlgorithm::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)
        }
        KeyAlgorithm::Rsa3072 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072)
        }
        KeyAlgorithm::Rsa4096 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096)
        }
        KeyAlgorithm::EcP521 => return Err("cannot generate an EC_P521 account key".into()),
    }
    .map_err(|e| format!("key generation failed: {e}"))?;
    Ok((kp.serialize_pem(), kp.public_key_pem()))
}

/// Claims of an assertion, as far as the mock reads them.
#[derive(Debug, Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    exp: Option<u64>,
    iat: Option<u64>,
    jti: Option<String>,
}

/// Why an assertion is refused, mapped to the OAuth error answer.
#[derive(Debug, PartialEq, Eq)]
pub struct AssertionRefusal {
    /// HTTP status.
    pub status: u16,
    /// OAuth `error`.
    pub error: &'static str,
    /// OAuth `error_description`.
    pub description: String,
}

fn refuse(status: u16, error: &'static str, description: impl Into<String>) -> AssertionRefusal {
    AssertionRefusal {
        status,
        error,
        description: description.into(),
    }
}

/// The parts of an accepted assertion the token endpoint needs.
#[derive(Debug)]
pub struct AcceptedAssertion {
    /// The client ID (`iss` = `sub`).
    pub client_id: String,
    /// The `jti`, to remember until `exp`.
    pub jti: String,
    /// The assertion's `exp`.
    pub expires_at: SystemTime,
}

/// Reads the unverified `iss` of an assertion so that the account's key can be looked up.
///
/// # Errors
/// `invalid_request` when the token is not a JWT or has no `iss`.
pub fn unverified_issuer(assertion: &str) -> Result<String, AssertionRefusal> {
    let claims: Claims =
        jsonwebtoken::dangerous::insecure_decode_claims(assertion).map_err(|e| {
            refuse(
                400,
                "invalid_request",
                format!("assertion is not a JWT: {e}"),
            )
        })?;
    claims
        .iss
        .filter(|s| !s.is_empty())
        .ok_or_else(|| refuse(400, "invalid_request", "assertion has no iss claim"))
}

/// Verifies an assertion against the account's key: signature, algorithm, audience, `iss` = `sub` =
/// client ID, `iat`/`exp` against `now`, and presence of `jti` (replay is checked by the caller).
///
/// # Errors
/// The refusal to answer with; a bad signature says `token_signature_verification_error`.
pub fn verify_assertion(
    assertion: &str,
    client_id: &str,
    key: &AccountKey,
    now: SystemTime,
) -> Result<AcceptedAssertion, AssertionRefusal> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| {
        refuse(
            400,
            "invalid_request",
            format!("assertion header does not parse: {e}"),
        )
    })?;
    if !key.algorithms.contains(&header.alg) {
        return Err(refuse(
            400,
            "invalid_grant",
            format!(
                "token_signature_verification_error: alg {:?} does not match the registered key (expected one of {:?})",
                header.alg, key.algorithms
            ),
        ));
    }
    let mut validation = Validation::new(header.alg);
    // Time claims are checked below against the injected clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_required_spec_claims::<&str>(&[]);
    validation.set_audience(&[TOKEN_AUDIENCE]);
    validation.set_issuer(&[client_id]);
    let data = jsonwebtoken::decode::<Claims>(assertion, &key.decoding, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidSignature | K::InvalidEcdsaKey | K::InvalidRsaKey(_) | K::InvalidEddsaKey => refuse(
                400,
                "invalid_grant",
                "token_signature_verification_error: the assertion's signature does not match the service account's registered public key",
            ),
            K::InvalidAudience | K::MissingRequiredClaim(_) => refuse(
                400,
                "invalid_grant",
                format!("assertion aud must be {TOKEN_AUDIENCE:?}"),
            ),
            K::InvalidIssuer => refuse(400, "invalid_grant", "assertion iss must be the client ID"),
            _ => refuse(400, "invalid_grant", format!("assertion refused: {e}")),
        }
    })?;
    let claims = data.claims;
    if claims.sub.as_deref() != Some(client_id) {
        return Err(refuse(
            400,
            "invalid_grant",
            "assertion sub must equal iss (the client ID)",
        ));
    }
    let now_s = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let Some(exp) = claims.exp else {
        return Err(refuse(400, "invalid_grant", "assertion has no exp claim"));
    };
    let Some(iat) = claims.iat else {
        return Err(refuse(400, "invalid_grant", "assertion has no iat claim"));
    };
    if exp.saturating_add(SKEW.as_secs()) <= now_s {
        return Err(refuse(
            400,
            "invalid_grant",
            format!("assertion expired (exp {exp}, now {now_s})"),
        ));
    }
    if iat > now_s.saturating_add(SKEW.as_secs()) {
        return Err(refuse(
            400,
            "invalid_grant",
            format!("assertion iat {iat} is in the future (now {now_s})"),
        ));
    }
    if exp > now_s.saturating_add(MAX_ASSERTION_LIFETIME.as_secs()) {
        return Err(refuse(
            400,
            "invalid_grant",
            format!("assertion exp {exp} is more than 30 minutes after now {now_s}"),
        ));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or_else(|| refuse(400, "invalid_grant", "assertion has no jti claim"))?;
    Ok(AcceptedAssertion {
        client_id: client_id.to_owned(),
        jti,
        expires_at: UNIX_EPOCH + Duration::from_secs(exp.saturating_add(SKEW.as_secs())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public_pem(alg: &'static rcgen::SignatureAlgorithm) -> String {
        rcgen::KeyPair::generate_for(alg).unwrap().public_key_pem()
    }

    #[test]
    fn supported_public_keys_map_to_their_jwt_algorithms() {
        let p256 =
            AccountKey::from_public_pem(&public_pem(&rcgen::PKCS_ECDSA_P256_SHA256)).unwrap();
        assert_eq!(p256.algorithms, vec![Algorithm::ES256]);
        let p384 =
            AccountKey::from_public_pem(&public_pem(&rcgen::PKCS_ECDSA_P384_SHA384)).unwrap();
        assert_eq!(p384.algorithms, vec![Algorithm::ES384]);
        let ed = AccountKey::from_public_pem(&public_pem(&rcgen::PKCS_ED25519)).unwrap();
        assert_eq!(ed.algorithms, vec![Algorithm::EdDSA]);
        let (_, rsa) = generate_account_key(KeyAlgorithm::Rsa2048).unwrap();
        assert!(
            AccountKey::from_public_pem(&rsa)
                .unwrap()
                .algorithms
                .contains(&Algorithm::RS256)
        );
    }

    #[test]
    fn unsupported_or_mislabelled_public_keys_are_refused_with_a_reason() {
        let p521 = public_pem(&rcgen::PKCS_ECDSA_P521_SHA512);
        assert!(
            AccountKey::from_public_pem(&p521)
                .unwrap_err()
                .contains("curve")
        );
        let (private, _) = generate_account_key(KeyAlgorithm::EcP256).unwrap();
        assert!(
            AccountKey::from_public_pem(&private)
                .unwrap_err()
                .contains("PRIVATE KEY")
        );
        assert!(
            AccountKey::from_public_pem("hello")
                .unwrap_err()
                .contains("PEM")
        );
    }

    #[test]
    fn debug_of_an_account_key_shows_no_key_material() {
        let key = AccountKey::from_public_pem(&public_pem(&rcgen::PKCS_ECDSA_P256_SHA256)).unwrap();
        assert!(!format!("{key:?}").contains("BEGIN"));
    }
}
