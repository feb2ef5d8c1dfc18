//! The Kubernetes API calls the controller may make, as RBAC sees them: each module that talks to
//! the API server declares its own calls in a `KUBE_CALLS` table next to the code that makes
//! them; [`MODULE_CALLS`] lists those tables, and [`grants`] is their union, the exact set of
//! rules the chart's Roles and ClusterRoles must grant (tests/helm_security.rs) and the bound
//! every call of an end-to-end run under RBAC must stay within (tests/controller_rbac.rs).
//!
//! A new module that calls the API server adds its table here; nothing else changes.

use std::collections::BTreeSet;
use std::fmt;

/// The API group of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// A group fixed by Kubernetes or cert-manager (`""` for the core group).
    Fixed(&'static str),
    /// Our own CRDs' group: `controller.cert-manager.groupName` (chart value `crd.groupName`).
    Issuers,
}

/// Where a call's grant must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Every namespace (a ClusterRole bound by a ClusterRoleBinding).
    Cluster,
    /// Only the controller's own namespace (`controller.leaderElectionNamespace`; a Role).
    OwnNamespace,
}

/// What makes the controller make a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Needs {
    /// Every running controller.
    Always,
    /// Only with `controller.leaderElection.enabled`.
    LeaderElection,
    /// Only with `controller.certificateSigningRequests.enabled`.
    CertificateSigningRequests,
    /// Only with `controller.podCertificates.enabled`.
    PodCertificates,
    /// Only when a pod-certificate signer sets `verifyPod: true`.
    PodVerification,
}

/// One `(group, resource, subresource, verb)` the controller may call, with the scope and the
/// feature it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubeCall {
    /// API group.
    pub group: Group,
    /// Plural resource name.
    pub resource: &'static str,
    /// Subresource (`""` for none).
    pub subresource: &'static str,
    /// RBAC verb (`get list watch create update patch delete`).
    pub verb: &'static str,
    /// Where the grant must hold.
    pub scope: Scope,
    /// The feature the call belongs to.
    pub needs: Needs,
}

impl KubeCall {
    /// A call every controller makes, in every namespace.
    pub const fn cluster(
        group: Group,
        resource: &'static str,
        subresource: &'static str,
        verb: &'static str,
    ) -> KubeCall {
        KubeCall {
            group,
            resource,
            subresource,
            verb,
            scope: Scope::Cluster,
            needs: Needs::Always,
        }
    }

    /// The same call limited to the controller's own namespace, made only when `needs` is on.
    pub const fn in_own_namespace(self, needs: Needs) -> KubeCall {
        KubeCall {
            scope: Scope::OwnNamespace,
            needs,
            ..self
        }
    }

    /// The same call, made only when `needs` is on.
    pub const fn when(self, needs: Needs) -> KubeCall {
        KubeCall { needs, ..self }
    }

    /// This call as one RBAC rule, with our CRDs' group `issuer_group`.
    pub fn grant(&self, issuer_group: &str) -> Grant {
        let group = match self.group {
            Group::Fixed(g) => g,
            Group::Issuers => issuer_group,
        };
        let resource = if self.subresource.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        };
        Grant {
            scope: self.scope,
            group: group.to_owned(),
            resource,
            verb: self.verb.to_owned(),
        }
    }
}

/// cert-manager's group.
pub const CERT_MANAGER: Group = Group::Fixed("cert-manager.io");
/// The group of the Events kube-rs's `Recorder` writes.
pub const EVENTS: Group = Group::Fixed("events.k8s.io");
/// The group of CertificateSigningRequests and signers.
pub const CERTIFICATES: Group = Group::Fixed("certificates.k8s.io");
/// The group of SubjectAccessReviews.
pub const AUTHORIZATION: Group = Group::Fixed("authorization.k8s.io");
/// The group of Leases.
pub const COORDINATION: Group = Group::Fixed("coordination.k8s.io");

/// What kube-rs's `Recorder::publish` sends: `create` of an `events.k8s.io/v1` Event, then a merge
/// `patch` of its series when the same event repeats. Events land in the namespace of the object
/// they regard, so the grant is cluster-wide.
pub const RECORDER_CALLS: &[KubeCall] = &[
    KubeCall::cluster(EVENTS, "events", "", "create"),
    KubeCall::cluster(EVENTS, "events", "", "patch"),
];

/// Every module that calls the API server, with its table.
pub const MODULE_CALLS: &[(&str, &[KubeCall])] = &[
    ("issuer::controller", crate::issuer::controller::KUBE_CALLS),
    (
        "issuer::controller::issuer_watch",
        crate::issuer::controller::issuer_watch::KUBE_CALLS,
    ),
    (
        "issuer::controller::issuer_status",
        crate::issuer::controller::issuer_status::KUBE_CALLS,
    ),
    (
        "issuer::controller::apply",
        crate::issuer::controller::apply::KUBE_CALLS,
    ),
    (
        "issuer::controller::report",
        crate::issuer::controller::report::KUBE_CALLS,
    ),
    ("leader", crate::leader::KUBE_CALLS),
    (
        "kube_csr::controller",
        crate::kube_csr::controller::KUBE_CALLS,
    ),
    (
        "kube_csr::controller::apply",
        crate::kube_csr::controller::apply::KUBE_CALLS,
    ),
    (
        "kube_csr::controller::access",
        crate::kube_csr::controller::access::KUBE_CALLS,
    ),
    (
        "pod_certs::controller",
        crate::pod_certs::controller::KUBE_CALLS,
    ),
    ("pod_certs::pods", crate::pod_certs::pods::KUBE_CALLS),
];

