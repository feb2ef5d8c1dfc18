//! One event store behind two APIs: core `v1` Events are stored, `events.k8s.io/v1` Events are a
//! view of the same objects converted field by field as kube-apiserver converts them
//! (`involvedObject` ↔ `regarding`, `message` ↔ `note`, `source` ↔ `deprecatedSource`,
//! `firstTimestamp`/`lastTimestamp`/`count` ↔ `deprecatedFirstTimestamp`/`deprecatedLastTimestamp`/
//! `deprecatedCount`, `reportingComponent` ↔ `reportingController`; `series`, `eventTime`, `action`,
//! `reason`, `type`, `related`, `reportingInstance` are the same in both); and the API server's
//! validation of Event writes through either API ([`check`]). Pure functions.

use serde_json::{Map, Value, json};

use super::certificates::{is_dns_subdomain, qualified_name_part, str_at};
use super::status::Cause;

/// A served version whose JSON shape differs from the stored one (beyond `apiVersion`).
#[derive(Debug)]
pub struct View {
    /// `apiVersion` of the stored objects.
    pub storage_api_version: &'static str,
    /// Stored shape → served shape.
    pub to_view: fn(&Value) -> Value,
    /// Served shape → stored shape (also used on partial objects such as apply configurations).
    pub from_view: fn(Value) -> Value,
}

/// (core v1 field, events.k8s.io/v1 field).
const RENAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn rename(v: &Value, forward: bool, api_version: &str) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(m) = v.as_object() {
        for (k, x) in m {
            let to = RENAMES
                .iter()
                .find_map(|(core, ev)| {
                    if forward && k == core {
                        Some(*ev)
                    } else if !forward && k == ev {
                        Some(*core)
                    } else {
                        None
                    }
                })
                .unwrap_or(k.as_str());
            // Keys of the target shape pass unchanged, so converting twice changes nothing.
            out.entry(to.to_string()).or_insert_with(|| x.clone());
        }
    }
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    out
}

fn core_to_events(v: &Value) -> Value {
    Value::Object(rename(v, true, "events.k8s.io/v1"))
}

fn events_to_core(v: Value) -> Value {
    Value::Object(rename(&v, false, "v1"))
}

/// `events.k8s.io/v1` Events, stored as core `v1` Events.
pub static EVENTS_K8S_IO_V1: View = View {
    storage_api_version: "v1",
    to_view: core_to_events,
    from_view: events_to_core,
};

/// The view a served resource uses, if its JSON shape is not the stored one.
pub fn view_for(group: &str, plural: &str) -> Option<&'static View> {
    (group == "events.k8s.io" && plural == "events").then_some(&EVENTS_K8S_IO_V1)
}

/// The (group, plural) whose collection stores a resource: events.k8s.io Events share core's.
pub fn storage_key<'a>(group: &'a str, plural: &'a str) -> (&'a str, &'a str) {
    if group == "events.k8s.io" && plural == "events" {
        ("", "events")
    } else {
        (group, plural)
    }
}

/// The columns `kubectl get events` shows (Table output), as printer columns of the built-in.
pub fn printer_columns(group: &str, plural: &str) -> Vec<Value> {
    let col = |name: &str, path: &str| json!({"name": name, "type": "string", "jsonPath": path});
    match (group, plural) {
        ("", "events") => vec![
            col("Type", ".type"),
            col("Reason", ".reason"),
            col("Object", ".involvedObject.name"),
            col("Message", ".message"),
        ],
        ("events.k8s.io", "events") => vec![
            col("Type", ".type"),
            col("Reason", ".reason"),
            col("Object", ".regarding.name"),
            col("Note", ".note"),
        ],
        _ => Vec::new(),
    }
}

