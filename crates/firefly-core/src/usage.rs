//! Key usage and extended key usage names as TLSPC and cert-manager spell them; performs no I/O.

/// A keyUsage bit (RFC 5280 §4.2.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KeyUsage {
    /// digitalSignature (bit 0).
    DigitalSignature,
    /// nonRepudiation / contentCommitment (bit 1).
    NonRepudiation,
    /// keyEncipherment (bit 2).
    KeyEncipherment,
    /// dataEncipherment (bit 3).
    DataEncipherment,
    /// keyAgreement (bit 4).
    KeyAgreement,
    /// keyCertSign (bit 5): never on a leaf.
    KeyCertSign,
    /// cRLSign (bit 6): never on a leaf.
    CrlSign,
    /// encipherOnly (bit 7).
    EncipherOnly,
    /// decipherOnly (bit 8).
    DecipherOnly,
}

impl KeyUsage {
    /// Every key usage, in bit order.
    pub const ALL: [KeyUsage; 9] = [
        Self::DigitalSignature,
        Self::NonRepudiation,
        Self::KeyEncipherment,
        Self::DataEncipherment,
        Self::KeyAgreement,
        Self::KeyCertSign,
        Self::CrlSign,
        Self::EncipherOnly,
        Self::DecipherOnly,
    ];

    /// The TLSPC name (`digitalSignature`).
    pub fn tlspc_name(self) -> &'static str {
        match self {
            Self::DigitalSignature => "digitalSignature",
            Self::NonRepudiation => "nonRepudiation",
            Self::KeyEncipherment => "keyEncipherment",
            Self::DataEncipherment => "dataEncipherment",
            Self::KeyAgreement => "keyAgreement",
            Self::KeyCertSign => "keyCertSign",
            Self::CrlSign => "cRLSign",
            Self::EncipherOnly => "encipherOnly",
            Self::DecipherOnly => "decipherOnly",
        }
    }

    /// Parses a TLSPC name.
    pub fn from_tlspc(name: &str) -> Option<KeyUsage> {
        Self::ALL.into_iter().find(|u| u.tlspc_name() == name)
    }

    /// The bit number in the keyUsage BIT STRING.
    pub fn bit(self) -> u32 {
        Self::ALL.iter().position(|u| *u == self).unwrap_or(0) as u32
    }
}

/// An extended key usage TLSPC knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ExtendedKeyUsage {
    /// anyExtendedKeyUsage: refused in policies.
    Any,
    /// id-kp-serverAuth.
    ServerAuth,
    /// id-kp-clientAuth.
    ClientAuth,
    /// id-kp-codeSigning.
    CodeSigning,
    /// id-kp-emailProtection.
    EmailProtection,
    /// id-kp-ipsecEndSystem.
    IpsecEndSystem,
    /// id-kp-ipsecTunnel.
    IpsecTunnel,
    /// id-kp-ipsecUser.
    IpsecUser,
    /// id-kp-timeStamping.
    TimeStamping,
    /// id-kp-OCSPSigning.
    OcspSigning,
    /// id-kp-dvcs.
    Dvcs,
    /// id-kp-sbgpCertAAServerAuth.
    SbgpCertAaServerAuth,
    /// id-kp-scvp-responder.
    ScvpResponder,
    /// id-kp-eapOverPPP.
    EapOverPpp,
    /// id-kp-eapOverLAN.
    EapOverLan,
    /// id-kp-scvpServer.
    ScvpServer,
    /// id-kp-scvpClient.
    ScvpClient,
    /// id-kp-ipsecIKE.
    IpsecIke,
    /// id-kp-capwapAC.
    CapwapAc,
    /// id-kp-capwapWTP.
    CapwapWtp,
    /// IKE intermediate (1.3.6.1.5.5.8.2.2).
    IpsecIkeIntermediate,
    /// Microsoft smart card logon.
    SmartcardLogon,
}

