//! Publishes the events (`events.k8s.io/v1`) of every front door and of the issuer status loop,
//! remembering a bounded number of them to turn repeats into series. Knows nothing of what the
//! events say.
//!
//! Why not kube-runtime's `Recorder`: it remembers every event it published for 6 minutes, with
//! no bound, and scans that whole memory on each publish. A storm of refusals (each on its own
//! request) then grows the controller's memory with every request and makes each publish cost
//! O(events of the last 6 minutes): measured against kube-sim, 40,000 refusal events took 28 s
//! one after the other, against 5 s when the memory stays small. [`EventRecorder`] keeps the same
//! wire behaviour (a new Event, then a merge patch of `series` for each repeat on the same
//! object) with at most [`SERIES_CAPACITY`] remembered events.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};

/// How many events are remembered for series at most. Kubernetes' own event correlator keeps an
/// LRU of the same size; past it, a repeat on an object whose event was forgotten creates a new
/// Event instead of counting in the old one's series, which costs one object, never correctness.
pub const SERIES_CAPACITY: usize = 4096;

/// How long a published event can still take repeats into its series: the 6 minutes Kubernetes'
/// event libraries use (client-go's and kube-runtime's), counted from the last observation.
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// Publishes events as the controller's `reporter`; cheap to clone (clones share one memory).
#[derive(Clone)]
pub struct EventRecorder {
    client: Client,
    reporter: Reporter,
    series: Arc<Mutex<SeriesMemory>>,
}

