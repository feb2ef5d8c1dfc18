//! Table tests of the CSR gate and decision: each case states the CSR, the issuer, the
//! reference review and the expected decision.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequestSpec, CertificateSigningRequestStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::crd::IssuerSpec;
use crate::issuer::decide::{IssuerKind, time};

const GROUP: &str = "firefly.venafi.com";
const ISTIOD: &str = "system:serviceaccount:istio-system:istiod";

fn settings() -> Settings {
    Settings {
        group_name: GROUP.to_owned(),
        check_approval: true,
        allowed_requesters: vec![ISTIOD.to_owned()],
        max_retry_duration: Duration::from_secs(300),
        ca_root_chain_population: false,
        success_events: false,
        mesh_issuer_namespaces: vec!["istio-system".to_owned()],
    }
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// Builds CSRs the way istiod shapes them, with knobs for each case.
struct Csr(CertificateSigningRequest);

impl Csr {
    fn istiod(signer: &str) -> Csr {
        Csr(CertificateSigningRequest {
            metadata: ObjectMeta {
                name: Some("csr-workload-abcde".into()),
                creation_timestamp: Some(time(now() - Duration::from_secs(10))),
                ..Default::default()
            },
            spec: CertificateSigningRequestSpec {
                request: ByteString(b"-----BEGIN CERTIFICATE REQUEST-----\n".to_vec()),
                signer_name: signer.to_owned(),
                usages: Some(
                    [
                        "digital signature",
                        "key encipherment",
                        "server auth",
                        "client auth",
                    ]
                    .map(str::to_owned)
                    .to_vec(),
                ),
                expiration_seconds: Some(86400),
                username: Some(ISTIOD.into()),
                ..Default::default()
            },
            status: None,
        })
    }
    fn condition(mut self, type_: &str) -> Csr {
        self.0
            .status
            .get_or_insert_with(CertificateSigningRequestStatus::default)
            .conditions
            .get_or_insert_with(Vec::new)
            .push(CertificateSigningRequestCondition {
                type_: type_.into(),
                status: "True".into(),
                ..Default::default()
            });
        self
    }
    fn approved(self) -> Csr {
        self.condition("Approved")
    }
    fn certificate(mut self) -> Csr {
        self.0
            .status
            .get_or_insert_with(CertificateSigningRequestStatus::default)
            .certificate = Some(ByteString(b"-----BEGIN CERTIFICATE-----".to_vec()));
        self
    }
    fn annotation(mut self, key: &str, value: &str) -> Csr {
        self.0
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value.to_owned());
        self
    }
    fn age(mut self, secs: u64) -> Csr {
        self.0.metadata.creation_timestamp = Some(time(now() - Duration::from_secs(secs)));
        self
    }
    fn no_expiration(mut self) -> Csr {
        self.0.spec.expiration_seconds = None;
        self
    }
}

const CLUSTER: &str = "clusterissuers.firefly.venafi.com/istio-ca";
const NAMESPACED: &str = "issuers.firefly.venafi.com/sandbox.my-issuer";

fn ready(default_policy: Option<&str>, namespaces: Option<&[&str]>) -> IssuerView {
    IssuerView {
        state: IssuerState::Ready(IssuerSpec {
            default_policy_name: default_policy.map(str::to_owned),
            ..Default::default()
        }),
        identity_namespaces: namespaces.map(|n| n.iter().map(|s| (*s).to_owned()).collect()),
    }
}

fn cluster_target() -> IssuerTarget {
    IssuerTarget {
        kind: IssuerKind::ClusterIssuer,
        namespace: None,
        name: "istio-ca".into(),
    }
}

fn decide_cluster(csr: &Csr, issuer: IssuerView) -> Decision {
    decide(
        &csr.0,
        &cluster_target(),
        issuer,
        &Reference::NotRequired,
        &settings(),
        now(),
    )
}

fn failed_reason(d: &Decision) -> (&'static str, String) {
    match d {
        Decision::Update(u) => match &u.answer {
            Answer::Failed { reason, message } => (*reason, message.clone()),
            other => panic!("not failed: {other:?}"),
        },
        other => panic!("not an update: {other:?}"),
    }
}

