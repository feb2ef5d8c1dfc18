//! Who may obtain which identity (DESIGN §8): the requester lists, the issuer's policy list and the
//! namespace rule, as one [`Scope`] every front door builds and the core enforces. Performs no I/O.
//!
//! # The model
//! - `controller.allowedRequesters` (`controller_allowed`): empty refuses every requester
//!   ([`reason::REQUESTERS_NOT_CONFIGURED`]); `"*"` allows every requester; otherwise the requester
//!   must be listed ([`reason::REQUESTER_NOT_ALLOWED`]).
//! - The issuer's `spec.allowedRequesters` (`issuer_allowed`) only narrows: `None` (absent) and
//!   `["*"]` narrow nothing, `[]` allows nobody, a list allows its members that the controller list
//!   also allows. It never widens the controller list.
//! - The issuer's `spec.allowedPolicies` (`allowed_policies`): when set, only those policies
//!   ([`reason::POLICY_DENIED`]).
//! - The namespace rule (`identity_namespaces`), checked after the request is decoded and before
//!   the policy: every SPIFFE ID's path starts with `/ns/<N>/` and every DNS name of the form
//!   `<x>.<N>.svc[.<cluster domain>]` (SAN or common name) has an allowed `N`
//!   ([`reason::IDENTITY_OUTSIDE_NAMESPACE`], [`reason::DNS_NAME_OUTSIDE_NAMESPACE`]).
//!
//! # For front doors
//! Build a [`Scope::Requester`] from the request's `spec.username`, the controller's list, the
//! issuer's lists and the namespaces the request's identities may belong to, and put it in the
//! [`IssuanceRequest`](super::IssuanceRequest); [`issue`](super::issue) enforces all of it. A
//! front door that wants to refuse before any work may call [`Scope::authorize`] first (the core
//! calls it again). The CertificateRequest door passes the request's namespace, or
//! [`IdentityNamespaces::Any`] when that namespace is in `controller.meshIssuerNamespaces`; the
//! CertificateSigningRequest door passes the selected Issuer's namespace or a ClusterIssuer's
//! `spec.identityNamespaces`.

use crate::csr::CertificateRequest;
use crate::spiffe::SpiffeId;

/// The refusal reasons of this module (DESIGN §9, a contract: spelled exactly so).
pub mod reason {
    /// `controller.allowedRequesters` is empty: every requester is refused.
    pub const REQUESTERS_NOT_CONFIGURED: &str = "RequestersNotConfigured";
    /// The requester is not on the controller's list, or the issuer's list narrows it out.
    pub const REQUESTER_NOT_ALLOWED: &str = "RequesterNotAllowed";
    /// A SPIFFE ID outside the namespaces the request may carry identities of.
    pub const IDENTITY_OUTSIDE_NAMESPACE: &str = "IdentityOutsideNamespace";
    /// A `<x>.<ns>.svc` DNS name of a namespace the request may not carry identities of.
    pub const DNS_NAME_OUTSIDE_NAMESPACE: &str = "DNSNameOutsideNamespace";
    /// The policy refuses the request, or the issuer does not allow the policy.
    pub const POLICY_DENIED: &str = "PolicyDenied";
    /// The request is malformed (not a CSR, bad signature, weak key…).
    pub const INVALID_REQUEST: &str = "InvalidRequest";
    /// A signer's namespaces do not include the request's namespace (a PodCertificateRequest
    /// `Denied` reason).
    pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
}

/// The wildcard of the requester lists: every requester.
pub const ANY_REQUESTER: &str = "*";