impl EventRecorder {
    /// A recorder publishing through `client` as `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            series: Arc::new(Mutex::new(SeriesMemory::new(
                SERIES_CAPACITY,
                SERIES_WINDOW,
            ))),
        }
    }

    /// Publishes `event` about `regarding`: a new Event in `regarding`'s namespace (`default`
    /// for a cluster-scoped object), or, when the same event on the same object was published
    /// within [`SERIES_WINDOW`] and is still remembered, a merge patch of that Event's
    /// `series` (`count`, `lastObservedTime`).
    ///
    /// # Errors
    ///
    /// The API server's refusal of the create or of the patch. A patch answered 404 (the Event
    /// was deleted or expired on the server) is not an error: a new Event is created instead.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = SeriesKey::new(event, regarding);
        let observed = self.memory().repeat(&key, Instant::now());
        if let Some(repeat) = observed {
            let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), &repeat.namespace);
            let patch = serde_json::json!({
                "series": {
                    "count": repeat.count,
                    "lastObservedTime": MicroTime(k8s_openapi::jiff::Timestamp::now()),
                }
            });
            match events
                .patch(&repeat.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    self.memory().forget(&key);
                }
                Err(e) => return Err(e),
            }
        }
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let new = self.new_event(event, regarding, namespace);
        let name = new.metadata.name.clone().unwrap_or_default();
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        events.create(&PostParams::default(), &new).await?;
        self.memory()
            .remember(key, namespace.to_owned(), name, Instant::now());
        Ok(())
    }

    /// How many events are remembered now (at most [`SERIES_CAPACITY`]).
    pub fn remembered(&self) -> usize {
        self.memory().len()
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, SeriesMemory> {
        // The memory is consistent after every statement of its methods, none of which panics
        // midway: a poisoned lock still holds a usable memory.
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The Event to create: named after the object and the time, as client-go's and
    /// kube-runtime's event libraries name theirs.
    fn new_event(&self, event: &Event, regarding: &ObjectReference, namespace: &str) -> K8sEvent {
        let now = k8s_openapi::jiff::Timestamp::now();
        let base = regarding
            .name
            .as_deref()
            .unwrap_or(&self.reporter.controller);
        K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            note: event.note.clone(),
            metadata: ObjectMeta {
                namespace: Some(namespace.to_owned()),
                name: Some(event_name(base, now.as_nanosecond())),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            ..K8sEvent::default()
        }
    }
}

/// `<object name>.<time in hex nanoseconds>`, the object's name shortened when needed so the
/// whole stays a valid name (a DNS subdomain of at most 253 characters): the event libraries'
/// plain concatenation gives a name the API server refuses for an object named with more than
/// about 236 characters, and that object's events were lost.
fn event_name(object: &str, nanos: i128) -> String {
    const MAX_NAME: usize = 253;
    let suffix = format!(".{nanos:x}");
    let room = MAX_NAME.saturating_sub(suffix.len());
    let mut end = object.len().min(room);
    while !object.is_char_boundary(end) {
        end -= 1;
    }
    let mut base = object[..end].to_owned();
    // A name's labels end with an alphanumeric character.
    while base.ends_with(['.', '-']) {
        base.pop();
    }
    base.push_str(&suffix);
    base
}

/// What makes two events the same for a series, as Kubernetes' event libraries decide it: type,
/// action, reason, the object (by API version, kind, namespace, name and UID) and the related
/// object. The note is not part of it: a repeat keeps the first note.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    warning: bool,
    action: String,
    reason: String,
    regarding: ObjectKey,
    related: Option<ObjectKey>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ObjectKey {
    api_version: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
}

impl SeriesKey {
    fn new(event: &Event, regarding: &ObjectReference) -> Self {
        Self {
            warning: matches!(event.type_, EventType::Warning),
            action: event.action.clone(),
            reason: event.reason.clone(),
            regarding: ObjectKey::new(regarding),
            related: event.secondary.as_ref().map(ObjectKey::new),
        }
    }
}

impl ObjectKey {
    fn new(object: &ObjectReference) -> Self {
        Self {
            api_version: object.api_version.clone(),
            kind: object.kind.clone(),
            namespace: object.namespace.clone(),
            name: object.name.clone(),
            uid: object.uid.clone(),
        }
    }
}

/// A repeat to patch into an existing Event's series.
#[derive(Debug, PartialEq, Eq)]
struct Repeat {
    namespace: String,
    name: String,
    /// The series count to write: 2 for the first repeat.
    count: i32,
}

/// The remembered events: at most `capacity`, the oldest forgotten first, none used past
/// `window` after its last observation. Every operation is O(1) amortized, whatever the number
/// of events published.
struct SeriesMemory {
    capacity: usize,
    window: Duration,
    seen: HashMap<SeriesKey, Seen>,
    /// Keys in the order they were remembered, each with the generation it was remembered at;
    /// a slot whose generation no longer matches `seen` is dead and skipped.
    order: VecDeque<(SeriesKey, u64)>,
    generation: u64,
}

struct Seen {
    namespace: String,
    name: String,
    count: i32,
    last: Instant,
    generation: u64,
}

impl SeriesMemory {
    fn new(capacity: usize, window: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            window,
            seen: HashMap::new(),
            order: VecDeque::new(),
            generation: 0,
        }
    }

    fn len(&self) -> usize {
        self.seen.len()
    }

    /// The repeat to write when `key` was published within the window, counted as observed
    /// `now`; `None` (and the key forgotten) otherwise.
    fn repeat(&mut self, key: &SeriesKey, now: Instant) -> Option<Repeat> {
        let seen = self.seen.get_mut(key)?;
        if now.saturating_duration_since(seen.last) >= self.window {
            self.seen.remove(key);
            return None;
        }
        seen.count = seen.count.saturating_add(1);
        seen.last = now;
        Some(Repeat {
            namespace: seen.namespace.clone(),
            name: seen.name.clone(),
            count: seen.count,
        })
    }

    /// Remembers the Event `namespace/name` just created for `key`.
    fn remember(&mut self, key: SeriesKey, namespace: String, name: String, now: Instant) {
        self.generation += 1;
        let generation = self.generation;
        self.order.push_back((key.clone(), generation));
        self.seen.insert(
            key,
            Seen {
                namespace,
                name,
                count: 1,
                last: now,
                generation,
            },
        );
        self.trim(now);
    }

    fn forget(&mut self, key: &SeriesKey) {
        self.seen.remove(key);
    }

    /// Drops, from the oldest, dead slots, expired events, and events past the capacity; keeps
    /// the slot queue within twice the capacity by moving live, fresh slots to the back.
    fn trim(&mut self, now: Instant) {
        while let Some((key, generation)) = self.order.pop_front() {
            let live = self
                .seen
                .get(&key)
                .filter(|seen| seen.generation == generation);
            let Some(seen) = live else { continue };
            let expired = now.saturating_duration_since(seen.last) >= self.window;
            if expired || self.seen.len() > self.capacity {
                self.seen.remove(&key);
                continue;
            }
            if self.order.len() >= 2 * self.capacity {
                // Over half the queue is dead slots: this live one moves back, and the loop
                // reaches the dead ones behind it.
                self.order.push_back((key, generation));
                continue;
            }
            self.order.push_front((key, generation));
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> SeriesKey {
        SeriesKey {
            warning: true,
            action: "Sign".into(),
            reason: "RequesterNotAllowed".into(),
            regarding: ObjectKey {
                api_version: Some("cert-manager.io/v1".into()),
                kind: Some("CertificateRequest".into()),
                namespace: Some("apps".into()),
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
            },
            related: None,
        }
    }

    fn memory(capacity: usize) -> SeriesMemory {
        SeriesMemory::new(capacity, Duration::from_secs(360))
    }

    #[test]
    fn an_events_name_is_a_valid_name_whatever_the_objects_length() {
        assert_eq!(
            event_name("istio-csr-x7k2p", 0x1a2b),
            "istio-csr-x7k2p.1a2b"
        );
        let nanos = 1_796_000_000_000_000_000_i128;
        // A request named with 253 characters, the longest name the API server accepts.
        let long = format!("{}-{}", "a".repeat(200), "b".repeat(52));
        let name = event_name(&long, nanos);
        assert_eq!(name.len(), 253, "{name}");
        assert!(name.ends_with(&format!(".{nanos:x}")));
        assert!(name.starts_with(&"a".repeat(200)));
        // A cut that would leave a label ending in '-' or '.' drops those characters.
        let dashed = format!("{}-{}", "a".repeat(235), "b".repeat(17));
        let name = event_name(&dashed, nanos);
        assert!(!name.contains("-."), "{name}");
        assert!(name.len() <= 253);
    }

    #[test]
    fn a_repeat_within_the_window_counts_in_the_first_events_series() {
        let mut memory = memory(8);
        let t = Instant::now();
        memory.remember(key("a"), "apps".into(), "a.1".into(), t);
        let first = memory.repeat(&key("a"), t + Duration::from_secs(10));
        let second = memory.repeat(&key("a"), t + Duration::from_secs(20));
        assert_eq!(
            first,
            Some(Repeat {
                namespace: "apps".into(),
                name: "a.1".into(),
                count: 2
            })
        );
        assert_eq!(second.map(|r| r.count), Some(3));
        assert_eq!(memory.repeat(&key("b"), t), None, "another object");
    }

    #[test]
    fn the_window_runs_from_the_last_observation() {
        let mut memory = memory(8);
        let t = Instant::now();
        memory.remember(key("a"), "apps".into(), "a.1".into(), t);
        assert!(
            memory
                .repeat(&key("a"), t + Duration::from_secs(300))
                .is_some()
        );
        // 6 minutes after the first, 1 after the last: still a repeat.
        assert!(
            memory
                .repeat(&key("a"), t + Duration::from_secs(361))
                .is_some()
        );
        assert_eq!(
            memory.repeat(&key("a"), t + Duration::from_secs(361 + 360)),
            None
        );
        assert_eq!(memory.len(), 0, "an expired event is forgotten when found");
    }

    #[test]
    fn a_storm_of_distinct_events_never_grows_the_memory_past_its_capacity() {
        let mut memory = memory(64);
        let t = Instant::now();
        for i in 0..10_000 {
            memory.remember(key(&i.to_string()), "apps".into(), format!("{i}.1"), t);
            assert!(memory.len() <= 64);
            assert!(memory.order.len() <= 2 * 64 + 1);
        }
        assert_eq!(memory.len(), 64);
        // The newest are kept, the oldest forgotten.
        assert!(memory.repeat(&key("9999"), t).is_some());
        assert!(memory.repeat(&key("9936"), t).is_some());
        assert_eq!(memory.repeat(&key("9935"), t), None);
        assert_eq!(memory.repeat(&key("0"), t), None);
    }

    #[test]
    fn expired_events_leave_the_memory_as_new_ones_arrive() {
        let mut memory = memory(1024);
        let t = Instant::now();
        for i in 0..100 {
            memory.remember(key(&i.to_string()), "apps".into(), format!("{i}.1"), t);
        }
        memory.remember(
            key("late"),
            "apps".into(),
            "late.1".into(),
            t + Duration::from_secs(400),
        );
        assert_eq!(memory.len(), 1);
    }

    #[test]
    fn re_remembering_one_key_leaves_the_slot_queue_bounded() {
        // A forgotten-then-recreated event (its patch answered 404) leaves a dead slot; a key
        // kept fresh at the front must not let dead slots pile up behind it.
        let mut memory = memory(4);
        let t = Instant::now();
        memory.remember(key("kept"), "apps".into(), "kept.1".into(), t);
        for i in 0..1_000 {
            memory.forget(&key("flaky"));
            memory.remember(key("flaky"), "apps".into(), format!("flaky.{i}"), t);
            assert!(memory.repeat(&key("kept"), t).is_some());
            assert!(memory.order.len() <= 2 * 4 + 1, "{}", memory.order.len());
        }
        assert_eq!(memory.len(), 2);
        assert_eq!(
            memory.repeat(&key("flaky"), t).map(|r| r.name),
            Some("flaky.999".to_owned())
        );
    }
}
