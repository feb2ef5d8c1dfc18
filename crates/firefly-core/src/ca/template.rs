//! The leaf template: validity window, serial and rcgen parameters built from the policy's profile;
//! only the public key comes from the request. Performs no I/O.

use std::time::{Duration, SystemTime};

use aws_lc_rs::rand::SecureRandom;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SignatureAlgorithm,
};

use super::{IssueError, IssueOptions, SubCa, go};
use crate::csr::CertificateRequest;
use crate::key::KeyAlgorithm;
use crate::policy::LeafProfile;
use crate::policy::engine::Field;
use crate::usage::{ExtendedKeyUsage, KeyUsage};

/// Serial length: 16 octets, leading octet in 0x40..=0x7f so the INTEGER is positive and never
/// shortened by DER: 126 random bits (C20 asks for at least 64) in at most 20 octets.
pub const SERIAL_LEN: usize = 16;

/// When the leaf is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidityWindow {
    /// Backdated NotBefore (whole seconds).
    pub not_before: SystemTime,
    /// NotAfter (whole seconds), never after the sub-CA's.
    pub not_after: SystemTime,
    /// The lifetime asked for, when the policy or the sub-CA shortened it.
    pub clamped_from: Option<Duration>,
}

/// Computes the window: backdated by `opts.backdate` (never before the sub-CA's NotBefore, C22),
/// `profile.lifetime` long, clamped to the sub-CA's NotAfter (C21).
///
/// # Errors
/// The sub-CA is not valid at `now`, or expires within the minimum leaf duration.
pub fn validity_window(
    ca: &SubCa,
    profile: &LeafProfile,
    opts: &IssueOptions,
    now: SystemTime,
) -> Result<ValidityWindow, IssueError> {
    let unix = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    if now < ca.not_before() || now >= ca.not_after() {
        return Err(IssueError::SubCaNotValid {
            now_unix: unix(now),
            not_before_unix: unix(ca.not_before()),
            not_after_unix: unix(ca.not_after()),
        });
    }
    let now_s = whole_seconds(now);
    let backdated = now_s.checked_sub(opts.backdate).unwrap_or(now_s);
    let not_before = backdated.max(ca.not_before());
    // Where the lifetime is counted from, and how long it is.
    let (start, lifetime) = match opts.max_window {
        Some(cap) => (not_before, profile.lifetime.min(cap)),
        None => (now_s, profile.lifetime),
    };
    let mut clamped_from = profile.clamped_from;
    if lifetime < profile.lifetime {
        clamped_from = Some(clamped_from.unwrap_or(profile.lifetime));
    }
    let wanted = start.checked_add(lifetime).unwrap_or(ca.not_after());
    let not_after = if wanted > ca.not_after() {
        let remaining = ca.not_after().duration_since(start).unwrap_or_default();
        if remaining < opts.minimum_duration {
            return Err(IssueError::SubCaExpiring {
                remaining: go(remaining),
                minimum: go(opts.minimum_duration),
            });
        }
        clamped_from = Some(clamped_from.unwrap_or(profile.lifetime));
        whole_seconds(ca.not_after())
    } else {
        wanted
    };
    Ok(ValidityWindow {
        not_before,
        not_after,
        clamped_from,
    })
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs())
}

/// A fresh random serial (C20) from the operating system's random source.
///
/// # Errors
/// [`IssueError::Signing`] when the random source fails: nothing is signed without a random
/// serial (a clock-derived one would be predictable and could repeat).
pub fn random_serial() -> Result<[u8; SERIAL_LEN], IssueError> {
    serial_from(|out| aws_lc_rs::rand::SystemRandom::new().fill(out))
}

/// A serial from `fill`, the random source: the seam tests use to make it fail.
pub(crate) fn serial_from(
    fill: impl FnOnce(&mut [u8]) -> Result<(), aws_lc_rs::error::Unspecified>,
) -> Result<[u8; SERIAL_LEN], IssueError> {
    let mut serial = [0u8; SERIAL_LEN];
    fill(&mut serial).map_err(|_| {
        IssueError::Signing(
            "the random source failed; refusing to sign without a random serial".to_owned(),
        )
    })?;
    serial[0] = (serial[0] & 0x3f) | 0x40;
    Ok(serial)
}

