//! `metadata.managedFields` as kube-apiserver serves them: on get, list, watch and write answers;
//! `Update` entries for create, PUT and patches named by `fieldManager` or the User-Agent;
//! emptied entries removed; the order; the cap of ten update managers; resets; apply refusals.
//! (The field sets themselves are judged by structured-merge-diff in `smd_differential.rs`.)

use futures::StreamExt as _;
use serde_json::{Value, json};

async fn sim() -> (kube_sim::KubeSim, kube::Client) {
    let sim = kube_sim::KubeSim::start(kube_sim::SimOptions::default())
        .await
        .expect("kube-sim starts");
    let client = sim.client().await.expect("client");
    (sim, client)
}

/// A raw request with a chosen User-Agent: (HTTP status, body as JSON).
async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    user_agent: &str,
    content_type: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("user-agent", user_agent)
        .header("content-type", content_type)
        .body(kube::client::Body::from(
            body.map(|b| serde_json::to_vec(b).unwrap())
                .unwrap_or_default(),
        ))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

const CM: &str = "/api/v1/namespaces/default/configmaps";
const MERGE: &str = "application/merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

/// `(manager, operation, fieldsV1)` of each entry, in the order served.
fn entries(obj: &Value) -> Vec<(String, String, Value)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or_default().to_string(),
                        e["operation"].as_str().unwrap_or_default().to_string(),
                        e["fieldsV1"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn writes_are_update_entries_named_by_field_manager_or_user_agent_and_served_everywhere() {
    let (sim, client) = sim().await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "labels": {"app": "x"}}, "data": {"a": "1"}});
    let (code, created) = raw(
        &client,
        "POST",
        CM,
        "my-tool/1.2 (linux/amd64)",
        "application/json",
        Some(&cm),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    // The create answer carries the entry: every field the creator set, the map nodes it
    // created marked with ".", server-managed metadata owned by no one.
    let e = &created["metadata"]["managedFields"][0];
    assert_eq!(e["manager"], "my-tool");
    assert_eq!(e["operation"], "Update");
    assert_eq!(e["apiVersion"], "v1");
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert!(e.get("subresource").is_none());
    let t = e["time"].as_str().expect("a time");
    assert!(t.parse::<jiff::Timestamp>().is_ok() && t.len() == 20, "{t}");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:data": {".": {}, "f:a": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
    );

    // A merge patch with ?fieldManager= owns what it adds; a PUT takes over what it changes and
    // the creator keeps the rest.
    let (code, _) = raw(
        &client,
        "PATCH",
        &format!("{CM}/c?fieldManager=patcher"),
        "kubectl/v1",
        MERGE,
        Some(&json!({"data": {"b": "2"}})),
    )
    .await;
    assert_eq!(code, 200);
    let mut current = sim.object("", "configmaps", "default", "c").unwrap();
    current["data"]["a"] = json!("changed");
    let (code, replaced) = raw(
        &client,
        "PUT",
        &format!("{CM}/c"),
        "putter",
        "application/json",
        Some(&current),
    )
    .await;
    assert_eq!(code, 200, "{replaced}");
    let mut got = entries(&replaced);
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        got,
        vec![
            (
                "my-tool".into(),
                "Update".into(),
                json!({"f:data": {}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
            ),
            (
                "patcher".into(),
                "Update".into(),
                json!({"f:data": {"f:b": {}}})
            ),
            (
                "putter".into(),
                "Update".into(),
                json!({"f:data": {"f:a": {}}})
            ),
        ]
    );
    // A watch from here sees the next change.
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::default_namespaced(client.clone());
    let rv = replaced["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut stream = api
        .watch(
            &kube::api::WatchParams::default().fields("metadata.name=c"),
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    // An apply entry is served first.
    let (code, applied) = raw(&client, "PATCH", &format!("{CM}/c?fieldManager=applier"), "x", APPLY,
        Some(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"z": "9"}}))).await;
    assert_eq!(code, 200, "{applied}");
    let served = applied["metadata"]["managedFields"].clone();
    assert_eq!(served[0]["manager"], "applier");
    assert_eq!(served[0]["operation"], "Apply");
    assert_eq!(served.as_array().map(Vec::len), Some(4));

    // The same entries on get, list, metadata-only get, and watch.
    let (_, get) = raw(
        &client,
        "GET",
        &format!("{CM}/c"),
        "x",
        "application/json",
        None,
    )
    .await;
    assert_eq!(get["metadata"]["managedFields"], served);
    let (_, list) = raw(&client, "GET", CM, "x", "application/json", None).await;
    let item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == "c")
        .unwrap();
    assert_eq!(item["metadata"]["managedFields"], served);
    let req = http::Request::builder()
        .uri(format!("{CM}/c"))
        .header(
            "accept",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        )
        .body(Vec::new())
        .unwrap();
    let partial: Value = serde_json::from_str(&client.request_text(req).await.unwrap()).unwrap();
    assert_eq!(partial["metadata"]["managedFields"], served);
    let ev = stream.next().await.unwrap().unwrap();
    let kube::api::WatchEvent::Modified(watched) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(
        serde_json::to_value(watched.metadata.managed_fields.unwrap()).unwrap(),
        served
    );
}