/// One RBAC rule as the chart must render it: `resource` carries the subresource
/// (`issuers/status`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grant {
    /// Cluster-wide or in the controller's namespace only.
    pub scope: Scope,
    /// API group, resolved.
    pub group: String,
    /// `plural` or `plural/subresource`.
    pub resource: String,
    /// Verb.
    pub verb: String,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = match self.scope {
            Scope::Cluster => "cluster",
            Scope::OwnNamespace => "own namespace",
        };
        write!(
            f,
            "{} {}/{} ({scope})",
            self.verb, self.group, self.resource
        )
    }
}

/// Every call of every module, once each.
pub fn calls() -> BTreeSet<KubeCall> {
    MODULE_CALLS
        .iter()
        .flat_map(|(_, table)| table.iter().copied())
        .collect()
}

/// The rules a controller with our CRDs in `issuer_group` needs, `leader_election` on or off:
/// no more, no less.
pub fn grants(issuer_group: &str, leader_election: bool) -> BTreeSet<Grant> {
    grants_with(issuer_group, leader_election, false)
}

/// [`grants`], with the CertificateSigningRequest front door on or off.
pub fn grants_with(
    issuer_group: &str,
    leader_election: bool,
    certificate_signing_requests: bool,
) -> BTreeSet<Grant> {
    grants_for(
        issuer_group,
        Features {
            leader_election,
            certificate_signing_requests,
            ..Features::default()
        },
    )
}

/// The optional parts of the controller that need grants of their own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// `controller.leaderElection.enabled`.
    pub leader_election: bool,
    /// `controller.certificateSigningRequests.enabled`.
    pub certificate_signing_requests: bool,
    /// `controller.podCertificates.enabled`.
    pub pod_certificates: bool,
    /// Some pod-certificate signer sets `verifyPod: true` (and the door is enabled).
    pub verify_pod: bool,
}

/// The grants the controller needs with `features` on.
pub fn grants_for(issuer_group: &str, features: Features) -> BTreeSet<Grant> {
    calls()
        .iter()
        .filter(|c| match c.needs {
            Needs::Always => true,
            Needs::LeaderElection => features.leader_election,
            Needs::CertificateSigningRequests => features.certificate_signing_requests,
            Needs::PodCertificates => features.pod_certificates,
            Needs::PodVerification => features.pod_certificates && features.verify_pod,
        })
        .map(|c| c.grant(issuer_group))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_table_is_non_empty_and_names_known_verbs() {
        for (module, table) in MODULE_CALLS {
            assert!(!table.is_empty(), "{module} declares no call");
            for call in *table {
                assert!(
                    [
                        "get", "list", "watch", "create", "update", "patch", "delete", "sign"
                    ]
                    .contains(&call.verb),
                    "{module}: unknown verb {call:?}"
                );
            }
        }
    }

    #[test]
    fn grants_resolve_the_issuer_group_and_leave_leases_to_leader_election() {
        let with = grants("issuers.example.org", true);
        let without = grants("issuers.example.org", false);
        let lease = Grant {
            scope: Scope::OwnNamespace,
            group: "coordination.k8s.io".into(),
            resource: "leases".into(),
            verb: "update".into(),
        };
        assert!(with.contains(&lease));
        assert!(!without.contains(&lease));
        assert!(with.contains(&Grant {
            scope: Scope::Cluster,
            group: "issuers.example.org".into(),
            resource: "issuers/status".into(),
            verb: "patch".into(),
        }));
        assert!(with.iter().all(|g| g.group != "firefly.venafi.com"));
    }

    #[test]
    fn pod_certificate_grants_come_only_with_the_door_and_pods_only_with_verify_pod() {
        let grant = |group: &str, resource: &str, verb: &str| Grant {
            scope: Scope::Cluster,
            group: group.into(),
            resource: resource.into(),
            verb: verb.into(),
        };
        let door = [
            grant("certificates.k8s.io", "podcertificaterequests", "list"),
            grant("certificates.k8s.io", "podcertificaterequests", "watch"),
            grant(
                "certificates.k8s.io",
                "podcertificaterequests/status",
                "patch",
            ),
            grant("certificates.k8s.io", "signers", "sign"),
        ];
        let pods = [grant("", "pods", "list"), grant("", "pods", "watch")];
        let off = grants_for("g", Features::default());
        let on = grants_for(
            "g",
            Features {
                pod_certificates: true,
                ..Features::default()
            },
        );
        let verify = grants_for(
            "g",
            Features {
                pod_certificates: true,
                verify_pod: true,
                ..Features::default()
            },
        );
        for g in &door {
            assert!(
                !off.contains(g) && on.contains(g) && verify.contains(g),
                "{g}"
            );
        }
        for g in &pods {
            assert!(!on.contains(g) && verify.contains(g), "{g}");
        }
        assert_eq!(grants_with("g", false, false), off);
    }
}
