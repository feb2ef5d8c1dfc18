//! Table tests of the state machine: each case states the request, the issuer and the expected
//! decision.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::crd::{CertificateRequestSpec, CertificateRequestStatus, IssuerRef};

const GROUP: &str = "firefly.venafi.com";
const ISTIO_CSR: &str = "system:serviceaccount:istio-system:cert-manager-istio-csr";

fn settings() -> Settings {
    Settings {
        group_name: GROUP.to_owned(),
        check_approval: true,
        allowed_requesters: vec![ISTIO_CSR.to_owned()],
        mesh_issuer_namespaces: vec!["istio-system".to_owned()],
        max_retry_duration: Duration::from_secs(300),
        ca_root_chain_population: true,
        success_events: false,
    }
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// Builds requests the way istio-csr shapes them, with knobs for each case.
struct Req(CertificateRequest);

impl Req {
    fn istio() -> Req {
        let mut annotations = BTreeMap::new();
        annotations.insert(POLICY_NAME_ANNOTATION.to_owned(), "istio-mtls".to_owned());
        annotations.insert(
            IDENTITIES_ANNOTATION.to_owned(),
            "spiffe://cluster.local/ns/a/sa/b".to_owned(),
        );
        let cr = CertificateRequest {
            metadata: ObjectMeta {
                name: Some("istio-csr-abcde".into()),
                namespace: Some("istio-system".into()),
                generation: Some(1),
                annotations: Some(annotations),
                creation_timestamp: Some(time(now() - Duration::from_secs(10))),
                ..Default::default()
            },
            spec: CertificateRequestSpec {
                request: base64::engine::general_purpose::STANDARD
                    .encode("-----BEGIN CERTIFICATE REQUEST-----\n"),
                issuer_ref: IssuerRef {
                    name: "firefly-istio".into(),
                    kind: Some("Issuer".into()),
                    group: Some(GROUP.into()),
                },
                duration: Some("1h0m0s".into()),
                usages: Some(vec!["client auth".into(), "server auth".into()]),
                username: Some(ISTIO_CSR.into()),
                ..Default::default()
            },
            status: None,
        };
        Req(cr)
    }
    fn condition(mut self, type_: &str, status: &str, reason: Option<&str>) -> Req {
        let st = self
            .0
            .status
            .get_or_insert_with(CertificateRequestStatus::default);
        st.conditions
            .get_or_insert_with(Vec::new)
            .push(CertificateRequestCondition {
                type_: type_.into(),
                status: status.into(),
                reason: reason.map(Into::into),
                message: Some("m".into()),
                last_transition_time: Some(time(now() - Duration::from_secs(5))),
            });
        self
    }
    fn approved(self) -> Req {
        self.condition(APPROVED, "True", Some("policy.cert-manager.io"))
    }
    fn issuer_ref(mut self, group: Option<&str>, kind: Option<&str>) -> Req {
        self.0.spec.issuer_ref.group = group.map(Into::into);
        self.0.spec.issuer_ref.kind = kind.map(Into::into);
        self
    }
    fn without_annotation(mut self, key: &str) -> Req {
        self.0.metadata.annotations.as_mut().unwrap().remove(key);
        self
    }
    fn created_ago(mut self, d: Duration) -> Req {
        self.0.metadata.creation_timestamp = Some(time(now() - d));
        self
    }
}

fn ready_issuer() -> IssuerState {
    IssuerState::Ready(IssuerSpec::default())
}

fn decide_with(req: &Req, issuer: IssuerState) -> Decision {
    decide(&req.0, |_, _| issuer, &settings(), now())
}

fn update(d: Decision) -> StatusUpdate {
    match d {
        Decision::Update(u) => *u,
        other => panic!("expected a status update, got {other:?}"),
    }
}

fn plan(d: Decision) -> SignPlan {
    match d {
        Decision::Sign(p) => *p,
        other => panic!("expected a sign plan, got {other:?}"),
    }
}

#[test]
fn requests_for_other_issuers_are_ignored() {
    for (group, kind) in [
        (None, Some("Issuer")),
        (Some("cert-manager.io"), Some("Issuer")),
        (Some(GROUP), Some("VenafiIssuer")),
        (Some("firefly.venafi.com.evil"), None),
    ] {
        let req = Req::istio().approved().issuer_ref(group, kind);
        assert_eq!(
            decide_with(&req, ready_issuer()),
            Decision::Ignore(Ignored::NotOurs),
            "{group:?} {kind:?}"
        );
    }
}

#[test]
fn empty_kind_means_issuer_and_cluster_issuer_is_resolved_cluster_wide() {
    let req = Req::istio().approved().issuer_ref(Some(GROUP), None);
    let mut seen = None;
    let _ = decide(
        &req.0,
        |k, n| {
            seen = Some((k, n.to_owned()));
            ready_issuer()
        },
        &settings(),
        now(),
    );
    assert_eq!(seen, Some((IssuerKind::Issuer, "firefly-istio".to_owned())));
    let req = Req::istio()
        .approved()
        .issuer_ref(Some(GROUP), Some("ClusterIssuer"));
    let mut seen = None;
    let _ = decide(
        &req.0,
        |k, _| {
            seen = Some(k);
            ready_issuer()
        },
        &settings(),
        now(),
    );
    assert_eq!(seen, Some(IssuerKind::ClusterIssuer));
}

#[test]
fn unapproved_request_waits_without_any_write() {
    assert_eq!(
        decide_with(&Req::istio(), ready_issuer()),
        Decision::Ignore(Ignored::NotApproved)
    );
}

#[test]
fn unapproved_request_is_signed_when_check_approval_is_off() {
    let s = Settings {
        check_approval: false,
        ..settings()
    };
    let d = decide(&Req::istio().0, |_, _| ready_issuer(), &s, now());
    assert_eq!(plan(d).policy_name, "istio-mtls");
}

#[test]
fn terminal_requests_are_never_touched_again() {
    let cases = [
        Req::istio()
            .approved()
            .condition(READY, "True", Some(reason::ISSUED)),
        Req::istio()
            .approved()
            .condition(READY, "False", Some(reason::FAILED)),
        Req::istio()
            .approved()
            .condition(READY, "False", Some(reason::DENIED)),
        Req::istio()
            .approved()
            .condition(INVALID_REQUEST, "True", None),
        Req::istio().condition(DENIED, "True", None).condition(
            READY,
            "False",
            Some(reason::DENIED),
        ),
    ];
    for req in cases {
        assert_eq!(
            decide_with(&req, ready_issuer()),
            Decision::Ignore(Ignored::Terminal)
        );
    }
    let mut with_cert = Req::istio().approved();
    with_cert.0.status.as_mut().unwrap().certificate = Some("Y2VydA==".into());
    assert_eq!(
        decide_with(&with_cert, ready_issuer()),
        Decision::Ignore(Ignored::Terminal)
    );
}

#[test]
fn denied_request_fails_as_denied_without_signing() {
    let u = update(decide_with(
        &Req::istio().condition(DENIED, "True", Some("Policy")),
        ready_issuer(),
    ));
    assert_eq!(
        (u.ready.status.as_str(), u.ready.reason.as_deref()),
        ("False", Some(reason::DENIED))
    );
    assert_eq!(u.failure_time, Some(now()));
    assert!(u.certificate.is_none() && u.ca.is_none());
    assert!(u.event.as_ref().is_some_and(|e| e.warning));
    assert_eq!(u.outcome, "Denied");
}

#[test]
fn denied_wins_over_a_missing_issuer() {
    let u = update(decide_with(
        &Req::istio().condition(DENIED, "True", None),
        IssuerState::Missing,
    ));
    assert_eq!(u.ready.reason.as_deref(), Some(reason::DENIED));
}

#[test]
fn missing_issuer_leaves_the_request_pending_with_the_name() {
    let u = update(decide_with(&Req::istio().approved(), IssuerState::Missing));
    assert_eq!(
        (u.ready.status.as_str(), u.ready.reason.as_deref()),
        ("False", Some(reason::PENDING))
    );
    let message = u.ready.message.unwrap();
    assert!(
        message.contains("istio-system/firefly-istio") && message.contains("not found"),
        "{message}"
    );
    assert!(u.failure_time.is_none());
    assert_eq!(u.outcome, "IssuerNotFound");
}

#[test]
fn unready_issuer_leaves_the_request_pending() {
    let issuer = IssuerState::NotReady {
        message: "no active sub-CA".into(),
    };
    let u = update(decide_with(&Req::istio().approved(), issuer));
    assert_eq!(u.ready.reason.as_deref(), Some(reason::PENDING));
    assert!(u.ready.message.unwrap().contains("no active sub-CA"));
}

#[test]
fn an_identical_pending_condition_is_not_written_again() {
    let first = update(decide_with(&Req::istio().approved(), IssuerState::Missing));
    let mut req = Req::istio().approved();
    req.0
        .status
        .as_mut()
        .unwrap()
        .conditions
        .as_mut()
        .unwrap()
        .push(first.ready);
    assert_eq!(
        decide_with(&req, IssuerState::Missing),
        Decision::Retry(Duration::from_secs(290)),
        "no write; only the age check at the controller.maxRetryDuration deadline"
    );
}

/// The request with `ready` pushed as its Ready condition, as the API server would return it
/// after our write.
fn with_ready(mut req: Req, ready: CertificateRequestCondition) -> Req {
    req.0
        .status
        .get_or_insert_with(CertificateRequestStatus::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .retain(|c| c.type_ != READY);
    req.0
        .status
        .as_mut()
        .and_then(|s| s.conditions.as_mut())
        .unwrap()
        .push(ready);
    req
}

fn not_ready(message: &str) -> IssuerState {
    IssuerState::NotReady {
        message: message.into(),
    }
}

#[test]
fn a_request_waiting_for_its_issuer_is_looked_at_again_at_the_max_retry_deadline() {
    // Created 10 s ago, maxRetryDuration 300 s: the age check is due in 290 s, even if the
    // issuer never changes (its watch re-triggers the request sooner when it does).
    let deadline = Duration::from_secs(290);
    for (issuer, cause) in [
        (IssuerState::Missing, "IssuerNotFound"),
        (not_ready("no active sub-CA"), "IssuerNotReady"),
    ] {
        let u = update(decide_with(&Req::istio().approved(), issuer.clone()));
        assert_eq!(u.ready.reason.as_deref(), Some(reason::PENDING), "{cause}");
        assert_eq!(u.requeue_after, Some(deadline), "{cause}");
        assert_eq!(u.event.as_ref().map(|e| e.reason), Some(cause));
        assert!(u.failure_time.is_none(), "{cause}");
        let waiting = with_ready(Req::istio().approved(), u.ready);
        assert_eq!(
            decide_with(&waiting, issuer),
            Decision::Retry(deadline),
            "{cause}: unchanged, so no write, but still a requeue at the deadline"
        );
    }
}

#[test]
fn a_request_whose_issuer_stays_missing_or_not_ready_fails_after_max_retry_duration() {
    for (issuer, cause, says) in [
        (IssuerState::Missing, "IssuerNotFound", "not found"),
        (
            not_ready("NotReady: no active sub-CA"),
            "IssuerNotReady",
            "no active sub-CA",
        ),
    ] {
        // Whether it was Pending before or never decided, it fails once old enough.
        let pending = update(decide_with(&Req::istio().approved(), issuer.clone())).ready;
        for req in [
            Req::istio().approved(),
            with_ready(Req::istio().approved(), pending),
        ] {
            let old = req.created_ago(Duration::from_secs(301));
            let u = update(decide_with(&old, issuer.clone()));
            assert_eq!(
                (u.ready.status.as_str(), u.ready.reason.as_deref()),
                ("False", Some(reason::FAILED)),
                "{cause}"
            );
            assert_eq!(u.failure_time, Some(now()), "{cause}");
            assert!(u.requeue_after.is_none(), "{cause}");
            assert_eq!(u.outcome, cause);
            let event = u.event.expect("a warning event");
            assert!(event.warning);
            assert_eq!(event.reason, cause);
            let message = u.ready.message.unwrap();
            assert_eq!(event.note, message);
            for part in [
                "Issuer istio-system/firefly-istio",
                says,
                "controller.maxRetryDuration 300s",
                "301s",
            ] {
                assert!(message.contains(part), "{cause}: {part:?} not in {message}");
            }
        }
    }
}

#[test]
fn a_request_pending_on_a_missing_issuer_says_so_when_the_issuer_exists_but_is_not_ready() {
    let missing = update(decide_with(&Req::istio().approved(), IssuerState::Missing));
    let waiting = with_ready(Req::istio().approved(), missing.ready.clone());
    let u = update(decide_with(
        &waiting,
        not_ready("NotReady: no active sub-CA"),
    ));
    assert_eq!(u.ready.reason.as_deref(), Some(reason::PENDING));
    let message = u.ready.message.clone().unwrap();
    assert!(
        message.contains("not ready") && message.contains("no active sub-CA"),
        "{message}"
    );
    assert!(!message.contains("not found"), "{message}");
    assert_eq!(u.outcome, "IssuerNotReady");
    assert_eq!(u.event.as_ref().map(|e| e.reason), Some("IssuerNotReady"));
    assert_eq!(
        u.ready.last_transition_time, missing.ready.last_transition_time,
        "still False: the transition time stays"
    );
    // The same cause with another detail is not written again.
    let waiting = with_ready(Req::istio().approved(), u.ready);
    assert!(matches!(
        decide_with(&waiting, not_ready("NotReady: policies are stale")),
        Decision::Retry(_)
    ));
    // A transient signing failure after the issuer turned Ready is a new cause: written once.
    let retry = Outcome::Retry {
        reason: "SignerNotReady",
        message: "cannot sign now: no active sub-CA".into(),
    };
    let u = update(after_issue(&waiting.0, &retry, &settings(), now()));
    assert_eq!(u.outcome, "SignerNotReady");
    assert!(u.ready.message.unwrap().contains("cannot sign now"));
}

#[test]
fn every_policy_the_configuration_does_not_let_a_request_use_is_a_policy_denial() {
    use firefly_tlspc::policy_cache::PolicyLookupError;
    let name = || "istio-mtls".to_owned();
    let lookups = [
        PolicyLookupError::Unknown {
            name: name(),
            known: "other".into(),
        },
        PolicyLookupError::Removed { name: name() },
        PolicyLookupError::NotAllowed {
            name: name(),
            id: "p-1".into(),
        },
        PolicyLookupError::Invalid {
            name: name(),
            reason: "bad pattern".into(),
        },
        PolicyLookupError::Stale {
            age_secs: 42,
            max_secs: 30,
        },
        PolicyLookupError::NotLoaded,
    ];
    for lookup in &lookups {
        let named = refusal::named(lookup.reason());
        if lookup.is_transient() {
            // Waiting helps: never a refusal of the request.
            assert_ne!(named, refusal::POLICY_DENIED, "{}", lookup.reason());
        } else {
            assert_eq!(named, refusal::POLICY_DENIED, "{}", lookup.reason());
        }
    }
    // The pod door's policy-not-found spelling, and the transient causes of the signer.
    assert_eq!(refusal::named("PolicyNotFound"), refusal::POLICY_DENIED);
    for transient in [
        "PolicyStale",
        "PolicyNotLoaded",
        "PolicyUnavailable",
        "SignerNotReady",
    ] {
        assert_ne!(
            refusal::named(transient),
            refusal::POLICY_DENIED,
            "{transient}"
        );
    }
    // The fine cause stays in the message; the event reason is the contract's.
    let refused = Outcome::Refused {
        reason: "PolicyNotAllowed",
        message: "policy \"istio-mtls\" (id p-1) is not in the configuration's controllerAllowedPolicyIds".into(),
    };
    let u = update(after_issue(
        &Req::istio().approved().0,
        &refused,
        &settings(),
        now(),
    ));
    assert_eq!(u.outcome, "PolicyDenied");
    assert_eq!(u.event.as_ref().map(|e| e.reason), Some("PolicyDenied"));
    assert!(
        u.ready
            .message
            .unwrap()
            .contains("controllerAllowedPolicyIds")
    );
}

#[test]
fn requester_outside_both_allow_lists_fails_immediately() {
    let s = Settings {
        allowed_requesters: vec!["system:serviceaccount:x:y".into()],
        ..settings()
    };
    let mut req = Req::istio().approved();
    req.0.spec.username = Some("system:serviceaccount:evil:sa".into());
    let u = update(decide(&req.0, |_, _| ready_issuer(), &s, now()));
    assert_eq!(u.ready.reason.as_deref(), Some(reason::FAILED));
    assert!(
        u.ready
            .message
            .unwrap()
            .contains("system:serviceaccount:evil:sa")
    );
    assert_eq!(u.outcome, "RequesterNotAllowed");
    assert_eq!(u.failure_time, Some(now()));
}

#[test]
fn an_issuer_list_never_widens_the_global_one() {
    let s = Settings {
        allowed_requesters: vec!["system:serviceaccount:x:y".into()],
        ..settings()
    };
    let issuer = IssuerState::Ready(IssuerSpec {
        allowed_requesters: Some(vec![ISTIO_CSR.into()]),
        ..Default::default()
    });
    let u = update(decide(&Req::istio().approved().0, |_, _| issuer, &s, now()));
    assert_eq!(u.outcome, "RequesterNotAllowed");
    assert_eq!(u.ready.reason.as_deref(), Some(reason::FAILED));
    let event = u.event.unwrap();
    assert_eq!(event.reason, "RequesterNotAllowed");
    assert!(
        event.note.contains("controller.allowedRequesters"),
        "{}",
        event.note
    );
}

#[test]
fn an_issuer_list_narrows_the_global_one() {
    let s = Settings {
        allowed_requesters: vec!["*".into()],
        ..settings()
    };
    // (issuer's spec.allowedRequesters, signed?)
    let cases = [
        (None, true),
        (Some(vec!["*".to_owned()]), true),
        (Some(vec![ISTIO_CSR.to_owned()]), true),
        (Some(vec![]), false),
        (Some(vec!["system:serviceaccount:x:y".to_owned()]), false),
    ];
    for (list, signed) in cases {
        let issuer = IssuerState::Ready(IssuerSpec {
            allowed_requesters: list.clone(),
            ..Default::default()
        });
        match decide(&Req::istio().approved().0, |_, _| issuer, &s, now()) {
            Decision::Sign(_) => assert!(signed, "{list:?} must refuse"),
            Decision::Update(u) => {
                assert!(!signed, "{list:?} must sign, got {u:?}");
                assert_eq!(u.outcome, "RequesterNotAllowed", "{list:?}");
                assert!(
                    u.ready.message.unwrap().contains("spec.allowedRequesters"),
                    "{list:?}"
                );
            }
            other => panic!("{list:?}: {other:?}"),
        }
    }
}

#[test]
fn an_empty_global_list_refuses_every_requester_naming_the_key() {
    let s = Settings {
        allowed_requesters: vec![],
        ..settings()
    };
    let issuer = IssuerState::Ready(IssuerSpec {
        allowed_requesters: Some(vec![ISTIO_CSR.into()]),
        ..Default::default()
    });
    let u = update(decide(&Req::istio().approved().0, |_, _| issuer, &s, now()));
    assert_eq!(u.ready.reason.as_deref(), Some(reason::FAILED));
    assert_eq!(u.outcome, "RequestersNotConfigured");
    let event = u.event.unwrap();
    assert!(event.warning);
    assert_eq!(event.reason, "RequestersNotConfigured");
    assert!(
        event.note.contains("controller.allowedRequesters"),
        "{}",
        event.note
    );
}

#[test]
fn a_star_allows_even_a_request_without_a_username() {
    let s = Settings {
        allowed_requesters: vec!["*".into()],
        ..settings()
    };
    let mut req = Req::istio().approved();
    req.0.spec.username = None;
    assert!(matches!(
        decide(&req.0, |_, _| ready_issuer(), &s, now()),
        Decision::Sign(_)
    ));
}

#[test]
fn allowed_policies_refuse_another_policy_before_decoding() {
    let issuer = |policies: Option<Vec<String>>| {
        IssuerState::Ready(IssuerSpec {
            allowed_policies: policies,
            ..Default::default()
        })
    };
    let mut req = Req::istio().approved();
    req.0.spec.request = "not base64!".into();
    let u = update(decide_with(&req, issuer(Some(vec!["other".into()]))));
    assert_eq!(u.outcome, "PolicyDenied");
    let m = u.ready.message.unwrap();
    assert!(
        m.contains("spec.allowedPolicies") && m.contains("istio-mtls"),
        "{m}"
    );
    let p = plan(decide_with(
        &Req::istio().approved(),
        issuer(Some(vec!["istio-mtls".into()])),
    ));
    assert_eq!(
        p.issuer_allowed_policies,
        Some(vec!["istio-mtls".to_owned()])
    );
    assert!(
        p.issuance_request(&settings())
            .scope
            .authorize("istio-mtls")
            .is_ok()
    );
    assert!(matches!(
        decide_with(&Req::istio().approved(), issuer(None)),
        Decision::Sign(_)
    ));
}

#[test]
fn identities_are_limited_to_the_request_namespace_outside_mesh_namespaces() {
    // istio-csr's namespace is exempt.
    let p = plan(decide_with(&Req::istio().approved(), ready_issuer()));
    assert_eq!(p.identity_namespaces, None);
    assert!(matches!(
        p.issuance_request(&settings()).scope,
        Scope::Requester {
            identity_namespaces: IdentityNamespaces::Any,
            ..
        }
    ));
    // Any other namespace carries only its own identities.
    let mut req = Req::istio().approved();
    req.0.metadata.namespace = Some("team-a".into());
    let p = plan(decide_with(&req, ready_issuer()));
    assert_eq!(p.identity_namespaces, Some(vec!["team-a".to_owned()]));
    let s = settings();
    let r = p.issuance_request(&s);
    assert!(matches!(
        r.scope,
        Scope::Requester { identity_namespaces: IdentityNamespaces::Only(ns), .. }
            if ns == ["team-a".to_owned()].as_slice()
    ));
    // With no mesh namespaces istio-system is an ordinary namespace.
    let s = Settings {
        mesh_issuer_namespaces: vec![],
        ..settings()
    };
    let p = plan(decide(
        &Req::istio().approved().0,
        |_, _| ready_issuer(),
        &s,
        now(),
    ));
    assert_eq!(p.identity_namespaces, Some(vec!["istio-system".to_owned()]));
}

#[test]
fn refusals_carry_the_design_reason_names_with_the_detail_in_the_message() {
    // (the core's or signer's reason, the CertificateRequest reason)
    let cases = [
        ("RequestersNotConfigured", "RequestersNotConfigured"),
        ("RequesterNotAllowed", "RequesterNotAllowed"),
        ("IdentityOutsideNamespace", "IdentityOutsideNamespace"),
        ("DNSNameOutsideNamespace", "DNSNameOutsideNamespace"),
        ("PolicyDenied", "PolicyDenied"),
        ("InvalidRequest", "InvalidRequest"),
        ("PolicyUnknown", "PolicyDenied"),
        ("BadRequest", "InvalidRequest"),
    ];
    for (core, named) in cases {
        let refused = Outcome::Refused {
            reason: core,
            message: format!("detail of {core}"),
        };
        let u = update(after_issue(
            &Req::istio().approved().0,
            &refused,
            &settings(),
            now(),
        ));
        assert_eq!(u.outcome, named, "{core}");
        assert_eq!(u.ready.reason.as_deref(), Some(reason::FAILED));
        let event = u.event.unwrap();
        assert_eq!(event.reason, named, "{core}");
        assert!(event.note.contains(&format!("detail of {core}")), "{core}");
    }
}

#[test]
fn annotation_names_the_policy_over_the_issuer_default() {
    let issuer = IssuerState::Ready(IssuerSpec {
        default_policy_name: Some("default".into()),
        ..Default::default()
    });
    assert_eq!(
        plan(decide_with(&Req::istio().approved(), issuer.clone())).policy_name,
        "istio-mtls"
    );
    let req = Req::istio()
        .approved()
        .without_annotation(POLICY_NAME_ANNOTATION);
    assert_eq!(plan(decide_with(&req, issuer)).policy_name, "default");
}

#[test]
fn no_annotation_and_no_default_policy_fails_naming_both() {
    let req = Req::istio()
        .approved()
        .without_annotation(POLICY_NAME_ANNOTATION);
    let u = update(decide_with(&req, ready_issuer()));
    assert_eq!(u.ready.reason.as_deref(), Some(reason::FAILED));
    let m = u.ready.message.unwrap();
    assert!(
        m.contains(POLICY_NAME_ANNOTATION) && m.contains("defaultPolicyName"),
        "{m}"
    );
}

#[test]
fn sign_plan_carries_the_request_fields_and_issuer_trust_domain() {
    let issuer = IssuerState::Ready(IssuerSpec {
        trust_domain: Some("cluster.local".into()),
        ..Default::default()
    });
    let p = plan(decide_with(&Req::istio().approved(), issuer));
    assert_eq!(p.csr_pem, b"-----BEGIN CERTIFICATE REQUEST-----\n");
    assert_eq!(p.duration.as_deref(), Some("1h0m0s"));
    assert_eq!(
        p.usages,
        Some(vec!["client auth".to_owned(), "server auth".to_owned()])
    );
    assert_eq!(
        p.identities_annotation.as_deref(),
        Some("spiffe://cluster.local/ns/a/sa/b")
    );
    assert_eq!(
        p.trust_domain.as_ref().map(|t| t.as_str()),
        Some("cluster.local")
    );
    assert!(!p.is_ca);
}

#[test]
fn sign_plan_lends_the_core_a_csr_request_scoped_by_the_requester() {
    let s = Settings {
        allowed_requesters: vec![ISTIO_CSR.into()],
        ..settings()
    };
    let issuer = IssuerState::Ready(IssuerSpec {
        allowed_requesters: Some(vec![ISTIO_CSR.into(), "system:serviceaccount:x:y".into()]),
        default_policy_name: Some("fallback".into()),
        ..Default::default()
    });
    let p = plan(decide(&Req::istio().approved().0, |_, _| issuer, &s, now()));
    let r = p.issuance_request(&s);
    assert!(matches!(
        r.subject,
        Subject::Csr { pem, identities_annotation: Some(ids) }
            if pem == b"-----BEGIN CERTIFICATE REQUEST-----\n" && ids == "spiffe://cluster.local/ns/a/sa/b"
    ));
    assert!(matches!(
        r.scope,
        Scope::Requester { username: Some(u), controller_allowed, issuer_allowed: Some(issuer_allowed), allowed_policies: None, .. }
            if u == ISTIO_CSR
                && controller_allowed == [ISTIO_CSR.to_owned()].as_slice()
                && issuer_allowed == [ISTIO_CSR.to_owned(), "system:serviceaccount:x:y".to_owned()].as_slice()
    ));
    assert_eq!(r.policy, "istio-mtls");
    assert_eq!(r.duration, Some("1h0m0s"));
    assert!(r.scope.authorize(r.policy).is_ok());
}

#[test]
fn an_invalid_issuer_trust_domain_fails_without_signing() {
    let issuer = IssuerState::Ready(IssuerSpec {
        trust_domain: Some("Not A Domain!".into()),
        ..Default::default()
    });
    let u = update(decide_with(&Req::istio().approved(), issuer));
    assert_eq!(u.outcome, "InvalidRequest");
    assert!(u.ready.message.unwrap().contains("spec.trustDomain"));
    assert_eq!(u.ready.reason.as_deref(), Some(reason::FAILED));
}

#[test]
fn the_cores_answer_becomes_one_status_update() {
    let issued = Outcome::Issued(firefly_core::ca::Issued {
        chain_pem: "LEAF\n".into(),
        ca_pem: "ROOT\n".into(),
        serial_hex: "01".into(),
        not_before: now(),
        not_after: now() + Duration::from_secs(3600),
        spiffe_id: None,
        dns_names: vec![],
        clamped_from: None,
    });
    let refused = Outcome::Refused {
        reason: "PolicyDenied",
        message: "uri not allowed by subjectAltNames.uri".into(),
    };
    let retry = Outcome::Retry {
        reason: "SignerNotReady",
        message: "no active sub-CA yet".into(),
    };
    // (the core's answer, Ready status, Ready reason, outcome label, certificate?, requeued?)
    let cases = [
        (issued, "True", reason::ISSUED, "Issued", true, false),
        (
            refused,
            "False",
            reason::FAILED,
            "PolicyDenied",
            false,
            false,
        ),
        (
            retry,
            "False",
            reason::PENDING,
            "SignerNotReady",
            false,
            true,
        ),
    ];
    for (answer, status, ready_reason, outcome, certificate, requeued) in cases {
        let u = update(after_issue(
            &Req::istio().approved().0,
            &answer,
            &settings(),
            now(),
        ));
        assert_eq!(u.ready.status, status, "{answer:?}");
        assert_eq!(u.ready.reason.as_deref(), Some(ready_reason), "{answer:?}");
        assert_eq!(u.outcome, outcome);
        assert_eq!(u.certificate.is_some(), certificate, "{answer:?}");
        assert_eq!(u.requeue_after.is_some(), requeued, "{answer:?}");
    }
}

#[test]
fn request_that_is_not_base64_fails_as_invalid() {
    let mut req = Req::istio().approved();
    req.0.spec.request = "not base64!".into();
    let u = update(decide_with(&req, ready_issuer()));
    assert_eq!(u.outcome, "InvalidRequest");
    assert!(u.ready.message.unwrap().contains("base64"));
}

#[test]
fn success_is_one_update_with_certificate_ca_and_ready_issued() {
    let signed = Signed {
        chain_pem: "LEAF\nSUBCA\n".into(),
        ca_pem: "ROOT\n".into(),
    };
    let u = update(after_sign(
        &Req::istio().approved().0,
        Ok(signed),
        &settings(),
        now(),
    ));
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(u.certificate, Some(b64.encode("LEAF\nSUBCA\n")));
    assert_eq!(u.ca, Some(b64.encode("ROOT\n")));
    assert_eq!(
        (
            u.ready.type_.as_str(),
            u.ready.status.as_str(),
            u.ready.reason.as_deref()
        ),
        ("Ready", "True", Some("Issued"))
    );
    assert!(u.event.is_none(), "success events are off by default");
    assert!(u.failure_time.is_none());
}

#[test]
fn success_events_and_ca_population_follow_settings() {
    let s = Settings {
        success_events: true,
        ca_root_chain_population: false,
        ..settings()
    };
    let signed = Signed {
        chain_pem: "LEAF\n".into(),
        ca_pem: "ROOT\n".into(),
    };
    let u = update(after_sign(
        &Req::istio().approved().0,
        Ok(signed),
        &s,
        now(),
    ));
    assert!(u.ca.is_none());
    assert!(u.event.is_some_and(|e| !e.warning && e.reason == "Issued"));
}

#[test]
fn request_error_fails_at_once_with_the_rule_in_the_message() {
    let failure = SignFailure {
        request_error: true,
        reason: "PolicyDenied",
        message: "uri spiffe://x not allowed by rule subjectAltNames.uri".into(),
    };
    let u = update(after_sign(
        &Req::istio().approved().0,
        Err(failure),
        &settings(),
        now(),
    ));
    assert_eq!(u.ready.reason.as_deref(), Some(reason::FAILED));
    assert!(u.ready.message.unwrap().contains("subjectAltNames.uri"));
    assert_eq!(u.failure_time, Some(now()));
    assert!(u.requeue_after.is_none());
    assert_eq!(u.outcome, "PolicyDenied");
}

#[test]
fn transient_error_stays_pending_with_backoff_then_fails_after_max_retry() {
    let failure = SignFailure {
        request_error: false,
        reason: "SignerNotReady",
        message: "no active sub-CA yet".into(),
    };
    let young = Req::istio().approved().created_ago(Duration::from_secs(4));
    let u = update(after_sign(
        &young.0,
        Err(failure.clone()),
        &settings(),
        now(),
    ));
    assert_eq!(u.ready.reason.as_deref(), Some(reason::PENDING));
    assert_eq!(u.requeue_after, Some(Duration::from_secs(2)));
    assert!(u.failure_time.is_none());
    let old = Req::istio()
        .approved()
        .created_ago(Duration::from_secs(301));
    let u = update(after_sign(&old.0, Err(failure), &settings(), now()));
    assert_eq!(u.ready.reason.as_deref(), Some(reason::FAILED));
    assert!(u.ready.message.unwrap().contains("maxRetryDuration"));
}

#[test]
fn last_transition_time_moves_only_when_status_changes() {
    let pending = Req::istio()
        .approved()
        .condition(READY, "False", Some(reason::PENDING));
    let before = time(now() - Duration::from_secs(5));
    let failure = SignFailure {
        request_error: true,
        reason: "PolicyDenied",
        message: "x".into(),
    };
    let u = update(after_sign(&pending.0, Err(failure), &settings(), now()));
    assert_eq!(u.ready.last_transition_time, Some(before.clone()));
    let signed = Signed {
        chain_pem: "L".into(),
        ca_pem: "R".into(),
    };
    let u = update(after_sign(&pending.0, Ok(signed), &settings(), now()));
    assert_eq!(u.ready.last_transition_time, Some(time(now())));
}

#[test]
fn an_identical_transient_failure_is_retried_without_a_write() {
    let failure = SignFailure {
        request_error: false,
        reason: "SignerNotReady",
        message: "no active sub-CA yet".into(),
    };
    let first = update(after_sign(
        &Req::istio().approved().0,
        Err(failure.clone()),
        &settings(),
        now(),
    ));
    let mut req = Req::istio().approved();
    req.0
        .status
        .as_mut()
        .unwrap()
        .conditions
        .as_mut()
        .unwrap()
        .push(first.ready);
    assert_eq!(
        after_sign(&req.0, Err(failure), &settings(), now()),
        Decision::Retry(Duration::from_secs(5))
    );
}

#[test]
fn a_pending_message_whose_counter_changed_is_not_written_again() {
    let stale = |age: u64| SignFailure {
        request_error: false,
        reason: "PolicyStale",
        message: format!("policies are stale: last successful TLSPC refresh {age}s ago"),
    };
    let first = update(after_sign(
        &Req::istio().approved().0,
        Err(stale(41)),
        &settings(),
        now(),
    ));
    let mut req = Req::istio().approved();
    req.0
        .status
        .as_mut()
        .unwrap()
        .conditions
        .as_mut()
        .unwrap()
        .push(first.ready);
    assert_eq!(
        after_sign(&req.0, Err(stale(42)), &settings(), now()),
        Decision::Retry(Duration::from_secs(5)),
        "only the counter changed: no write, no event"
    );
}

#[test]
fn a_request_that_keeps_panicking_fails_with_internal_error_and_no_certificate() {
    let u = update(internal_error(
        &Req::istio().approved().0,
        &settings(),
        MAX_PANICS,
        now(),
    ));
    assert_eq!(
        (u.ready.status.as_str(), u.ready.reason.as_deref()),
        ("False", Some(reason::FAILED))
    );
    assert_eq!(u.outcome, "InternalError");
    assert_eq!(u.event.as_ref().map(|e| e.reason), Some("InternalError"));
    assert!(u.certificate.is_none() && u.ca.is_none());
    assert_eq!(u.failure_time, Some(now()));
    assert!(u.requeue_after.is_none());
}

#[test]
fn internal_error_keeps_the_gates() {
    assert_eq!(
        internal_error(&Req::istio().0, &settings(), MAX_PANICS, now()),
        Decision::Ignore(Ignored::NotApproved)
    );
    let answered = Req::istio()
        .approved()
        .condition(READY, "True", Some(reason::ISSUED));
    assert_eq!(
        internal_error(&answered.0, &settings(), MAX_PANICS, now()),
        Decision::Ignore(Ignored::Terminal)
    );
}