/// kube-apiserver's validation of an Event write (its `ValidateEventCreate` and
/// `ValidateEventUpdate`), on the stored core shape: `strict` for a write through
/// `events.k8s.io/v1`, `old` the stored copy on an update. Returns the causes of a 422.
pub fn check(event: &Value, old: Option<&Value>, strict: bool) -> Vec<Cause> {
    let mut causes = legacy_causes(event);
    if !strict {
        return causes;
    }
    match old {
        None => {
            causes.extend(series_causes(event));
            if unset(event, "eventTime") {
                causes.push(required("eventTime"));
            }
            let ty = str_at(event, "/type");
            if ty != "Normal" && ty != "Warning" {
                causes.push(invalid("type", &format!("has invalid value: {ty}")));
            }
            for (field, shown) in [
                ("firstTimestamp", "firstTimestamp"),
                ("lastTimestamp", "lastTimestamp"),
            ] {
                if !unset(event, field) {
                    causes.push(invalid(shown, "needs to be unset"));
                }
            }
            if event.get("count").and_then(Value::as_i64).unwrap_or(0) != 0 {
                causes.push(invalid("count", "needs to be unset"));
            }
            if !str_at(event, "/source/component").is_empty()
                || !str_at(event, "/source/host").is_empty()
            {
                causes.push(invalid("source", "needs to be unset"));
            }
        }
        Some(old) => {
            if event.get("series") != old.get("series") {
                causes.extend(series_causes(event));
            }
            // Stored name, upstream's field path.
            for (field, shown) in [
                ("involvedObject", "involvedObject"),
                ("reason", "reason"),
                ("message", "message"),
                ("source", "source"),
                ("firstTimestamp", "firstTimestamp"),
                ("lastTimestamp", "lastTimestamp"),
                ("count", "count"),
                ("type", "type"),
                ("eventTime", "eventTime"),
                ("action", "action"),
                ("related", "related"),
                ("reportingComponent", "reportingController"),
                ("reportingInstance", "reportingInstance"),
            ] {
                if event.get(field) != old.get(field) {
                    causes.push(invalid(shown, "field is immutable"));
                }
            }
        }
    }
    causes
}

/// Reporting instance, action and reason: at most this many characters.
const SHORT_FIELD_LIMIT: usize = 128;
/// The note (`message`): at most this many characters.
const NOTE_LIMIT: usize = 1024;

/// What every Event write must pass, whatever the API version.
fn legacy_causes(event: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let namespace = event
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let involved_namespace = str_at(event, "/involvedObject/namespace");
    if unset(event, "eventTime") {
        let agree = if involved_namespace.is_empty() {
            namespace.is_empty() || namespace == "default"
        } else {
            namespace == involved_namespace
        };
        if !agree {
            causes.push(invalid(
                "involvedObject.namespace",
                "does not match event.namespace",
            ));
        }
        return causes;
    }
    if involved_namespace.is_empty() && namespace != "default" && namespace != "kube-system" {
        causes.push(invalid(
            "involvedObject.namespace",
            "does not match event.namespace",
        ));
    }
    let controller = str_at(event, "/reportingComponent");
    if controller.is_empty() {
        causes.push(required("reportingController"));
    }
    if !is_qualified_name(controller) {
        causes.push(invalid(
            "reportingController",
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        ));
    }
    for (field, limit) in [
        ("reportingInstance", SHORT_FIELD_LIMIT),
        ("action", SHORT_FIELD_LIMIT),
        ("reason", SHORT_FIELD_LIMIT),
    ] {
        let value = str_at(event, &format!("/{field}"));
        if value.is_empty() {
            causes.push(required(field));
        }
        if value.len() > limit {
            causes.push(invalid(
                field,
                &format!("can have at most {limit} characters"),
            ));
        }
    }
    if str_at(event, "/message").len() > NOTE_LIMIT {
        causes.push(invalid(
            "message",
            &format!("can have at most {NOTE_LIMIT} characters"),
        ));
    }
    causes
}

fn series_causes(event: &Value) -> Vec<Cause> {
    let Some(series) = event.get("series").filter(|s| !s.is_null()) else {
        return Vec::new();
    };
    let mut causes = Vec::new();
    if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
        causes.push(invalid("series.count", "should be at least 2"));
    }
    if unset(series, "lastObservedTime") {
        causes.push(required("series.lastObservedTime"));
    }
    causes
}

/// `[prefix/]name`: a DNS-subdomain prefix and a qualified name part.
fn is_qualified_name(value: &str) -> bool {
    match value.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && qualified_name_part(name),
        None => qualified_name_part(value),
    }
}

fn unset(v: &Value, field: &str) -> bool {
    v.get(field).is_none_or(|x| x.is_null() || x == "")
}

fn required(field: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired".into(),
        message: "Required value".into(),
        field: field.into(),
    }
}