#[test]
fn the_gate_leaves_untouched_what_is_not_ours_or_not_signable() {
    let cases = [
        (Csr::istiod(CLUSTER), Gate::Ignore(Ignored::NotApproved)),
        (
            Csr::istiod(CLUSTER).condition("Denied"),
            Gate::Ignore(Ignored::Denied),
        ),
        (
            Csr::istiod(CLUSTER).approved().condition("Failed"),
            Gate::Ignore(Ignored::Terminal),
        ),
        (
            Csr::istiod(CLUSTER).approved().certificate(),
            Gate::Ignore(Ignored::Terminal),
        ),
        (
            Csr::istiod("clusterissuers.cert-manager.io/istio-ca").approved(),
            Gate::Ignore(Ignored::NotOurs),
        ),
        (
            Csr::istiod("kubernetes.io/kube-apiserver-client").approved(),
            Gate::Ignore(Ignored::NotOurs),
        ),
        (
            Csr::istiod(CLUSTER).approved(),
            Gate::Serve(cluster_target()),
        ),
        (
            Csr::istiod(NAMESPACED).approved(),
            Gate::Serve(IssuerTarget {
                kind: IssuerKind::Issuer,
                namespace: Some("sandbox".into()),
                name: "my-issuer".into(),
            }),
        ),
    ];
    for (csr, want) in cases {
        assert_eq!(gate(&csr.0, GROUP), want, "{:?}", csr.0.status);
    }
}

#[test]
fn only_csrs_that_can_still_be_served_stay_in_the_doors_cache() {
    let kept = [
        Csr::istiod(CLUSTER),
        Csr::istiod(CLUSTER).approved(),
        Csr::istiod("issuers.firefly.venafi.com/no-namespace"),
    ];
    for csr in kept {
        assert!(!never_served(&csr.0, GROUP), "{:?}", csr.0.status);
    }
    let dropped = [
        Csr::istiod(CLUSTER).condition("Denied"),
        Csr::istiod(CLUSTER).approved().condition("Failed"),
        Csr::istiod(CLUSTER).approved().certificate(),
        Csr::istiod("kubernetes.io/kube-apiserver-client").approved(),
    ];
    for csr in dropped {
        assert!(never_served(&csr.0, GROUP), "{:?}", csr.0);
    }
}