/// What authorizes a request: the requester and the lists that apply to it, or a signer's
/// configuration. Never a front door's own object (a cert-manager Issuer, a signer resource).
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// A named requester (`spec.username` of a CertificateRequest or CertificateSigningRequest).
    Requester {
        /// The requester, when the API server recorded one (cert-manager's webhook sets it; a
        /// request without one matches only `"*"`).
        username: Option<&'a str>,
        /// The controller-wide list (`controller.allowedRequesters`): empty refuses everyone,
        /// `"*"` allows everyone.
        controller_allowed: &'a [String],
        /// The issuer's `spec.allowedRequesters`: `None` when absent (no narrowing), `[]` for
        /// nobody, `["*"]` for no narrowing. Narrows `controller_allowed`, never widens it.
        issuer_allowed: Option<&'a [String]>,
        /// The issuer's `spec.allowedPolicies`: `None` when absent (any policy of the
        /// configuration).
        allowed_policies: Option<&'a [String]>,
        /// The namespaces whose identities the request may carry.
        identity_namespaces: IdentityNamespaces<'a>,
    },
    /// A signer's configuration (PodCertificateRequests carry no requester).
    ///
    /// The request's namespace must be listed; `"*"` lists every namespace and an empty list
    /// refuses everything.
    Signer {
        /// The namespace the request was made in.
        namespace: &'a str,
        /// The namespaces the signer serves.
        namespaces: &'a [String],
    },
}

/// The namespaces whose identities (SPIFFE IDs `…/ns/<N>/…`, DNS names `<x>.<N>.svc…`) a request
/// may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityNamespaces<'a> {
    /// Exempt from the namespace rule (a `controller.meshIssuerNamespaces` namespace, where the
    /// mesh's CA client asks for every workload).
    Any,
    /// Only these namespaces (literal names; `"*"` is not a wildcard here, use [`Self::Any`]).
    /// An empty list allows no namespaced identity at all.
    Only(&'a [String]),
}

impl IdentityNamespaces<'_> {
    fn allows(&self, namespace: &str) -> bool {
        match self {
            IdentityNamespaces::Any => true,
            IdentityNamespaces::Only(list) => list.iter().any(|n| n == namespace),
        }
    }

    fn describe(&self) -> String {
        match self {
            IdentityNamespaces::Any => "any namespace".to_owned(),
            IdentityNamespaces::Only([one]) => format!("namespace {one:?}"),
            IdentityNamespaces::Only(list) => format!("namespaces {list:?}"),
        }
    }
}

impl Scope<'_> {
    /// Whether the scope allows the request at all: the requester lists and the issuer's policy
    /// list (`policy` is the policy the request names). Decodes nothing.
    ///
    /// # Errors
    /// A [`Refusal`] naming the list (its configuration key) that refused it.
    pub fn authorize(&self, policy: &str) -> Result<(), Refusal> {
        match *self {
            Scope::Requester {
                username,
                controller_allowed,
                issuer_allowed,
                allowed_policies,
                identity_namespaces: _,
            } => {
                authorize_requester(username, controller_allowed, issuer_allowed)?;
                match allowed_policies {
                    Some(list) if !list.iter().any(|p| p == policy) => Err(Refusal {
                        reason: reason::POLICY_DENIED,
                        message: format!(
                            "policy {policy:?} is not in the issuer's spec.allowedPolicies {list:?}"
                        ),
                    }),
                    _ => Ok(()),
                }
            }
            Scope::Signer {
                namespace,
                namespaces,
            } => {
                if namespaces.iter().any(|n| n == "*" || n == namespace) {
                    return Ok(());
                }
                Err(Refusal {
                    reason: reason::NAMESPACE_NOT_ALLOWED,
                    message: format!(
                        "namespace {namespace:?} is not in the signer's namespaces {namespaces:?} (\"*\" serves every namespace)"
                    ),
                })
            }
        }
    }

    /// The namespace rule for a decoded request: its SPIFFE IDs and `.svc` DNS names (SANs and
    /// common names) must belong to the scope's identity namespaces. A [`Scope::Signer`] asserts
    /// the identity itself and has no such rule.
    ///
    /// URI SANs that are not SPIFFE workload IDs are left to the SPIFFE rules of the policy
    /// engine, which refuse them.
    ///
    /// # Errors
    /// A [`Refusal`] naming the first identity outside the namespaces.
    pub fn check_identities(&self, csr: &CertificateRequest) -> Result<(), Refusal> {
        let Scope::Requester {
            identity_namespaces,
            ..
        } = *self
        else {
            return Ok(());
        };
        if identity_namespaces == IdentityNamespaces::Any {
            return Ok(());
        }
        for uri in &csr.sans.uris {
            let Ok(id) = SpiffeId::parse_workload(uri) else {
                continue;
            };
            match spiffe_namespace(&id) {
                Some(ns) if identity_namespaces.allows(ns) => {}
                Some(ns) => {
                    return Err(Refusal {
                        reason: reason::IDENTITY_OUTSIDE_NAMESPACE,
                        message: format!(
                            "SPIFFE ID {uri:?} names namespace {ns:?}; this request may only carry identities of {}",
                            identity_namespaces.describe()
                        ),
                    });
                }
                None => {
                    return Err(Refusal {
                        reason: reason::IDENTITY_OUTSIDE_NAMESPACE,
                        message: format!(
                            "SPIFFE ID {uri:?} has no namespace: its path must start with /ns/<namespace>/ (this request may only carry identities of {})",
                            identity_namespaces.describe()
                        ),
                    });
                }
            }
        }
        let names = csr.sans.dns_names.iter().chain(&csr.subject.common_name);
        for name in names {
            if let Some(ns) = service_namespaces(name).find(|ns| !identity_namespaces.allows(ns)) {
                return Err(Refusal {
                    reason: reason::DNS_NAME_OUTSIDE_NAMESPACE,
                    message: format!(
                        "DNS name {name:?} is a service name of namespace {ns:?}; this request may only carry names of {}",
                        identity_namespaces.describe()
                    ),
                });
            }
        }
        Ok(())
    }
}

