//! The Helm chart (charts/firefly) judged by the real Helm v4 SDK and kubernetes-validate: each test
//! runs one case of tests/helm/chart_checks.py under $FIREFLY_TEST_PYTHON; performs no cluster I/O.

use support::verifiers;

use std::process::Command;

use support::repo_root;

/// Runs `chart_checks.py <case> <args>` and fails with its whole output when the case fails.
fn run_case(case: &str, args: &[&str]) {
    let output = Command::new(verifiers::python())
        .arg(repo_root().join("tests/helm/chart_checks.py"))
        .arg(case)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot start the chart checks: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
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
}

#[test]
fn seed_values_render_every_object_the_seed_commands_assume() {
    run_case("seed_values_render_every_expected_object", &[]);
}

#[test]
fn image_tag_defaults_to_the_crate_version_as_app_version() {
    run_case(
        "image_tag_defaults_to_app_version",
        &[env!("CARGO_PKG_VERSION")],
    );
}

#[test]
fn helm_lint_strict_passes_for_every_value_set() {
    run_case("lint_strict_passes_for_every_value_set", &[]);
}

#[test]
fn every_rendered_manifest_passes_kubernetes_validate_strict() {
    run_case(
        "every_rendered_manifest_passes_kubernetes_validate_strict",
        &[],
    );
}

#[test]
fn deploy_manifests_pass_kubernetes_validate_strict() {
    run_case("deploy_manifests_pass_kubernetes_validate_strict", &[]);
}

#[test]
fn rendered_pods_add_ipc_lock_only_when_needed_and_run_unprivileged() {
    run_case("security_posture_is_enforced_for_every_value_set", &[]);
}

#[test]
fn values_cannot_weaken_the_security_posture() {
    run_case("values_cannot_weaken_the_security_posture", &[]);
}

#[test]
fn approver_may_approve_exactly_the_issuer_and_clusterissuer_signers() {
    run_case("approver_signer_names_are_exact", &[]);
}

#[test]
fn controller_rbac_is_exactly_what_the_contract_lists() {
    run_case("controller_rbac_is_exactly_the_contract", &[]);
}

#[test]
fn chart_crds_are_generated_from_crds_dir_and_honour_the_group() {
    run_case("crd_templates_are_generated_from_crds_dir", &[]);
}

#[test]
fn values_schema_rejects_bad_values_naming_the_key() {
    run_case("schema_rejects_bad_values_with_clear_messages", &[]);
}

#[test]
fn rendered_config_yaml_follows_the_config_interface() {
    run_case("config_yaml_follows_the_interface", &[]);
}

#[test]
fn optional_service_monitor_network_policy_and_scc_render_valid() {
    run_case("optional_objects_render_when_enabled", &[]);
}

/// `networkPolicy.egressPorts: []` must leave DNS only, never an egress rule without `to` and
/// `ports` (which allows all egress).
#[test]
fn network_policy_egress_is_dns_and_the_given_ports_only() {
    run_case("network_policy_egress_is_dns_and_the_given_ports", &[]);
}

#[test]
fn disabled_deployment_installs_only_crds_and_approver() {
    run_case("deployment_disabled_installs_only_crds_and_approver", &[]);
}

#[test]
fn notes_tell_the_operator_the_next_steps() {
    run_case("notes_tell_the_next_steps", &[]);
}

#[test]
fn dockerfile_runs_what_the_chart_expects() {
    run_case("dockerfile_agrees_with_the_chart", &[]);
}

#[test]
fn guides_name_only_files_that_exist() {
    run_case("guides_reference_files_that_exist", &[]);
}

#[test]
fn packaged_chart_renders_like_the_directory() {
    run_case("packaged_chart_renders_like_the_directory", &[]);
}
