//! Publishes the events (`events.k8s.io/v1`) of every front door and of the issuer status loop,
//! remembering a bounded number of them to turn repeats into series. Knows nothing of what the
//! events say.
//!
//! Two ways in:
//! - [`EventRecorder::record`], for reconciles: the event joins a bounded queue
//!   ([`QUEUE_CAPACITY`]) and the call returns at once; one background task publishes the queue
//!   in order (so an event recorded after a status write reaches the API server after it, and
//!   the events on one object in the order they were recorded), each publish bounded by
//!   [`CALL_TIMEOUT`]. A full queue (the events API slower than the events come) drops the
//!   event: counted ([`EventRecorder::dropped`]) and logged at debug. A slow or throttled events
//!   API therefore never holds a decision.
//! - [`EventRecorder::publish`], which writes before it returns and reports the API server's
//!   answer.
//!
//! On the wire, as client-go's `tools/events` broadcaster does it: the first occurrence creates
//! an Event; the first repeat of the same event on the same object within [`SERIES_WINDOW`]
//! writes its `series` (count 2) by a merge patch at once; later repeats are only counted in
//! memory and written together every [`SERIES_FLUSH_INTERVAL`] (one patch per series that
//! counted repeats since its last write, none for a quiet one), and when the queue's task stops.
//! client-go refreshes its series only every 30 minutes (and writes a series' final count 6
//! minutes after its last repeat); one minute keeps `kubectl events` at most a minute behind the
//! count while a storm of repeats (every pending request retried every 5 s) costs at most one
//! write per remembered series per minute instead of one per repeat. A series written through
//! [`EventRecorder::publish`] is written at every repeat.
//!
//! Why not kube-runtime's `Recorder`: it remembers every event it published for 6 minutes, with
//! no bound, and scans that whole memory on each publish. A storm of refusals (each on its own
//! request) then grows the controller's memory with every request and makes each publish cost
//! O(events of the last 6 minutes): measured against kube-sim, 40,000 refusal events took 28 s
//! one after the other, against 5 s when the memory stays small. [`EventRecorder`] remembers at
//! most [`SERIES_CAPACITY`] events, forgetting the least recently repeated first, so the events
//! that keep repeating keep their series through a storm of one-off ones. Past the capacity, a
//! repeat on an object whose event was forgotten creates a new Event (one object more, never a
//! wrong one), and the repeats a forgotten series had counted since its last write are lost.
//!
//! Event names are `<object name>.<time in hex nanoseconds>`, unique per occurrence as in the
//! Kubernetes event libraries, with the object's name made a DNS subdomain first: the API
//! server validates an Event's name as one, while a CertificateSigningRequest or a
//! PodCertificateRequest may be named `Alice_CSR` or `web:prod`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use tokio::sync::{mpsc, oneshot};

/// How many events are remembered for series at most, the least recently repeated forgotten
/// first. Kubernetes' own event correlator keeps an LRU of the same size; past it, a repeat on
/// an object whose event was forgotten creates a new Event instead of counting in the old one's
/// series, which costs one object, never correctness.
pub const SERIES_CAPACITY: usize = 4096;

/// How long a published event can still take repeats into its series: the 6 minutes Kubernetes'
/// event libraries use (client-go's and kube-runtime's), counted from the last observation.
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// How often the repeats counted in memory are written to their Events' series (see the module
/// documentation).
pub const SERIES_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// Events waiting to be published at most: client-go's broadcaster queues as many
/// (`maxQueuedEvents`) and drops past them too.
pub const QUEUE_CAPACITY: usize = 1000;

/// Longest wait for the API server on one queued event (its create, or its series patch and, if
/// the Event is gone, the create) and on one series write: events are reports, and one the API
/// server does not answer must not hold the others behind it for long.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// An Event's name starts with this when nothing of its object's name (nor of the reporting
/// controller's) is usable.
const FALLBACK_NAME: &str = "firefly";

/// The longest name the API server accepts for an Event (a DNS subdomain).
const MAX_NAME: usize = 253;

/// Publishes events as the controller's `reporter`; cheap to clone (clones share one memory and
/// one queue). The queue's task ends once every clone is dropped and the queue is drained.
#[derive(Clone)]
pub struct EventRecorder {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Job>,
}

/// What the recorder's clones and its queue's task share.
struct Shared {
    client: Client,
    reporter: Reporter,
    memory: Mutex<SeriesMemory>,
    dropped: AtomicU64,
    /// `firefly_events_dropped_total`, when the recorder was given it.
    dropped_metric: Option<prometheus::IntCounter>,
}

/// The sizes and periods of a recorder ([`Limits::DEFAULT`] in production; smaller in tests).
#[derive(Clone, Copy, Debug)]
struct Limits {
    capacity: usize,
    window: Duration,
    queue: usize,
    flush_every: Duration,
}

impl Limits {
    const DEFAULT: Self = Self {
        capacity: SERIES_CAPACITY,
        window: SERIES_WINDOW,
        queue: QUEUE_CAPACITY,
        flush_every: SERIES_FLUSH_INTERVAL,
    };
}

