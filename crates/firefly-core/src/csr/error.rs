//! Why a certificate request was refused: one terminal, request-side error per broken rule.

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
