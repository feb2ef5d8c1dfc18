//! The pure decision of the PodCertificateRequest door: which requests are ours (signer, no
//! terminal condition, which API version's view serves them), the checks that need no signing
//! (annotations, namespace, key, what the policy can ever serve, the pod cross-check), the
//! issuance plan, and the one answer the core's outcome becomes. Performs no I/O.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use firefly_core::csr;
use firefly_core::issuance::{AssertedIdentity, Issued, Outcome, Scope};
use firefly_core::key::KeyAlgorithm;
use firefly_core::policy::CompiledPolicy;
use firefly_core::spiffe::{SpiffeId, TrustDomain};
use k8s_openapi::ByteString;
use serde::Deserialize;

/// The reasons of this door's answers (DESIGN §9, a contract: spelled exactly so).
pub mod reason {
    /// Denied: a key type the signer's policy does not admit, or that this signer cannot serve.
    pub const UNSUPPORTED_KEY_TYPE: &str = "UnsupportedKeyType";
    /// Denied: `spec.unverifiedUserAnnotations` carries a key this signer does not document
    /// (this version documents none).
    pub const INVALID_UNVERIFIED_USER_ANNOTATIONS: &str = "InvalidUnverifiedUserAnnotations";
    /// Denied: the request's namespace is not in the signer's `namespaces`.
    pub const NAMESPACE_NOT_ALLOWED: &str = firefly_core::issuance::reason::NAMESPACE_NOT_ALLOWED;
    /// Denied: the policy refuses the request, or the pod cross-check failed.
    pub const POLICY_DENIED: &str = "PolicyDenied";
    /// Denied: the policy's validity is below the API's one-hour minimum lifetime.
    pub const LIFETIME_BELOW_MINIMUM: &str = "LifetimeBelowMinimum";
    /// Denied: neither `stubPKCS10Request` nor `pkixPublicKey` is set.
    pub const MISSING_PUBLIC_KEY: &str = "MissingPublicKey";
    /// Failed: temporary trouble outlasted [`super::RETRY_LIMIT`].
    pub const RETRY_DURATION_EXCEEDED: &str = "RetryDurationExceeded";
    /// Failed: deciding or signing this request panicked [`super::MAX_PANICS`] times.
    pub const INTERNAL_ERROR: &str = "InternalError";
}

/// The API's shortest leaf lifetime (kube-apiserver refuses an Issued status below it).
pub const MIN_LIFETIME: Duration = Duration::from_secs(3600);
/// `spec.maxExpirationSeconds` when a request has none (the API's default).
pub const DEFAULT_MAX_EXPIRATION: Duration = Duration::from_secs(86_400);
/// NotBefore is back-dated this far for clock skew (well inside the API's ±5 min).
pub const BACKDATE: Duration = Duration::from_secs(10);
/// Temporary trouble becomes `Failed`/`RetryDurationExceeded` once a request is this old:
/// kube-controller-manager deletes requests at 15 minutes.
pub const RETRY_LIMIT: Duration = Duration::from_secs(14 * 60);
/// Panics of one request's decision before it is failed with `InternalError`.
pub const MAX_PANICS: u32 = 3;
/// `beginRefreshAt` stays this far inside the window (the API's rule).
const REFRESH_MARGIN: Duration = Duration::from_secs(600);
/// How soon temporary trouble is looked at again.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The fields of a PodCertificateRequest this door reads, the same for `v1` and `v1beta1`
/// (v1 has no legacy key fields; k8s-openapi's v1beta1 stub is a non-optional byte string, so
/// an empty one counts as unset). A missing field reads as empty (the API server requires each
/// one; a copy without them is then refused or ignored by [`decide`], never a failed watch).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PcrSpec {
    /// `spec.signerName`.
    pub signer_name: String,
    /// `spec.podName`.
    pub pod_name: String,
    /// `spec.podUID`.
    #[serde(rename = "podUID")]
    pub pod_uid: String,
    /// `spec.serviceAccountName`.
    pub service_account_name: String,
    /// `spec.nodeName`.
    pub node_name: String,
    /// `spec.maxExpirationSeconds`.
    #[serde(default)]
    pub max_expiration_seconds: Option<i32>,
    /// `spec.pkixPublicKey` (v1beta1 only).
    #[serde(default)]
    pub pkix_public_key: Option<ByteString>,
    /// `spec.stubPKCS10Request` (DER).
    #[serde(default, rename = "stubPKCS10Request")]
    pub stub_pkcs10_request: Option<ByteString>,
    /// `spec.unverifiedUserAnnotations`.
    #[serde(default)]
    pub unverified_user_annotations: Option<BTreeMap<String, String>>,
}

