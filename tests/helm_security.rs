//! The chart's security posture, judged on what the real Helm v4 SDK renders (through
//! tests/helm/chart_checks.py under $FIREFLY_TEST_PYTHON): the default pod fits Pod Security
//! "restricted", and the controller's Roles grant exactly the API calls the controller makes.

use std::collections::BTreeSet;
use std::process::Command;

use firefly::rbac::Scope;
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
    // The project's own guided values keep lockMode keyPages and ask for no capability.
    for guide in ["deploy/kind", "deploy/openshift", "deploy/tlspc-mock"] {
        assert!(
            out.contains(&format!("\n{guide}: fits restricted\n")),
            "{guide}'s values must fit Pod Security restricted:\n{out}"
        );
    }
}

/// A rendered grant: `(scope, apiGroup, resource, verb)`, scope `cluster` or `namespace`.
type Rendered = (String, String, String, String);

/// The product's own table (`firefly::rbac`, the union of every module's `KUBE_CALLS`) in the
/// chart checks' terms.
fn expected_grants(group: &str, leader_election: bool) -> BTreeSet<Rendered> {
    expected_grants_with(group, leader_election, false)
}

/// [`expected_grants`] with the CertificateSigningRequest front door on or off.
fn expected_grants_with(group: &str, leader_election: bool, csr: bool) -> BTreeSet<Rendered> {
    as_rendered(firefly::rbac::grants_with(group, leader_election, csr))
}

/// The product's grants in the chart checks' terms.
fn as_rendered(grants: BTreeSet<firefly::rbac::Grant>) -> BTreeSet<Rendered> {
    grants
        .into_iter()
        .map(|g| {
            let scope = match g.scope {
                Scope::Cluster => "cluster",
                Scope::OwnNamespace => "namespace",
            };
            (scope.to_owned(), g.group, g.resource, g.verb)
        })
        .collect()
}

/// The `(scope, apiGroup, resource, verb)` set the chart renders for value set `label` (plus JSON
/// `overrides`) and binds to the controller's ServiceAccount.
fn rendered_grants(label: &str, overrides: &[&str]) -> BTreeSet<Rendered> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("grants.json");
    let mut args = vec![label, out.to_str().expect("utf-8 temp path")];
    args.extend_from_slice(overrides);
    run_case("controller_rbac_grants", &args);
    let text = std::fs::read_to_string(&out).expect("read grants.json");
    let rows: Vec<Rendered> =
        serde_json::from_str(&text).expect("grants.json is a list of 4-tuples");
    rows.into_iter().collect()
}

fn assert_exact(label: &str, want: &BTreeSet<Rendered>, got: &BTreeSet<Rendered>) {
    let extra: Vec<_> = got.difference(want).collect();
    let missing: Vec<_> = want.difference(got).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{label}: the chart's Roles must grant exactly the product's table (firefly::rbac)\n\
         granted but never called: {extra:?}\ncalled but not granted: {missing:?}"
    );
}

