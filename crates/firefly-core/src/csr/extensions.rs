//! The request's subject and its extension request (SAN, KU, EKU, BC only); performs no I/O.

use std::net::IpAddr;

use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::{
    CertificateRequest, CsrError, MAX_DER_DEPTH, RequestedSans, RequestedSubject, der, oid_str,
};
use crate::usage::{ExtendedKeyUsage, KeyUsage};

pub(super) fn decode_subject(
    name: &x509_parser::x509::X509Name<'_>,
) -> Result<RequestedSubject, CsrError> {
    let mut subject = RequestedSubject::default();
    for attr in name.iter_attributes() {
        let oid = oid_str(attr.attr_type());
        let (label, slot) = match &*oid {
            "2.5.4.3" => ("CN", &mut subject.common_name),
            "2.5.4.10" => ("O", &mut subject.organization),
            "2.5.4.11" => ("OU", &mut subject.organizational_unit),
            "2.5.4.7" => ("L", &mut subject.locality),
            "2.5.4.8" => ("ST", &mut subject.state_or_province),
            "2.5.4.6" => ("C", &mut subject.country),
            _ => {
                return Err(CsrError::UnsupportedSubjectAttribute {
                    oid: oid.to_string(),
                });
            }
        };
        let value = attr
            .as_str()
            .map_err(|_| CsrError::InvalidSubjectValue { attribute: label })?;
        if value.chars().any(char::is_control) {
            return Err(CsrError::InvalidSubjectValue { attribute: label });
        }
        // istio-agent sends `O=` (an empty organization): it counts as absent.
        if !value.is_empty() {
            slot.push(value.to_owned());
        }
    }
    Ok(subject)
}

const OID_SAN: &str = "2.5.29.17";
const OID_KU: &str = "2.5.29.15";
const OID_EKU: &str = "2.5.29.37";
const OID_BC: &str = "2.5.29.19";

pub(super) fn apply_extension(
    out: &mut CertificateRequest,
    oid: &str,
    critical: bool,
    value: &[u8],
    parsed: &ParsedExtension<'_>,
) -> Result<(), CsrError> {
    if ![OID_SAN, OID_KU, OID_EKU, OID_BC].contains(&oid) {
        return Err(CsrError::UnsupportedExtension {
            oid: oid.to_owned(),
        });
    }
    let unparsable = |reason: String| CsrError::ExtensionUnparsable {
        oid: oid.to_owned(),
        reason,
    };
    der::check_strict(value, MAX_DER_DEPTH).map_err(|v| unparsable(v.to_string()))?;
    match parsed {
        ParsedExtension::SubjectAlternativeName(san) => {
            if san.general_names.is_empty() {
                return Err(unparsable("subjectAltName is empty".to_owned()));
            }
            out.san_critical = critical;
            for name in &san.general_names {
                add_san(&mut out.sans, name)?;
            }
        }
        ParsedExtension::KeyUsage(ku) => {
            for usage in KeyUsage::ALL {
                if ku.flags & (1 << usage.bit()) != 0 {
                    if matches!(usage, KeyUsage::KeyCertSign | KeyUsage::CrlSign) {
                        return Err(CsrError::ForbiddenKeyUsage {
                            usage: usage.tlspc_name(),
                        });
                    }
                    out.key_usages.push(usage);
                }
            }
        }
        ParsedExtension::ExtendedKeyUsage(eku) => {
            let forbidden = [
                (eku.any, "anyExtendedKeyUsage"),
                (eku.code_signing, "codeSigning"),
                (eku.ocsp_signing, "OCSPSigning"),
                (eku.time_stamping, "timeStamping"),
            ];
            if let Some((_, name)) = forbidden.iter().find(|(set, _)| *set) {
                return Err(CsrError::ForbiddenExtendedKeyUsage {
                    usage: (*name).to_owned(),
                });
            }
            for (set, usage) in [
                (eku.server_auth, ExtendedKeyUsage::ServerAuth),
                (eku.client_auth, ExtendedKeyUsage::ClientAuth),
                (eku.email_protection, ExtendedKeyUsage::EmailProtection),
            ] {
                if set {
                    out.extended_key_usages.push(usage);
                }
            }
            for other in &eku.other {
                let arcs: Option<Vec<u64>> = other.iter().map(Iterator::collect);
                match arcs.as_deref().and_then(ExtendedKeyUsage::from_oid) {
                    Some(usage) => out.extended_key_usages.push(usage),
                    None => {
                        return Err(CsrError::ForbiddenExtendedKeyUsage {
                            usage: other.to_id_string(),
                        });
                    }
                }
            }
        }
        ParsedExtension::BasicConstraints(bc) => {
            if bc.ca {
                return Err(CsrError::CaRequested);
            }
        }
        ParsedExtension::ParseError { error } => return Err(unparsable(error.to_string())),
        _ => return Err(unparsable("unexpected content".to_owned())),
    }
    Ok(())
}

fn add_san(sans: &mut RequestedSans, name: &GeneralName<'_>) -> Result<(), CsrError> {
    let invalid = |kind: &'static str, value: &str, reason: &'static str| CsrError::InvalidSan {
        kind,
        value: value.chars().take(256).collect(),
        reason,
    };
    match name {
        GeneralName::DNSName(dns) => {
            if dns.is_empty() || !dns.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid("DNS", dns, "not a printable ASCII host name"));
            }
            sans.dns_names.push((*dns).to_owned());
        }
        GeneralName::RFC822Name(email) => {
            if email.is_empty() || !email.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid("email", email, "not a printable ASCII address"));
            }
            sans.rfc822_names.push((*email).to_owned());
        }
        GeneralName::URI(uri) => {
            if uri.is_empty() {
                return Err(invalid("URI", uri, "empty"));
            }
            sans.uris.push((*uri).to_owned());
        }
        GeneralName::IPAddress(bytes) => {
            let ip = match bytes.len() {
                4 => IpAddr::from(
                    <[u8; 4]>::try_from(*bytes).map_err(|_| invalid("IP", "", "bad length"))?,
                ),
                16 => IpAddr::from(
                    <[u8; 16]>::try_from(*bytes).map_err(|_| invalid("IP", "", "bad length"))?,
                ),
                _ => {
                    return Err(invalid(
                        "IP",
                        &crate::util::hex_lower(bytes),
                        "not 4 or 16 octets",
                    ));
                }
            };
            sans.ip_addresses.push(ip);
        }
        GeneralName::OtherName(..) => {
            return Err(CsrError::UnsupportedSanType { kind: "otherName" });
        }
        GeneralName::X400Address(..) => {
            return Err(CsrError::UnsupportedSanType {
                kind: "x400Address",
            });
        }
        GeneralName::DirectoryName(..) => {
            return Err(CsrError::UnsupportedSanType {
                kind: "directoryName",
            });
        }
        GeneralName::EDIPartyName(..) => {
            return Err(CsrError::UnsupportedSanType {
                kind: "ediPartyName",
            });
        }
        GeneralName::RegisteredID(..) => {
            return Err(CsrError::UnsupportedSanType {
                kind: "registeredID",
            });
        }
        GeneralName::Invalid(..) => {
            return Err(CsrError::UnsupportedSanType {
                kind: "undecodable name",
            });
        }
    }
    Ok(())
}
