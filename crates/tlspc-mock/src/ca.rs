//! The mock's built-in CA hierarchy (root → intermediate1 → intermediate2) and sub-CA signing under a provider's profile; file I/O only in [`BuiltinCa::load_or_generate`].

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, CustomExtension,
    DistinguishedName, DnType, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SerialNumber,
};
use x509_parser::prelude::FromDer;

use firefly_core::KeyAlgorithm;
use firefly_tlspc::wire::SubCaProviderInformation;

use super::MockError;
use super::faults::BadSubCa;

/// Largest CSR accepted, bytes of PEM: far above any real CSR, small enough to refuse floods.
const MAX_CSR_PEM: usize = 64 * 1024;
/// Lifetime of the generated root and intermediates.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Backdating of issued sub-CAs, for clock skew between the mock and instances.
const BACKDATE: Duration = Duration::from_secs(10);
/// OID of the nameConstraints extension.
const NAME_CONSTRAINTS_OID: &[u64] = &[2, 5, 29, 30];

/// One level of the hierarchy: certificate and key.
struct CaLevel {
    cert_pem: String,
    cert_der: Vec<u8>,
    key: KeyPair,
}

impl CaLevel {
    fn issuer(&self) -> Result<Issuer<'static, &KeyPair>, rcgen::Error> {
        Issuer::from_ca_cert_der(&self.cert_der.as_slice().into(), &self.key)
    }
}

/// The built-in CA: a real three-level hierarchy, generated once per state dir.
pub struct BuiltinCa {
    root: CaLevel,
    intermediate1: CaLevel,
    intermediate2: CaLevel,
    /// A second, unrelated hierarchy for the `foreignChain` fault, generated on first use.
    foreign: OnceLock<Option<(CaLevel, CaLevel, CaLevel)>>,
}

impl std::fmt::Debug for BuiltinCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BuiltinCa(...)")
    }
}

/// A sub-CA the mock issued.
#[derive(Clone, Debug)]
pub struct SignedSubCa {
    /// PEM of the sub-CA certificate (or the broken stand-in a fault asked for).
    pub certificate: String,
    /// PEM from intermediate2 up to the root.
    pub issuer_certificates: Vec<String>,
    /// Subject CN.
    pub common_name: String,
    /// Hex SHA-256 of the DER.
    pub fingerprint: String,
    /// NotBefore.
    pub not_before: SystemTime,
    /// NotAfter.
    pub not_after: SystemTime,
}

/// Whether sub-CAs of this algorithm can be requested.
pub fn supports_sub_ca_algorithm(alg: KeyAlgorithm) -> bool {
    !matches!(alg, KeyAlgorithm::EcP521)
}

/// Sets NotBefore/NotAfter; `OffsetDateTime` is reachable only through rcgen, so it is built
/// from rcgen's epoch date plus the time since the epoch (clocks before 1970 count as 1970).
fn set_validity(params: &mut CertificateParams, not_before: SystemTime, not_after: SystemTime) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + not_before.duration_since(UNIX_EPOCH).unwrap_or_default();
    params.not_after = epoch + not_after.duration_since(UNIX_EPOCH).unwrap_or_default();
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive and without a leading zero octet: clear the top bit, set the next one.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn ca_params(cn: &str, path_len: Option<u8>, now: SystemTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Firefly Mock TLS Protect Cloud");
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial());
    set_validity(&mut params, now - BACKDATE, now + CA_LIFETIME);
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

fn generate_hierarchy(
    prefix: &str,
    now: SystemTime,
) -> Result<(CaLevel, CaLevel, CaLevel), rcgen::Error> {
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut root_params = ca_params(&format!("{prefix} Root CA"), None, now);
    root_params.use_authority_key_identifier_extension = false;
    let root_cert = root_params.self_signed(&root_key)?;
    let root = CaLevel {
        cert_pem: root_cert.pem(),
        cert_der: root_cert.der().to_vec(),
        key: root_key,
    };
    let int1 = issue_level(&root, &format!("{prefix} Intermediate CA 1"), 2, now)?;
    let int2 = issue_level(&int1, &format!("{prefix} Intermediate CA 2"), 1, now)?;
    Ok((root, int1, int2))
}