/// `status.conditions[].type`, all this door reads of the status.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PcrStatus {
    /// The conditions.
    #[serde(default)]
    pub conditions: Option<Vec<PcrCondition>>,
}

/// One status condition (only its type matters here).
#[derive(Clone, Debug, Deserialize)]
pub struct PcrCondition {
    /// `Issued`, `Denied` or `Failed`.
    #[serde(rename = "type", default)]
    pub type_: String,
}

/// A request as this door sees it.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// `metadata.namespace`.
    pub namespace: &'a str,
    /// The spec.
    pub spec: &'a PcrSpec,
    /// The status, when any.
    pub status: Option<&'a PcrStatus>,
    /// How old the request is.
    pub age: Duration,
}

/// Which API version the request was seen through, and whether the other one is served too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// `certificates.k8s.io/v1` (no legacy key fields).
    V1 {
        /// v1beta1 is served as well: requests without a stub are served from that view.
        v1beta1_served: bool,
    },
    /// `certificates.k8s.io/v1beta1`.
    V1beta1 {
        /// v1 is served as well: requests with a stub are served from that view.
        v1_served: bool,
    },
}

/// One configured signer, ready to decide with.
#[derive(Clone, Debug)]
pub struct SignerSettings {
    /// `signerName`.
    pub signer_name: String,
    /// `policyName`.
    pub policy_name: String,
    /// `trustDomain`, parsed.
    pub trust_domain: TrustDomain,
    /// `namespaces`.
    pub namespaces: Vec<String>,
    /// `verifyPod`.
    pub verify_pod: bool,
}

/// What the pod cache knows of one pod (only what the cross-check needs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodFacts {
    /// `metadata.uid`.
    pub uid: String,
    /// `spec.serviceAccountName`.
    pub service_account: String,
    /// `spec.nodeName`.
    pub node: String,
}

/// The pod cross-check's input.
#[derive(Clone, Copy, Debug)]
pub enum PodLookup<'a> {
    /// `verifyPod` is off.
    NotRequired,
    /// Neither the cache nor the API server holds a pod of that name (yet).
    Missing,
    /// The pod: the cached copy, or the API server's when the cached one did not match.
    Found(&'a PodFacts),
    /// The cached copy did not match and the API server could not be asked (the error).
    Unavailable(&'a str),
}

impl PodFacts {
    /// Whether the request names this pod as it is: same UID, service account and node.
    pub fn describes(&self, spec: &PcrSpec) -> bool {
        self.first_difference(spec).is_none()
    }

    /// The first of UID, service account and node where the request differs from this pod:
    /// (the request's field, what it asks, what the pod has).
    fn first_difference<'a>(
        &'a self,
        spec: &'a PcrSpec,
    ) -> Option<(&'static str, &'a str, &'a str)> {
        [
            ("spec.podUID", &spec.pod_uid, &self.uid),
            (
                "spec.serviceAccountName",
                &spec.service_account_name,
                &self.service_account,
            ),
            ("spec.nodeName", &spec.node_name, &self.node),
        ]
        .into_iter()
        .find(|(_, asked, actual)| asked != actual)
        .map(|(field, asked, actual)| (field, asked.as_str(), actual.as_str()))
    }
}

