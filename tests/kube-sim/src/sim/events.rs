//! One event store behind two APIs: core `v1` Events are stored, `events.k8s.io/v1` Events are a
//! view of the same objects converted field by field as kube-apiserver converts them
//! (`involvedObject` ↔ `regarding`, `message` ↔ `note`, `source` ↔ `deprecatedSource`,
//! `firstTimestamp`/`lastTimestamp`/`count` ↔ `deprecatedFirstTimestamp`/`deprecatedLastTimestamp`/
//! `deprecatedCount`, `reportingComponent` ↔ `reportingController`; `series`, `eventTime`, `action`,
//! `reason`, `type`, `related`, `reportingInstance` are the same in both). Pure functions.

use serde_json::{Map, Value, json};

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
}
