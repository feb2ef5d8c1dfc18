use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

use super::*;
use crate::csr;

const AUTHOR: &str = "system:serviceaccount:team-a:author";
const ISTIO_CSR: &str = "system:serviceaccount:istio-system:cert-manager-istio-csr";

fn list(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn requester<'a>(
    username: &'a str,
    controller: &'a [String],
    issuer: Option<&'a [String]>,
) -> Scope<'a> {
    Scope::Requester {
        username: Some(username),
        controller_allowed: controller,
        issuer_allowed: issuer,
        allowed_policies: None,
        identity_namespaces: IdentityNamespaces::Any,
    }
}

fn refused_reason(result: Result<(), Refusal>) -> &'static str {
    match result {
        Ok(()) => "allowed",
        Err(r) => r.reason,
    }
}

#[test]
fn an_empty_controller_list_refuses_every_requester_and_names_the_key() {
    let empty = list(&[]);
    let star = list(&["*"]);
    for issuer in [None, Some(star.as_slice())] {
        let refusal = requester(ISTIO_CSR, &empty, issuer)
            .authorize("p")
            .unwrap_err();
        assert_eq!(refusal.reason, "RequestersNotConfigured");
        assert!(
            refusal.message.contains("controller.allowedRequesters"),
            "{}",
            refusal.message
        );
    }
}

#[test]
fn a_star_on_the_controller_list_allows_every_requester() {
    let star = list(&["*"]);
    assert_eq!(requester(AUTHOR, &star, None).authorize("p"), Ok(()));
    let anonymous = Scope::Requester {
        username: None,
        controller_allowed: &star,
        issuer_allowed: None,
        allowed_policies: None,
        identity_namespaces: IdentityNamespaces::Any,
    };
    assert_eq!(anonymous.authorize("p"), Ok(()));
}

#[test]
fn a_requester_off_the_controller_list_is_not_allowed() {
    let only_istio_csr = list(&[ISTIO_CSR]);
    assert_eq!(
        requester(ISTIO_CSR, &only_istio_csr, None).authorize("p"),
        Ok(())
    );
    let refusal = requester(AUTHOR, &only_istio_csr, None)
        .authorize("p")
        .unwrap_err();
    assert_eq!(refusal.reason, "RequesterNotAllowed");
    assert!(refusal.message.contains(AUTHOR), "{}", refusal.message);
    assert!(
        refusal.message.contains("controller.allowedRequesters"),
        "{}",
        refusal.message
    );
}

#[test]
fn an_issuer_list_narrows_the_controller_list_and_never_widens_it() {
    let controller = list(&[ISTIO_CSR]);
    let star = list(&["*"]);
    let nobody = list(&[]);
    let author_only = list(&[AUTHOR]);
    let both = list(&[AUTHOR, ISTIO_CSR]);
    /// (requester, controller list, issuer list, expected answer)
    type Case<'a> = (&'a str, &'a [String], Option<&'a [String]>, &'a str);
    let cases: [Case; 9] = [
        // absent: no narrowing
        (ISTIO_CSR, &controller, None, "allowed"),
        // ["*"]: no narrowing
        (ISTIO_CSR, &controller, Some(&star), "allowed"),
        (AUTHOR, &controller, Some(&star), "RequesterNotAllowed"),
        // []: nobody
        (ISTIO_CSR, &controller, Some(&nobody), "RequesterNotAllowed"),
        (ISTIO_CSR, &star, Some(&nobody), "RequesterNotAllowed"),
        // listing its author does not widen the controller list
        (
            AUTHOR,
            &controller,
            Some(&author_only),
            "RequesterNotAllowed",
        ),
        (AUTHOR, &controller, Some(&both), "RequesterNotAllowed"),
        // intersection
        (
            ISTIO_CSR,
            &controller,
            Some(&author_only),
            "RequesterNotAllowed",
        ),
        (AUTHOR, &star, Some(&author_only), "allowed"),
    ];
    for (user, controller, issuer, want) in cases {
        assert_eq!(
            refused_reason(requester(user, controller, issuer).authorize("p")),
            want,
            "{user} with controller {controller:?} and issuer {issuer:?}"
        );
    }
    let refusal = requester(ISTIO_CSR, &controller, Some(&author_only))
        .authorize("p")
        .unwrap_err();
    assert!(
        refusal.message.contains("spec.allowedRequesters"),
        "{}",
        refusal.message
    );
}

#[test]
fn allowed_policies_limit_the_policy_a_request_may_name() {
    let star = list(&["*"]);
    let mesh = list(&["istio-mtls"]);
    let scope = |policies| Scope::Requester {
        username: Some(AUTHOR),
        controller_allowed: &star,
        issuer_allowed: None,
        allowed_policies: policies,
        identity_namespaces: IdentityNamespaces::Any,
    };
    assert_eq!(scope(None).authorize("anything"), Ok(()));
    assert_eq!(scope(Some(&mesh)).authorize("istio-mtls"), Ok(()));
    let refusal = scope(Some(&mesh)).authorize("admin-certs").unwrap_err();
    assert_eq!(refusal.reason, "PolicyDenied");
    assert!(
        refusal.message.contains("spec.allowedPolicies") && refusal.message.contains("admin-certs"),
        "{}",
        refusal.message
    );
    let none: Vec<String> = Vec::new();
    assert_eq!(
        refused_reason(scope(Some(&none)).authorize("istio-mtls")),
        "PolicyDenied"
    );
}