/// What to sign: the key and the asserted identity, and the window cap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The SubjectPublicKeyInfo, DER.
    pub public_key_der: Vec<u8>,
    /// The identity to certify.
    pub identity: AssertedIdentity,
    /// `spec.maxExpirationSeconds` (NotAfter − NotBefore never exceeds it).
    pub max_window: Duration,
}

/// An answer: the one status write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Issued: the chain (leaf, then intermediates), the window and the refresh hint.
    Issued {
        /// PEM, leaf first, no trust anchor.
        chain_pem: String,
        /// The leaf's NotBefore.
        not_before: SystemTime,
        /// The leaf's NotAfter.
        not_after: SystemTime,
        /// When the kubelet should start refreshing.
        begin_refresh_at: SystemTime,
    },
    /// Denied (final for the pod).
    Denied {
        /// A [`reason`].
        reason: &'static str,
        /// Names the rule and the value.
        message: String,
    },
    /// Failed (final).
    Failed {
        /// A [`reason`].
        reason: &'static str,
        /// What happened.
        message: String,
    },
}

impl Answer {
    /// The condition type of the answer.
    pub fn condition_type(&self) -> &'static str {
        match self {
            Answer::Issued { .. } => "Issued",
            Answer::Denied { .. } => "Denied",
            Answer::Failed { .. } => "Failed",
        }
    }

    /// The outcome label (`firefly_issuance_outcomes_total{outcome}`).
    pub fn outcome(&self) -> &'static str {
        match self {
            Answer::Issued { .. } => "Issued",
            Answer::Denied { reason, .. } | Answer::Failed { reason, .. } => reason,
        }
    }
}

/// What to do with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not ours, already answered, or served through the other version's view.
    Ignore(&'static str),
    /// Write this answer.
    Answer(Answer),
    /// Temporary trouble: no write, a Warning event, look again later.
    Wait {
        /// CamelCase cause (event reason).
        reason: &'static str,
        /// What is awaited.
        message: String,
    },
    /// Ask the issuing core.
    Sign(Plan),
}

/// Longest condition message written, in bytes (longer ones are cut with `…`): the API server
/// refuses a condition message over 32 KiB, and a refused answer is no answer at all, so a
/// message built from what the request carries (its annotation keys) or from configuration (a
/// signer's namespace list) must stay well inside it.
pub const MESSAGE_MAX: usize = 4_096;
/// Unknown user-annotation keys named in a refusal; the others are counted.
const KEYS_SHOWN: usize = 8;
/// Longest annotation key named in a refusal, in bytes (a key may have 317).
const KEY_SHOWN_MAX: usize = 80;

fn bounded(message: String) -> String {
    if message.len() <= MESSAGE_MAX {
        message
    } else {
        firefly_core::util::truncate_at_char_boundary(&message, MESSAGE_MAX)
    }
}

fn deny(reason: &'static str, message: String) -> Decision {
    Decision::Answer(Answer::Denied {
        reason,
        message: bounded(message),
    })
}

/// The first [`KEYS_SHOWN`] of `keys`, each cut to [`KEY_SHOWN_MAX`] bytes, and how many more.
fn some_keys<'k>(keys: impl ExactSizeIterator<Item = &'k String>) -> String {
    let total = keys.len();
    let shown: Vec<String> = keys
        .take(KEYS_SHOWN)
        .map(|k| firefly_core::util::truncate_at_char_boundary(k, KEY_SHOWN_MAX))
        .collect();
    let mut text = shown.join(", ");
    if total > KEYS_SHOWN {
        text.push_str(&format!(" (and {} more)", total - KEYS_SHOWN));
    }
    text
}

/// Temporary trouble, or `Failed`/`RetryDurationExceeded` once the request is
/// [`RETRY_LIMIT`] old.
pub fn wait_or_fail(age: Duration, reason: &'static str, message: String) -> Decision {
    if age >= RETRY_LIMIT {
        return Decision::Answer(Answer::Failed {
            reason: reason::RETRY_DURATION_EXCEEDED,
            message: bounded(format!(
                "not issued within {} min of creation (kube-controller-manager deletes requests at 15 min); last trouble: {reason}: {message}",
                RETRY_LIMIT.as_secs() / 60
            )),
        });
    }
    Decision::Wait { reason, message }
}

