//! The `reference` check for namespaced Issuers, as cert-manager makes it: a SubjectAccessReview
//! that the CSR's requester may `reference` the `signers` of our group in the Issuer's namespace,
//! by the Issuer's name or `*`; answers are cached per (requester, issuer) for 30 s so a CSR
//! decided twice costs one review. It writes nothing else.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, PostParams};

use crate::kube_csr::decide::Reference;
use crate::rbac::{AUTHORIZATION, KubeCall, Needs};

/// The API calls this module makes (see [`crate::rbac`]): `create` of SubjectAccessReviews.
pub const KUBE_CALLS: &[KubeCall] =
    &[
        KubeCall::cluster(AUTHORIZATION, "subjectaccessreviews", "", "create")
            .when(Needs::CertificateSigningRequests),
    ];

/// How long a review's answer is reused for the same requester and issuer.
const CACHE_TTL: Duration = Duration::from_secs(30);

/// Entries beyond which a check first drops expired ones.
const SWEEP_FROM: usize = 1024;

/// (requester, issuer namespace, issuer name).
type Key = (String, String, String);

/// Cached review answers: `None` = allowed, `Some(message)` = denied.
#[derive(Default)]
pub(super) struct ReferenceCache {
    entries: Mutex<HashMap<Key, (Option<String>, Instant)>>,
}

impl ReferenceCache {
    /// Whether the CSR's requester may reference Issuer `namespace/name`: from the cache when a
    /// review of the last 30 s answered, else by reviews for the name, then for `*`.
    pub(super) async fn check(
        &self,
        client: &kube::Client,
        csr: &CertificateSigningRequest,
        group: &str,
        namespace: &str,
        name: &str,
    ) -> Reference {
        let user = csr.spec.username.clone().unwrap_or_default();
        let key = (user.clone(), namespace.to_owned(), name.to_owned());
        if let Some(cached) = self.cached(&key) {
            return as_reference(cached);
        }
        let api: Api<SubjectAccessReview> = Api::all(client.clone());
        let mut denied = None;
        for resource_name in [name, "*"] {
            let review = review(csr, group, namespace, resource_name);
            match api.create(&PostParams::default(), &review).await {
                Ok(answer) if answer.status.as_ref().is_some_and(|s| s.allowed) => {
                    denied = None;
                    break;
                }
                Ok(_) => {
                    denied = Some(format!(
                        "requester {user:?} may not reference Issuer {namespace}/{name}: a SubjectAccessReview for verb \"reference\" on resource \"signers\" of group {group:?} in namespace {namespace:?}, name {name:?} or \"*\", was denied"
                    ));
                }
                Err(e) => {
                    return Reference::Unknown(format!("SubjectAccessReview failed: {e}"));
                }
            }
        }
        self.store(key, denied.clone());
        as_reference(denied)
    }

    fn cached(&self, key: &Key) -> Option<Option<String>> {
        let entries = self.lock();
        let (answer, at) = entries.get(key)?;
        (at.elapsed() < CACHE_TTL).then(|| answer.clone())
    }

    fn store(&self, key: Key, answer: Option<String>) {
        let mut entries = self.lock();
        if entries.len() >= SWEEP_FROM {
            entries.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        entries.insert(key, (answer, Instant::now()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Option<String>, Instant)>> {
        // Each operation is one call on the map: a panic cannot leave it half-changed.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn as_reference(denied: Option<String>) -> Reference {
    match denied {
        None => Reference::Allowed,
        Some(message) => Reference::Denied(message),
    }
}

/// The review cert-manager makes: the CSR's requester (user, uid, groups, extra) may `reference`
/// `signers` of `group` named `resource_name` in `namespace`.
fn review(
    csr: &CertificateSigningRequest,
    group: &str,
    namespace: &str,
    resource_name: &str,
) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: csr.spec.username.clone(),
            uid: csr.spec.uid.clone(),
            groups: csr.spec.groups.clone(),
            extra: csr.spec.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some(group.to_owned()),
                resource: Some("signers".to_owned()),
                verb: Some("reference".to_owned()),
                namespace: Some(namespace.to_owned()),
                name: Some(resource_name.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;

    #[test]
    fn the_review_is_cert_managers_reference_check() {
        let csr = CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                username: Some("alice".into()),
                groups: Some(vec!["devs".into()]),
                uid: Some("u-1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let r = review(&csr, "firefly.venafi.com", "sandbox", "my-issuer");
        assert_eq!(r.spec.user.as_deref(), Some("alice"));
        assert_eq!(r.spec.groups, Some(vec!["devs".to_owned()]));
        assert_eq!(r.spec.uid.as_deref(), Some("u-1"));
        let a = r.spec.resource_attributes.unwrap();
        assert_eq!(
            (
                a.group.as_deref(),
                a.resource.as_deref(),
                a.verb.as_deref(),
                a.namespace.as_deref(),
                a.name.as_deref()
            ),
            (
                Some("firefly.venafi.com"),
                Some("signers"),
                Some("reference"),
                Some("sandbox"),
                Some("my-issuer")
            )
        );
    }

    #[test]
    fn answers_are_reused_for_thirty_seconds_per_requester_and_issuer() {
        let cache = ReferenceCache::default();
        let key = |u: &str| (u.to_owned(), "ns".to_owned(), "i".to_owned());
        cache.store(key("alice"), Some("denied".into()));
        assert_eq!(cache.cached(&key("alice")), Some(Some("denied".into())));
        assert_eq!(cache.cached(&key("bob")), None);
        cache.lock().get_mut(&key("alice")).unwrap().1 = Instant::now() - CACHE_TTL;
        assert_eq!(cache.cached(&key("alice")), None, "expired after 30 s");
    }
}
