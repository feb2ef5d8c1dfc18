//! kube-sim driven by the real kube-rs client, watcher and Controller.

mod common;

use common::*;
use futures::{StreamExt, TryStreamExt};
use kube::ResourceExt as _;
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use kube_sim::{KubeSim, SimOptions, wait_for};
use serde_json::json;
use std::time::Duration;

async fn sim_with_crds(opts: SimOptions) -> KubeSim {
    let sim = KubeSim::start(opts).await.expect("kube-sim starts");
    sim.install_crds_yaml(&project_crds())
        .await
        .expect("project CRDs install");
    sim
}

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn create_get_list_assign_server_fields_and_select_by_label() {
    let sim = sim_with_crds(SimOptions::default()).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    let created = api
        .create(&PostParams::default(), &dynamic(cr_body("a")))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    let mut generated = cr_body("");
    generated["metadata"] = json!({"generateName": "gen-"});
    let g = api
        .create(&PostParams::default(), &dynamic(generated))
        .await
        .unwrap();
    assert!(g.metadata.name.as_deref().unwrap().starts_with("gen-"));
    assert_eq!(
        api.get("a").await.unwrap().metadata.uid,
        created.metadata.uid
    );
    let all = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(all.items.len(), 2);
    let rv: u64 = all.metadata.resource_version.unwrap().parse().unwrap();
    assert!(rv >= created.metadata.resource_version.unwrap().parse().unwrap());
    let none = api
        .list(&ListParams::default().labels("app=other"))
        .await
        .unwrap();
    assert!(none.items.is_empty());
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=a"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    assert_eq!(sim.request_count("create", "certificaterequests"), 2);
    assert_eq!(sim.request_count("list", "certificaterequests"), 3);
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let sim = sim_with_crds(SimOptions::default()).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    for i in 0..7 {
        api.create(&PostParams::default(), &dynamic(cr_body(&format!("p{i}"))))
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut sizes = Vec::new();
    let mut tokens = Vec::new();
    let mut lp = ListParams::default().limit(3);
    loop {
        let page = api.list(&lp).await.unwrap();
        sizes.push(page.items.len());
        names.extend(page.items.iter().map(|o| o.metadata.name.clone().unwrap()));
        let token = page.metadata.continue_.filter(|c| !c.is_empty());
        tokens.push(token.is_some());
        match token {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
        assert!(sizes.len() < 7, "the pages never end: {sizes:?}");
    }
    // The limit is honoured: three pages of at most three, a continue token on all but the last.
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(tokens, vec![true, true, false]);
    assert_eq!(names, (0..7).map(|i| format!("p{i}")).collect::<Vec<_>>());
}

/// A paged list is one snapshot, as kube-apiserver's pages through one etcd revision: changes
/// made between pages show in none of them, every page carries the first page's
/// resourceVersion, and a watch from it delivers those changes. (Pages served at the current
/// resourceVersion lost every change to an earlier page: a controller re-listing under load never
/// saw them.)
#[tokio::test]
async fn paged_list_is_one_snapshot_and_a_watch_from_it_misses_nothing() {
    let sim = sim_with_crds(SimOptions::default()).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    for i in 0..6 {
        api.create(&PostParams::default(), &dynamic(cr_body(&format!("p{i}"))))
            .await
            .unwrap();
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    let list_rv = first.metadata.resource_version.clone().unwrap();
    let token = first.metadata.continue_.clone().unwrap();
    // Between pages: one object of the first page changes, one of a later page is deleted and
    // a new one is created.
    let label = Patch::Merge(json!({"metadata": {"labels": {"changed": "yes"}}}));
    api.patch("p0", &PatchParams::default(), &label)
        .await
        .unwrap();
    api.delete("p4", &DeleteParams::default()).await.unwrap();
    api.create(&PostParams::default(), &dynamic(cr_body("p9")))
        .await
        .unwrap();
    let mut names: Vec<String> = first.items.iter().map(|o| o.name_any()).collect();
    let mut lp = ListParams::default().limit(2).continue_token(&token);
    loop {
        let page = api.list(&lp).await.unwrap();
        assert_eq!(
            page.metadata.resource_version.as_deref(),
            Some(list_rv.as_str())
        );
        names.extend(page.items.iter().map(|o| o.name_any()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4", "p5"]);
    let mut seen = Vec::new();
    let mut events = api
        .watch(&WatchParams::default().timeout(1), &list_rv)
        .await
        .unwrap()
        .boxed();
    while let Some(ev) = events.try_next().await.unwrap() {
        match ev {
            WatchEvent::Added(o) => seen.push(format!("ADDED {}", o.name_any())),
            WatchEvent::Modified(o) => seen.push(format!("MODIFIED {}", o.name_any())),
            WatchEvent::Deleted(o) => seen.push(format!("DELETED {}", o.name_any())),
            _ => {}
        }
    }
    assert_eq!(seen, ["MODIFIED p0", "DELETED p4", "ADDED p9"]);
    // The snapshot is gone after its last page; its token is refused as kube-apiserver refuses an
    // expired one (410 Expired: the client lists again).
    let expired = api_err(
        api.list(&ListParams::default().limit(2).continue_token(&token))
            .await
            .unwrap_err(),
    );
    assert_eq!((expired.code, expired.reason.as_str()), (410, "Expired"));
}

#[tokio::test]
async fn malformed_certificate_request_is_rejected_as_invalid_with_causes() {
    let sim = sim_with_crds(SimOptions::default()).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    let mut bad = cr_body("bad");
    bad["spec"]["request"] = json!("this is not base64!");
    bad["spec"]["isCA"] = json!("yes");
    let st = api_err(
        api.create(&PostParams::default(), &dynamic(bad))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 422);
    assert_eq!(st.reason, "Invalid");
    let fields: Vec<String> = st
        .details
        .unwrap()
        .causes
        .iter()
        .map(|c| c.field.clone())
        .collect();
    assert!(fields.contains(&"spec.request".to_string()), "{fields:?}");
    assert!(fields.contains(&"spec.isCA".to_string()), "{fields:?}");
    let mut missing = cr_body("missing");
    missing["spec"].as_object_mut().unwrap().remove("request");
    let st = api_err(
        api.create(&PostParams::default(), &dynamic(missing))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 422);
    assert!(
        st.message.contains("spec.request: Required value"),
        "{}",
        st.message
    );
    assert!(api.get_opt("bad").await.unwrap().is_none());
}

#[tokio::test]
async fn missing_object_and_duplicate_create_have_real_status_shapes() {
    let sim = sim_with_crds(SimOptions::default()).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    let st = api_err(api.get("nope").await.unwrap_err());
    assert_eq!((st.code, st.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        st.message,
        "certificaterequests.cert-manager.io \"nope\" not found"
    );
    api.create(&PostParams::default(), &dynamic(cr_body("dup")))
        .await
        .unwrap();
    let st = api_err(
        api.create(&PostParams::default(), &dynamic(cr_body("dup")))
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (409, "AlreadyExists"));
    let other_ns = cr_api(sim.client().await.unwrap(), "absent");
    let st = api_err(
        other_ns
            .create(&PostParams::default(), &dynamic(cr_body("x")))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        st.code, 404,
        "creating in a missing namespace fails like a real server"
    );
}

#[tokio::test]
async fn update_with_stale_resource_version_conflicts() {
    let sim = sim_with_crds(SimOptions::default()).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    let first = api
        .create(&PostParams::default(), &dynamic(cr_body("occ")))
        .await
        .unwrap();
    let mut a = first.clone();
    a.data["spec"]["duration"] = json!("2h0m0s");
    let updated = api
        .replace("occ", &PostParams::default(), &a)
        .await
        .unwrap();
    assert_eq!(
        updated.metadata.generation,
        Some(2),
        "a spec change moves generation"
    );
    let mut stale = first.clone();
    stale.data["spec"]["duration"] = json!("3h0m0s");
    let st = api_err(
        api.replace("occ", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (409, "Conflict"));
    assert!(
        st.message.contains("the object has been modified"),
        "{}",
        st.message
    );
    // A merge patch carrying a stale resourceVersion is a precondition too.
    let p = json!({"metadata": {"resourceVersion": first.metadata.resource_version}, "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Issued", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    let st = api_err(
        api.patch_status("occ", &PatchParams::default(), &Patch::Merge(&p))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 409);
}

#[tokio::test]
async fn status_writes_never_change_spec_or_generation() {
    let sim = sim_with_crds(SimOptions::default()).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    api.create(&PostParams::default(), &dynamic(cr_body("s")))
        .await
        .unwrap();
    let p = json!({"spec": {"duration": "9h0m0s"}, "status": {"certificate": "Y2VydA=="}});
    let after = api
        .patch_status("s", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    assert_eq!(after.data["spec"]["duration"], "1h0m0s");
    assert_eq!(after.data["status"]["certificate"], "Y2VydA==");
    assert_eq!(after.metadata.generation, Some(1));
    // Metadata in a status patch is ignored too, and a status write keeps the stored metadata.
    let p = json!({"metadata": {"labels": {"added": "by-status"}}, "status": {"certificate": "c2Vjb25k"}});
    let after = api
        .patch_status("s", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    assert_eq!(after.data["status"]["certificate"], "c2Vjb25k");
    assert!(
        after
            .metadata
            .labels
            .as_ref()
            .is_none_or(|l| !l.contains_key("added")),
        "labels from a status patch are not stored: {:?}",
        after.metadata.labels
    );
    assert_eq!(after.metadata.name.as_deref(), Some("s"));
    assert!(after.metadata.uid.is_some() && after.metadata.creation_timestamp.is_some());
    // And a main-resource patch cannot write status.
    let p = json!({"status": {"certificate": "b3RoZXI="}});
    let main = api
        .patch("s", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    assert_eq!(main.data["status"]["certificate"], "c2Vjb25k");
    // A JSON patch on status works as well.
    let jp: json_patch::Patch = serde_json::from_value(
        json!([{"op": "replace", "path": "/status/certificate", "value": "anA="}]),
    )
    .unwrap();
    let after = api
        .patch_status("s", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .unwrap();
    assert_eq!(after.data["status"]["certificate"], "anA=");
}

#[tokio::test]
async fn server_side_apply_on_status_keeps_other_managers_conditions() {
    let sim = sim_with_crds(SimOptions::default()).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    api.create(&PostParams::default(), &dynamic(cr_body("ssa")))
        .await
        .unwrap();
    let cond = |t: &str, s: &str| json!({"type": t, "status": s, "reason": "R", "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"});
    let approve = json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest", "status": {"conditions": [cond("Approved", "True")]}});
    api.patch_status(
        "ssa",
        &PatchParams::apply("approver"),
        &Patch::Apply(&approve),
    )
    .await
    .unwrap();
    let ready = json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest", "status": {"conditions": [cond("Ready", "True")], "certificate": "Y2VydA=="}});
    let after = api
        .patch_status("ssa", &PatchParams::apply("firefly"), &Patch::Apply(&ready))
        .await
        .unwrap();
    assert_eq!(condition(&after, "Approved").as_deref(), Some("True"));
    assert_eq!(condition(&after, "Ready").as_deref(), Some("True"));
    // Changing a condition another manager owns conflicts unless forced.
    let steal = json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest", "status": {"conditions": [cond("Approved", "False")]}});
    let st = api_err(
        api.patch_status("ssa", &PatchParams::apply("firefly"), &Patch::Apply(&steal))
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (409, "Conflict"));
    assert!(st.message.contains("approver"), "{}", st.message);
    let forced = api
        .patch_status(
            "ssa",
            &PatchParams::apply("firefly").force(),
            &Patch::Apply(&steal),
        )
        .await
        .unwrap();
    assert_eq!(condition(&forced, "Approved").as_deref(), Some("False"));
    assert_eq!(
        forced.data["status"]["certificate"],
        serde_json::Value::Null,
        "fields a manager stops applying are removed"
    );
    assert_eq!(condition(&forced, "Ready"), None);
}

#[tokio::test]
async fn guarded_merge_patches_keep_other_writers_conditions() {
    let sim = sim_with_crds(SimOptions::default()).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    api.create(&PostParams::default(), &dynamic(cr_body("m")))
        .await
        .unwrap();
    let cond = |t: &str| json!({"type": t, "status": "True", "reason": "R", "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"});
    // The issuer reads, then the approver writes before the issuer does.
    let seen = api.get_status("m").await.unwrap();
    let approve = json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest", "status": {"conditions": [cond("Approved")]}});
    api.patch_status(
        "m",
        &PatchParams::apply("approver"),
        &Patch::Apply(&approve),
    )
    .await
    .unwrap();
    let stale = json!({"metadata": {"resourceVersion": seen.metadata.resource_version}, "status": {"conditions": [cond("Ready")]}});
    let st = api_err(
        api.patch_status("m", &PatchParams::default(), &Patch::Merge(&stale))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        st.code, 409,
        "the guarded write must not wipe the approver's condition"
    );
    // Re-read and write the whole list: both conditions survive.
    let fresh = api.get_status("m").await.unwrap();
    let mut conditions = fresh.data["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap();
    conditions.push(cond("Ready"));
    let ok = json!({"metadata": {"resourceVersion": fresh.metadata.resource_version}, "status": {"conditions": conditions}});
    let after = api
        .patch_status("m", &PatchParams::default(), &Patch::Merge(&ok))
        .await
        .unwrap();
    assert_eq!(condition(&after, "Approved").as_deref(), Some("True"));
    assert_eq!(condition(&after, "Ready").as_deref(), Some("True"));
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let sim = sim_with_crds(SimOptions::default()).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    let mut body = cr_body("fin");
    body["metadata"]["finalizers"] = json!(["example.com/hold"]);
    api.create(&PostParams::default(), &dynamic(body))
        .await
        .unwrap();
    api.delete("fin", &DeleteParams::default()).await.unwrap();
    let held = api.get("fin").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    let p = json!({"metadata": {"finalizers": null}});
    api.patch("fin", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    assert!(api.get_opt("fin").await.unwrap().is_none());
}

#[tokio::test]
async fn watcher_lists_then_streams_changes() {
    let sim = sim_with_crds(SimOptions::default()).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    api.create(&PostParams::default(), &dynamic(cr_body("pre")))
        .await
        .unwrap();
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut seen_init = Vec::new();
    while let Some(ev) = events.try_next().await.unwrap() {
        match ev {
            watcher::Event::InitApply(o) => seen_init.push(o.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(seen_init, vec!["pre"]);
    api.create(&PostParams::default(), &dynamic(cr_body("post")))
        .await
        .unwrap();
    api.delete("pre", &DeleteParams::default()).await.unwrap();
    let mut applied = None;
    let mut deleted = None;
    while applied.is_none() || deleted.is_none() {
        match events.try_next().await.unwrap() {
            Some(watcher::Event::Apply(o)) => applied = o.metadata.name,
            Some(watcher::Event::Delete(o)) => deleted = o.metadata.name,
            Some(_) => {}
            None => panic!("watch stream ended"),
        }
    }
    assert_eq!(
        (applied.as_deref(), deleted.as_deref()),
        (Some("post"), Some("pre"))
    );
}

#[tokio::test]
async fn streaming_list_ends_initial_events_with_a_bookmark() {
    let sim = sim_with_crds(SimOptions::default()).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    api.create(&PostParams::default(), &dynamic(cr_body("one")))
        .await
        .unwrap();
    api.create(&PostParams::default(), &dynamic(cr_body("two")))
        .await
        .unwrap();
    let mut events = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut init = Vec::new();
    loop {
        match events.try_next().await.unwrap() {
            Some(watcher::Event::InitApply(o)) => init.push(o.metadata.name.unwrap()),
            Some(watcher::Event::InitDone) => break,
            Some(_) => {}
            None => panic!("stream ended before InitDone"),
        }
    }
    init.sort();
    assert_eq!(init, vec!["one", "two"]);
    assert_eq!(
        sim.request_count("list", "certificaterequests"),
        0,
        "a streaming list needs no LIST call"
    );
}

#[tokio::test]
async fn watch_sends_bookmarks_when_allowed() {
    let mut opts = SimOptions::default();
    opts.bookmark_interval = Duration::from_millis(50);
    let sim = sim_with_crds(opts).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    let created = api
        .create(&PostParams::default(), &dynamic(cr_body("b")))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    let mut got = None;
    while let Some(ev) = stream.try_next().await.unwrap() {
        if let WatchEvent::Bookmark(b) = ev {
            got = Some(b.metadata.resource_version);
            break;
        }
    }
    let got: u64 = got.expect("a bookmark arrived").parse().unwrap();
    assert!(
        got >= rv.parse::<u64>().unwrap(),
        "bookmarks never go back in time"
    );
}

#[tokio::test]
async fn too_old_resource_version_is_an_in_stream_410() {
    let sim = sim_with_crds(SimOptions::default()).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    let first = api
        .create(&PostParams::default(), &dynamic(cr_body("old")))
        .await
        .unwrap();
    api.create(&PostParams::default(), &dynamic(cr_body("newer")))
        .await
        .unwrap();
    sim.faults().compact_history();
    let rv = first.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("the watch itself is HTTP 200")
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(s)) => {
            assert_eq!(s.code, 410);
            assert_eq!(s.reason, "Expired");
        }
        other => panic!("expected an ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn watcher_relists_after_history_compaction_and_dropped_watches() {
    let sim = sim_with_crds(SimOptions::default()).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    api.create(&PostParams::default(), &dynamic(cr_body("before")))
        .await
        .unwrap();
    let store =
        kube::runtime::reflector::store::Writer::<kube::api::DynamicObject>::new(cr_resource());
    let reader = store.as_reader();
    let stream = kube::runtime::reflector(store, watcher(api.clone(), watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    wait_for(Duration::from_secs(20), || async { reader.len() == 1 })
        .await
        .unwrap();
    // Make the resume point unusable, then cut the stream: the watcher must re-list.
    api.create(&PostParams::default(), &dynamic(cr_body("during")))
        .await
        .unwrap();
    wait_for(Duration::from_secs(20), || async { reader.len() == 2 })
        .await
        .unwrap();
    sim.faults().compact_history();
    api.create(&PostParams::default(), &dynamic(cr_body("after")))
        .await
        .unwrap();
    sim.faults().compact_history();
    sim.faults().drop_watches();
    api.create(&PostParams::default(), &dynamic(cr_body("last")))
        .await
        .unwrap();
    wait_for(Duration::from_secs(30), || async { reader.len() == 4 })
        .await
        .unwrap();
    assert!(sim.request_count("list", "certificaterequests") >= 1);
    assert!(
        sim.request_count("watch", "certificaterequests") >= 2,
        "the watch was re-opened"
    );
    task.abort();
}

#[tokio::test]
async fn controller_reconciles_every_request_with_one_status_write_each() {
    use kube::runtime::controller::{Action, Controller};
    use std::sync::Arc;
    let sim = sim_with_crds(SimOptions::default()).await;
    let client = sim.client().await.unwrap();
    let api = cr_api(client.clone(), "default");
    let n = 50;
    for i in 0..n {
        api.create(&PostParams::default(), &dynamic(cr_body(&format!("c{i}"))))
            .await
            .unwrap();
    }
    #[derive(Debug, thiserror::Error)]
    #[error(transparent)]
    struct E(#[from] kube::Error);
    async fn reconcile(
        obj: Arc<kube::api::DynamicObject>,
        api: Arc<kube::Api<kube::api::DynamicObject>>,
    ) -> Result<Action, E> {
        if condition(&obj, "Ready").is_some() {
            return Ok(Action::await_change());
        }
        let name = obj.metadata.name.clone().unwrap_or_default();
        let p = json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest", "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Issued", "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        api.patch_status(
            &name,
            &PatchParams::apply("test-controller").force(),
            &Patch::Apply(&p),
        )
        .await?;
        Ok(Action::await_change())
    }
    let ctl_api = Arc::new(api.clone());
    let ctl = Controller::new_with(api.clone(), watcher::Config::default(), cr_resource())
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            ctl_api,
        )
        .for_each(|_| async {});
    let task = tokio::spawn(ctl);
    wait_for(Duration::from_secs(30), || async {
        (0..n).all(|i| {
            sim.object(
                "cert-manager.io",
                "certificaterequests",
                "default",
                &format!("c{i}"),
            )
            .is_some_and(|o| kube_sim::condition_status(&o, "Ready") == Some("True"))
        })
    })
    .await
    .unwrap();
    task.abort();
    assert_eq!(
        sim.request_count("patch", "certificaterequests/status"),
        n as u64
    );
    assert_eq!(sim.request_count("get", "certificaterequests"), 0);
}

#[tokio::test]
async fn injected_errors_hit_matching_requests_only_and_transient_ones_are_retried_by_kube_rs() {
    let sim = sim_with_crds(SimOptions::default()).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    api.create(&PostParams::default(), &dynamic(cr_body("f")))
        .await
        .unwrap();
    // kube-rs retries 503 (honouring Retry-After): two injected failures, then success.
    sim.faults().inject(
        kube_sim::FaultRule::error(503)
            .verb("get")
            .resource("certificaterequests")
            .times(2),
    );
    api.get("f").await.expect("kube-rs retries 503");
    assert_eq!(sim.request_count("get", "certificaterequests"), 3);
    // 500 and 409 reach the caller; only the status subresource is hit.
    sim.faults().inject(
        kube_sim::FaultRule::error(500)
            .verb("patch")
            .resource("certificaterequests/status")
            .times(1),
    );
    let p = json!({"status": {"certificate": "eA=="}});
    let st = api_err(
        api.patch_status("f", &PatchParams::default(), &Patch::Merge(&p))
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (500, "InternalError"));
    sim.faults().inject(
        kube_sim::FaultRule::error(409)
            .verb("patch")
            .resource("certificaterequests/status"),
    );
    api.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"labels": {"x": "y"}}})),
    )
    .await
    .expect("main resource not affected");
    let st = api_err(
        api.patch_status("f", &PatchParams::default(), &Patch::Merge(&p))
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (409, "Conflict"));
    sim.faults().clear();
    // An injected 404 stands for an object deleted just before the write; the object stays.
    sim.faults().inject(
        kube_sim::FaultRule::error(404)
            .verb("patch")
            .resource("certificaterequests/status")
            .times(1),
    );
    let st = api_err(
        api.patch_status("f", &PatchParams::default(), &Patch::Merge(&p))
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (404, "NotFound"));
    let done = api
        .patch_status("f", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    assert_eq!(done.data["status"]["certificate"], "eA==");
}

#[tokio::test]
async fn injected_latency_delays_but_serves() {
    let sim = sim_with_crds(SimOptions::default()).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    sim.faults().inject(
        kube_sim::FaultRule::latency(Duration::from_millis(200))
            .verb("create")
            .probability(1.0)
            .times(1),
    );
    let started = tokio::time::Instant::now();
    api.create(&PostParams::default(), &dynamic(cr_body("slow")))
        .await
        .unwrap();
    // A lower bound only: the delay is injected, never a timing goal.
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn paused_server_holds_requests_until_resumed() {
    let sim = sim_with_crds(SimOptions::default()).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    sim.faults().pause();
    let pending = tokio::spawn({
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &dynamic(cr_body("held")))
                .await
        }
    });
    // The request has reached the server and waits there (counted as held), not merely queued
    // in the client: its absence from the store is then the pause's doing.
    wait_for(Duration::from_secs(20), || async {
        sim.faults().held_requests() == 1
    })
    .await
    .expect("the create reaches the paused server");
    assert!(
        sim.object("cert-manager.io", "certificaterequests", "default", "held")
            .is_none()
    );
    assert!(
        !pending.is_finished(),
        "the create is answered while paused"
    );
    assert_eq!(sim.request_count("create", "certificaterequests"), 0);
    sim.faults().resume();
    pending.await.unwrap().unwrap();
    assert!(
        sim.object("cert-manager.io", "certificaterequests", "default", "held")
            .is_some()
    );
    assert_eq!(sim.faults().held_requests(), 0);
}

#[tokio::test]
async fn leases_configmaps_and_events_are_plain_storage() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::ConfigMap;
    let sim = KubeSim::start(SimOptions::default()).await.unwrap();
    let client = sim.client().await.unwrap();
    let leases: kube::Api<Lease> = kube::Api::namespaced(client.clone(), "default");
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15, "renewTime": "2026-01-01T00:00:00.000000Z"}})).unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let got = leases.get("leader").await.unwrap();
    assert_eq!(got.spec.unwrap().holder_identity.as_deref(), Some("me"));
    let cms: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"k": "v"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let mut unconditional = cms.get("c").await.unwrap();
    unconditional.metadata.resource_version = None;
    unconditional.data = Some([("k".to_string(), "w".to_string())].into());
    let replaced = cms
        .replace("c", &PostParams::default(), &unconditional)
        .await
        .unwrap();
    assert_eq!(replaced.data.unwrap()["k"], "w");
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(client, "default");
    let ev: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({"metadata": {"generateName": "e-"}, "eventTime": "2026-01-01T00:00:00.000000Z", "reason": "Issued", "action": "Sign", "reportingController": "x", "reportingInstance": "y", "type": "Normal"})).unwrap();
    events.create(&PostParams::default(), &ev).await.unwrap();
    assert_eq!(
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

/// kube-apiserver treats a `metadata.resourceVersion` in a server-side-apply body as a
/// precondition, on `/status` too and even when forced: a stale one is 409 Conflict and
/// changes nothing. The write record keeps each answer's status and the object's name.
#[tokio::test]
async fn server_side_apply_with_a_stale_resource_version_conflicts_even_when_forced() {
    let mut opts = SimOptions::default();
    opts.record_writes = true;
    let sim = sim_with_crds(opts).await;
    let api = cr_api(sim.client().await.unwrap(), "default");
    let created = api
        .create(&PostParams::default(), &dynamic(cr_body("rv")))
        .await
        .unwrap();
    let rv0 = created.metadata.resource_version.clone().unwrap();
    let ready = |rv: &str, cert: &str| {
        json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
               "metadata": {"name": "rv", "namespace": "default", "resourceVersion": rv},
               "status": {"certificate": cert}})
    };
    let forced = PatchParams::apply("firefly").force();
    let first = api
        .patch_status("rv", &forced, &Patch::Apply(&ready(&rv0, "Zmlyc3Q=")))
        .await
        .expect("the current resourceVersion is accepted");
    let st = api_err(
        api.patch_status("rv", &forced, &Patch::Apply(&ready(&rv0, "c2Vjb25k")))
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (409, "Conflict"));
    assert!(
        st.message.contains("the object has been modified"),
        "{}",
        st.message
    );
    let now = api.get("rv").await.unwrap();
    assert_eq!(now.data["status"]["certificate"], "Zmlyc3Q=");
    assert_eq!(
        now.metadata.resource_version,
        first.metadata.resource_version
    );
    let answers: Vec<(String, u16)> = sim
        .writes()
        .into_iter()
        .filter(|w| w.subresource.as_deref() == Some("status"))
        .map(|w| (w.name, w.code))
        .collect();
    assert_eq!(answers, [("rv".to_owned(), 200), ("rv".to_owned(), 409)]);
}

#[tokio::test]
async fn injected_throttling_carries_the_chosen_retry_after() {
    let sim = sim_with_crds(SimOptions::default()).await;
    let mut config = sim.kube_config().await.unwrap();
    config.default_retry = false;
    let api = cr_api(kube::Client::try_from(config).unwrap(), "default");
    sim.faults().inject(
        kube_sim::FaultRule::error(429)
            .verb("get")
            .resource("certificaterequests")
            .retry_after(7)
            .times(1),
    );
    let st = api_err(api.get("absent").await.unwrap_err());
    assert_eq!((st.code, st.reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(st.details.map(|d| d.retry_after_seconds), Some(7));
}

/// events.k8s.io/v1 creates are validated strictly: the Event's own name must be a DNS-1123
/// subdomain (kube-apiserver's ValidateEventCreate, NameIsDNSSubdomain).
#[tokio::test]
async fn events_k8s_io_creates_need_a_dns_subdomain_name() {
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
    let sim = KubeSim::start(SimOptions::default()).await.unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(
        sim.client().await.unwrap(),
        "default",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("events.k8s.io", "v1", "Event"),
            "events",
        ),
    );
    let event = |name: &str| {
        dynamic(json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": name, "namespace": "default"},
            "eventTime": "2026-12-06T04:00:00.000000Z",
            "regarding": {"kind": "CertificateRequest", "name": "req", "namespace": "default"},
            "reason": "Issued", "action": "Sign", "note": "ok", "type": "Normal",
            "reportingController": "firefly", "reportingInstance": "firefly-0"
        }))
    };
    for bad in ["Req.18C0", "req_1", "req..1", "-req"] {
        let s = api_err(
            api.create(&PostParams::default(), &event(bad))
                .await
                .unwrap_err(),
        );
        assert_eq!(s.code, 422, "{bad}: {s:?}");
        assert!(s.message.contains("metadata.name"), "{bad}: {}", s.message);
    }
    api.create(&PostParams::default(), &event("req.18c0"))
        .await
        .unwrap();
}