/// The API's spelling of a key algorithm, for the types a kubelet can ask for.
pub fn api_key_type(alg: KeyAlgorithm) -> Option<&'static str> {
    Some(match alg {
        KeyAlgorithm::Rsa3072 => "RSA3072",
        KeyAlgorithm::Rsa4096 => "RSA4096",
        KeyAlgorithm::EcP256 => "ECDSAP256",
        KeyAlgorithm::EcP384 => "ECDSAP384",
        KeyAlgorithm::EcP521 => "ECDSAP521",
        KeyAlgorithm::EcEd25519 => "ED25519",
        KeyAlgorithm::Rsa2048 => return None,
    })
}

/// Key types this signer never serves, whatever the policy: P-521.
fn served(alg: KeyAlgorithm) -> bool {
    api_key_type(alg).is_some() && alg != KeyAlgorithm::EcP521
}

/// The key types `policy` admits that this signer serves, in the API's spelling.
pub fn accepted_key_types(policy: &CompiledPolicy) -> Vec<&'static str> {
    policy
        .key_algorithms()
        .iter()
        .copied()
        .filter(|a| served(*a))
        .filter_map(api_key_type)
        .collect()
}

fn accepted_list(policy: &CompiledPolicy) -> String {
    let accepted = accepted_key_types(policy);
    if accepted.is_empty() {
        format!(
            "policy {:?} admits none of the key types a kubelet can generate that this signer serves",
            policy.name()
        )
    } else {
        format!("accepted key types: {}", accepted.join(", "))
    }
}

/// Whether a request has a terminal condition.
pub fn is_terminal(status: Option<&PcrStatus>) -> bool {
    status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|c| matches!(c.type_.as_str(), "Issued" | "Denied" | "Failed"))
}

fn non_empty(b: Option<&ByteString>) -> Option<&[u8]> {
    b.map(|b| b.0.as_slice()).filter(|b| !b.is_empty())
}

