//! The post-sign validator (C14): re-parses every leaf just signed and checks C1–C23 before it may
//! leave the signer; performs no I/O.

use std::time::SystemTime;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use super::template::ValidityWindow;
use super::{IssueError, SubCa};
use crate::policy::LeafProfile;
use crate::policy::engine::Field;
use crate::spiffe::SpiffeId;

const OID_SAN: &str = "2.5.29.17";
const OID_KU: &str = "2.5.29.15";
const OID_EKU: &str = "2.5.29.37";
const OID_BC: &str = "2.5.29.19";
const OID_SKI: &str = "2.5.29.14";
const OID_AKI: &str = "2.5.29.35";

fn fail(rule: &'static str, detail: impl Into<String>) -> IssueError {
    IssueError::PostSignCheck {
        rule,
        detail: detail.into(),
    }
}

/// Checks a freshly signed leaf against its profile, the sub-CA and the request's key.
///
/// # Errors
/// [`IssueError::PostSignCheck`] naming the first broken rule: the certificate must be discarded.
pub fn check_leaf(
    der: &[u8],
    ca: &SubCa,
    profile: &LeafProfile,
    request_spki: &[u8],
    window: &ValidityWindow,
    now: SystemTime,
) -> Result<(), IssueError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| fail("C14", format!("does not parse: {e}")))?;
    if !rest.is_empty() {
        return Err(fail("C14", "trailing data after the certificate"));
    }
    // C14: the signature verifies with the sub-CA's public key, so a fault in the signing key or
    // in the signing library never leaves the process as a certificate.
    if !ca.verify_signature(cert.tbs_certificate.as_ref(), &cert.signature_value.data) {
        return Err(fail(
            "C14",
            "the signature does not verify with the sub-CA's public key",
        ));
    }
    let tbs = &cert.tbs_certificate;
    if tbs.issuer.as_raw() != ca.subject_raw() {
        return Err(fail("C14", "issuer name is not the sub-CA's subject"));
    }
    // C19: the key signed is the request's key.
    if tbs.subject_pki.raw != request_spki {
        return Err(fail(
            "C19",
            "subjectPublicKeyInfo differs from the request's",
        ));
    }
    // C20: serial positive, 64+ bits, at most 20 octets.
    let serial = tbs.raw_serial();
    if serial.is_empty() || serial[0] & 0x80 != 0 || serial.iter().all(|b| *b == 0) {
        return Err(fail("C20", "serial is not positive"));
    }
    if serial.len() < 9 || serial.len() > 20 {
        return Err(fail(
            "C20",
            format!("serial is {} octets; 9..=20 required", serial.len()),
        ));
    }
    // C21/C22: validity.
    let nb = unix_time(tbs.validity.not_before.timestamp())?;
    let na = unix_time(tbs.validity.not_after.timestamp())?;
    if na != window.not_after || nb != window.not_before {
        return Err(fail("C21", "validity differs from the computed window"));
    }
    if na > ca.not_after() {
        return Err(fail("C21", "NotAfter is after the sub-CA's NotAfter"));
    }
    if nb > now || nb < ca.not_before() {
        return Err(fail(
            "C22",
            "NotBefore is not backdated within the sub-CA's validity",
        ));
    }

    let mut seen: Vec<std::borrow::Cow<'static, str>> = Vec::new();
    let mut bc_ok = false;
    let mut ku_ok = false;
    let mut eku: Option<&x509_parser::extensions::ExtendedKeyUsage<'_>> = None;
    let mut san_names: Option<(&[GeneralName<'_>], bool)> = None;
    let mut ski_present = false;
    let mut aki_ok = false;
    for ext in cert.extensions() {
        let oid = crate::csr::oid_str(&ext.oid);
        if seen.contains(&oid) {
            return Err(fail("C14", format!("extension {oid} appears twice")));
        }
        if ![OID_SAN, OID_KU, OID_EKU, OID_BC, OID_SKI, OID_AKI].contains(&&*oid) {
            return Err(fail("C14", format!("unexpected extension {oid}")));
        }
        seen.push(oid);
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) => {
                bc_ok = ext.critical && !bc.ca && bc.path_len_constraint.is_none()
            }
            ParsedExtension::KeyUsage(ku) => {
                if !ext.critical {
                    return Err(fail("C6", "keyUsage is not critical"));
                }
                if !ku.digital_signature() || ku.key_cert_sign() || ku.crl_sign() {
                    return Err(fail("C7", format!("keyUsage {ku} is not a leaf's")));
                }
                ku_ok = true;
            }
            ParsedExtension::ExtendedKeyUsage(e) => eku = Some(e),
            ParsedExtension::SubjectAlternativeName(san) => {
                san_names = Some((&san.general_names, ext.critical))
            }
            ParsedExtension::SubjectKeyIdentifier(_) => ski_present = true,
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki_ok = aki
                    .key_identifier
                    .as_ref()
                    .is_some_and(|k| k.0 == ca.subject_key_identifier());
            }
            _ => return Err(fail("C14", format!("extension {} does not parse", ext.oid))),
        }
    }
    if !bc_ok {
        return Err(fail("C5", "basicConstraints CA:false (critical) missing"));
    }
    if !ku_ok {
        return Err(fail("C6", "keyUsage missing"));
    }
    if !ski_present || !aki_ok {
        return Err(fail("C23", "SKI missing or AKI is not the sub-CA's SKI"));
    }
    if let Some(e) = eku {
        if e.any {
            return Err(fail("C7", "anyExtendedKeyUsage on a leaf"));
        }
        if profile.spiffe_id.is_some() && !(e.server_auth && e.client_auth) {
            return Err(fail("C9", "an SVID needs serverAuth and clientAuth"));
        }
    } else if profile.spiffe_id.is_some() {
        return Err(fail(
            "C9",
            "an SVID needs extendedKeyUsage serverAuth and clientAuth",
        ));
    }

    // Subject: exactly the profile's attributes, in order, one value each; a value dropped or
    // replaced by the name encoder (rcgen keeps one value per attribute type) is never delivered.
    let mut subject = Vec::new();
    for attr in tbs.subject.iter_attributes() {
        let oid = crate::csr::oid_str(attr.attr_type());
        let value = attr.as_str().map_err(|e| {
            fail(
                "C14",
                format!("subject attribute {oid} does not parse: {e}"),
            )
        })?;
        subject.push((oid, value));
    }
    let want_subject: Vec<(&str, &str)> = profile
        .subject
        .iter()
        .map(|(field, value)| (subject_oid(*field), value.as_str()))
        .collect();
    if subject.len() != want_subject.len()
        || subject
            .iter()
            .zip(&want_subject)
            .any(|((oid, value), (want_oid, want_value))| oid != want_oid || value != want_value)
    {
        return Err(fail(
            "C14",
            format!(
                "subject differs from the policy's profile: the certificate has {} attribute(s), \
                 the profile {}",
                subject.len(),
                want_subject.len()
            ),
        ));
    }

    // SANs: exactly the profile's (C2), one SPIFFE URI at most (C1, C3, C15–C18), critical when
    // the subject is empty (C4).
    let subject_empty = tbs.subject.iter_attributes().next().is_none();
    let (names, san_critical) = san_names.unwrap_or((&[], false));
    if subject_empty && (names.is_empty() || !san_critical) {
        return Err(fail("C4", "empty subject needs a critical subjectAltName"));
    }
    let (mut dns, mut ips, mut emails, mut uris) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for n in names {
        match n {
            GeneralName::DNSName(d) => dns.push((*d).to_owned()),
            GeneralName::RFC822Name(e) => emails.push((*e).to_owned()),
            GeneralName::URI(u) => uris.push((*u).to_owned()),
            GeneralName::IPAddress(b) => ips.push(b.to_vec()),
            other => return Err(fail("C2", format!("unexpected SAN {other:?}"))),
        }
    }
    let want_ips: Vec<Vec<u8>> = profile
        .ip_addresses
        .iter()
        .map(|ip| match ip {
            std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
            std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
        })
        .collect();
    if dns != profile.dns_names
        || emails != profile.rfc822_names
        || ips != want_ips
        || uris != profile.uris
    {
        return Err(fail(
            "C2",
            "subjectAltNames differ from the policy's profile",
        ));
    }
    if uris.len() > 1 {
        return Err(fail("C1", format!("{} URI SANs", uris.len())));
    }
    if let Some(uri) = uris.first() {
        let id = SpiffeId::parse_workload(uri).map_err(|e| fail("C3", e.to_string()))?;
        if profile.spiffe_id.as_ref() != Some(&id) {
            return Err(fail("C1", "URI SAN is not the validated SPIFFE ID"));
        }
    } else if let Some(id) = &profile.spiffe_id {
        // The SPIFFE ID reported for the leaf (Issued, audit) is one it carries.
        return Err(fail(
            "C1",
            format!("the profile names SPIFFE ID {id} but the certificate has no URI SAN"),
        ));
    }
    Ok(())
}

/// The attribute type OID of subject field `field`.
fn subject_oid(field: Field) -> &'static str {
    match field {
        Field::Country => "2.5.4.6",
        Field::StateOrProvince => "2.5.4.8",
        Field::Locality => "2.5.4.7",
        Field::Organization => "2.5.4.10",
        Field::OrganizationalUnit => "2.5.4.11",
        Field::CommonName => "2.5.4.3",
        // Not a subject attribute: matches no certificate attribute.
        _ => "",
    }
}

fn unix_time(secs: i64) -> Result<SystemTime, IssueError> {
    let secs = u64::try_from(secs).map_err(|_| fail("C21", "time before 1970"))?;
    Ok(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}