/// A piece of work for the queue's task.
enum Job {
    /// Publish one occurrence.
    Record(Box<Occurrence>),
    /// Write the counted repeats now, then answer (everything queued before is done).
    Flush(oneshot::Sender<()>),
}

/// One occurrence of an event: what makes it a repeat, and the Event to create if it is not.
struct Occurrence {
    key: SeriesKey,
    /// Named after the object and the occurrence's time, which is its `eventTime`.
    event: K8sEvent,
    at: Instant,
    time: Timestamp,
}

impl EventRecorder {
    /// A recorder publishing through `client` as `reporter`. Its queue's task runs on the
    /// current Tokio runtime; without one, [`EventRecorder::record`] drops every event (counted)
    /// and only [`EventRecorder::publish`] writes.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self::start(client, reporter, Limits::DEFAULT, None)
    }

    /// As [`EventRecorder::new`], also counting each dropped event in `dropped`
    /// (`firefly_events_dropped_total`).
    pub fn counted(client: Client, reporter: Reporter, dropped: prometheus::IntCounter) -> Self {
        Self::start(client, reporter, Limits::DEFAULT, Some(dropped))
    }

    fn start(
        client: Client,
        reporter: Reporter,
        limits: Limits,
        dropped_metric: Option<prometheus::IntCounter>,
    ) -> Self {
        let (queue, jobs) = mpsc::channel(limits.queue.max(1));
        let shared = Arc::new(Shared {
            client,
            reporter,
            memory: Mutex::new(SeriesMemory::new(limits.capacity, limits.window)),
            dropped: AtomicU64::new(0),
            dropped_metric,
        });
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(work(Arc::clone(&shared), jobs, limits.flush_every));
            }
            Err(_) => tracing::warn!("no async runtime: queued events will be dropped"),
        }
        Self { shared, queue }
    }

    /// Queues `event` about `regarding` and returns at once: the queue's task publishes it as
    /// [`EventRecorder::publish`] would, except that repeats past the first are counted in
    /// memory and written every [`SERIES_FLUSH_INTERVAL`]. Best effort: a full queue drops the
    /// event (counted in [`EventRecorder::dropped`], logged at debug), and a publish the API
    /// server refuses or does not answer within [`CALL_TIMEOUT`] is logged.
    pub fn record(&self, event: &Event, regarding: &ObjectReference) {
        let occurrence = self.shared.occurrence(event, regarding);
        if let Err(e) = self.queue.try_send(Job::Record(Box::new(occurrence))) {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            if let Some(metric) = &self.shared.dropped_metric {
                metric.inc();
            }
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "the event queue is full",
                mpsc::error::TrySendError::Closed(_) => "the event queue is closed",
            };
            tracing::debug!(reason = %event.reason, why, "event dropped");
        }
    }

    /// Publishes `event` about `regarding` before returning: a new Event in `regarding`'s
    /// namespace (`default` for a cluster-scoped object), or, when the same event on the same
    /// object was published within [`SERIES_WINDOW`] and is still remembered, a merge patch of
    /// that Event's `series` (`count`, `lastObservedTime`). Unbounded in time: the caller bounds
    /// it if it must.
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
        let occurrence = self.shared.occurrence(event, regarding);
        self.shared.write(occurrence, false).await
    }

    /// Waits until every event recorded before is published (or given up) and every repeat
    /// counted so far is written to its series (or given up). Returns at once if the queue's
    /// task has stopped. Not for reconciles: it waits for room in a full queue.
    pub async fn flush(&self) {
        let (done, finished) = oneshot::channel();
        if self.queue.send(Job::Flush(done)).await.is_ok() {
            // An error means the task stopped: nothing is left to wait for.
            let _ = finished.await;
        }
    }

    /// How many events [`EventRecorder::record`] dropped (queue full or closed) since this
    /// recorder was made.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// How many events are remembered now (at most [`SERIES_CAPACITY`]).
    pub fn remembered(&self) -> usize {
        self.shared.memory().len()
    }
}