/// Decides a request of `signer` seen through `view`. `policy` is the signer's policy when the
/// bootstrap has it usable now; `pod` is the cross-check's lookup.
pub fn decide(
    req: &Request<'_>,
    view: View,
    signer: &SignerSettings,
    policy: Option<&CompiledPolicy>,
    pod: PodLookup<'_>,
) -> Decision {
    let spec = req.spec;
    if spec.signer_name != signer.signer_name {
        return Decision::Ignore("another signer's request");
    }
    if is_terminal(req.status) {
        return Decision::Ignore("already answered");
    }
    let stub = non_empty(spec.stub_pkcs10_request.as_ref());
    let pkix = non_empty(spec.pkix_public_key.as_ref());
    match view {
        // A v1 view of a v1beta1 request with pkixPublicKey shows no key at all: the v1beta1
        // view serves it.
        View::V1 {
            v1beta1_served: true,
        } if stub.is_none() => return Decision::Ignore("no stub: served through v1beta1"),
        View::V1beta1 { v1_served: true } if stub.is_some() => {
            return Decision::Ignore("stub request: served through v1");
        }
        _ => {}
    }
    if let Some(annotations) = spec
        .unverified_user_annotations
        .as_ref()
        .filter(|a| !a.is_empty())
    {
        return deny(
            reason::INVALID_UNVERIFIED_USER_ANNOTATIONS,
            format!(
                "signer {} documents no user annotations; unknown keys: {}",
                signer.signer_name,
                some_keys(annotations.keys())
            ),
        );
    }
    let scope = Scope::Signer {
        namespace: req.namespace,
        namespaces: &signer.namespaces,
    };
    if let Err(refused) = scope.authorize(&signer.policy_name) {
        return deny(refused.reason, refused.message);
    }
    let key = match (stub, pkix) {
        // kube-apiserver verifies the stub's signature at admission (as it verifies
        // proofOfPossession beside pkixPublicKey): only its key is read here.
        (Some(stub), _) => {
            csr::key_of_verified_der(stub).map_err(|e| format!("stubPKCS10Request: {e}"))
        }
        (None, Some(pkix)) => csr::from_public_key(pkix, csr::RequestedSans::default())
            .map_err(|e| format!("pkixPublicKey: {e}")),
        (None, None) => {
            return deny(
                reason::MISSING_PUBLIC_KEY,
                "the request has neither spec.stubPKCS10Request nor spec.pkixPublicKey".into(),
            );
        }
    };
    let Some(policy) = policy else {
        return wait_or_fail(
            req.age,
            "PolicyUnavailable",
            format!(
                "policy {:?} of signer {} is not usable now (unknown, not allowed or stale)",
                signer.policy_name, signer.signer_name
            ),
        );
    };
    let key = match key {
        Ok(k) => k,
        Err(e) => {
            return deny(
                reason::UNSUPPORTED_KEY_TYPE,
                format!(
                    "the key cannot be served by this signer ({e}); {}",
                    accepted_list(policy)
                ),
            );
        }
    };
    if policy.max_validity() < MIN_LIFETIME {
        return deny(
            reason::LIFETIME_BELOW_MINIMUM,
            format!(
                "policy {:?} allows at most {}, below the 1h minimum lifetime of pod certificates",
                policy.name(),
                firefly_core::duration::format_go_duration(policy.max_validity())
            ),
        );
    }
    let alg = key.key_algorithm;
    let shown = api_key_type(alg).unwrap_or(alg.as_str());
    if !served(alg) {
        return deny(
            reason::UNSUPPORTED_KEY_TYPE,
            format!(
                "key type {shown} is not supported by this signer; {}",
                accepted_list(policy)
            ),
        );
    }
    if !policy.key_algorithms().contains(&alg) {
        return deny(
            reason::UNSUPPORTED_KEY_TYPE,
            format!(
                "key type {shown} is not admitted by policy {:?}; {}",
                policy.name(),
                accepted_list(policy)
            ),
        );
    }
    match pod {
        PodLookup::NotRequired => {}
        PodLookup::Unavailable(error) => {
            return wait_or_fail(
                req.age,
                "PodLookupFailed",
                format!(
                    "pod {}/{} could not be read to verify the request: {error}",
                    req.namespace, spec.pod_name
                ),
            );
        }
        PodLookup::Missing => {
            return wait_or_fail(
                req.age,
                "PodNotFound",
                format!(
                    "pod {}/{} is not in the pod cache (yet); verifyPod is on",
                    req.namespace, spec.pod_name
                ),
            );
        }
        PodLookup::Found(facts) => {
            if let Some((field, asked, actual)) = facts.first_difference(spec) {
                return deny(
                    reason::POLICY_DENIED,
                    format!(
                        "verifyPod: {field} {asked:?} does not match pod {}/{} ({actual:?})",
                        req.namespace, spec.pod_name
                    ),
                );
            }
        }
    }
    let id = format!(
        "spiffe://{}/ns/{}/sa/{}",
        signer.trust_domain, req.namespace, spec.service_account_name
    );
    let spiffe_id = match SpiffeId::parse_workload(&id) {
        Ok(id) => id,
        Err(e) => {
            return deny(
                reason::POLICY_DENIED,
                format!("the identity {id:?} is not a SPIFFE workload ID: {e}"),
            );
        }
    };
    let max_window = spec
        .max_expiration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(DEFAULT_MAX_EXPIRATION, Duration::from_secs);
    Decision::Sign(Plan {
        public_key_der: key.public_key_der,
        identity: AssertedIdentity {
            spiffe_id,
            dns_names: Vec::new(),
        },
        max_window,
    })
}