fn authorize_requester(
    username: Option<&str>,
    controller_allowed: &[String],
    issuer_allowed: Option<&[String]>,
) -> Result<(), Refusal> {
    if controller_allowed.is_empty() {
        return Err(Refusal {
            reason: reason::REQUESTERS_NOT_CONFIGURED,
            message: "controller.allowedRequesters is empty, which refuses every requester: list the requesters (spec.username) allowed to obtain certificates, or \"*\" for all".to_owned(),
        });
    }
    let listed = |list: &[String]| {
        list.iter()
            .any(|a| a == ANY_REQUESTER || Some(a.as_str()) == username)
    };
    let shown = username.unwrap_or("");
    if !listed(controller_allowed) {
        return Err(Refusal {
            reason: reason::REQUESTER_NOT_ALLOWED,
            message: format!(
                "requester {shown:?} (spec.username) is not in controller.allowedRequesters"
            ),
        });
    }
    if let Some(list) = issuer_allowed
        && !listed(list)
    {
        return Err(Refusal {
            reason: reason::REQUESTER_NOT_ALLOWED,
            message: format!(
                "requester {shown:?} (spec.username) is not in the issuer's spec.allowedRequesters {list:?}, which narrows controller.allowedRequesters"
            ),
        });
    }
    Ok(())
}

/// `N` of a SPIFFE ID whose path starts with `/ns/N/`; `None` for any other path shape.
fn spiffe_namespace(id: &SpiffeId) -> Option<&str> {
    let rest = id.path().strip_prefix("/ns/")?;
    let (ns, after) = rest.split_once('/')?;
    (!ns.is_empty() && !after.is_empty()).then_some(ns)
}

/// The namespace `N` of every reading of `name` as `<x>.<N>.svc[.<cluster domain>]`: each label
/// `svc` preceded by at least two labels. The cluster domain is not known here, so every reading
/// counts and all must be allowed.
fn service_namespaces(name: &str) -> impl Iterator<Item = &str> {
    let labels: Vec<&str> = name.strip_suffix('.').unwrap_or(name).split('.').collect();
    let found: Vec<&str> = (2..labels.len())
        .filter(|&i| labels[i].eq_ignore_ascii_case("svc"))
        .map(|i| labels[i - 1])
        .collect();
    found.into_iter()
}

/// Why a scope refused a request (it becomes [`Outcome::Refused`](super::Outcome::Refused)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Short CamelCase cause from a bounded set ([`reason`]).
    pub reason: &'static str,
    /// Names the list and the value that refused the request.
    pub message: String,
}

#[cfg(test)]
mod tests;