/// The queue's task: publishes the queued events in order, writes the counted repeats every
/// `flush_every`, and once every recorder is dropped, drains the queue, writes the counted
/// repeats a last time and ends. Stopped midway with its runtime, it leaves nothing half-done
/// that matters: what it had not written is lost, as any unpublished event.
async fn work(shared: Arc<Shared>, mut jobs: mpsc::Receiver<Job>, flush_every: Duration) {
    let every = flush_every.max(Duration::from_millis(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Series still due after a round's batch: written batch by batch between queued events (the
    // select picks a ready branch at random), so that thousands of series do not stall the queue.
    let mut more_due = false;
    loop {
        tokio::select! {
            job = jobs.recv() => match job {
                Some(Job::Record(occurrence)) => shared.write_bounded(*occurrence).await,
                Some(Job::Flush(done)) => {
                    shared.write_series(usize::MAX).await;
                    more_due = false;
                    // The waiter may have given up: nothing to tell then.
                    let _ = done.send(());
                }
                None => break,
            },
            _ = tick.tick(), if !more_due => more_due = shared.write_series(SERIES_BATCH).await,
            () = std::future::ready(()), if more_due => {
                more_due = shared.write_series(SERIES_BATCH).await;
            }
        }
    }
    shared.write_series(usize::MAX).await;
}

/// Series written in one go by the periodic round before queued events get their turn.
const SERIES_BATCH: usize = 16;

impl Shared {
    fn memory(&self) -> MutexGuard<'_, SeriesMemory> {
        // The memory is consistent after every statement of its methods, none of which panics
        // midway: a poisoned lock still holds a usable memory.
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This occurrence of `event` about `regarding`, observed now.
    fn occurrence(&self, event: &Event, regarding: &ObjectReference) -> Occurrence {
        let time = Timestamp::now();
        Occurrence {
            key: SeriesKey::new(event, regarding),
            event: self.new_event(event, regarding, time),
            at: Instant::now(),
            time,
        }
    }

    /// Publishes a queued occurrence within [`CALL_TIMEOUT`]; a failure is logged.
    async fn write_bounded(&self, occurrence: Occurrence) {
        let reason = occurrence.key.reason.clone();
        match tokio::time::timeout(CALL_TIMEOUT, self.write(occurrence, true)).await {
            Ok(Ok(())) => tracing::debug!(reason, "event published"),
            Ok(Err(e)) => tracing::warn!(error = %e, reason, "event could not be published"),
            Err(_) => tracing::warn!(reason, "event not published within {CALL_TIMEOUT:?}"),
        }
    }

    /// Publishes `occurrence`: creates its Event, or writes the repeat into the remembered
    /// Event's series, or (`coalesce`, and the series already written once) only counts it.
    async fn write(&self, occurrence: Occurrence, coalesce: bool) -> Result<(), kube::Error> {
        let Occurrence {
            key,
            event,
            at,
            time,
        } = occurrence;
        let observed = self.memory().observe(&key, at, time, coalesce);
        match observed {
            Observed::Counted => return Ok(()),
            Observed::Patch(repeat) => {
                let name = repeat.name;
                match self
                    .patch_series(&repeat.namespace, &name, repeat.count, time)
                    .await
                {
                    Ok(()) => {
                        self.memory().written(&key, &name, repeat.count);
                        return Ok(());
                    }
                    Err(kube::Error::Api(status)) if status.code == 404 => {
                        self.memory().forget(&key, &name);
                    }
                    Err(e) => return Err(e),
                }
            }
            Observed::New => {}
        }
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let name = event.metadata.name.clone().unwrap_or_default();
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        events.create(&PostParams::default(), &event).await?;
        self.memory().remember(key, namespace, name, at, time);
        Ok(())
    }

    /// Writes up to `limit` series with repeats counted since their last write, each within
    /// [`CALL_TIMEOUT`]; stops at the first failure other than a 404 (the API server is
    /// refusing or not answering: the rest waits for the next round). True when more series
    /// than `limit` were due and none failed (the caller writes the next batch soon).
    async fn write_series(&self, limit: usize) -> bool {
        let due = self.memory().due();
        let more = due.len() > limit;
        let mut failed = false;
        for series in due.into_iter().take(limit) {
            let write =
                self.patch_series(&series.namespace, &series.name, series.count, series.time);
            match tokio::time::timeout(CALL_TIMEOUT, write).await {
                Ok(Ok(())) => self
                    .memory()
                    .written(&series.key, &series.name, series.count),
                Ok(Err(kube::Error::Api(status))) if status.code == 404 => {
                    self.memory().forget(&series.key, &series.name);
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "event series could not be written");
                    failed = true;
                    break;
                }
                Err(_) => {
                    tracing::warn!("event series not written within {CALL_TIMEOUT:?}");
                    failed = true;
                    break;
                }
            }
        }
        self.memory().trim(Instant::now());
        more && !failed
    }

    /// Merge-patches the `series` of Event `namespace/name`.
    async fn patch_series(
        &self,
        namespace: &str,
        name: &str,
        count: i32,
        last_observed: Timestamp,
    ) -> Result<(), kube::Error> {
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let patch = serde_json::json!({
            "series": {
                "count": count,
                "lastObservedTime": MicroTime(last_observed),
            }
        });
        events
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
    }

    /// The Event to create, in `regarding`'s namespace (`default` for a cluster-scoped object):
    /// named after the object and the time, as client-go's and kube-runtime's event libraries
    /// name theirs, the object's name made valid first.
    fn new_event(&self, event: &Event, regarding: &ObjectReference, time: Timestamp) -> K8sEvent {
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let object = regarding.name.as_deref().unwrap_or_default();
        K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            event_time: Some(MicroTime(time)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            note: event.note.clone(),
            metadata: ObjectMeta {
                namespace: Some(namespace.to_owned()),
                name: Some(event_name(
                    object,
                    &self.reporter.controller,
                    time.as_nanosecond(),
                )),
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

/// `<object name>.<time in hex nanoseconds>`, a valid Event name (a DNS subdomain of at most 253
/// characters) whatever the object's name: the name lowercased, every character but `a-z`,
/// `0-9`, `-` and `.` made `-`, each dot-separated label stripped of leading and trailing `-`,
/// empty labels dropped, and shortened to fit. An object's name with nothing usable left (`...`,
/// `_`) gives way to the reporting controller's (`fallback`), then to `firefly`. Two objects
/// whose names differ only in what is replaced share a prefix; the time keeps their Events
/// apart.
fn event_name(object: &str, fallback: &str, nanos: i128) -> String {
    let suffix = format!(".{nanos:x}");
    let room = MAX_NAME.saturating_sub(suffix.len());
    let mut name = subdomain_prefix(object, room);
    if name.is_empty() {
        name = subdomain_prefix(fallback, room);
    }
    if name.is_empty() {
        name = FALLBACK_NAME.to_owned();
    }
    name.push_str(&suffix);
    name
}

/// The longest start (at most `max` characters) of `name` turned into a DNS subdomain (see
/// [`event_name`]); empty when nothing of it is usable.
fn subdomain_prefix(name: &str, max: usize) -> String {
    let mut out = String::new();
    for label in name.split('.') {
        if out.len() >= max {
            break;
        }
        let label: String = label
            .chars()
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9') => c,
                _ => '-',
            })
            .collect();
        let label = label.trim_matches('-');
        if label.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(label);
    }
    // Only ASCII is left, so any length is a character boundary.
    out.truncate(max);
    // The cut may leave a label ending with '-' or the name with '.'.
    while out.ends_with(['-', '.']) {
        out.pop();
    }
    out
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

/// What an occurrence is to the memory.
#[derive(Debug, PartialEq, Eq)]
enum Observed {
    /// Not remembered (or its window passed): a new Event.
    New,
    /// A repeat to write into the remembered Event's series now.
    Patch(Repeat),
    /// A repeat counted in memory, written with the next series write.
    Counted,
}

/// A repeat to patch into an existing Event's series.
#[derive(Debug, PartialEq, Eq)]
struct Repeat {
    namespace: String,
    name: String,
    /// The series count to write: 2 for the first repeat.
    count: i32,
}

/// A series whose count the server does not have yet.
struct Due {
    key: Arc<SeriesKey>,
    namespace: String,
    name: String,
    count: i32,
    time: Timestamp,
}

/// The remembered events: at most `capacity`, the least recently observed forgotten first, none
/// used past `window` after its last observation. Every operation but [`SeriesMemory::due`] is
/// O(1) amortized, whatever the number of events published.
struct SeriesMemory {
    capacity: usize,
    window: Duration,
    seen: HashMap<Arc<SeriesKey>, Seen>,
    /// Keys from the least to the most recently observed, each with the generation of that
    /// observation; a slot whose generation no longer matches `seen` is dead and skipped.
    order: VecDeque<(Arc<SeriesKey>, u64)>,
    generation: u64,
}

struct Seen {
    namespace: String,
    name: String,
    /// Occurrences counted: 1 for the Event alone.
    count: i32,
    /// The count the server has: 1 once created, then the last series count written.
    written: i32,
    last: Instant,
    last_time: Timestamp,
    generation: u64,
}

/// What [`SeriesMemory::trim`] does with the front slot.
enum Front {
    Dead,
    Evict,
    Keep,
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

    /// Counts an occurrence of `key` observed at `now` (`time` on the wall clock). A repeat
    /// within the window is written at once unless `coalesce` and its series was written before
    /// (then only counted); anything else is new, and an expired event is forgotten.
    fn observe(
        &mut self,
        key: &SeriesKey,
        now: Instant,
        time: Timestamp,
        coalesce: bool,
    ) -> Observed {
        let Some((shared, seen)) = self.seen.get_key_value(key) else {
            return Observed::New;
        };
        if now.saturating_duration_since(seen.last) >= self.window {
            self.seen.remove(key);
            return Observed::New;
        }
        let shared = Arc::clone(shared);
        self.generation += 1;
        let generation = self.generation;
        let Some(seen) = self.seen.get_mut(key) else {
            return Observed::New;
        };
        seen.count = seen.count.saturating_add(1);
        seen.last = now;
        seen.last_time = time;
        seen.generation = generation;
        let observed = if coalesce && seen.written >= 2 {
            Observed::Counted
        } else {
            Observed::Patch(Repeat {
                namespace: seen.namespace.clone(),
                name: seen.name.clone(),
                count: seen.count,
            })
        };
        self.order.push_back((shared, generation));
        self.trim(now);
        observed
    }

    /// Remembers the Event `namespace/name` just created for `key`.
    fn remember(
        &mut self,
        key: SeriesKey,
        namespace: String,
        name: String,
        now: Instant,
        time: Timestamp,
    ) {
        self.generation += 1;
        let generation = self.generation;
        let key = Arc::new(key);
        self.order.push_back((Arc::clone(&key), generation));
        self.seen.insert(
            key,
            Seen {
                namespace,
                name,
                count: 1,
                written: 1,
                last: now,
                last_time: time,
                generation,
            },
        );
        self.trim(now);
    }

    /// Notes that the server has `count` in the series of Event `name` remembered for `key`.
    fn written(&mut self, key: &SeriesKey, name: &str, count: i32) {
        if let Some(seen) = self.seen.get_mut(key).filter(|s| s.name == name) {
            seen.written = seen.written.max(count);
        }
    }

    /// Forgets Event `name` remembered for `key` (a newer Event for it stays).
    fn forget(&mut self, key: &SeriesKey, name: &str) {
        if self.seen.get(key).is_some_and(|s| s.name == name) {
            self.seen.remove(key);
        }
    }

    /// The series with repeats the server does not have yet.
    fn due(&self) -> Vec<Due> {
        self.seen
            .iter()
            .filter(|(_, seen)| seen.count > seen.written)
            .map(|(key, seen)| Due {
                key: Arc::clone(key),
                namespace: seen.namespace.clone(),
                name: seen.name.clone(),
                count: seen.count,
                time: seen.last_time,
            })
            .collect()
    }

    /// Drops, from the least recently observed: dead slots, events past the capacity, and
    /// expired events whose counts are all written (one with repeats still to write stays until
    /// they are, or until the capacity pushes it out). Keeps the slot queue within twice the
    /// capacity by dropping its dead slots when it grows past that.
    fn trim(&mut self, now: Instant) {
        loop {
            let front = match self.order.front() {
                None => break,
                Some((key, generation)) => match self.seen.get(&**key) {
                    Some(seen) if seen.generation == *generation => {
                        let expired = now.saturating_duration_since(seen.last) >= self.window;
                        if self.seen.len() > self.capacity
                            || (expired && seen.count <= seen.written)
                        {
                            Front::Evict
                        } else {
                            Front::Keep
                        }
                    }
                    _ => Front::Dead,
                },
            };
            match front {
                Front::Keep => break,
                Front::Dead => {
                    self.order.pop_front();
                }
                Front::Evict => {
                    if let Some((key, _)) = self.order.pop_front() {
                        self.seen.remove(&*key);
                    }
                }
            }
        }
        if self.order.len() > 2 * self.capacity {
            let seen = &self.seen;
            self.order.retain(|(key, generation)| {
                seen.get(&**key)
                    .is_some_and(|s| s.generation == *generation)
            });
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

    fn remember(memory: &mut SeriesMemory, name: &str, event: &str, at: Instant) {
        memory.remember(
            key(name),
            "apps".into(),
            event.into(),
            at,
            Timestamp::UNIX_EPOCH,
        );
    }

    /// A repeat written at once (as [`EventRecorder::publish`] does).
    fn repeat(memory: &mut SeriesMemory, name: &str, at: Instant) -> Option<Repeat> {
        match memory.observe(&key(name), at, Timestamp::UNIX_EPOCH, false) {
            Observed::Patch(repeat) => Some(repeat),
            Observed::New | Observed::Counted => None,
        }
    }

    /// kube-apiserver's `IsDNS1123Subdomain`: at most 253 characters, dot-separated labels of
    /// lowercase alphanumerics and '-', each starting and ending with an alphanumeric.
    fn is_dns_subdomain(name: &str) -> bool {
        let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                label.starts_with(alnum)
                    && label.ends_with(alnum)
                    && label.chars().all(|c| alnum(c) || c == '-')
            })
    }

    #[test]
    fn an_events_name_is_a_valid_name_whatever_the_objects_length() {
        assert_eq!(
            event_name("istio-csr-x7k2p", "firefly", 0x1a2b),
            "istio-csr-x7k2p.1a2b"
        );
        let nanos = 1_796_000_000_000_000_000_i128;
        // A request named with 253 characters, the longest name the API server accepts.
        let long = format!("{}-{}", "a".repeat(200), "b".repeat(52));
        let name = event_name(&long, "firefly", nanos);
        assert_eq!(name.len(), 253, "{name}");
        assert!(name.ends_with(&format!(".{nanos:x}")));
        assert!(name.starts_with(&"a".repeat(200)));
        assert!(is_dns_subdomain(&name), "{name}");
        // A cut that would leave a label ending in '-' or '.' drops those characters.
        let dashed = format!("{}-{}", "a".repeat(235), "b".repeat(17));
        let name = event_name(&dashed, "firefly", nanos);
        assert!(!name.contains("-."), "{name}");
        assert!(is_dns_subdomain(&name), "{name}");
    }

    #[test]
    fn an_events_name_is_a_dns_subdomain_whatever_the_objects_characters() {
        let nanos = 1_796_000_000_000_000_000_i128;
        let upper = "A".repeat(300);
        let cases: &[(&str, &str)] = &[
            ("Alice_CSR", "alice-csr"),
            ("a:b", "a-b"),
            ("web:prod", "web-prod"),
            ("-x", "x"),
            ("x-", "x"),
            ("...", "firefly"),
            ("", "firefly"),
            ("_", "firefly"),
            ("a..b", "a.b"),
            ("a.-b-.c", "a.b.c"),
            (".a.", "a"),
            ("ünïcode", "n-code"),
            ("csr-Ω", "csr"),
            (&upper, "aaaa"),
        ];
        for (object, starts) in cases {
            let name = event_name(object, "firefly", nanos);
            assert!(is_dns_subdomain(&name), "{object:?} gave {name:?}");
            assert!(name.starts_with(starts), "{object:?} gave {name:?}");
            assert!(name.ends_with(&format!(".{nanos:x}")), "{name:?}");
        }
        assert_eq!(
            event_name(&upper, "firefly", nanos).len(),
            253,
            "shortened to the longest valid name"
        );
        // Nothing usable in the object's name nor in the controller's: the fixed fallback.
        let name = event_name("...", "--", nanos);
        assert!(name.starts_with("firefly."), "{name}");
        // Every occurrence keeps its own name.
        assert_ne!(
            event_name("Alice_CSR", "firefly", 1),
            event_name("Alice_CSR", "firefly", 2)
        );
    }

    #[test]
    fn a_repeat_within_the_window_counts_in_the_first_events_series() {
        let mut memory = memory(8);
        let t = Instant::now();
        remember(&mut memory, "a", "a.1", t);
        let first = repeat(&mut memory, "a", t + Duration::from_secs(10));
        let second = repeat(&mut memory, "a", t + Duration::from_secs(20));
        assert_eq!(
            first,
            Some(Repeat {
                namespace: "apps".into(),
                name: "a.1".into(),
                count: 2
            })
        );
        assert_eq!(second.map(|r| r.count), Some(3));
        assert_eq!(repeat(&mut memory, "b", t), None, "another object");
    }

    #[test]
    fn coalesced_repeats_past_the_first_written_one_are_only_counted() {
        let mut memory = memory(8);
        let t = Instant::now();
        remember(&mut memory, "a", "a.1", t);
        let observe =
            |memory: &mut SeriesMemory| memory.observe(&key("a"), t, Timestamp::UNIX_EPOCH, true);
        // The first repeat is written at once, and again until a write succeeds.
        assert!(matches!(observe(&mut memory), Observed::Patch(r) if r.count == 2));
        assert!(matches!(observe(&mut memory), Observed::Patch(r) if r.count == 3));
        memory.written(&key("a"), "a.1", 3);
        assert!(memory.due().is_empty());
        for _ in 0..10 {
            assert_eq!(observe(&mut memory), Observed::Counted);
        }
        let due = memory.due();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].name.as_str(), due[0].count), ("a.1", 13));
        memory.written(&key("a"), "a.1", 13);
        assert!(memory.due().is_empty());
        // A write for an Event since replaced changes nothing.
        assert_eq!(observe(&mut memory), Observed::Counted);
        memory.written(&key("a"), "a.0", 99);
        assert_eq!(memory.due()[0].count, 14);
    }

    #[test]
    fn the_window_runs_from_the_last_observation() {
        let mut memory = memory(8);
        let t = Instant::now();
        remember(&mut memory, "a", "a.1", t);
        assert!(repeat(&mut memory, "a", t + Duration::from_secs(300)).is_some());
        // 6 minutes after the first, 1 after the last: still a repeat.
        assert!(repeat(&mut memory, "a", t + Duration::from_secs(361)).is_some());
        assert_eq!(
            repeat(&mut memory, "a", t + Duration::from_secs(361 + 360)),
            None
        );
        assert_eq!(memory.len(), 0, "an expired event is forgotten when found");
    }

    #[test]
    fn a_storm_of_distinct_events_never_grows_the_memory_past_its_capacity() {
        let mut memory = memory(64);
        let t = Instant::now();
        for i in 0..10_000 {
            remember(&mut memory, &i.to_string(), &format!("{i}.1"), t);
            assert!(memory.len() <= 64);
            assert!(memory.order.len() <= 2 * 64 + 1);
        }
        assert_eq!(memory.len(), 64);
        // The newest are kept, the oldest forgotten.
        assert!(repeat(&mut memory, "9999", t).is_some());
        assert!(repeat(&mut memory, "9936", t).is_some());
        assert_eq!(repeat(&mut memory, "9935", t), None);
        assert_eq!(repeat(&mut memory, "0", t), None);
    }

    #[test]
    fn the_least_recently_observed_event_is_forgotten_first() {
        // Capacity 4: "hot" repeats between one-off events. Forgetting in creation order would
        // drop it every 4 one-offs (and create a new Event at its next repeat); it stays.
        let mut memory = memory(4);
        let t = Instant::now();
        remember(&mut memory, "hot", "hot.1", t);
        for i in 0..100 {
            remember(&mut memory, &format!("once-{i}"), &format!("once-{i}.1"), t);
            assert!(
                repeat(&mut memory, "hot", t).is_some(),
                "forgotten after {i} one-offs"
            );
            assert!(memory.len() <= 4);
            assert!(memory.order.len() <= 2 * 4 + 1, "{}", memory.order.len());
        }
        // The one-offs go, the least recent first.
        assert_eq!(repeat(&mut memory, "once-96", t), None);
        assert!(repeat(&mut memory, "once-97", t).is_some());
    }

    #[test]
    fn expired_events_leave_the_memory_as_new_ones_arrive() {
        let mut memory = memory(1024);
        let t = Instant::now();
        for i in 0..100 {
            remember(&mut memory, &i.to_string(), &format!("{i}.1"), t);
        }
        remember(&mut memory, "late", "late.1", t + Duration::from_secs(400));
        assert_eq!(memory.len(), 1);
    }

    #[test]
    fn an_expired_event_stays_until_its_counted_repeats_are_written() {
        let mut memory = memory(8);
        let t = Instant::now();
        remember(&mut memory, "a", "a.1", t);
        assert!(repeat(&mut memory, "a", t).is_some());
        memory.written(&key("a"), "a.1", 2);
        assert_eq!(
            memory.observe(&key("a"), t, Timestamp::UNIX_EPOCH, true),
            Observed::Counted
        );
        let later = t + Duration::from_secs(400);
        memory.trim(later);
        assert_eq!(memory.len(), 1, "its count 3 is not written yet");
        memory.written(&key("a"), "a.1", 3);
        memory.trim(later);
        assert_eq!(memory.len(), 0);
    }

    #[test]
    fn re_remembering_one_key_leaves_the_slot_queue_bounded() {
        // A forgotten-then-recreated event (its patch answered 404) leaves a dead slot; a key
        // kept fresh at the front must not let dead slots pile up behind it.
        let mut memory = memory(4);
        let t = Instant::now();
        remember(&mut memory, "kept", "kept.1", t);
        for i in 0..1_000 {
            memory.forget(&key("flaky"), &format!("flaky.{}", i - 1));
            remember(&mut memory, "flaky", &format!("flaky.{i}"), t);
            assert!(repeat(&mut memory, "kept", t).is_some());
            assert!(memory.order.len() <= 2 * 4 + 1, "{}", memory.order.len());
        }
        assert_eq!(memory.len(), 2);
        assert_eq!(
            repeat(&mut memory, "flaky", t).map(|r| r.name),
            Some("flaky.999".to_owned())
        );
        // Forgetting names the Event: a stale name leaves the newer Event remembered.
        memory.forget(&key("flaky"), "flaky.998");
        assert_eq!(memory.len(), 2);
    }

    mod against_kube_sim {
        use super::*;
        use kube_sim::{FaultRule, KubeSim, SimOptions};

        const NS: &str = "apps";

        async fn sim() -> KubeSim {
            let sim = KubeSim::start(SimOptions::default()).await.unwrap();
            sim.ensure_namespace(NS).unwrap();
            sim
        }

        async fn recorder(sim: &KubeSim, limits: Limits) -> EventRecorder {
            EventRecorder::start(
                sim.client().await.unwrap(),
                Reporter {
                    controller: "firefly".into(),
                    instance: Some("firefly-0".into()),
                },
                limits,
                None,
            )
        }

        /// No periodic series write within a test: only [`EventRecorder::flush`] writes them.
        fn limits(capacity: usize, queue: usize) -> Limits {
            Limits {
                capacity,
                window: SERIES_WINDOW,
                queue,
                flush_every: Duration::from_secs(24 * 3600),
            }
        }

        fn pending() -> Event {
            Event {
                type_: EventType::Warning,
                reason: "PolicyUnavailable".into(),
                note: Some("TLSPC unreachable".into()),
                action: "Sign".into(),
                secondary: None,
            }
        }

        fn pcr(name: &str) -> ObjectReference {
            ObjectReference {
                api_version: Some("certificates.k8s.io/v1beta1".into()),
                kind: Some("PodCertificateRequest".into()),
                namespace: Some(NS.into()),
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                ..ObjectReference::default()
            }
        }

        fn creates(sim: &KubeSim) -> u64 {
            sim.request_count("create", "events")
        }

        fn patches(sim: &KubeSim) -> u64 {
            sim.request_count("patch", "events")
        }

        async fn stored(sim: &KubeSim) -> Vec<K8sEvent> {
            let events: Api<K8sEvent> = Api::namespaced(sim.client().await.unwrap(), NS);
            events.list(&Default::default()).await.unwrap().items
        }

        fn about<'a>(events: &'a [K8sEvent], name: &str) -> Vec<&'a K8sEvent> {
            events
                .iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
                .collect()
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn objects_named_outside_dns_subdomains_get_their_events() {
            let sim = sim().await;
            let recorder = recorder(&sim, limits(16, 16)).await;
            let names = ["Alice_CSR", "web:prod", "-x", "..."];
            for name in names {
                recorder.record(&pending(), &pcr(name));
            }
            recorder.flush().await;
            let events = stored(&sim).await;
            for name in names {
                assert_eq!(about(&events, name).len(), 1, "{name}: {events:#?}");
            }
            assert_eq!(recorder.dropped(), 0);
        }

        /// Today's every-repeat-a-write would make 100 calls here.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_hundred_repeats_cost_a_create_and_two_series_writes() {
            let sim = sim().await;
            let recorder = recorder(&sim, limits(16, 128)).await;
            for _ in 0..100 {
                recorder.record(&pending(), &pcr("waiting"));
            }
            recorder.flush().await;
            assert_eq!(creates(&sim), 1);
            assert_eq!(patches(&sim), 2, "the first repeat, then the flush");
            let events = stored(&sim).await;
            let on = about(&events, "waiting");
            assert_eq!(on.len(), 1, "{events:#?}");
            assert_eq!(on[0].series.as_ref().map(|s| s.count), Some(100));
            // Nothing new to write: a flush writes nothing.
            recorder.flush().await;
            assert_eq!(patches(&sim), 2);
        }

        /// Rounds of repeats on as many objects as the memory holds: one Event each, and from the
        /// third round on, no call at all until the series are written.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn round_robin_repeats_within_the_capacity_make_one_event_per_object() {
            let sim = sim().await;
            let recorder = recorder(&sim, limits(4, 64)).await;
            let objects = ["a", "b", "c", "d"];
            for _ in 0..3 {
                for name in objects {
                    recorder.record(&pending(), &pcr(name));
                }
            }
            recorder.flush().await;
            assert_eq!(creates(&sim), 4);
            assert_eq!(patches(&sim), 4 + 4, "the first repeats, then the flush");
            let events = stored(&sim).await;
            for name in objects {
                let on = about(&events, name);
                assert_eq!(on.len(), 1, "{name}");
                assert_eq!(on[0].series.as_ref().map(|s| s.count), Some(3), "{name}");
            }
        }

        /// Capacity 4, a pending object repeating between one-off refusals on other objects:
        /// its series survives (forgetting in creation order made it a new Event every 4
        /// one-offs: 6 more creates here).
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_repeating_event_keeps_its_series_through_a_storm_of_one_offs() {
            let sim = sim().await;
            let recorder = recorder(&sim, limits(4, 256)).await;
            for i in 0..24 {
                recorder.record(&pending(), &pcr("pending"));
                recorder.record(&pending(), &pcr(&format!("refused-{i}")));
            }
            recorder.flush().await;
            assert_eq!(creates(&sim), 1 + 24);
            let events = stored(&sim).await;
            let on = about(&events, "pending");
            assert_eq!(on.len(), 1, "{on:#?}");
            assert_eq!(on[0].series.as_ref().map(|s| s.count), Some(24));
            assert_eq!(recorder.remembered(), 4);
        }

        /// The events API hangs: recording neither waits for it nor queues past the bound.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_full_queue_drops_instead_of_blocking_the_caller() {
            let sim = sim().await;
            sim.faults().inject(
                FaultRule::latency(Duration::from_secs(3600))
                    .verb("create")
                    .resource("events"),
            );
            let metric = prometheus::IntCounter::new("dropped", "dropped").unwrap();
            let recorder = EventRecorder::start(
                sim.client().await.unwrap(),
                Reporter {
                    controller: "firefly".into(),
                    instance: Some("firefly-0".into()),
                },
                limits(16, 2),
                Some(metric.clone()),
            );
            for i in 0..10 {
                // Not async: it cannot wait for the API server.
                recorder.record(&pending(), &pcr(&format!("r-{i}")));
            }
            // At most one in the task's hands and two queued.
            let dropped = recorder.dropped();
            assert!((7..=8).contains(&dropped), "{dropped} dropped");
            assert_eq!(metric.get(), dropped, "firefly_events_dropped_total");
        }

        /// Dropping every recorder drains the queue: what was recorded is published.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn the_queue_is_drained_when_the_recorders_are_dropped() {
            let sim = sim().await;
            let recorder = recorder(&sim, limits(16, 64)).await;
            for i in 0..5 {
                recorder.record(&pending(), &pcr(&format!("r-{i}")));
            }
            recorder.record(&pending(), &pcr("r-0"));
            recorder.record(&pending(), &pcr("r-0"));
            drop(recorder);
            kube_sim::wait_for(Duration::from_secs(30), || async {
                creates(&sim) == 5 && patches(&sim) == 2
            })
            .await
            .expect("five Events, a first repeat and the last count written");
            let events = stored(&sim).await;
            assert_eq!(
                about(&events, "r-0")[0].series.as_ref().map(|s| s.count),
                Some(3)
            );
        }

        /// A queued repeat whose Event was deleted on the server creates a new one; the events
        /// on one object are published in the order they were recorded.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_repeat_of_a_deleted_event_creates_a_new_one() {
            let sim = sim().await;
            let recorder = recorder(&sim, limits(16, 64)).await;
            recorder.record(&pending(), &pcr("a"));
            recorder.flush().await;
            let first = stored(&sim).await[0].metadata.name.clone().unwrap();
            let events: Api<K8sEvent> = Api::namespaced(sim.client().await.unwrap(), NS);
            events.delete(&first, &Default::default()).await.unwrap();
            recorder.record(&pending(), &pcr("a"));
            recorder.flush().await;
            let now = stored(&sim).await;
            assert_eq!(now.len(), 1, "{now:#?}");
            assert_ne!(now[0].metadata.name.as_ref(), Some(&first));
            assert!(now[0].series.is_none());
        }
    }
}
