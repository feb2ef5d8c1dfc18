//! The chart's security posture, judged on what the real Helm v4 SDK renders (through
//! tests/helm/chart_checks.py under $FIREFLY_TEST_PYTHON): the default pod fits Pod Security
//! "restricted", and the controller's Roles grant exactly the API calls the controller makes.

use std::collections::BTreeSet;
use std::process::Command;

use support::{repo_root, verifiers};

/// Runs `chart_checks.py <case> <args>`; fails with its whole output when the case fails.
fn run_case(case: &str, args: &[&str]) -> String {
    let output = Command::new(verifiers::python())
        .arg(repo_root().join("tests/helm/chart_checks.py"))
        .arg(case)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot start the chart checks: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "chart check {case} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains(&format!("ok {case}")),
        "chart check {case} did not report success:\n{stdout}"
    );
    stdout
}

#[test]
fn default_pod_fits_pod_security_restricted_and_each_rule_can_fail() {
    let out = run_case("pod_security_restricted", &[]);
    // The case proves each rule on a doctored pod and reports lockMode all (IPC_LOCK) outside.
    for rule in [
        "runAsNonRoot",
        "runAsUser",
        "allowPrivilegeEscalation",
        "capabilities",
        "seccomp",
        "volumeTypes",
        "hostNamespaces",
        "hostPorts",
        "privileged",
    ] {
        assert!(
            out.contains(&format!("doctored ({rule}): reported")),
            "no doctored pod showed the {rule} rule failing:\n{out}"
        );
    }
    assert!(
        out.contains("lockMode all: outside restricted") && out.contains("IPC_LOCK"),
        "{out}"
    );
}

/// Every Kubernetes API call the controller makes, as `(apiGroup, resource, verb)`; `{group}` is
/// the issuer group (`crd.groupName`). The chart must grant exactly these, nothing more.
const CONTROLLER_CALLS: &[(&str, &str, &str)] = &[
    // src/issuer/controller.rs: kube-runtime `watcher(Api::<CertificateRequest>::all)`, a
    // list then a watch (the reflector store answers every read: no `get`).
    ("cert-manager.io", "certificaterequests", "list"),
    ("cert-manager.io", "certificaterequests", "watch"),
    // src/issuer/controller/apply.rs: `patch_status` with `Patch::Apply` (server-side apply).
    ("cert-manager.io", "certificaterequests/status", "patch"),
    // src/issuer/controller/issuer_watch.rs: `watcher` on Issuers and ClusterIssuers (all namespaces).
    ("{group}", "issuers", "list"),
    ("{group}", "issuers", "watch"),
    ("{group}", "clusterissuers", "list"),
    ("{group}", "clusterissuers", "watch"),
    // src/issuer/controller/issuer_status.rs: `patch_status` with `Patch::Apply`.
    ("{group}", "issuers/status", "patch"),
    ("{group}", "clusterissuers/status", "patch"),
    // src/issuer/controller/report.rs and issuer_status.rs: kube-runtime `Recorder::publish`
    // writes events.k8s.io/v1 Events: `create`, then a merge `patch` of a repeated event's series.
    ("events.k8s.io", "events", "create"),
    ("events.k8s.io", "events", "patch"),
    // src/leader.rs: `get_opt` the Lease, `create` it when absent, `replace` (update, carrying
    // the resourceVersion read) to take or renew it. Granted in the release namespace only.
    ("coordination.k8s.io", "leases", "get"),
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "update"),
];

fn expected_grants(group: &str) -> BTreeSet<(String, String, String)> {
    CONTROLLER_CALLS
        .iter()
        .map(|(g, r, v)| (g.replace("{group}", group), r.to_string(), v.to_string()))
        .collect()
}

/// The `(apiGroup, resource, verb)` set the chart renders for value set `label` (plus JSON
/// `overrides`) and binds to the controller's ServiceAccount.
fn rendered_grants(label: &str, overrides: &[&str]) -> BTreeSet<(String, String, String)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("grants.json");
    let mut args = vec![label, out.to_str().expect("utf-8 temp path")];
    args.extend_from_slice(overrides);
    run_case("controller_rbac_grants", &args);
    let text = std::fs::read_to_string(&out).expect("read grants.json");
    let triples: Vec<(String, String, String)> =
        serde_json::from_str(&text).expect("grants.json is a list of triples");
    triples.into_iter().collect()
}

fn assert_exact(label: &str, group: &str, got: &BTreeSet<(String, String, String)>) {
    let want = expected_grants(group);
    let extra: Vec<_> = got.difference(&want).collect();
    let missing: Vec<_> = want.difference(got).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{label}: the chart's Roles must grant exactly the calls the controller makes\n\
         granted but never called: {extra:?}\ncalled but not granted: {missing:?}"
    );
}

#[test]
fn controller_roles_grant_exactly_the_calls_the_controller_makes() {
    for label in ["default", "seed", "deploy/kind", "deploy/tlspc-mock"] {
        assert_exact(label, "firefly.venafi.com", &rendered_grants(label, &[]));
    }
    let group = "issuers.example.org";
    let custom = rendered_grants(
        "seed",
        &[r#"{"crd": {"groupName": "issuers.example.org"}}"#],
    );
    assert_exact("seed with crd.groupName", group, &custom);
}

#[test]
fn openshift_scc_use_is_the_only_grant_beyond_the_calls() {
    let got = rendered_grants(
        "deploy/openshift",
        &[r#"{"openshift": {"scc": {"enabled": true}}}"#],
    );
    let mut want = expected_grants("firefly.venafi.com");
    // Admission, not a call: the SCC `use` lets the pods be admitted with IPC_LOCK.
    want.insert((
        "security.openshift.io".into(),
        "securitycontextconstraints".into(),
        "use".into(),
    ));
    assert_eq!(got, want, "deploy/openshift with the chart's SCC");
}

/// The CertificateSigningRequest front door's calls (src/kube_csr/controller*), granted only when
/// `config.certificateSigningRequests.enabled`.
const CSR_DOOR_CALLS: &[(&str, &str, &str)] = &[
    // controller.rs: kube-runtime `Controller` on `Api::<CertificateSigningRequest>::all` (list
    // then watch; the store answers reads: no `get`).
    ("certificates.k8s.io", "certificatesigningrequests", "list"),
    ("certificates.k8s.io", "certificatesigningrequests", "watch"),
    // controller/apply.rs: `patch_status` with `Patch::Apply`.
    (
        "certificates.k8s.io",
        "certificatesigningrequests/status",
        "patch",
    ),
    // The API server requires `sign` on the signer name for a certificate or a Failed condition.
    ("certificates.k8s.io", "signers", "sign"),
    // controller/access.rs: the `reference` SubjectAccessReviews of namespaced Issuers.
    ("authorization.k8s.io", "subjectaccessreviews", "create"),
];

#[test]
fn the_csr_front_door_adds_exactly_its_calls_when_enabled() {
    let got = rendered_grants(
        "seed",
        &[
            r#"{"config": {"certificateSigningRequests": {"enabled": true, "istiodApprover": {"serviceAccount": "istiod"}}}}"#,
        ],
    );
    let mut want = expected_grants("firefly.venafi.com");
    want.extend(
        CSR_DOOR_CALLS
            .iter()
            .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string())),
    );
    assert_eq!(got, want, "seed with the CSR door enabled");
    run_case("csr_istiod_approver", &[]);
}