#[tokio::test]
async fn an_entry_whose_fields_are_all_taken_is_removed_and_entries_are_sorted() {
    let (_sim, client) = sim().await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    raw(
        &client,
        "POST",
        &format!("{CM}?fieldManager=zz-creator"),
        "x",
        "application/json",
        Some(&cm),
    )
    .await;
    raw(
        &client,
        "PATCH",
        &format!("{CM}/c?fieldManager=b"),
        "x",
        MERGE,
        Some(&json!({"data": {"b": "1"}})),
    )
    .await;
    // "a-patcher" takes data.a (changed) and the map node is left to the creator.
    let (_, out) = raw(
        &client,
        "PATCH",
        &format!("{CM}/c?fieldManager=a-patcher"),
        "x",
        MERGE,
        Some(&json!({"data": {"a": "2"}})),
    )
    .await;
    let names: Vec<String> = entries(&out).into_iter().map(|e| e.0).collect();
    assert_eq!(names.len(), 3);
    // Deleting the only field "b" owned: its entry goes.
    let (_, out) = raw(
        &client,
        "PATCH",
        &format!("{CM}/c?fieldManager=zz-creator"),
        "x",
        MERGE,
        Some(&json!({"data": {"b": null}})),
    )
    .await;
    let got = entries(&out);
    assert!(got.iter().all(|e| e.0 != "b"), "{got:?}");
    // Update entries: by time, then manager.
    let times: Vec<(String, String)> = out["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["time"].as_str().unwrap().to_string(),
                e["manager"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
}

#[tokio::test]
async fn more_than_ten_update_managers_fold_the_oldest_into_ancient_changes() {
    let (_sim, client) = sim().await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"init": "x"}});
    raw(
        &client,
        "POST",
        &format!("{CM}?fieldManager=m00"),
        "x",
        "application/json",
        Some(&cm),
    )
    .await;
    let mut last = Value::Null;
    for i in 0..12 {
        let (code, out) = raw(
            &client,
            "PATCH",
            &format!("{CM}/c?fieldManager=m{i:02}"),
            "x",
            MERGE,
            Some(&json!({"data": {format!("k{i:02}"): "v"}})),
        )
        .await;
        assert_eq!(code, 200);
        last = out;
    }
    let got = entries(&last);
    assert_eq!(got.len(), 10, "{got:#?}");
    assert_eq!(got.iter().filter(|e| e.0 == "ancient-changes").count(), 1);
    // Nothing is lost: every key is still owned by someone.
    let owned: usize = got
        .iter()
        .map(|e| {
            e.2["f:data"]
                .as_object()
                .map_or(0, |m| m.keys().filter(|k| k.starts_with("f:")).count())
        })
        .sum();
    assert_eq!(owned, 13);
    assert!(got.iter().all(|e| e.0 != "m00" && e.0 != "m01"), "{got:#?}");
}

#[tokio::test]
async fn managed_fields_sent_by_clients() {
    let (sim, client) = sim().await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    raw(
        &client,
        "POST",
        &format!("{CM}?fieldManager=creator"),
        "x",
        "application/json",
        Some(&cm),
    )
    .await;
    // An apply configuration may not carry managedFields (an empty list neither).
    for mf in [json!([]), json!([{"manager": "x"}])] {
        let (code, status) = raw(&client, "PATCH", &format!("{CM}/c?fieldManager=a"), "x", APPLY,
            Some(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "managedFields": mf}}))).await;
        assert_eq!(code, 400);
        assert_eq!(status["message"], "metadata.managedFields must be nil");
    }
    // A valid set of entries sent with an update replaces the live ones.
    let mut obj = sim.object("", "configmaps", "default", "c").unwrap();
    obj["metadata"]["managedFields"] = json!([{"manager": "someone", "operation": "Update", "apiVersion": "v1",
        "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}}]);
    let (code, out) = raw(
        &client,
        "PUT",
        &format!("{CM}/c?fieldManager=putter"),
        "x",
        "application/json",
        Some(&obj),
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(
        entries(&out),
        vec![(
            "someone".into(),
            "Update".into(),
            json!({"f:data": {"f:a": {}}})
        )]
    );
    // An invalid one is ignored (the live entries stay).
    obj = sim.object("", "configmaps", "default", "c").unwrap();
    let before = obj["metadata"]["managedFields"].clone();
    obj["metadata"]["managedFields"] = json!([{"manager": "bad", "operation": "Delete", "apiVersion": "v1", "fieldsType": "FieldsV1"}]);
    let (_, out) = raw(
        &client,
        "PUT",
        &format!("{CM}/c?fieldManager=putter"),
        "x",
        "application/json",
        Some(&obj),
    )
    .await;
    assert_eq!(out["metadata"]["managedFields"], before);
    // `[{}]` resets them; updates then stay untracked, until an apply, which first records
    // what exists as "before-first-apply".
    let (_, out) = raw(
        &client,
        "PATCH",
        &format!("{CM}/c"),
        "x",
        MERGE,
        Some(&json!({"metadata": {"managedFields": [{}]}})),
    )
    .await;
    assert!(out["metadata"].get("managedFields").is_none(), "{out}");
    let (_, out) = raw(
        &client,
        "PATCH",
        &format!("{CM}/c?fieldManager=p"),
        "x",
        MERGE,
        Some(&json!({"data": {"b": "2"}})),
    )
    .await;
    assert!(out["metadata"].get("managedFields").is_none(), "{out}");
    let (code, out) = raw(&client, "PATCH", &format!("{CM}/c?fieldManager=applier"), "x", APPLY,
        Some(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"b": "3"}}))).await;
    assert_eq!(code, 409, "the updater-owned b conflicts: {out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains("conflict with \"before-first-apply\" using v1"),
        "{out}"
    );
    let (code, out) = raw(&client, "PATCH", &format!("{CM}/c?fieldManager=applier&force=true"), "x", APPLY,
        Some(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"b": "3"}}))).await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(
        entries(&out),
        vec![
            (
                "applier".into(),
                "Apply".into(),
                json!({"f:data": {"f:b": {}}})
            ),
            (
                "before-first-apply".into(),
                "Update".into(),
                json!({"f:data": {".": {}, "f:a": {}}})
            ),
        ]
    );
}