#[test]
fn a_malformed_signer_name_of_ours_fails_invalid_signer_name_once_approved() {
    let bad = "issuers.firefly.venafi.com/no-namespace";
    assert_eq!(
        gate(&Csr::istiod(bad).0, GROUP),
        Gate::Ignore(Ignored::NotApproved)
    );
    match gate(&Csr::istiod(bad).approved().0, GROUP) {
        Gate::Fail(Answer::Failed { reason, message }) => {
            assert_eq!(reason, "InvalidSignerName");
            assert!(message.contains("no-namespace"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_missing_or_unready_issuer_waits_with_an_event_then_fails_after_the_retry_window() {
    let missing = IssuerView {
        state: IssuerState::Missing,
        identity_namespaces: None,
    };
    let unready = IssuerView {
        state: IssuerState::NotReady {
            message: "no sub-CA yet".into(),
        },
        identity_namespaces: Some(vec!["*".into()]),
    };
    for (issuer, want) in [(missing, "IssuerNotFound"), (unready, "IssuerNotReady")] {
        match decide_cluster(&Csr::istiod(CLUSTER).approved().age(10), issuer.clone()) {
            Decision::Wait {
                event,
                requeue_after,
            } => {
                assert_eq!(event.reason, want);
                assert!(event.warning);
                assert!(
                    event.note.contains("ClusterIssuer istio-ca"),
                    "{}",
                    event.note
                );
                assert_eq!(requeue_after, Duration::from_secs(5));
            }
            other => panic!("{other:?}"),
        }
        let (reason, message) = failed_reason(&decide_cluster(
            &Csr::istiod(CLUSTER).approved().age(301),
            issuer,
        ));
        assert_eq!(reason, want);
        assert!(
            message.contains("controller.maxRetryDuration 300s"),
            "{message}"
        );
    }
}

#[test]
fn request_is_ca_fails_ca_requested() {
    let csr = Csr::istiod(CLUSTER)
        .approved()
        .annotation(REQUEST_IS_CA_ANNOTATION, "true");
    let (reason, message) = failed_reason(&decide_cluster(&csr, ready(Some("p"), Some(&["*"]))));
    assert_eq!(reason, "CARequested");
    assert!(message.contains(REQUEST_IS_CA_ANNOTATION), "{message}");
}

#[test]
fn a_cluster_issuer_without_identity_namespaces_signs_nothing() {
    for namespaces in [None, Some(&[][..])] {
        let d = decide_cluster(
            &Csr::istiod(CLUSTER).approved(),
            ready(Some("p"), namespaces),
        );
        let (reason, message) = failed_reason(&d);
        assert_eq!(reason, "IdentityOutsideNamespace");
        assert!(message.contains("spec.identityNamespaces"), "{message}");
    }
}

#[test]
fn a_denied_reference_fails_denied_reference_and_an_unknown_one_waits() {
    let target = IssuerTarget {
        kind: IssuerKind::Issuer,
        namespace: Some("sandbox".into()),
        name: "my-issuer".into(),
    };
    let csr = Csr::istiod(NAMESPACED).approved();
    let d = decide(
        &csr.0,
        &target,
        ready(Some("p"), Some(&["sandbox"])),
        &Reference::Denied("no reference".into()),
        &settings(),
        now(),
    );
    assert_eq!(
        failed_reason(&d),
        ("DeniedReference", "no reference".to_owned())
    );
    let d = decide(
        &csr.0,
        &target,
        ready(Some("p"), Some(&["sandbox"])),
        &Reference::Unknown("503".into()),
        &settings(),
        now(),
    );
    assert!(matches!(d, Decision::Wait { .. }), "{d:?}");
}

#[test]
fn policy_comes_from_the_annotation_else_the_issuer_default_else_fails() {
    let plan = |csr: Csr, issuer| match decide_cluster(&csr, issuer) {
        Decision::Sign(plan) => plan,
        other => panic!("{other:?}"),
    };
    let csr = || Csr::istiod(CLUSTER).approved();
    assert_eq!(
        plan(csr(), ready(Some("dflt"), Some(&["*"]))).policy_name,
        "dflt"
    );
    assert_eq!(
        plan(
            csr().annotation(POLICY_NAME_ANNOTATION, "annotated"),
            ready(Some("dflt"), Some(&["*"]))
        )
        .policy_name,
        "annotated"
    );
    let (reason, _) = failed_reason(&decide_cluster(&csr(), ready(None, Some(&["*"]))));
    assert_eq!(reason, "PolicyDenied");
}

#[test]
fn duration_is_the_annotation_else_expiration_seconds_else_the_policys() {
    let duration = |csr: Csr| match decide_cluster(&csr, ready(Some("p"), Some(&["*"]))) {
        Decision::Sign(plan) => plan.duration,
        other => panic!("{other:?}"),
    };
    let csr = || Csr::istiod(CLUSTER).approved();
    assert_eq!(duration(csr()), Some("86400s".to_owned()));
    assert_eq!(
        duration(csr().annotation(REQUEST_DURATION_ANNOTATION, "2h")),
        Some("2h".to_owned())
    );
    assert_eq!(duration(csr().no_expiration()), None);
}

#[test]
fn the_plan_carries_the_request_requester_and_usages_to_the_core() {
    let Decision::Sign(plan) = decide_cluster(
        &Csr::istiod(CLUSTER).approved(),
        ready(Some("p"), Some(&["*"])),
    ) else {
        panic!()
    };
    assert_eq!(plan.requester.as_deref(), Some(ISTIOD));
    assert_eq!(plan.csr_pem, b"-----BEGIN CERTIFICATE REQUEST-----\n");
    assert_eq!(plan.usages.as_ref().map(Vec::len), Some(4));
    assert!(!plan.is_ca);
}

#[test]
fn core_outcomes_become_one_answer_with_the_section_9_reason() {
    let csr = Csr::istiod(CLUSTER).approved();
    let refused = |reason: &'static str| Outcome::Refused {
        reason,
        message: "m".into(),
    };
    let cases = [
        ("RequesterNotAllowed", "RequesterNotAllowed"),
        ("RequestersNotConfigured", "RequesterNotAllowed"),
        ("IdentityOutsideNamespace", "IdentityOutsideNamespace"),
        ("DNSNameOutsideNamespace", "IdentityOutsideNamespace"),
        ("PolicyDenied", "PolicyDenied"),
        ("PolicyUnknown", "PolicyDenied"),
        ("BadRequest", "InvalidRequest"),
    ];
    for (core, want) in cases {
        let d = after_issue(&csr.0, &refused(core), &settings(), now());
        assert_eq!(failed_reason(&d).0, want, "{core}");
    }
    let retry = Outcome::Retry {
        reason: "SignerNotReady",
        message: "no sub-CA".into(),
    };
    assert!(matches!(
        after_issue(&csr.0, &retry, &settings(), now()),
        Decision::Wait { .. }
    ));
    let (reason, _) = failed_reason(&after_issue(&csr.age(400).0, &retry, &settings(), now()));
    assert_eq!(reason, "IssuerNotReady");
}

#[test]
fn failed_condition_is_true_with_reason_message_and_times() {
    let c = failed_condition("CARequested", "no CA", now());
    assert_eq!(c.type_, "Failed");
    assert_eq!(c.status, "True");
    assert_eq!(c.reason.as_deref(), Some("CARequested"));
    assert_eq!(c.message.as_deref(), Some("no CA"));
    assert_eq!(c.last_transition_time, Some(time(now())));
}

#[test]
fn the_requester_is_authorized_before_any_issuer_setting_is_read() {
    // Each of these would otherwise be refused for an issuer setting (CA asked, no identity
    // namespaces, no policy): a requester the lists refuse learns none of that.
    let cases = [
        Csr::istiod(CLUSTER)
            .approved()
            .annotation(REQUEST_IS_CA_ANNOTATION, "true"),
        Csr::istiod(CLUSTER).approved(),
    ];
    for issuer in [ready(Some("p"), None), ready(None, Some(&["*"]))] {
        for csr in &cases {
            let mut empty = settings();
            empty.allowed_requesters.clear();
            let d = decide(
                &csr.0,
                &cluster_target(),
                issuer.clone(),
                &Reference::NotRequired,
                &empty,
                now(),
            );
            let (reason, message) = failed_reason(&d);
            assert_eq!(reason, "RequesterNotAllowed");
            assert!(
                message.contains("controller.allowedRequesters"),
                "{message}"
            );

            let mut others = settings();
            others.allowed_requesters = vec!["system:serviceaccount:x:y".to_owned()];
            let d = decide(
                &csr.0,
                &cluster_target(),
                issuer.clone(),
                &Reference::NotRequired,
                &others,
                now(),
            );
            assert_eq!(failed_reason(&d).0, "RequesterNotAllowed");
        }
    }
}

#[test]
fn an_issuer_in_a_mesh_issuer_namespace_signs_for_every_namespace() {
    let plan = |namespace: &str| {
        let target = IssuerTarget {
            kind: IssuerKind::Issuer,
            namespace: Some(namespace.into()),
            name: "mesh".into(),
        };
        let csr = Csr::istiod(&format!("issuers.{GROUP}/{namespace}.mesh")).approved();
        match decide(
            &csr.0,
            &target,
            ready(Some("p"), Some(&[namespace])),
            &Reference::Allowed,
            &settings(),
            now(),
        ) {
            Decision::Sign(plan) => plan,
            other => panic!("not signed: {other:?}"),
        }
    };
    // DESIGN §8: meshIssuerNamespaces (istio-system here) are exempt from the namespace rule.
    assert_eq!(plan("istio-system").identity_namespaces, None);
    assert_eq!(
        plan("sandbox").identity_namespaces,
        Some(vec!["sandbox".to_owned()])
    );
}
