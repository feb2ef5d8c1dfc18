//! What the engine is asked and what it answers: the request beyond its CSR, every rule checked,
//! the denial, and the leaf profile to issue; performs no I/O.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use super::field::Field;
use crate::csr::CertificateRequest;
use crate::spiffe::{SpiffeId, TrustDomain};
use crate::usage::{ExtendedKeyUsage, KeyUsage};

/// What a request asks for, beyond its CSR.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The decoded, verified CSR.
    pub csr: &'a CertificateRequest,
    /// `spec.duration` (Go syntax), when set.
    pub duration: Option<&'a str>,
    /// `spec.usages`, when set.
    pub usages: Option<&'a [String]>,
    /// `spec.isCA`.
    pub is_ca: bool,
    /// The `istio.cert-manager.io/identities` annotation, when present.
    pub identities_annotation: Option<&'a str>,
    /// The issuer's trust domain, when it sets one.
    pub trust_domain: Option<&'a TrustDomain>,
    /// Requests shorter than this are refused.
    pub minimum_duration: Duration,
}

/// One rule applied to one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCheck {
    /// The policy or request field (`sans.uniformResourceIdentifiers`, `duration`).
    pub field: &'static str,
    /// The value judged.
    pub value: String,
    /// The rule (`REQUIRED: allowedValues`, `SPIFFE ID (C3, C15–C18)`).
    pub rule: Cow<'static, str>,
    /// Whether the value satisfies the rule.
    pub passed: bool,
    /// Why it failed (empty when it passed).
    pub message: String,
}

impl fmt::Display for RuleCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} breaks rule {}: {}",
            self.field, self.value, self.rule, self.message
        )
    }
}

/// The outcome of [`CompiledPolicy::evaluate`].
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The policy's name.
    pub policy: String,
    /// Every check made (only failures unless `explain` was set).
    pub checks: Vec<RuleCheck>,
    /// The leaf to issue, when every rule passed.
    pub profile: Option<LeafProfile>,
}

impl Evaluation {
    /// The failed checks.
    pub fn violations(&self) -> impl Iterator<Item = &RuleCheck> {
        self.checks.iter().filter(|c| !c.passed)
    }

    /// The profile, or a denial listing every broken rule.
    ///
    /// # Errors
    /// [`Denial`] when any rule failed.
    pub fn into_result(self) -> Result<LeafProfile, Denial> {
        match self.profile {
            Some(p) => Ok(p),
            None => Err(Denial {
                policy: self.policy,
                violations: self.checks.into_iter().filter(|c| !c.passed).collect(),
            }),
        }
    }
}

/// A refused request: every rule it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The policy's name.
    pub policy: String,
    /// The broken rules (field, value, rule, why).
    pub violations: Vec<RuleCheck>,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "denied by policy {:?}: {}",
            self.policy,
            join(&self.violations)
        )
    }
}

impl std::error::Error for Denial {}

/// The leaf a request will get: built from the policy and the validated identity only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafProfile {
    /// Subject attributes, in C, ST, L, O, OU, CN order.
    pub subject: Vec<(Field, String)>,
    /// dNSName SANs.
    pub dns_names: Vec<String>,
    /// iPAddress SANs.
    pub ip_addresses: Vec<IpAddr>,
    /// rfc822Name SANs.
    pub rfc822_names: Vec<String>,
    /// URI SANs (at most one, a SPIFFE ID, unless LOCKED by the policy).
    pub uris: Vec<String>,
    /// The SPIFFE ID, when the leaf is an SVID.
    pub spiffe_id: Option<SpiffeId>,
    /// keyUsage bits.
    pub key_usages: Vec<KeyUsage>,
    /// extendedKeyUsages.
    pub extended_key_usages: Vec<ExtendedKeyUsage>,
    /// Lifetime before the sub-CA clamp, in whole seconds (the policy drops any fractional
    /// second of the requested duration or of `validityPeriod`).
    pub lifetime: Duration,
    /// The requested duration, when the policy shortened it.
    pub clamped_from: Option<Duration>,
}

/// Items joined with `; ` (violations in one message).
pub(super) fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