#[test]
fn controller_roles_grant_exactly_the_calls_the_controller_makes() {
    let want = expected_grants("firefly.venafi.com", true);
    // Every value set users are shown.
    for label in ["default", "seed", "deploy/kind", "deploy/tlspc-mock"] {
        assert_exact(label, &want, &rendered_grants(label, &[]));
    }
    // Every optional object on (approver, OpenShift SCC, ServiceMonitor, lockMode all, ...):
    // still exactly the table, plus the SCC's admission grant.
    let mut with_scc = want.clone();
    with_scc.insert(scc_use());
    assert_exact(
        "everything-on",
        &with_scc,
        &rendered_grants("everything-on", &[]),
    );
    let group = "issuers.example.org";
    let custom = rendered_grants(
        "seed",
        &[r#"{"crd": {"groupName": "issuers.example.org"}}"#],
    );
    assert_exact(
        "seed with crd.groupName",
        &expected_grants(group, true),
        &custom,
    );
}

#[test]
fn without_leader_election_no_lease_is_granted() {
    let got = rendered_grants(
        "default",
        &[r#"{"config": {"leaderElection": {"enabled": false}}}"#],
    );
    let want = expected_grants("firefly.venafi.com", false);
    assert!(want.iter().all(|(_, _, resource, _)| resource != "leases"));
    assert_exact("default with leaderElection.enabled false", &want, &got);
    assert_exact(
        "lock-disabled",
        &want,
        &rendered_grants("lock-disabled", &[]),
    );
    // Stated explicitly on is the default.
    let on = rendered_grants(
        "default",
        &[r#"{"config": {"leaderElection": {"enabled": true}}}"#],
    );
    assert_exact(
        "default with leaderElection.enabled true",
        &expected_grants("firefly.venafi.com", true),
        &on,
    );
}

#[test]
fn openshift_scc_use_is_the_only_grant_beyond_the_calls() {
    let got = rendered_grants(
        "deploy/openshift",
        &[r#"{"openshift": {"scc": {"enabled": true}}}"#],
    );
    let mut want = expected_grants("firefly.venafi.com", true);
    want.insert(scc_use());
    assert_eq!(got, want, "deploy/openshift with the chart's SCC");
}

/// OpenShift without the chart's SCC: the default fixed runAsUser/fsGroup 1001 are refused by
/// restricted-v2; with the IDs nulled as deploy/openshift/README.md's command does, none is rendered
/// and the pod fits restricted-v2 (and still gets no grant beyond the calls).
#[test]
fn openshift_without_the_scc_renders_no_fixed_ids_once_nulled() {
    let out = run_case("openshift_without_the_scc_needs_the_ids_nulled", &[]);
    assert!(
        out.contains("SCC off, IDs kept: refused by restricted-v2")
            && out.contains("pod fsGroup: 1001")
            && out.contains("runAsUser 1001"),
        "{out}"
    );
    assert!(
        out.contains(
            "SCC off, IDs nulled: no runAsUser/runAsGroup/fsGroup rendered; fits restricted-v2"
        ),
        "{out}"
    );
    assert_exact(
        "openshift-restricted-v2",
        &expected_grants("firefly.venafi.com", true),
        &rendered_grants("openshift-restricted-v2", &[]),
    );
}

/// Admission, not a call: the SCC `use` (in the release namespace) lets the pods be admitted
/// with their fixed user and fsGroup (and IPC_LOCK when it is added).
fn scc_use() -> Rendered {
    (
        "namespace".into(),
        "security.openshift.io".into(),
        "securitycontextconstraints".into(),
        "use".into(),
    )
}

#[test]
fn the_csr_front_door_adds_exactly_its_calls_when_enabled() {
    let got = rendered_grants(
        "seed",
        &[
            r#"{"config": {"certificateSigningRequests": {"enabled": true, "istiodApprover": {"serviceAccount": "istiod"}}}}"#,
        ],
    );
    let want = expected_grants_with("firefly.venafi.com", true, true);
    assert!(
        want.len() > expected_grants("firefly.venafi.com", true).len(),
        "the door has calls of its own"
    );
    assert_exact("seed with the CSR door enabled", &want, &got);
    run_case("csr_istiod_approver", &[]);
}

/// The grants above are 4-tuples without `resourceNames`: this checks them on the CSR door's
/// `sign` rule, which must name exactly `issuers.<group>/*` and `clusterissuers.<group>/*` (without
/// them the controller could sign for every signer, `kubernetes.io` ones included).
#[test]
fn the_csr_front_door_signs_only_for_our_signer_names() {
    let out = run_case("csr_signer_names_are_exact", &[]);
    for group in ["firefly.venafi.com", "issuers.example.org"] {
        assert!(
            out.contains(&format!(
                "{group}, CSR door: sign on signers ['issuers.{group}/*', 'clusterissuers.{group}/*'] only"
            )),
            "{out}"
        );
    }
}

/// `config.podCertificates`: no pod-certificate rule while off (the default, or `enabled: false`
/// with signers); when on, exactly the door's rules for the configured signers — `sign` on each,
/// `attest` and clustertrustbundles only for signers with `clusterTrustBundle`, pods list/watch
/// only with `verifyPod` — and the signers rendered into the controller's config; the schema
/// refuses a `kubernetes.io` signer, a signer without a path, a signer without `namespaces` and an
/// unknown key.
#[test]
fn pod_certificates_add_their_rules_only_when_enabled() {
    let out = run_case("pod_certificates_rbac_and_config", &[]);
    for label in ["defaults", "verifyPod, no bundle", "both"] {
        assert!(
            out.contains(&format!("podCertificates {label}:")),
            "case {label} not checked:\n{out}"
        );
    }
    // The same value sets, read as grants, are exactly the product's table with those features.
    let signer = |name: &str, verify_pod: bool, bundle: bool| {
        format!(
            r#"{{"signerName": "{name}", "policyName": "p", "trustDomain": "cluster.local", "namespaces": ["*"], "verifyPod": {verify_pod}, "clusterTrustBundle": {bundle}}}"#
        )
    };
    for (verify_pod, cluster_trust_bundles) in
        [(false, true), (true, false), (true, true), (false, false)]
    {
        let signers = [
            signer(
                "firefly.venafi.com/istio-mtls",
                false,
                cluster_trust_bundles,
            ),
            signer("example.org/gateway.edge", verify_pod, false),
        ];
        let values = format!(
            r#"{{"config": {{"podCertificates": {{"enabled": true, "signers": [{}]}}}}}}"#,
            signers.join(", ")
        );
        let got = rendered_grants("seed", &[&values]);
        let want = as_rendered(firefly::rbac::grants_for(
            "firefly.venafi.com",
            firefly::rbac::Features {
                leader_election: true,
                pod_certificates: true,
                verify_pod,
                cluster_trust_bundles,
                ..Default::default()
            },
        ));
        assert_exact(
            &format!(
                "podCertificates verifyPod={verify_pod} clusterTrustBundle={cluster_trust_bundles}"
            ),
            &want,
            &got,
        );
    }
    for refused in [
        "a kubernetes.io signer",
        "a signer without a path",
        "no namespaces",
        "a misspelt key",
    ] {
        assert!(out.contains(&format!("rejected ({refused})")), "{out}");
    }
}