fn invalid(field: &str, message: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: \"\": {message}"),
        field: field.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_round_trips_and_renames_every_field() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "m", "reason": "R",
            "source": {"component": "c"}, "firstTimestamp": "2026-01-01T00:00:00Z",
            "lastTimestamp": "2026-01-01T00:00:01Z", "count": 2, "type": "Normal",
            "reportingComponent": "rc", "reportingInstance": "ri",
            "series": {"count": 3, "lastObservedTime": "2026-01-01T00:00:02.000000Z"}
        });
        let ev = core_to_events(&core);
        assert_eq!(
            ev,
            json!({
                "apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "e", "namespace": "ns"},
                "regarding": {"kind": "Pod", "name": "p"}, "note": "m", "reason": "R",
                "deprecatedSource": {"component": "c"}, "deprecatedFirstTimestamp": "2026-01-01T00:00:00Z",
                "deprecatedLastTimestamp": "2026-01-01T00:00:01Z", "deprecatedCount": 2, "type": "Normal",
                "reportingController": "rc", "reportingInstance": "ri",
                "series": {"count": 3, "lastObservedTime": "2026-01-01T00:00:02.000000Z"}
            })
        );
        assert_eq!(events_to_core(ev.clone()), core);
        assert_eq!(
            events_to_core(core.clone()),
            core,
            "converting core Events again is a no-op"
        );
        assert_eq!(core_to_events(&ev), ev);
    }

    /// An Event as a controller's events library sends it through events.k8s.io/v1, stored.
    fn recorded() -> Value {
        events_to_core(json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "req.18c0", "namespace": "apps"},
            "eventTime": "2026-12-06T04:00:00.000000Z",
            "regarding": {"kind": "CertificateRequest", "name": "req", "namespace": "apps"},
            "reason": "RequesterNotAllowed", "action": "Sign", "note": "refused", "type": "Warning",
            "reportingController": "firefly", "reportingInstance": "firefly-0",
        }))
    }

    fn fields(causes: &[Cause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn an_event_as_the_libraries_send_it_is_valid_through_both_apis() {
        assert!(check(&recorded(), None, true).is_empty());
        assert!(check(&recorded(), None, false).is_empty());
        let mut cluster_scoped = recorded();
        cluster_scoped["metadata"]["namespace"] = json!("default");
        cluster_scoped["involvedObject"] = json!({"kind": "ClusterIssuer", "name": "ca"});
        assert!(check(&cluster_scoped, None, true).is_empty());
    }

    #[test]
    fn an_event_missing_what_the_api_server_requires_is_refused_field_by_field() {
        let mut e = recorded();
        let o = e.as_object_mut().unwrap();
        for k in [
            "eventTime",
            "reportingComponent",
            "reportingInstance",
            "action",
            "reason",
        ] {
            o.remove(k);
        }
        o.insert("type".into(), json!("Info"));
        let causes = check(&e, None, true);
        for field in ["eventTime", "type"] {
            assert!(fields(&causes).contains(&field), "{field}: {causes:?}");
        }
        // Without eventTime an event is judged as an old one: only its namespaces must agree.
        let mut e = recorded();
        e["eventTime"] = Value::Null;
        e["reportingComponent"] = json!("");
        assert!(check(&e, None, false).is_empty());
        e["metadata"]["namespace"] = json!("other");
        assert_eq!(
            fields(&check(&e, None, false)),
            ["involvedObject.namespace"]
        );

        let mut e = recorded();
        e["reportingComponent"] = json!("");
        e["reportingInstance"] = json!("i".repeat(129));
        e["reason"] = json!("R".repeat(129));
        e["message"] = json!("n".repeat(1025));
        e["series"] = json!({"count": 1});
        e["count"] = json!(3);
        let causes = check(&e, None, true);
        for field in [
            "reportingController",
            "reportingInstance",
            "reason",
            "message",
            "series.count",
            "series.lastObservedTime",
            "count",
        ] {
            assert!(fields(&causes).contains(&field), "{field}: {causes:?}");
        }
        let mut e = recorded();
        e["involvedObject"]["namespace"] = json!("");
        assert_eq!(fields(&check(&e, None, true)), ["involvedObject.namespace"]);
        let mut e = recorded();
        e["reportingComponent"] = json!("not a name!");
        assert_eq!(fields(&check(&e, None, true)), ["reportingController"]);
    }

    #[test]
    fn an_update_may_change_the_series_and_nothing_the_event_says() {
        let old = recorded();
        let mut repeat = old.clone();
        repeat["series"] = json!({"count": 2, "lastObservedTime": "2026-12-06T04:01:00.000000Z"});
        assert!(check(&repeat, Some(&old), true).is_empty());
        repeat["series"]["count"] = json!(1);
        assert_eq!(fields(&check(&repeat, Some(&old), true)), ["series.count"]);
        let mut changed = old.clone();
        changed["reason"] = json!("Other");
        changed["message"] = json!("other");
        assert_eq!(
            fields(&check(&changed, Some(&old), true)),
            ["reason", "message"]
        );
        assert!(
            check(&changed, Some(&old), false).is_empty(),
            "core v1 updates keep the old rules"
        );
    }
}