fn issue_level(
    parent: &CaLevel,
    cn: &str,
    path_len: u8,
    now: SystemTime,
) -> Result<CaLevel, rcgen::Error> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = ca_params(cn, Some(path_len), now).signed_by(&key, &parent.issuer()?)?;
    Ok(CaLevel {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key,
    })
}

const LEVELS: [&str; 3] = ["root", "intermediate1", "intermediate2"];

impl BuiltinCa {
    /// Generates a fresh hierarchy in memory.
    ///
    /// # Errors
    /// [`MockError::Ca`] when key generation or signing fails.
    pub fn generate(now: SystemTime) -> Result<BuiltinCa, MockError> {
        let (root, intermediate1, intermediate2) = generate_hierarchy("Firefly Mock", now)
            .map_err(|e| MockError::Ca(format!("generating the CA: {e}")))?;
        Ok(BuiltinCa {
            root,
            intermediate1,
            intermediate2,
            foreign: OnceLock::new(),
        })
    }

    /// Loads the hierarchy from `dir/ca/` or generates it and writes it there (keys mode 0600).
    ///
    /// # Errors
    /// [`MockError::StateDir`] naming the file that cannot be read, parsed or written.
    pub fn load_or_generate(dir: &Path, now: SystemTime) -> Result<BuiltinCa, MockError> {
        let ca_dir = dir.join("ca");
        if ca_dir.join("root.pem").exists() {
            let mut levels = Vec::with_capacity(3);
            for name in LEVELS {
                let cert_path = ca_dir.join(format!("{name}.pem"));
                let key_path = ca_dir.join(format!("{name}.key"));
                let cert_pem = super::state::read_file(&cert_path)?;
                let key_pem = super::state::read_file(&key_path)?;
                let cert_der = pem::parse(&cert_pem)
                    .map_err(|e| MockError::StateDir {
                        path: cert_path.display().to_string(),
                        message: format!("not a PEM certificate: {e}"),
                    })?
                    .into_contents();
                let key = KeyPair::from_pem(&key_pem).map_err(|e| MockError::StateDir {
                    path: key_path.display().to_string(),
                    message: format!("not a PEM private key: {e}"),
                })?;
                levels.push(CaLevel {
                    cert_pem,
                    cert_der,
                    key,
                });
            }
            let mut it = levels.into_iter();
            let (Some(root), Some(intermediate1), Some(intermediate2)) =
                (it.next(), it.next(), it.next())
            else {
                return Err(MockError::Ca("CA levels missing".into()));
            };
            return Ok(BuiltinCa {
                root,
                intermediate1,
                intermediate2,
                foreign: OnceLock::new(),
            });
        }
        let ca = Self::generate(now)?;
        super::state::create_dir(&ca_dir)?;
        for (name, level) in LEVELS
            .iter()
            .zip([&ca.root, &ca.intermediate1, &ca.intermediate2])
        {
            super::state::write_file(&ca_dir.join(format!("{name}.pem")), &level.cert_pem, false)?;
            super::state::write_file(
                &ca_dir.join(format!("{name}.key")),
                &level.key.serialize_pem(),
                true,
            )?;
        }
        Ok(ca)
    }

    /// PEM of the self-signed root.
    pub fn root_pem(&self) -> &str {
        &self.root.cert_pem
    }

    /// PEMs of root, intermediate1, intermediate2 (top down).
    pub fn hierarchy_pems(&self) -> [&str; 3] {
        [
            &self.root.cert_pem,
            &self.intermediate1.cert_pem,
            &self.intermediate2.cert_pem,
        ]
    }

