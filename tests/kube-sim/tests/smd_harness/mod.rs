//! Differential harness: the same sequence of server-side applies and merge patches run by
//! kube-sim (over HTTP, with the real kube-rs client) and by `tests/smd-oracle`
//! (structured-merge-diff, the library kube-apiserver uses), compared step by step: object,
//! per-manager field sets (as paths and as the `fieldsV1` kube-sim serves in
//! `metadata.managedFields`), errors.
#![allow(dead_code)]

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube_sim::KubeSim;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// A resource and the schema both sides judge it by.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    /// The CRD version's `openAPIV3Schema`.
    pub schema: Value,
    pub status_subresource: bool,
}

impl Scenario {
    /// The scenario of one version of a CRD (YAML or JSON).
    pub fn from_crd(crd: &str, version: &str) -> Scenario {
        let crd: Value = serde_saphyr::from_str(crd).expect("the CRD parses");
        let spec = &crd["spec"];
        let v = spec["versions"]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| v["name"] == version))
            .unwrap_or_else(|| panic!("the CRD serves {version}"));
        Scenario {
            group: spec["group"].as_str().unwrap().to_string(),
            version: version.to_string(),
            kind: spec["names"]["kind"].as_str().unwrap().to_string(),
            plural: spec["names"]["plural"].as_str().unwrap().to_string(),
            schema: v["schema"]["openAPIV3Schema"].clone(),
            status_subresource: v["subresources"].get("status").is_some(),
        }
    }

    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }

    /// A namespaced CRD serving this scenario (for scenarios written here).
    pub fn crd(&self) -> Value {
        let mut v = json!({"name": self.version, "served": true, "storage": true,
            "schema": {"openAPIV3Schema": self.schema}});
        if self.status_subresource {
            v["subresources"] = json!({"status": {}});
        }
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{}.{}", self.plural, self.group)},
            "spec": {"group": self.group, "scope": "Namespaced",
                "names": {"plural": self.plural, "singular": self.kind.to_lowercase(), "kind": self.kind, "listKind": format!("{}List", self.kind)},
                "versions": [v]}
        })
    }

    fn resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(&self.group, &self.version, &self.kind),
            &self.plural,
        )
    }
}

/// One server-side apply, or (`merge`) one JSON merge patch (an `Update` operation).
#[derive(Debug, Clone)]
pub struct Op {
    pub manager: String,
    /// Through the `/status` subresource.
    pub status: bool,
    pub force: bool,
    /// The apply configuration without apiVersion, kind and metadata.name (the harness adds them).
    pub body: Value,
    /// A merge patch by `manager` instead of an apply.
    pub merge: bool,
}

impl Op {
    pub fn apply(manager: &str, body: Value) -> Op {
        Op {
            manager: manager.into(),
            status: false,
            force: false,
            body,
            merge: false,
        }
    }
    pub fn status(manager: &str, body: Value) -> Op {
        Op {
            manager: manager.into(),
            status: true,
            force: false,
            body,
            merge: false,
        }
    }
    /// A merge patch of the main resource with `?fieldManager=manager`.
    pub fn merge(manager: &str, body: Value) -> Op {
        Op {
            merge: true,
            ..Op::apply(manager, body)
        }
    }
    /// A merge patch of `/status` with `?fieldManager=manager`.
    pub fn merge_status(manager: &str, body: Value) -> Op {
        Op {
            merge: true,
            ..Op::status(manager, body)
        }
    }
    pub fn forced(mut self) -> Op {
        self.force = true;
        self
    }
}

/// A refused operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: u16,
    pub message: String,
    /// `(message, field)` of each `FieldManagerConflict` cause.
    pub causes: BTreeSet<(String, String)>,
}

/// A manager's owned fields.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Owner {
    pub manager: String,
    pub subresource: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The entry's apiVersion for an updater (an applier's is not part of its identity).
    pub api_version: String,
    pub fields: Vec<String>,
    /// The set as `metadata.managedFields[].fieldsV1` encodes it, compact JSON with sorted keys
    /// (parsed, so the key order of the encoding does not matter).
    pub fields_v1: String,
}

/// The state after one operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub error: Option<Failure>,
    /// The object without server-managed metadata (`null` when it does not exist).
    pub object: Value,
    pub owners: Vec<Owner>,
}

fn full_body(scn: &Scenario, name: &str, op: &Op) -> Value {
    let mut b = op.body.clone();
    if !b.is_object() {
        b = json!({});
    }
    b["apiVersion"] = json!(scn.api_version());
    b["kind"] = json!(scn.kind);
    if !b.get("metadata").is_some_and(Value::is_object) {
        b["metadata"] = json!({});
    }
    b["metadata"]["name"] = json!(name);
    b
}

/// The object without what only a server sets (and without apiVersion/kind).
fn normalize(obj: Option<Value>) -> Value {
    let Some(mut o) = obj else { return Value::Null };
    if let Some(m) = o.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "namespace",
            "selfLink",
        ] {
            meta.remove(k);
        }
    }
    o
}

