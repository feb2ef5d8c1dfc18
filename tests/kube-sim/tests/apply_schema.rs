//! Server-side apply against a CRD schema as kube-apiserver does it: an undeclared field anywhere in
//! an apply configuration fails the whole request (no pruning, whatever `fieldValidation` says),
//! while create, update and merge patches keep pruning with a warning; `metadata.resourceVersion`
//! in an apply configuration is a precondition. Judged through kube-rs and the real kubectl.

mod common;

use common::*;
use kube::api::{Patch, PatchParams, PostParams, ValidationDirective};
use kube_sim::{KubeSim, SimOptions};
use serde_json::{Value, json};

const NS: &str = "default";

async fn sim_with_crds() -> KubeSim {
    let sim = KubeSim::start(SimOptions::default()).await.unwrap();
    sim.install_crds_yaml(&project_crds()).await.unwrap();
    sim
}

/// The Ready condition the controller once applied, with the field cert-manager's CRD lacks.
fn ready_with_observed_generation(name: &str) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {"name": name, "namespace": NS},
        "status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "Issued", "message": "issued",
            "lastTransitionTime": "2026-12-04T10:00:00Z", "observedGeneration": 1,
        }]},
    })
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn status_apply_with_an_undeclared_field_fails_whole_whatever_field_validation_says() {
    let sim = sim_with_crds().await;
    let api = cr_api(sim.client().await.unwrap(), NS);
    api.create(&PostParams::default(), &dynamic(cr_body("r1")))
        .await
        .unwrap();
    let before = sim.object("cert-manager.io", "certificaterequests", NS, "r1");
    let body = ready_with_observed_generation("r1");
    let expected = "failed to create typed patch object (default/r1; cert-manager.io/v1, Kind=CertificateRequest): .status.conditions[type=\"Ready\"].observedGeneration: field not declared in schema";
    for validation in [
        None,
        Some(ValidationDirective::Ignore),
        Some(ValidationDirective::Warn),
        Some(ValidationDirective::Strict),
    ] {
        let mut params = PatchParams::apply("firefly").force();
        params.field_validation = validation.clone();
        let err = api_error(
            api.patch_status("r1", &params, &Patch::Apply(&body))
                .await
                .expect_err("an undeclared field fails the apply"),
        );
        assert_eq!(err.code, 500, "{validation:?}: {err:?}");
        assert_eq!(err.message, expected, "{validation:?}");
        assert_eq!(err.reason, "", "kube-apiserver's StatusReasonUnknown");
    }
    assert_eq!(
        sim.object("cert-manager.io", "certificaterequests", NS, "r1"),
        before,
        "a refused apply changes nothing"
    );
}

#[tokio::test]
async fn object_apply_names_every_undeclared_field_and_a_declared_one_passes() {
    let sim = sim_with_crds().await;
    let api = cr_api(sim.client().await.unwrap(), NS);
    let params = PatchParams::apply("tester");
    let mut body = cr_body("r2");
    body["spec"]["bogus"] = json!("x");
    body["metadata"]["notMeta"] = json!(1);
    let err = api_error(
        api.patch("r2", &params, &Patch::Apply(&body))
            .await
            .expect_err("undeclared fields fail the apply"),
    );
    assert_eq!(err.code, 500);
    assert_eq!(
        err.message,
        "failed to create typed patch object (/r2; cert-manager.io/v1, Kind=CertificateRequest): errors:\n  .metadata.notMeta: field not declared in schema\n  .spec.bogus: field not declared in schema"
    );
    assert!(
        sim.object("cert-manager.io", "certificaterequests", NS, "r2")
            .is_none(),
        "nothing was created"
    );
    let created = api
        .patch("r2", &params, &Patch::Apply(&cr_body("r2")))
        .await
        .expect("a configuration of declared fields applies");
    assert_eq!(created.data["spec"]["duration"], "1h0m0s");
}

#[tokio::test]
async fn spec_fields_in_a_status_apply_are_judged_too() {
    let sim = sim_with_crds().await;
    let api = cr_api(sim.client().await.unwrap(), NS);
    api.create(&PostParams::default(), &dynamic(cr_body("r3")))
        .await
        .unwrap();
    let mut body = cr_body("r3");
    body["spec"]["bogus"] = json!(true);
    let err = api_error(
        api.patch_status("r3", &PatchParams::apply("firefly"), &Patch::Apply(&body))
            .await
            .expect_err("the whole configuration is converted, spec included"),
    );
    assert_eq!(err.code, 500);
    assert!(
        err.message
            .ends_with(": .spec.bogus: field not declared in schema"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn create_update_and_merge_patch_still_prune_undeclared_fields_with_a_warning() {
    let sim = sim_with_crds().await;
    let api = cr_api(sim.client().await.unwrap(), NS);
    let mut body = cr_body("r4");
    body["spec"]["bogus"] = json!("x");
    let created = api
        .create(&PostParams::default(), &dynamic(body))
        .await
        .expect("create prunes");
    assert!(created.data["spec"].get("bogus").is_none());
    let merged = api
        .patch_status(
            "r4",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"conditions": [{
                "type": "Ready", "status": "False", "reason": "Pending", "observedGeneration": 1,
            }]}})),
        )
        .await
        .expect("a merge patch prunes");
    let condition = &merged.data["status"]["conditions"][0];
    assert_eq!(condition["reason"], "Pending");
    assert!(condition.get("observedGeneration").is_none());
    let strict = PatchParams {
        field_validation: Some(ValidationDirective::Strict),
        ..Default::default()
    };
    let err = api_error(
        api.patch("r4", &strict, &Patch::Merge(&json!({"spec": {"bogus": 1}})))
            .await
            .expect_err("Strict refuses unknown fields of a merge patch"),
    );
    assert_eq!(err.code, 400);
    assert!(err.message.contains("unknown field"), "{}", err.message);
}

