//! The `reference` check for namespaced Issuers, as cert-manager makes it: a SubjectAccessReview
//! that the CSR's requester may `reference` the `signers` of our group in the Issuer's namespace,
//! by the Issuer's name or `*`. Answers are cached for 30 s per requester (the whole identity the
//! review names: user, uid, groups and extra) and issuer, and concurrent checks of one requester
//! and issuer share one review, so a burst of CSRs costs one review. It writes nothing else.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
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

/// What a review is about: every field of the requester the review sends (an authorizer may
/// decide on any of them, so two requesters that differ in one never share an answer) and the
/// Issuer.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Key {
    user: Option<String>,
    uid: Option<String>,
    groups: Option<Vec<String>>,
    extra: Option<BTreeMap<String, Vec<String>>>,
    namespace: String,
    name: String,
}

impl Key {
    fn of(csr: &CertificateSigningRequest, namespace: &str, name: &str) -> Key {
        Key {
            user: csr.spec.username.clone(),
            uid: csr.spec.uid.clone(),
            groups: csr.spec.groups.clone(),
            extra: csr.spec.extra.clone(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// A review answer (`None` = allowed, `Some(message)` = denied) and when it was given.
type Answer = (Option<String>, Instant);

/// One key's answer; a check holds its lock while it asks, so concurrent checks of the key wait
/// for that answer instead of asking again.
type Slot = Arc<tokio::sync::Mutex<Option<Answer>>>;

/// Cached review answers.
#[derive(Default)]
pub(super) struct ReferenceCache {
    entries: Mutex<HashMap<Key, Slot>>,
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
        let slot = self.slot(Key::of(csr, namespace, name));
        let mut answer = slot.lock().await;
        if let Some(cached) = fresh(answer.as_ref()) {
            return as_reference(cached);
        }
        let user = csr.spec.username.clone().unwrap_or_default();
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
                    // Not cached: the next check (a waiting one, or the retry) asks again.
                    return Reference::Unknown(format!("SubjectAccessReview failed: {e}"));
                }
            }
        }
        *answer = Some((denied.clone(), Instant::now()));
        as_reference(denied)
    }

    /// The slot of `key`, created when missing; expired slots no check holds are dropped first
    /// once the map is large.
    fn slot(&self, key: Key) -> Slot {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= SWEEP_FROM && !entries.contains_key(&key) {
            entries.retain(|_, slot| {
                slot.try_lock()
                    .map_or(true, |answer| fresh(answer.as_ref()).is_some())
            });
        }
        Arc::clone(entries.entry(key).or_default())
    }
}

/// The cached answer, if it is less than [`CACHE_TTL`] old.
fn fresh(answer: Option<&Answer>) -> Option<Option<String>> {
    let (denied, at) = answer?;
    (at.elapsed() < CACHE_TTL).then(|| denied.clone())
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
    fn an_answer_is_reused_for_thirty_seconds() {
        let now = Instant::now();
        assert_eq!(fresh(None), None);
        assert_eq!(
            fresh(Some(&(Some("denied".into()), now))),
            Some(Some("denied".into()))
        );
        assert_eq!(fresh(Some(&(None, now))), Some(None));
        assert_eq!(fresh(Some(&(None, now - CACHE_TTL))), None, "expired");
    }

    fn requester(user: &str, groups: &[&str]) -> CertificateSigningRequest {
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                username: Some(user.into()),
                groups: Some(groups.iter().map(|g| (*g).to_owned()).collect()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Against kube-sim's RBAC: a burst of checks for one requester and issuer makes one review,
    /// and a requester that differs only in its groups gets its own review and its own answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_shares_one_review_and_each_identity_gets_its_own() {
        let sim = kube_sim::KubeSim::start(kube_sim::SimOptions::authenticating())
            .await
            .unwrap();
        sim.put_object(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sandbox"},
        }))
        .unwrap();
        sim.put_object(serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "signer-reference"},
            "rules": [{"apiGroups": ["firefly.venafi.com"], "resources": ["signers"], "verbs": ["reference"]}],
        }))
        .unwrap();
        sim.put_object(serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "devs-reference", "namespace": "sandbox"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "signer-reference"},
            "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"}],
        }))
        .unwrap();
        let client = sim.client().await.unwrap();
        let reviews = || sim.request_count("create", "subjectaccessreviews");
        let cache = ReferenceCache::default();
        let dev = requester("alice", &["devs"]);
        let checks = (0..20)
            .map(|_| cache.check(&client, &dev, "firefly.venafi.com", "sandbox", "my-issuer"));
        let answers = futures::future::join_all(checks).await;
        assert!(
            answers.iter().all(|a| *a == Reference::Allowed),
            "{answers:?}"
        );
        assert_eq!(reviews(), 1, "twenty concurrent checks, one review");

        let outsider = requester("alice", &[]);
        let answer = cache
            .check(
                &client,
                &outsider,
                "firefly.venafi.com",
                "sandbox",
                "my-issuer",
            )
            .await;
        assert!(
            matches!(&answer, Reference::Denied(m) if m.contains("\"alice\"")),
            "the same user without the group is asked about, and denied: {answer:?}"
        );
        assert_eq!(reviews(), 3, "by name, then \"*\"");
        let again = cache
            .check(&client, &dev, "firefly.venafi.com", "sandbox", "my-issuer")
            .await;
        assert_eq!(again, Reference::Allowed);
        assert_eq!(reviews(), 3, "cached");
    }
}