/// The repository root: the first ancestor of the crate holding `scripts/build-smd-oracle`
/// (the harness is shared by kube-sim's tests and the main crate's).
fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|d| d.join("scripts/build-smd-oracle").is_file())
        .unwrap_or_else(|| panic!("no scripts/build-smd-oracle above {}", here.display()))
        .to_path_buf()
}

struct Oracle {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// Build (when stale) and start the oracle once per test process.
fn oracle() -> std::sync::MutexGuard<'static, Oracle> {
    static ORACLE: OnceLock<Mutex<Oracle>> = OnceLock::new();
    let m = ORACLE.get_or_init(|| {
        let root = repo_root();
        let build = Command::new("bash")
            .arg(root.join("scripts/build-smd-oracle"))
            .output()
            .expect("running scripts/build-smd-oracle");
        assert!(
            build.status.success(),
            "building the structured-merge-diff oracle failed (scripts/test installs what it needs):\n{}{}",
            String::from_utf8_lossy(&build.stdout),
            String::from_utf8_lossy(&build.stderr)
        );
        let mut child = Command::new(root.join("target/smd-oracle"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting target/smd-oracle");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Mutex::new(Oracle { _child: child, stdin, stdout })
    });
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Run a sequence through structured-merge-diff.
pub fn oracle_run(scn: &Scenario, name: &str, ops: &[Op]) -> Vec<Outcome> {
    let req = json!({
        "apiVersion": scn.api_version(), "kind": scn.kind, "schema": scn.schema,
        "statusSubresource": scn.status_subresource,
        "ops": ops.iter().map(|o| json!({
            "manager": o.manager, "subresource": if o.status { "status" } else { "" },
            "operation": if o.merge { "merge" } else { "apply" }, "force": o.force,
            "body": full_body(scn, name, o),
        })).collect::<Vec<_>>(),
    });
    let mut o = oracle();
    writeln!(o.stdin, "{req}").expect("writing to the oracle");
    o.stdin.flush().expect("writing to the oracle");
    let mut line = String::new();
    o.stdout.read_line(&mut line).expect("reading the oracle");
    let ans: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("the oracle answered {line:?}: {e}"));
    if let Some(f) = ans.get("fatal") {
        panic!("the oracle could not run the sequence: {f}");
    }
    ans["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| Outcome {
            error: s.get("error").filter(|e| !e.is_null()).map(|e| Failure {
                code: e["code"].as_u64().unwrap() as u16,
                message: e["message"].as_str().unwrap().to_string(),
                causes: e["conflicts"]
                    .as_array()
                    .map(|cs| {
                        cs.iter()
                            .map(|c| {
                                (
                                    format!("conflict with {}", c["manager"].as_str().unwrap()),
                                    c["field"].as_str().unwrap().to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            object: normalize(Some(s["object"].clone()).filter(|o| !o.is_null())),
            owners: s["managers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| Owner {
                    manager: m["manager"].as_str().unwrap().to_string(),
                    subresource: m["subresource"].as_str().unwrap().to_string(),
                    operation: m["operation"].as_str().unwrap().to_string(),
                    api_version: m["apiVersion"].as_str().unwrap_or_default().to_string(),
                    fields: m["fields"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|f| f.as_str().unwrap().to_string())
                        .collect(),
                    fields_v1: m["fieldsV1"].to_string(),
                })
                .collect::<BTreeSet<Owner>>()
                .into_iter()
                .collect(),
        })
        .collect()
}

/// Run a sequence through kube-sim's HTTP API in namespace `default`.
pub async fn sim_run(
    sim: &KubeSim,
    client: &kube::Client,
    scn: &Scenario,
    name: &str,
    ops: &[Op],
) -> Vec<Outcome> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &scn.resource());
    let mut out = Vec::new();
    for op in ops {
        let body = full_body(scn, name, op);
        let res = if op.merge {
            let pp = PatchParams {
                field_manager: Some(op.manager.clone()),
                ..PatchParams::default()
            };
            if op.status {
                api.patch_status(name, &pp, &Patch::Merge(&body)).await
            } else {
                api.patch(name, &pp, &Patch::Merge(&body)).await
            }
        } else {
            let mut pp = PatchParams::apply(&op.manager);
            pp.force = op.force;
            if op.status {
                api.patch_status(name, &pp, &Patch::Apply(&body)).await
            } else {
                api.patch(name, &pp, &Patch::Apply(&body)).await
            }
        };
        let error = match res {
            Ok(_) => None,
            Err(kube::Error::Api(s)) => Some(Failure {
                code: s.code,
                message: s.message.clone(),
                causes: s
                    .details
                    .as_ref()
                    .map(|d| {
                        d.causes
                            .iter()
                            .filter(|c| c.reason == "FieldManagerConflict")
                            .map(|c| (c.message.clone(), c.field.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            Err(e) => panic!("apply by {} failed outside the API: {e}", op.manager),
        };
        let stored = sim.object(&scn.group, &scn.plural, "default", name);
        let served = managed_fields(stored.as_ref());
        let mut owners: Vec<Owner> = sim
            .apply_owners(&scn.group, &scn.plural, "default", name)
            .unwrap_or_default()
            .into_iter()
            .map(|o| {
                let api_version = if o.operation == "Update" {
                    o.api_version.clone()
                } else {
                    String::new()
                };
                let entry = served.iter().find(|e| {
                    e["manager"] == o.manager.as_str()
                        && e["operation"] == o.operation.as_str()
                        && e["subresource"].as_str().unwrap_or_default() == o.subresource
                        && (o.operation == "Apply" || e["apiVersion"] == o.api_version.as_str())
                });
                Owner {
                    manager: o.manager,
                    subresource: o.subresource,
                    operation: o.operation,
                    api_version,
                    fields: o.fields,
                    fields_v1: entry.map_or_else(
                        || "no managedFields entry".to_string(),
                        |e| e["fieldsV1"].to_string(),
                    ),
                }
            })
            .collect();
        owners.sort();
        assert_eq!(
            served.len(),
            owners.len(),
            "one managedFields entry per manager: {served:#?}"
        );
        check_entries(&served, &scn.api_version());
        out.push(Outcome {
            error,
            object: normalize(stored),
            owners,
        });
    }
    out
}

/// The served `metadata.managedFields` of an object (empty when it has none).
pub fn managed_fields(obj: Option<&Value>) -> Vec<Value> {
    obj.and_then(|o| o["metadata"]["managedFields"].as_array().cloned())
        .unwrap_or_default()
}

/// kube-apiserver's shape and order of managedFields entries: every entry has its manager, an
/// `Apply` or `Update` operation, the request's apiVersion, `fieldsType: FieldsV1`, a non-empty
/// `fieldsV1` and an RFC 3339 time when set; appliers come first, then by time, manager,
/// apiVersion and subresource.
pub fn check_entries(entries: &[Value], api_version: &str) {
    let key = |e: &Value| {
        (
            e["operation"].as_str().unwrap_or_default().to_string(),
            e["time"]
                .as_str()
                .map(|t| {
                    t.parse::<jiff::Timestamp>()
                        .expect("an RFC 3339 time")
                        .as_second()
                })
                .unwrap_or(0),
            e["manager"].as_str().unwrap_or_default().to_string(),
            e["apiVersion"].as_str().unwrap_or_default().to_string(),
            e["subresource"].as_str().unwrap_or_default().to_string(),
        )
    };
    for e in entries {
        assert!(
            e["operation"] == "Apply" || e["operation"] == "Update",
            "{e}"
        );
        assert_eq!(e["apiVersion"], api_version, "{e}");
        assert_eq!(e["fieldsType"], "FieldsV1", "{e}");
        assert!(
            e["fieldsV1"].as_object().is_some_and(|m| !m.is_empty()),
            "{e}"
        );
        if let Some(t) = e["time"].as_str() {
            assert!(t.len() == 20 && t.ends_with('Z'), "seconds in UTC: {e}");
        }
        assert!(
            e.get("subresource").is_none_or(|s| s != ""),
            "an empty subresource is left out: {e}"
        );
    }
    for w in entries.windows(2) {
        assert!(
            key(&w[0]) <= key(&w[1]),
            "entries out of order: {entries:#?}"
        );
    }
}

/// The first difference between the two runs, described with the sequence that led to it.
pub fn first_mismatch(ops: &[Op], sim: &[Outcome], smd: &[Outcome]) -> Option<String> {
    for (i, (a, b)) in sim.iter().zip(smd).enumerate() {
        if a != b {
            let seq: Vec<String> = ops[..=i]
                .iter()
                .map(|o| {
                    format!(
                        "  {}{}{}{}: {}",
                        o.manager,
                        if o.merge { " merge-patch" } else { "" },
                        if o.status { " /status" } else { "" },
                        if o.force { " force" } else { "" },
                        o.body
                    )
                })
                .collect();
            return Some(format!(
                "step {i} differs\nsequence:\n{}\nkube-sim: {a:#?}\nstructured-merge-diff: {b:#?}",
                seq.join("\n")
            ));
        }
    }
    (sim.len() != smd.len()).then(|| format!("{} steps against {}", sim.len(), smd.len()))
}

/// Run on both sides and fail on the first difference; returns the (equal) outcomes.
pub async fn assert_same(
    sim: &KubeSim,
    client: &kube::Client,
    scn: &Scenario,
    name: &str,
    ops: &[Op],
) -> Vec<Outcome> {
    let a = sim_run(sim, client, scn, name, ops).await;
    let b = oracle_run(scn, name, ops);
    if let Some(m) = first_mismatch(ops, &a, &b) {
        panic!("kube-sim and structured-merge-diff disagree: {m}");
    }
    a
}