/// A decoded request with these URI SANs, DNS SANs and common name.
fn request(uris: &[&str], dns: &[&str], cn: Option<&str>) -> csr::CertificateRequest {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    if let Some(cn) = cn {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    params.subject_alt_names = uris
        .iter()
        .map(|u| SanType::URI((*u).try_into().unwrap()))
        .chain(
            dns.iter()
                .map(|d| SanType::DnsName((*d).try_into().unwrap())),
        )
        .collect();
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    csr::decode_pem(pem.as_bytes()).unwrap()
}

fn in_namespaces<'a>(namespaces: IdentityNamespaces<'a>, star: &'a [String]) -> Scope<'a> {
    Scope::Requester {
        username: Some(AUTHOR),
        controller_allowed: star,
        issuer_allowed: None,
        allowed_policies: None,
        identity_namespaces: namespaces,
    }
}

#[test]
fn spiffe_ids_must_belong_to_an_allowed_namespace() {
    let star = list(&["*"]);
    let team_a = list(&["team-a"]);
    let scope = in_namespaces(IdentityNamespaces::Only(&team_a), &star);
    let cases = [
        ("spiffe://cluster.local/ns/team-a/sa/web", "allowed"),
        (
            "spiffe://cluster.local/ns/istio-system/sa/istiod-service-account",
            "IdentityOutsideNamespace",
        ),
        // odd path shapes
        (
            "spiffe://cluster.local/team-a/sa/web",
            "IdentityOutsideNamespace",
        ),
        (
            "spiffe://cluster.local/ns/team-a",
            "IdentityOutsideNamespace",
        ),
        (
            "spiffe://cluster.local/sa/web/ns/team-a/x",
            "IdentityOutsideNamespace",
        ),
        (
            "spiffe://cluster.local/ns/team-ab/sa/web",
            "IdentityOutsideNamespace",
        ),
        (
            "spiffe://cluster.local/ns/team/a/sa/web",
            "IdentityOutsideNamespace",
        ),
    ];
    for (uri, want) in cases {
        assert_eq!(
            refused_reason(scope.check_identities(&request(&[uri], &[], None))),
            want,
            "{uri}"
        );
    }
    let refusal = scope
        .check_identities(&request(
            &["spiffe://cluster.local/ns/istio-system/sa/istiod-service-account"],
            &[],
            None,
        ))
        .unwrap_err();
    assert!(
        refusal.message.contains("istio-system") && refusal.message.contains("team-a"),
        "{}",
        refusal.message
    );
}

#[test]
fn service_dns_names_must_belong_to_an_allowed_namespace() {
    let star = list(&["*"]);
    let team_a = list(&["team-a"]);
    let scope = in_namespaces(IdentityNamespaces::Only(&team_a), &star);
    let cases = [
        ("web.team-a.svc", "allowed"),
        ("web.team-a.svc.cluster.local", "allowed"),
        ("web.team-a.svc.corp.example", "allowed"),
        ("_grpc._tcp.web.team-a.svc.cluster.local", "allowed"),
        ("*.team-a.svc", "allowed"),
        ("istiod.istio-system.svc", "DNSNameOutsideNamespace"),
        (
            "istiod.istio-system.svc.cluster.local",
            "DNSNameOutsideNamespace",
        ),
        (
            "istiod.istio-system.svc.cluster.local.",
            "DNSNameOutsideNamespace",
        ),
        ("istiod.istio-system.SVC", "DNSNameOutsideNamespace"),
        // two readings (the cluster domain is not known): both must be allowed
        (
            "a.team-a.svc.b.istio-system.svc.cluster.local",
            "DNSNameOutsideNamespace",
        ),
        // not of the service form: left to the policy
        ("www.example.com", "allowed"),
        ("istio-system.svc", "allowed"),
        ("svc.istio-system.example", "allowed"),
    ];
    for (name, want) in cases {
        assert_eq!(
            refused_reason(scope.check_identities(&request(&[], &[name], None))),
            want,
            "{name}"
        );
    }
    // A common name is a DNS name to many clients: the same rule.
    assert_eq!(
        refused_reason(scope.check_identities(&request(&[], &[], Some("istiod.istio-system.svc")))),
        "DNSNameOutsideNamespace"
    );
    let refusal = scope
        .check_identities(&request(&[], &["istiod.istio-system.svc"], None))
        .unwrap_err();
    assert!(
        refusal.message.contains("istiod.istio-system.svc") && refusal.message.contains("team-a"),
        "{}",
        refusal.message
    );
}

#[test]
fn several_namespaces_and_the_mesh_exemption() {
    let star = list(&["*"]);
    let two = list(&["team-a", "team-b"]);
    let several = in_namespaces(IdentityNamespaces::Only(&two), &star);
    let exempt = in_namespaces(IdentityNamespaces::Any, &star);
    let nothing = list(&[]);
    let none = in_namespaces(IdentityNamespaces::Only(&nothing), &star);
    let istiod = request(
        &["spiffe://cluster.local/ns/istio-system/sa/istiod-service-account"],
        &["istiod.istio-system.svc"],
        None,
    );
    let team_b = request(
        &["spiffe://cluster.local/ns/team-b/sa/web"],
        &["web.team-b.svc.cluster.local"],
        None,
    );
    assert_eq!(several.check_identities(&team_b), Ok(()));
    assert_eq!(
        refused_reason(several.check_identities(&istiod)),
        "IdentityOutsideNamespace"
    );
    assert_eq!(exempt.check_identities(&istiod), Ok(()));
    assert_eq!(exempt.check_identities(&team_b), Ok(()));
    assert_eq!(
        refused_reason(none.check_identities(&team_b)),
        "IdentityOutsideNamespace"
    );
    // A signer asserts the identity itself: no namespace rule on top of its namespaces.
    let all = list(&["*"]);
    let signer = Scope::Signer {
        namespace: "team-a",
        namespaces: &all,
    };
    assert_eq!(signer.check_identities(&istiod), Ok(()));
}