    /// Signs an instance CSR with intermediate2 under `provider`'s profile.
    ///
    /// # Errors
    /// A message for the API error when the CSR is unreadable, badly signed, or its key algorithm
    /// differs from the provider's; [`MockError::Ca`] text for internal signing failures.
    pub fn sign_sub_ca(
        &self,
        csr_pem: &str,
        fallback_cn: &str,
        provider: &SubCaProviderInformation,
        validity: Duration,
        now: SystemTime,
        fault: Option<BadSubCa>,
    ) -> Result<SignedSubCa, String> {
        if csr_pem.len() > MAX_CSR_PEM {
            return Err(format!(
                "certificateSigningRequest is {} bytes; the limit is {MAX_CSR_PEM}",
                csr_pem.len()
            ));
        }
        let block = pem::parse(csr_pem.trim())
            .map_err(|e| format!("certificateSigningRequest is not PEM: {e}"))?;
        if block.tag() != "CERTIFICATE REQUEST" && block.tag() != "NEW CERTIFICATE REQUEST" {
            return Err(format!(
                "certificateSigningRequest has PEM label {:?}; expected \"CERTIFICATE REQUEST\"",
                block.tag()
            ));
        }
        let (rest, parsed) =
            x509_parser::certification_request::X509CertificationRequest::from_der(
                block.contents(),
            )
            .map_err(|e| format!("certificateSigningRequest does not parse: {e}"))?;
        if !rest.is_empty() {
            return Err("certificateSigningRequest has trailing bytes after the DER".into());
        }
        let info = &parsed.certification_request_info;
        let csr_alg = key_algorithm_of(&info.subject_pki)?;
        let wanted = provider.key_algorithm.unwrap_or(KeyAlgorithm::EcP256);
        if csr_alg != wanted {
            return Err(format!(
                "CSR key algorithm {csr_alg} differs from the sub-CA provider's keyAlgorithm {wanted}"
            ));
        }
        let cn = info
            .subject
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .map(str::to_owned)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| fallback_cn.to_owned());
        let csr = CertificateSigningRequestParams::from_der(&block.contents().into())
            .map_err(|e| format!("certificateSigningRequest refused: {e}"))?;

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        for (ty, value) in [
            (DnType::CountryName, &provider.country),
            (DnType::StateOrProvinceName, &provider.state_or_province),
            (DnType::LocalityName, &provider.locality),
            (DnType::OrganizationName, &provider.organization),
            (
                DnType::OrganizationalUnitName,
                &provider.organizational_unit,
            ),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                dn.push(ty, v);
            }
        }
        dn.push(DnType::CommonName, cn.as_str());
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let mut not_before = now - BACKDATE;
        let mut not_after = now + validity;
        match fault {
            Some(BadSubCa::NotCa) => params.is_ca = IsCa::ExplicitNoCa,
            Some(BadSubCa::NoKeyCertSign) => {
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature]
            }
            Some(BadSubCa::Expired) => {
                not_before = now - Duration::from_secs(2 * 3600);
                not_after = now - Duration::from_secs(3600);
            }
            Some(BadSubCa::ShortLived) => not_after = now + Duration::from_secs(10),
            Some(BadSubCa::UriNameConstraints) => params
                .custom_extensions
                .push(uri_name_constraints("cluster.local")),
            _ => {}
        }
        set_validity(&mut params, not_before, not_after);

        let internal = |e: rcgen::Error| format!("internal signing error: {e}");
        let (cert, issuer_certificates) = match fault {
            Some(BadSubCa::WrongKey) => {
                let other =
                    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(internal)?;
                let cert = params
                    .signed_by(&other, &self.intermediate2.issuer().map_err(internal)?)
                    .map_err(internal)?;
                (cert, self.issuer_chain())
            }
            Some(BadSubCa::ParentPathLen) => {
                let parent = issue_level(
                    &self.intermediate2,
                    "Firefly Mock Intermediate CA 3 (pathLen 0)",
                    0,
                    now,
                )
                .map_err(internal)?;
                let cert = params
                    .signed_by(&csr.public_key, &parent.issuer().map_err(internal)?)
                    .map_err(internal)?;
                let mut chain = self.issuer_chain();
                chain.insert(0, parent.cert_pem.clone());
                (cert, chain)
            }
            Some(BadSubCa::ForeignChain) => {
                let foreign = self.foreign.get_or_init(|| {
                    // Same names as the real hierarchy: only the keys differ.
                    generate_hierarchy("Firefly Mock", now).ok()
                });
                let Some((foreign_root, foreign_int1, foreign_int)) = foreign else {
                    return Err("internal signing error: foreign hierarchy unavailable".into());
                };
                let cert = params
                    .signed_by(&csr.public_key, &foreign_int.issuer().map_err(internal)?)
                    .map_err(internal)?;
                (
                    cert,
                    vec![
                        foreign_int.cert_pem.clone(),
                        foreign_int1.cert_pem.clone(),
                        foreign_root.cert_pem.clone(),
                    ],
                )
            }
            _ => {
                let cert = params
                    .signed_by(
                        &csr.public_key,
                        &self.intermediate2.issuer().map_err(internal)?,
                    )
                    .map_err(internal)?;
                (cert, self.issuer_chain())
            }
        };
        let fingerprint = firefly_core::util::hex_lower(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.der()).as_ref(),
        )
        .to_ascii_uppercase();
        let certificate = match fault {
            Some(BadSubCa::HugePem) => huge_pem(),
            Some(BadSubCa::MalformedPem) => {
                "-----BEGIN CERTIFICATE-----\nthis is not base64 DER!!\n-----END CERTIFICATE-----\n"
                    .to_owned()
            }
            _ => cert.pem(),
        };
        let issuer_certificates = if fault == Some(BadSubCa::EmptyChain) {
            Vec::new()
        } else {
            issuer_certificates
        };
        Ok(SignedSubCa {
            certificate,
            issuer_certificates,
            common_name: cn,
            fingerprint,
            not_before,
            not_after,
        })
    }

    fn issuer_chain(&self) -> Vec<String> {
        vec![
            self.intermediate2.cert_pem.clone(),
            self.intermediate1.cert_pem.clone(),
            self.root.cert_pem.clone(),
        ]
    }
}