impl ExtendedKeyUsage {
    /// Every EKU TLSPC names.
    pub const ALL: [ExtendedKeyUsage; 22] = [
        Self::Any,
        Self::ServerAuth,
        Self::ClientAuth,
        Self::CodeSigning,
        Self::EmailProtection,
        Self::IpsecEndSystem,
        Self::IpsecTunnel,
        Self::IpsecUser,
        Self::TimeStamping,
        Self::OcspSigning,
        Self::Dvcs,
        Self::SbgpCertAaServerAuth,
        Self::ScvpResponder,
        Self::EapOverPpp,
        Self::EapOverLan,
        Self::ScvpServer,
        Self::ScvpClient,
        Self::IpsecIke,
        Self::CapwapAc,
        Self::CapwapWtp,
        Self::IpsecIkeIntermediate,
        Self::SmartcardLogon,
    ];

    /// The TLSPC name (`SERVER_AUTH`).
    pub fn tlspc_name(self) -> &'static str {
        match self {
            Self::Any => "ANY",
            Self::ServerAuth => "SERVER_AUTH",
            Self::ClientAuth => "CLIENT_AUTH",
            Self::CodeSigning => "CODE_SIGNING",
            Self::EmailProtection => "EMAIL_PROTECTION",
            Self::IpsecEndSystem => "IPSEC_ENDSYSTEM",
            Self::IpsecTunnel => "IPSEC_TUNNEL",
            Self::IpsecUser => "IPSEC_USER",
            Self::TimeStamping => "TIME_STAMPING",
            Self::OcspSigning => "OCSP_SIGNING",
            Self::Dvcs => "DVCS",
            Self::SbgpCertAaServerAuth => "SBGP_CERT_AA_SERVER_AUTH",
            Self::ScvpResponder => "SCVP_RESPONDER",
            Self::EapOverPpp => "EAP_OVER_PPP",
            Self::EapOverLan => "EAP_OVER_LAN",
            Self::ScvpServer => "SCVP_SERVER",
            Self::ScvpClient => "SCVP_CLIENT",
            Self::IpsecIke => "IPSEC_IKE",
            Self::CapwapAc => "CAPWAP_AC",
            Self::CapwapWtp => "CAPWAP_WTP",
            Self::IpsecIkeIntermediate => "IPSEC_IKE_INTERMEDIATE",
            Self::SmartcardLogon => "SMARTCARD_LOGON",
        }
    }

    /// Parses a TLSPC name.
    pub fn from_tlspc(name: &str) -> Option<ExtendedKeyUsage> {
        Self::ALL.into_iter().find(|u| u.tlspc_name() == name)
    }

    /// The OID arcs.
    pub fn oid(self) -> &'static [u64] {
        match self {
            Self::Any => &[2, 5, 29, 37, 0],
            Self::ServerAuth => &[1, 3, 6, 1, 5, 5, 7, 3, 1],
            Self::ClientAuth => &[1, 3, 6, 1, 5, 5, 7, 3, 2],
            Self::CodeSigning => &[1, 3, 6, 1, 5, 5, 7, 3, 3],
            Self::EmailProtection => &[1, 3, 6, 1, 5, 5, 7, 3, 4],
            Self::IpsecEndSystem => &[1, 3, 6, 1, 5, 5, 7, 3, 5],
            Self::IpsecTunnel => &[1, 3, 6, 1, 5, 5, 7, 3, 6],
            Self::IpsecUser => &[1, 3, 6, 1, 5, 5, 7, 3, 7],
            Self::TimeStamping => &[1, 3, 6, 1, 5, 5, 7, 3, 8],
            Self::OcspSigning => &[1, 3, 6, 1, 5, 5, 7, 3, 9],
            Self::Dvcs => &[1, 3, 6, 1, 5, 5, 7, 3, 10],
            Self::SbgpCertAaServerAuth => &[1, 3, 6, 1, 5, 5, 7, 3, 11],
            Self::ScvpResponder => &[1, 3, 6, 1, 5, 5, 7, 3, 12],
            Self::EapOverPpp => &[1, 3, 6, 1, 5, 5, 7, 3, 13],
            Self::EapOverLan => &[1, 3, 6, 1, 5, 5, 7, 3, 14],
            Self::ScvpServer => &[1, 3, 6, 1, 5, 5, 7, 3, 15],
            Self::ScvpClient => &[1, 3, 6, 1, 5, 5, 7, 3, 16],
            Self::IpsecIke => &[1, 3, 6, 1, 5, 5, 7, 3, 17],
            Self::CapwapAc => &[1, 3, 6, 1, 5, 5, 7, 3, 18],
            Self::CapwapWtp => &[1, 3, 6, 1, 5, 5, 7, 3, 19],
            Self::IpsecIkeIntermediate => &[1, 3, 6, 1, 5, 5, 8, 2, 2],
            Self::SmartcardLogon => &[1, 3, 6, 1, 4, 1, 311, 20, 2, 2],
        }
    }

    /// Finds the EKU with these OID arcs.
    pub fn from_oid(arcs: &[u64]) -> Option<ExtendedKeyUsage> {
        Self::ALL.into_iter().find(|u| u.oid() == arcs)
    }
}