/// What a request whose decision panicked `panics` times in a row becomes: decided again
/// (`None`) until [`MAX_PANICS`], then `Failed`/`InternalError` (nothing was signed).
pub fn after_panic(panics: u32) -> Option<Decision> {
    (panics >= MAX_PANICS).then(|| {
        Decision::Answer(Answer::Failed {
            reason: reason::INTERNAL_ERROR,
            message: format!("deciding this request failed {panics} times with an internal error"),
        })
    })
}

/// Whether `spec` carries no stub request (a kubelet older than 1.36 sends `pkixPublicKey` through
/// v1beta1; seen through v1 such a request shows no key at all).
pub fn lacks_stub(spec: &PcrSpec) -> bool {
    non_empty(spec.stub_pkcs10_request.as_ref()).is_none()
}

/// The answer the core's outcome becomes.
pub fn after_issue(outcome: &Outcome, age: Duration) -> Decision {
    match outcome {
        Outcome::Issued(issued) => Decision::Answer(issued_answer(issued)),
        Outcome::Refused { reason, message } => {
            let reason = match *reason {
                reason::NAMESPACE_NOT_ALLOWED => reason::NAMESPACE_NOT_ALLOWED,
                // The request decoded here; the core judged the key unusable.
                firefly_core::issuance::reason::INVALID_REQUEST => reason::UNSUPPORTED_KEY_TYPE,
                _ => reason::POLICY_DENIED,
            };
            deny(reason, message.clone())
        }
        Outcome::Retry { reason, message } => wait_or_fail(age, reason, message.clone()),
    }
}

/// The Issued answer of a signed leaf.
pub fn issued_answer(issued: &Issued) -> Answer {
    Answer::Issued {
        chain_pem: issued.chain_pem.clone(),
        not_before: issued.not_before,
        not_after: issued.not_after,
        begin_refresh_at: begin_refresh_at(issued.not_before, issued.not_after),
    }
}

/// Two thirds into the window, kept within [NotBefore + 10 min, NotAfter − 10 min], whole
/// seconds.
pub fn begin_refresh_at(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let at = not_before + Duration::from_secs(lifetime.as_secs() * 2 / 3);
    let earliest = not_before + REFRESH_MARGIN;
    let latest = not_after.checked_sub(REFRESH_MARGIN).unwrap_or(not_before);
    at.min(latest).max(earliest)
}

/// The start-up look at each signer's policy (the bootstrap holds the TLSPC configuration by
/// then): a policy the configuration does not offer is an error naming the key; REQUIRED subject
/// or DNS values (an empty stub can never carry them: every request would be PolicyDenied) and a
/// validity under the API's hour (LifetimeBelowMinimum) are warnings.
///
/// # Errors
/// The first signer whose policy is not usable, as a message naming its key.
pub fn check_policies(
    signers: &[SignerSettings],
    policy_named: impl Fn(&str) -> Option<std::sync::Arc<CompiledPolicy>>,
) -> Result<Vec<String>, String> {
    let mut warnings = Vec::new();
    for (i, s) in signers.iter().enumerate() {
        let key = format!("controller.podCertificates.signers[{i}].policyName");
        let Some(policy) = policy_named(&s.policy_name) else {
            return Err(format!(
                "{key} = {:?}: not a usable policy of this instance's TLSPC configuration (name a policy the configuration lists)",
                s.policy_name
            ));
        };
        let required: Vec<&str> = policy
            .required_fields()
            .into_iter()
            .filter(|f| *f != "sans.uniformResourceIdentifiers")
            .collect();
        if !required.is_empty() {
            warnings.push(format!(
                "{key} = {:?} makes {} REQUIRED: PodCertificateRequests carry only a key, so every request to {} will be Denied (PolicyDenied)",
                s.policy_name,
                required.join(", "),
                s.signer_name
            ));
        }
        if policy.max_validity() < MIN_LIFETIME {
            warnings.push(format!(
                "{key} = {:?} allows less than the 1h minimum of pod certificates: every request to {} will be Denied (LifetimeBelowMinimum)",
                s.policy_name, s.signer_name
            ));
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests;
