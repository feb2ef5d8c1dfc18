//! The cached Issuers and ClusterIssuers as both front doors look them up: one issuer's state
//! (missing, not ready, ready with its settings) and the namespaces whose identities it may
//! sign; reads the caches only, writes nothing.

use kube::runtime::reflector::{ObjectRef, Store};

use crate::crd::{ClusterIssuer, Issuer, IssuerSpec};
use crate::issuer::decide::{IssuerKind, IssuerState, issuer_readiness};

/// The issuer caches the issuer watches fill.
#[derive(Clone)]
pub struct IssuerCaches {
    /// Namespaced Issuers.
    pub issuers: Store<Issuer>,
    /// ClusterIssuers.
    pub cluster_issuers: Store<ClusterIssuer>,
}

impl IssuerCaches {
    /// Issuer `name` of `kind` (an Issuer in `namespace`) as the request decisions see it, with
    /// the namespaces whose identities it may sign: an Issuer's own namespace, a ClusterIssuer's
    /// `spec.identityNamespaces` (`None` when unset).
    pub fn lookup(
        &self,
        kind: IssuerKind,
        namespace: Option<&str>,
        name: &str,
    ) -> (IssuerState, Option<Vec<String>>) {
        let found = match kind {
            IssuerKind::Issuer => {
                let Some(ns) = namespace else {
                    return (IssuerState::Missing, None);
                };
                self.issuers.get(&ObjectRef::new(name).within(ns)).map(|i| {
                    (
                        i.spec.clone(),
                        i.status.clone(),
                        i.metadata.generation,
                        Some(vec![ns.to_owned()]),
                    )
                })
            }
            IssuerKind::ClusterIssuer => self.cluster_issuers.get(&ObjectRef::new(name)).map(|i| {
                (
                    IssuerSpec::from(&i.spec),
                    i.status.clone(),
                    i.metadata.generation,
                    i.spec.identity_namespaces.clone(),
                )
            }),
        };
        let Some((spec, status, generation, identity_namespaces)) = found else {
            return (IssuerState::Missing, None);
        };
        (
            issuer_readiness(spec, status.as_ref(), generation),
            identity_namespaces,
        )
    }
}