#[tokio::test]
async fn resource_version_in_an_apply_configuration_is_a_precondition_on_status_too() {
    let sim = sim_with_crds().await;
    let api = cr_api(sim.client().await.unwrap(), NS);
    let created = api
        .create(&PostParams::default(), &dynamic(cr_body("r5")))
        .await
        .unwrap();
    let stale = created.metadata.resource_version.clone().unwrap();
    let params = PatchParams::apply("tester");
    // The object moves on: the resourceVersion we read is now stale.
    let mut labelled = cr_body("r5");
    labelled["metadata"]["labels"] = json!({"app": "test", "tier": "2"});
    let moved = api
        .patch("r5", &params, &Patch::Apply(&labelled))
        .await
        .unwrap();
    let current = moved.metadata.resource_version.clone().unwrap();
    assert_ne!(stale, current);

    let mut on_status = json!({
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": "r5", "namespace": NS, "resourceVersion": stale},
        "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Pending",
            "message": "m", "lastTransitionTime": "2026-12-04T10:00:00Z"}]},
    });
    let err = api_error(
        api.patch_status("r5", &params, &Patch::Apply(&on_status))
            .await
            .expect_err("a stale resourceVersion fails the status apply"),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    let mut on_object = labelled.clone();
    on_object["metadata"]["resourceVersion"] = json!(stale);
    let err = api_error(
        api.patch("r5", &params, &Patch::Apply(&on_object))
            .await
            .expect_err("a stale resourceVersion fails the object apply"),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));

    on_status["metadata"]["resourceVersion"] = json!(current);
    let written = api
        .patch_status("r5", &params, &Patch::Apply(&on_status))
        .await
        .expect("the current resourceVersion passes");
    assert_eq!(condition(&written, "Ready").as_deref(), Some("False"));
}

/// Runs the real kubectl against the sim; returns (success, stdout + stderr).
async fn kubectl<S: AsRef<std::ffi::OsStr>>(
    sim: &KubeSim,
    cache: &std::path::Path,
    args: &[S],
) -> (bool, String) {
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(sim.kubeconfig_path())
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("kubectl (>= 1.27) is required on PATH");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn kubectl_server_side_apply_is_refused_for_undeclared_fields_and_stale_versions() {
    let sim = sim_with_crds().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = |name: &str, v: &Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
        p.to_str().unwrap().to_owned()
    };

    let mut undeclared = cr_body("k1");
    undeclared["spec"]["bogus"] = json!("x");
    let (ok, out) = kubectl(
        &sim,
        &cache,
        &[
            "apply",
            "--server-side",
            "-n",
            NS,
            "-f",
            &file("bad.json", &undeclared),
        ],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(".spec.bogus: field not declared in schema"),
        "{out}"
    );

    let (ok, out) = kubectl(
        &sim,
        &cache,
        &[
            "apply",
            "--server-side",
            "-n",
            NS,
            "-f",
            &file("good.json", &cr_body("k1")),
        ],
    )
    .await;
    assert!(ok, "{out}");
    let rv = sim
        .object("cert-manager.io", "certificaterequests", NS, "k1")
        .and_then(|o| o["metadata"]["resourceVersion"].as_str().map(str::to_owned))
        .unwrap();

    // kubectl's server-side apply on /status, as the controller's field manager.
    let apply_status = |path: &str| -> Vec<String> {
        [
            "apply",
            "--server-side",
            "--subresource=status",
            "--field-manager=firefly",
            "-f",
            path,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let mut status = ready_with_observed_generation("k1");
    let (ok, out) = kubectl(
        &sim,
        &cache,
        &apply_status(&file("status-bad.json", &status)),
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            ".status.conditions[type=\"Ready\"].observedGeneration: field not declared in schema"
        ),
        "{out}"
    );

    status["status"]["conditions"][0]
        .as_object_mut()
        .unwrap()
        .remove("observedGeneration");
    status["metadata"]["resourceVersion"] = json!("1");
    let (ok, out) = kubectl(
        &sim,
        &cache,
        &apply_status(&file("status-stale.json", &status)),
    )
    .await;
    assert!(!ok, "a stale resourceVersion is a conflict: {out}");
    assert!(out.contains("the object has been modified"), "{out}");

    status["metadata"]["resourceVersion"] = json!(rv);
    let (ok, out) = kubectl(
        &sim,
        &cache,
        &apply_status(&file("status-good.json", &status)),
    )
    .await;
    assert!(ok, "{out}");
    let stored = sim
        .object("cert-manager.io", "certificaterequests", NS, "k1")
        .unwrap();
    assert_eq!(stored["status"]["conditions"][0]["reason"], "Issued");
}