/// rcgen parameters for the leaf: subject, SANs, KU, EKU, CA:false, AKI, serial, validity.
///
/// # Errors
/// A value rcgen cannot encode (internal: the policy engine validated them).
pub fn leaf_params(
    profile: &LeafProfile,
    window: &ValidityWindow,
    serial: &[u8],
) -> Result<CertificateParams, IssueError> {
    let internal =
        |what: &str, e: &dyn std::fmt::Display| IssueError::Signing(format!("{what}: {e}"));
    let mut params = CertificateParams::default();
    // The default carries a CN ("rcgen self signed cert"); the subject comes from the profile only.
    params.distinguished_name = DistinguishedName::new();
    for (field, value) in &profile.subject {
        let (kind, dn_value) = match field {
            Field::Country => (DnType::CountryName, printable_country(value)?),
            Field::StateOrProvince => (
                DnType::StateOrProvinceName,
                DnValue::Utf8String(value.clone()),
            ),
            Field::Locality => (DnType::LocalityName, DnValue::Utf8String(value.clone())),
            Field::Organization => (DnType::OrganizationName, DnValue::Utf8String(value.clone())),
            Field::OrganizationalUnit => (
                DnType::OrganizationalUnitName,
                DnValue::Utf8String(value.clone()),
            ),
            _ => (DnType::CommonName, DnValue::Utf8String(value.clone())),
        };
        params.distinguished_name.push(kind, dn_value);
    }
    let mut sans = Vec::new();
    for d in &profile.dns_names {
        sans.push(SanType::DnsName(
            d.clone().try_into().map_err(|e| internal("DNS SAN", &e))?,
        ));
    }
    for ip in &profile.ip_addresses {
        sans.push(SanType::IpAddress(*ip));
    }
    for e in &profile.rfc822_names {
        sans.push(SanType::Rfc822Name(
            e.clone()
                .try_into()
                .map_err(|e| internal("email SAN", &e))?,
        ));
    }
    for u in &profile.uris {
        sans.push(SanType::URI(
            u.clone().try_into().map_err(|e| internal("URI SAN", &e))?,
        ));
    }
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = profile.key_usages.iter().map(|k| key_usage(*k)).collect();
    params.extended_key_usages = profile
        .extended_key_usages
        .iter()
        .map(|e| extended_key_usage(*e))
        .collect();
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(SerialNumber::from_slice(serial));
    params.not_before = offset_date_time(window.not_before)?;
    params.not_after = offset_date_time(window.not_after)?;
    Ok(params)
}

/// countryName as PrintableString, the only form RFC 5280 Appendix A allows. The policy engine
/// admits only two ASCII letters (see `policy::engine`), so the error is internal. A value
/// holding `?` is refused here too: yasna (rcgen's DER writer) panics on it although X.680 and
/// rcgen allow it (found by the `csr_content` fuzz target).
fn printable_country(value: &str) -> Result<DnValue, IssueError> {
    let bad = || {
        IssueError::Signing(format!(
            "countryName {value:?} is not a 2-character PrintableString; the policy should have \
             refused it"
        ))
    };
    if value.contains('?') || value.chars().count() != 2 {
        return Err(bad());
    }
    rcgen::string::PrintableString::try_from(value)
        .map(DnValue::PrintableString)
        .map_err(|_| bad())
}

fn offset_date_time(t: SystemTime) -> Result<time::OffsetDateTime, IssueError> {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|e| IssueError::Signing(e.to_string()))?
        .as_secs();
    let secs = i64::try_from(secs).map_err(|e| IssueError::Signing(e.to_string()))?;
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| IssueError::Signing(e.to_string()))
}

fn key_usage(k: KeyUsage) -> KeyUsagePurpose {
    match k {
        KeyUsage::DigitalSignature => KeyUsagePurpose::DigitalSignature,
        KeyUsage::NonRepudiation => KeyUsagePurpose::ContentCommitment,
        KeyUsage::KeyEncipherment => KeyUsagePurpose::KeyEncipherment,
        KeyUsage::DataEncipherment => KeyUsagePurpose::DataEncipherment,
        KeyUsage::KeyAgreement => KeyUsagePurpose::KeyAgreement,
        KeyUsage::KeyCertSign => KeyUsagePurpose::KeyCertSign,
        KeyUsage::CrlSign => KeyUsagePurpose::CrlSign,
        KeyUsage::EncipherOnly => KeyUsagePurpose::EncipherOnly,
        KeyUsage::DecipherOnly => KeyUsagePurpose::DecipherOnly,
    }
}

fn extended_key_usage(e: ExtendedKeyUsage) -> ExtendedKeyUsagePurpose {
    match e {
        ExtendedKeyUsage::Any => ExtendedKeyUsagePurpose::Any,
        ExtendedKeyUsage::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsage::CodeSigning => ExtendedKeyUsagePurpose::CodeSigning,
        ExtendedKeyUsage::EmailProtection => ExtendedKeyUsagePurpose::EmailProtection,
        ExtendedKeyUsage::TimeStamping => ExtendedKeyUsagePurpose::TimeStamping,
        ExtendedKeyUsage::OcspSigning => ExtendedKeyUsagePurpose::OcspSigning,
        other => ExtendedKeyUsagePurpose::Other(other.oid().to_vec()),
    }
}

/// The request's public key, presented to rcgen without copying anything else from the CSR.
#[derive(Debug)]
pub struct RequestKey<'a> {
    alg: &'static SignatureAlgorithm,
    bits: &'a [u8],
}

impl<'a> RequestKey<'a> {
    /// Wraps the CSR's key.
    ///
    /// # Errors
    /// A key type the decoder admits but rcgen cannot describe (internal).
    pub fn new(csr: &'a CertificateRequest) -> Result<Self, IssueError> {
        let alg: &'static SignatureAlgorithm = match csr.key_algorithm {
            // The SPKI algorithm identifier of every RSA signature algorithm is rsaEncryption+NULL.
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                &rcgen::PKCS_RSA_SHA256
            }
            KeyAlgorithm::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlgorithm::EcEd25519 => &rcgen::PKCS_ED25519,
            other => {
                return Err(IssueError::Signing(format!(
                    "key algorithm {other} is not supported for leaves"
                )));
            }
        };
        Ok(RequestKey {
            alg,
            bits: &csr.public_key_bits,
        })
    }
}

impl PublicKeyData for RequestKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.bits
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}