/// A cert-manager `spec.usages` value mapped to what it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertManagerUsage {
    /// A keyUsage bit.
    Key(KeyUsage),
    /// An extended key usage.
    Extended(ExtendedKeyUsage),
}

/// Maps cert-manager's `KeyUsage` strings (`"digital signature"`, `"server auth"`, ...).
pub fn cert_manager_usage(name: &str) -> Option<CertManagerUsage> {
    use CertManagerUsage::{Extended as E, Key as K};
    Some(match name {
        "signing" | "digital signature" => K(KeyUsage::DigitalSignature),
        "content commitment" => K(KeyUsage::NonRepudiation),
        "key encipherment" => K(KeyUsage::KeyEncipherment),
        "data encipherment" => K(KeyUsage::DataEncipherment),
        "key agreement" => K(KeyUsage::KeyAgreement),
        "cert sign" => K(KeyUsage::KeyCertSign),
        "crl sign" => K(KeyUsage::CrlSign),
        "encipher only" => K(KeyUsage::EncipherOnly),
        "decipher only" => K(KeyUsage::DecipherOnly),
        "any" => E(ExtendedKeyUsage::Any),
        "server auth" => E(ExtendedKeyUsage::ServerAuth),
        "client auth" => E(ExtendedKeyUsage::ClientAuth),
        "code signing" => E(ExtendedKeyUsage::CodeSigning),
        "email protection" | "s/mime" => E(ExtendedKeyUsage::EmailProtection),
        "ipsec end system" => E(ExtendedKeyUsage::IpsecEndSystem),
        "ipsec tunnel" => E(ExtendedKeyUsage::IpsecTunnel),
        "ipsec user" => E(ExtendedKeyUsage::IpsecUser),
        "timestamping" => E(ExtendedKeyUsage::TimeStamping),
        "ocsp signing" => E(ExtendedKeyUsage::OcspSigning),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for u in KeyUsage::ALL {
            assert_eq!(KeyUsage::from_tlspc(u.tlspc_name()), Some(u));
        }
        for u in ExtendedKeyUsage::ALL {
            assert_eq!(ExtendedKeyUsage::from_tlspc(u.tlspc_name()), Some(u));
            assert_eq!(ExtendedKeyUsage::from_oid(u.oid()), Some(u));
        }
        assert_eq!(KeyUsage::CrlSign.bit(), 6);
    }

    #[test]
    fn cert_manager_usages_map_to_tlspc_names() {
        assert_eq!(
            cert_manager_usage("digital signature"),
            Some(CertManagerUsage::Key(KeyUsage::DigitalSignature))
        );
        assert_eq!(
            cert_manager_usage("client auth"),
            Some(CertManagerUsage::Extended(ExtendedKeyUsage::ClientAuth))
        );
        assert_eq!(cert_manager_usage("bogus"), None);
    }
}
