//! The subject attributes and SAN types a policy governs, with their JSON field paths; performs
//! no I/O.

/// A subject attribute or SAN type, with its JSON field path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Field {
    /// subject.commonName
    CommonName,
    /// subject.organization
    Organization,
    /// subject.organizationalUnit
    OrganizationalUnit,
    /// subject.locality
    Locality,
    /// subject.stateOrProvince
    StateOrProvince,
    /// subject.country
    Country,
    /// sans.dnsNames
    DnsNames,
    /// sans.ipAddresses
    IpAddresses,
    /// sans.rfc822Names
    Rfc822Names,
    /// sans.uniformResourceIdentifiers
    Uris,
}

impl Field {
    const SANS: [Field; 4] = [
        Field::DnsNames,
        Field::IpAddresses,
        Field::Rfc822Names,
        Field::Uris,
    ];

    /// The policy document's path for this field.
    pub fn path(self) -> &'static str {
        match self {
            Field::CommonName => "subject.commonName",
            Field::Organization => "subject.organization",
            Field::OrganizationalUnit => "subject.organizationalUnit",
            Field::Locality => "subject.locality",
            Field::StateOrProvince => "subject.stateOrProvince",
            Field::Country => "subject.country",
            Field::DnsNames => "sans.dnsNames",
            Field::IpAddresses => "sans.ipAddresses",
            Field::Rfc822Names => "sans.rfc822Names",
            Field::Uris => "sans.uniformResourceIdentifiers",
        }
    }

    pub(crate) fn is_san(self) -> bool {
        Self::SANS.contains(&self)
    }
}