/// The TLSPC key-algorithm name of a CSR's public key.
fn key_algorithm_of(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Result<KeyAlgorithm, String> {
    use x509_parser::public_key::PublicKey;
    let oid = spki.algorithm.algorithm.to_id_string();
    if oid == "1.3.101.112" {
        return Ok(KeyAlgorithm::EcEd25519);
    }
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => match rsa.key_size() {
            2048 => Ok(KeyAlgorithm::Rsa2048),
            3072 => Ok(KeyAlgorithm::Rsa3072),
            4096 => Ok(KeyAlgorithm::Rsa4096),
            n => Err(format!(
                "CSR has an RSA key of {n} bits; only 2048, 3072 and 4096 are issued"
            )),
        },
        Ok(PublicKey::EC(_)) => {
            let curve = ec_curve_oid(spki);
            match curve.as_str() {
                "1.2.840.10045.3.1.7" => Ok(KeyAlgorithm::EcP256),
                "1.3.132.0.34" => Ok(KeyAlgorithm::EcP384),
                "1.3.132.0.35" => Ok(KeyAlgorithm::EcP521),
                other => Err(format!("CSR has an EC key on unsupported curve {other}")),
            }
        }
        Ok(_) => Err(format!("CSR key algorithm {oid} is not supported")),
        Err(e) => Err(format!("CSR public key does not parse: {e}")),
    }
}

/// A critical nameConstraints extension permitting one URI host (`[6] IA5String` in a subtree).
/// The named curve of an EC public key, as a dotted OID ("" when absent).
pub(crate) fn ec_curve_oid(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> String {
    spki.algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string())
        .unwrap_or_default()
}

fn uri_name_constraints(host: &str) -> CustomExtension {
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        // Short-form lengths suffice: the host is a short fixed literal.
        let mut out = vec![tag, content.len() as u8];
        out.extend_from_slice(content);
        out
    }
    let base = tlv(0x86, host.as_bytes());
    let subtree = tlv(0x30, &base);
    let permitted = tlv(0xa0, &subtree);
    let mut ext = CustomExtension::from_oid_content(NAME_CONSTRAINTS_OID, tlv(0x30, &permitted));
    ext.set_criticality(true);
    ext
}

fn huge_pem() -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(vec![0x30u8; 3 * 1024 * 1024]);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 64);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
