//! The work-queue plumbing every front door shares, around kube-runtime's `applier`:
//!
//! - [`triggers_from`] reads a door's watch in its own task and hands the applier one trigger per
//!   applied object through an unbounded channel. The applier polls its queue only when a
//!   reconcile slot is free, so a watch feeding it directly is read no faster than requests are
//!   answered: under a backlog it fell tens of thousands of events behind, the API server closed
//!   it, and the re-list left the cache stale. Read at network speed, the cache follows the
//!   door's own writes.
//! - [`in_own_task`] runs one reconcile as its own tokio task, so signing (CPU work) spreads over
//!   the runtime's worker threads instead of running inside the applier's one task.
//! - [`OwnedTask`] aborts what it owns when dropped: a door stopped mid-flight leaves nothing
//!   running behind it.
//! - [`AnsweredCopies`] remembers which cached copy each status write was sent for, so a trigger
//!   that arrives while the answer is in flight (an issuer change re-queues every request naming
//!   it) does not sign again for a copy the API server has already moved past.

pub(crate) mod retries;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::channel::mpsc::{UnboundedReceiver, unbounded};

use crate::issuer::controller::apply::Applied;
use futures::{Stream, StreamExt, TryStreamExt};
use kube::Resource;
use kube::runtime::controller::{ReconcileReason, ReconcileRequest};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

/// A spawned task aborted when its owner is dropped. Awaiting it yields the task's result.
pub(crate) struct OwnedTask<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for OwnedTask<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for OwnedTask<T> {
    type Output = Result<T, tokio::task::JoinError>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// The applier's queue: one trigger per object a reflected watch touched (see
/// [`touched_after_lists`]), read by its own task until `stop` resolves or the queue is dropped.
pub(crate) type Triggers<K> = UnboundedReceiver<Result<ReconcileRequest<K>, watcher::Error>>;

/// Reads `touched` (a reflected watch's [`touched_after_lists`]) in its own task (see the module
/// documentation); the channel ends when `stop` resolves.
pub(crate) fn triggers_from<K, S>(
    touched: S,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> (Triggers<K>, OwnedTask<()>)
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash + Send + Sync + 'static,
    S: Stream<Item = Result<ObjectRef<K>, watcher::Error>> + Send + 'static,
{
    let (tx, rx) = unbounded();
    let task = OwnedTask(tokio::spawn(async move {
        let triggers = touched
            .map_ok(|obj_ref| ReconcileRequest {
                obj_ref,
                reason: ReconcileReason::ObjectUpdated,
            })
            .take_until(stop);
        futures::pin_mut!(triggers);
        while let Some(trigger) = triggers.next().await {
            if tx.unbounded_send(trigger).is_err() {
                break;
            }
        }
    }));
    (rx, task)
}

/// The objects a reflected watch (`events`, after the reflector's writer) asks to be looked at,
/// each once the cache holds the copy it brought: an applied object at once, and a list's objects
/// when the list has ended.
///
/// kube-runtime's reflector gathers a list into a buffer and swaps it into the cache only at the
/// list's end, but its `applied_objects()` hands on each listed object as it arrives. After a
/// watch outage (a dropped watch whose resourceVersion has left the server's history, so 410 and
/// a new list), the applier then looked up each listed object in the cache the outage left: a
/// request created meanwhile was not there, and kube-runtime's applier drops a trigger whose
/// object it cannot find, so that request was never answered (the swap at the list's end
/// triggers nothing); one changed meanwhile was decided on its old copy. Here a list's objects
/// are handed on after the swap. The first list is not affected: [`first_list_as_it_arrives`]
/// turns its objects into applied ones. Deleted objects ask for nothing, as with
/// `applied_objects()`. Only references are held during a list, not the objects.
pub(crate) fn touched_after_lists<K, S>(
    events: S,
    dyntype: K::DynamicType,
) -> impl Stream<Item = Result<ObjectRef<K>, watcher::Error>> + Send
where
    K: Resource + Send + 'static,
    K::DynamicType: Clone + Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    let mut listed: Vec<ObjectRef<K>> = Vec::new();
    events.flat_map(move |event| {
        use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};
        // At most one now, then a finished list: a plain event passes through without allocating.
        let (now, after) = match event {
            Ok(Apply(obj)) => (
                Some(Ok(ObjectRef::from_obj_with(&obj, dyntype.clone()))),
                Vec::new(),
            ),
            Ok(Init) => {
                // A list that failed midway is listed again in full.
                listed.clear();
                (None, Vec::new())
            }
            Ok(InitApply(obj)) => {
                listed.push(ObjectRef::from_obj_with(&obj, dyntype.clone()));
                (None, Vec::new())
            }
            Ok(InitDone) => (None, std::mem::take(&mut listed)),
            Ok(Delete(_)) => (None, Vec::new()),
            Err(e) => (Some(Err(e)), Vec::new()),
        };
        futures::stream::iter(now.into_iter().chain(after.into_iter().map(Ok)))
    })
}

/// How many objects of a door's first list are cached and queued as they arrive; the rest wait
/// for the list's end (see [`first_list_as_it_arrives`]).
pub(crate) const FIRST_LIST_EARLY: usize = 10_000;

/// Where [`first_list_as_it_arrives`] is in a watch's life.
enum FirstList<K> {
    /// No list has started.
    NotStarted,
    /// The first list is arriving: `released` of its objects went straight to the cache, and
    /// `held` wait for its end.
    Arriving { released: usize, held: Vec<K> },
    /// The first list ended (or failed and was restarted): events pass through unchanged.
    Over,
}

/// Lets a door start on its first list's first objects while the rest of the list arrives.
///
/// kube-runtime's reflector gathers a list into a buffer and swaps it into the cache at the end,
/// and the applier starts no reconcile before that swap: with 10,000 waiting requests the door sat
/// idle for the whole list (20 pages) while a core was free. The cache is empty before the first
/// list, so its objects can be inserted as they arrive instead; the swap only matters for later
/// lists, where it removes what was deleted meanwhile. The first `Init` therefore becomes `Init`
/// then `InitDone` (an empty cache, ready), and its first [`FIRST_LIST_EARLY`] objects `Apply`.
///
/// The others are held until the list's `InitDone`, then applied together. Answering everything
/// as it arrives slowed a 100,000-object list, which then competed with our answers for the CPU,
/// and the watch resumed after it from a resourceVersion that tens of thousands of our own writes
/// had pushed out of kube-sim's 20,000-event history: 410, a new list, and 801 lists instead of
/// 401 for one backlog. Ten thousand early answers cover a list of a few tens of pages whole (a
/// thousand did not: with 10,000 waiting requests they were answered before the list's last
/// pages arrived, and one core idled until its end), and bound our own writes during any list to
/// half of that history; the 100,000-object backlog keeps its 401 lists and its time.
///
/// A first list that fails midway is restarted by the watcher with a new `Init`, which passes
/// through (the held objects are dropped: the new list brings them again): that list, like every
/// later one, swaps in a complete cache and drops whatever the failed one had inserted.
pub(crate) fn first_list_as_it_arrives<K, S>(
    events: S,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    let mut state = FirstList::NotStarted;
    events.flat_map(move |event| {
        use watcher::Event::{Apply, Init, InitApply, InitDone};
        // At most one event, then any number: a plain event passes through without allocating.
        let (first, rest): (Option<_>, Vec<_>) = match (&mut state, event) {
            (FirstList::NotStarted, Ok(Init)) => {
                state = FirstList::Arriving {
                    released: 0,
                    held: Vec::new(),
                };
                (Some(Ok(Init)), vec![Ok(InitDone)])
            }
            (FirstList::Arriving { released, held }, Ok(InitApply(obj))) => {
                if *released < FIRST_LIST_EARLY {
                    *released += 1;
                    (Some(Ok(Apply(obj))), Vec::new())
                } else {
                    held.push(obj);
                    (None, Vec::new())
                }
            }
            (FirstList::Arriving { held, .. }, Ok(InitDone)) => {
                let held = std::mem::take(held);
                state = FirstList::Over;
                (None, held.into_iter().map(|obj| Ok(Apply(obj))).collect())
            }
            (FirstList::Arriving { .. }, Ok(Init)) => {
                state = FirstList::Over;
                (Some(Ok(Init)), Vec::new())
            }
            (_, other) => (Some(other), Vec::new()),
        };
        futures::stream::iter(first.into_iter().chain(rest))
    })
}

/// Runs `reconcile` as its own task (aborted if the caller is dropped); a panic comes back as
/// its message.
pub(crate) async fn in_own_task<T: Send + 'static>(
    reconcile: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    OwnedTask(tokio::spawn(reconcile))
        .await
        .map_err(|e| e.to_string())
}

/// Drives `drained` (a door's applier) to its end, unless `stop` resolves before `store` has
/// listed once: kube-runtime's applier starts no reconcile before its store's first list, and
/// once its queue has ended it waits for that list for ever. Nothing can be in flight before
/// the first list, so the applier is then dropped instead. Returns whether that happened.
pub(crate) async fn drain_until_stopped<K>(
    drained: impl std::future::Future<Output = ()>,
    store: &kube::runtime::reflector::Store<K>,
    stop: impl std::future::Future<Output = ()>,
) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash,
{
    let never_listed = async {
        stop.await;
        if futures::FutureExt::now_or_never(store.wait_until_ready()).is_none() {
            return;
        }
        futures::future::pending::<()>().await;
    };
    futures::pin_mut!(drained, never_listed);
    matches!(
        futures::future::select(drained, never_listed).await,
        futures::future::Either::Right(_)
    )
}

/// How long a copy whose status write was sent is left alone: the watch normally delivers the
/// newer copy (our answer, or whatever made the write 409) well within it. Past it the copy is
/// decided again, so a request never waits for ever on a watch event that was lost.
pub(crate) const ANSWER_SETTLE: Duration = Duration::from_secs(5);

/// Fewest entries at which [`AnsweredCopies`] drops settled ones.
const PRUNE_FLOOR: usize = 1024;

/// The copies (object uid and resourceVersion) a door has sent a status write for.
///
/// A door decides the copy its cache holds. Once it has written an answer, that copy is stale,
/// but the cache keeps it until the watch delivers the write; a reconcile triggered in between
/// (the applier re-runs a key triggered while it was reconciling) would sign again for the old
/// copy, only for the guarded write to get 409. Marked before the write and kept when the write
/// was accepted or refused with 409, the copy is skipped instead until a newer one arrives or
/// [`ANSWER_SETTLE`] has passed.
///
/// Memory follows the writes of the last few seconds: settled entries are dropped whenever the
/// map has doubled. An entry is two 64-bit fingerprints (of the uid and of the resourceVersion,
/// keyed per map) and a time, with no allocation of its own, so the map is one table that a
/// large backlog does not leave scattered over the heap; two copies that share both fingerprints
/// would only delay the second one's decision by [`ANSWER_SETTLE`].
///
/// Nothing is forgotten earlier, not even when the object leaves the cache or its final copy is
/// seen: the applier reads a key's copy from the cache before the reconcile task starts, so a
/// reconcile may start with the old copy just after the cache moved on (and a door with two views
/// has two caches).
#[derive(Default)]
pub(crate) struct AnsweredCopies {
    inner: Mutex<Answered>,
}

#[derive(Default)]
struct Answered {
    /// uid fingerprint → (resourceVersion fingerprint, when its write was sent).
    copies: HashMap<u64, (u64, Instant)>,
    prune_at: usize,
    fingerprints: std::hash::RandomState,
}

impl Answered {
    fn fingerprint(&self, text: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.fingerprints, text)
    }
}

impl AnsweredCopies {
    /// Runs `write`, the status write answering `uid`'s copy at `resource_version`, with that
    /// copy marked as answered from just before it: kept when the write was accepted or got 409,
    /// dropped on any other outcome (an error, a 404), so the door's usual retry decides it again.
    pub(crate) async fn write<E>(
        &self,
        uid: &str,
        resource_version: Option<&str>,
        write: impl std::future::Future<Output = Result<Applied, E>>,
    ) -> Result<Applied, E> {
        if let Some(rv) = resource_version {
            self.answering_at(uid, rv, Instant::now());
        }
        let applied = write.await;
        if !matches!(applied, Ok(Applied::Written | Applied::Conflict)) {
            self.unanswered(uid);
        }
        applied
    }

    fn answering_at(&self, uid: &str, resource_version: &str, now: Instant) {
        let mut answered = self.lock();
        if answered.copies.len() >= answered.prune_at.max(PRUNE_FLOOR) {
            answered
                .copies
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < ANSWER_SETTLE);
            answered.prune_at = answered.copies.len().saturating_mul(2);
            // A drained backlog's table shrinks with it.
            let keep = answered.prune_at.max(PRUNE_FLOOR);
            if answered.copies.capacity() > 2 * keep {
                answered.copies.shrink_to(keep);
            }
        }
        let (uid, rv) = (
            answered.fingerprint(uid),
            answered.fingerprint(resource_version),
        );
        answered.copies.insert(uid, (rv, now));
    }

    /// Unmarks `uid`: its write failed without an answer (an error, a 404), so the copy may be
    /// decided again on the door's usual retry.
    fn unanswered(&self, uid: &str) {
        let mut answered = self.lock();
        let uid = answered.fingerprint(uid);
        answered.copies.remove(&uid);
    }

    /// Whether `uid`'s copy at `resource_version` was answered less than [`ANSWER_SETTLE`] ago.
    pub(crate) fn is_answered(&self, uid: &str, resource_version: Option<&str>) -> bool {
        self.is_answered_at(uid, resource_version, Instant::now())
    }

    fn is_answered_at(&self, uid: &str, resource_version: Option<&str>, now: Instant) -> bool {
        let Some(rv) = resource_version else {
            return false;
        };
        let answered = self.lock();
        let (uid, rv) = (answered.fingerprint(uid), answered.fingerprint(rv));
        answered.copies.get(&uid).is_some_and(|(at_rv, at)| {
            *at_rv == rv && now.saturating_duration_since(*at) < ANSWER_SETTLE
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Answered> {
        // Every operation is one map call: a panic elsewhere cannot leave it half-done.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().copies.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;

    fn config_map(name: &str) -> k8s_openapi::api::core::v1::ConfigMap {
        k8s_openapi::api::core::v1::ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    type ConfigMap = k8s_openapi::api::core::v1::ConfigMap;

    type Events =
        futures::channel::mpsc::UnboundedSender<Result<watcher::Event<ConfigMap>, watcher::Error>>;
    type Triggered =
        std::pin::Pin<Box<dyn Stream<Item = Result<ObjectRef<ConfigMap>, watcher::Error>> + Send>>;

    /// A door's watch path over a channel of watch events: the sender, the cache, and the
    /// objects the queue is triggered with.
    fn watched() -> (
        Events,
        kube::runtime::reflector::Store<ConfigMap>,
        Triggered,
    ) {
        use kube::runtime::WatchStreamExt;
        let (tx, rx) = unbounded();
        let writer = kube::runtime::reflector::store::Writer::default();
        let store = writer.as_reader();
        let touched = touched_after_lists(first_list_as_it_arrives(rx).reflect(writer), ());
        (tx, store, Box::pin(touched))
    }

    /// The name a trigger is for.
    async fn next_name(triggered: &mut Triggered) -> String {
        triggered.next().await.unwrap().unwrap().name
    }

    fn names(
        store: &kube::runtime::reflector::Store<k8s_openapi::api::core::v1::ConfigMap>,
    ) -> Vec<String> {
        let mut names: Vec<String> = store.state().iter().map(|o| o.name_any()).collect();
        names.sort();
        names
    }

    /// The cache is ready, and holds each object of the first list, as soon as that object has
    /// arrived: the applier may start on the first page while the next ones are still listed.
    #[tokio::test]
    async fn the_first_lists_objects_are_cached_as_they_arrive() {
        use kube::runtime::watcher::Event;
        let (tx, store, mut applied) = watched();
        tx.unbounded_send(Ok(Event::Init)).unwrap();
        tx.unbounded_send(Ok(Event::InitApply(config_map("a"))))
            .unwrap();
        let first = next_name(&mut applied).await;
        assert_eq!(first, "a", "triggered before the list ends");
        assert!(
            futures::FutureExt::now_or_never(store.wait_until_ready()).is_some(),
            "the cache is ready before the list ends"
        );
        assert_eq!(names(&store), ["a"]);
        tx.unbounded_send(Ok(Event::InitApply(config_map("b"))))
            .unwrap();
        tx.unbounded_send(Ok(Event::InitDone)).unwrap();
        tx.unbounded_send(Ok(Event::Apply(config_map("c"))))
            .unwrap();
        assert_eq!(next_name(&mut applied).await, "b");
        assert_eq!(next_name(&mut applied).await, "c");
        assert_eq!(names(&store), ["a", "b", "c"]);

        // A later list swaps in a complete cache: what was deleted meanwhile goes.
        tx.unbounded_send(Ok(Event::Init)).unwrap();
        tx.unbounded_send(Ok(Event::InitApply(config_map("c"))))
            .unwrap();
        assert_eq!(names(&store), ["a", "b", "c"], "kept until the list ends");
        tx.unbounded_send(Ok(Event::InitDone)).unwrap();
        tx.unbounded_send(Ok(Event::Apply(config_map("d"))))
            .unwrap();
        assert_eq!(next_name(&mut applied).await, "c");
        assert_eq!(next_name(&mut applied).await, "d");
        assert_eq!(names(&store), ["c", "d"]);
    }

    /// A later list's objects are triggered only once the cache holds them: after a watch
    /// outage, a request created meanwhile is in the list but not in the cache the outage left,
    /// and kube-runtime's applier drops a trigger whose object its cache lacks, so a trigger sent
    /// as the list arrived left that request unanswered for good.
    #[tokio::test]
    async fn a_later_lists_objects_are_triggered_once_the_cache_holds_them() {
        use kube::runtime::watcher::Event;
        let (tx, store, mut touched) = watched();
        tx.unbounded_send(Ok(Event::Init)).unwrap();
        tx.unbounded_send(Ok(Event::InitApply(config_map("old"))))
            .unwrap();
        tx.unbounded_send(Ok(Event::InitDone)).unwrap();
        assert_eq!(next_name(&mut touched).await, "old");

        // The watch is lost; "new" was created meanwhile, and the new list brings both.
        tx.unbounded_send(Err(watcher::Error::NoResourceVersion))
            .unwrap();
        assert!(touched.next().await.unwrap().is_err());
        tx.unbounded_send(Ok(Event::Init)).unwrap();
        tx.unbounded_send(Ok(Event::InitApply(config_map("old"))))
            .unwrap();
        tx.unbounded_send(Ok(Event::InitApply(config_map("new"))))
            .unwrap();
        assert!(
            futures::FutureExt::now_or_never(touched.next()).is_none(),
            "nothing is triggered while the list goes on"
        );
        assert_eq!(names(&store), ["old"]);
        // A list that fails midway starts again: only the complete list's objects count.
        tx.unbounded_send(Ok(Event::Init)).unwrap();
        tx.unbounded_send(Ok(Event::InitApply(config_map("new"))))
            .unwrap();
        tx.unbounded_send(Ok(Event::InitDone)).unwrap();
        let name = next_name(&mut touched).await;
        assert_eq!(name, "new");
        assert!(
            store
                .get(&ObjectRef::new(&name).within("default"))
                .is_some(),
            "the trigger finds its object in the cache"
        );
        assert!(futures::FutureExt::now_or_never(touched.next()).is_none());
        assert_eq!(names(&store), ["new"]);
    }

    /// Past the first [`FIRST_LIST_EARLY`] objects, the first list's objects wait for its end: a
    /// long list is not slowed by answers to it, nor followed by a watch resumed from a version
    /// our own writes pushed out of the server's history.
    #[tokio::test]
    async fn past_the_early_objects_the_first_list_waits_for_its_end() {
        use kube::runtime::watcher::Event;
        let (tx, store, mut applied) = watched();
        tx.unbounded_send(Ok(Event::Init)).unwrap();
        for i in 0..FIRST_LIST_EARLY + 2 {
            tx.unbounded_send(Ok(Event::InitApply(config_map(&format!("cm-{i:05}")))))
                .unwrap();
        }
        for _ in 0..FIRST_LIST_EARLY {
            applied.next().await.unwrap().unwrap();
        }
        assert_eq!(store.state().len(), FIRST_LIST_EARLY);
        assert!(
            futures::FutureExt::now_or_never(applied.next()).is_none(),
            "the rest is held while the list goes on"
        );
        tx.unbounded_send(Ok(Event::InitDone)).unwrap();
        let late: Vec<String> = vec![next_name(&mut applied).await, next_name(&mut applied).await];
        assert_eq!(
            late,
            [
                format!("cm-{:05}", FIRST_LIST_EARLY),
                format!("cm-{:05}", FIRST_LIST_EARLY + 1)
            ]
        );
        assert_eq!(store.state().len(), FIRST_LIST_EARLY + 2);
    }

    /// A first list that fails midway is listed again in full, and that list replaces what the
    /// failed one had cached.
    #[tokio::test]
    async fn a_failed_first_list_is_replaced_by_the_next_one() {
        use kube::runtime::watcher::Event;
        let (tx, store, mut applied) = watched();
        tx.unbounded_send(Ok(Event::Init)).unwrap();
        tx.unbounded_send(Ok(Event::InitApply(config_map("gone"))))
            .unwrap();
        assert_eq!(next_name(&mut applied).await, "gone");
        tx.unbounded_send(Err(watcher::Error::NoResourceVersion))
            .unwrap();
        assert!(applied.next().await.unwrap().is_err());
        tx.unbounded_send(Ok(Event::Init)).unwrap();
        tx.unbounded_send(Ok(Event::InitApply(config_map("kept"))))
            .unwrap();
        assert_eq!(
            names(&store),
            ["gone"],
            "the failed list's cache until the new one ends"
        );
        tx.unbounded_send(Ok(Event::InitDone)).unwrap();
        tx.unbounded_send(Ok(Event::Apply(config_map("new"))))
            .unwrap();
        assert_eq!(next_name(&mut applied).await, "kept");
        assert_eq!(next_name(&mut applied).await, "new");
        assert_eq!(names(&store), ["kept", "new"]);
    }

    #[test]
    fn an_answered_copy_is_skipped_until_a_newer_one_or_the_settle_time() {
        let answered = AnsweredCopies::default();
        let t0 = Instant::now();
        assert!(!answered.is_answered_at("a", Some("7"), t0));
        answered.answering_at("a", "7", t0);
        assert!(answered.is_answered_at("a", Some("7"), t0));
        assert!(
            !answered.is_answered_at("a", Some("8"), t0),
            "a newer copy is decided"
        );
        assert!(!answered.is_answered_at("b", Some("7"), t0), "per object");
        assert!(!answered.is_answered_at("a", None, t0));
        assert!(
            !answered.is_answered_at("a", Some("7"), t0 + ANSWER_SETTLE),
            "decided again once settled"
        );
        answered.unanswered("a");
        assert!(!answered.is_answered_at("a", Some("7"), t0));
    }

    #[test]
    fn settled_entries_are_dropped_as_the_map_grows() {
        let answered = AnsweredCopies::default();
        let t0 = Instant::now();
        for i in 0..PRUNE_FLOOR {
            answered.answering_at(&format!("old-{i}"), "1", t0);
        }
        assert_eq!(answered.len(), PRUNE_FLOOR);
        let later = t0 + ANSWER_SETTLE;
        answered.answering_at("new", "1", later);
        assert_eq!(answered.len(), 1, "only the unsettled entry is left");
        assert!(answered.is_answered_at("new", Some("1"), later));
        // Entries still settling are kept however many there are.
        for i in 0..3 * PRUNE_FLOOR {
            answered.answering_at(&format!("fresh-{i}"), "1", later);
        }
        assert_eq!(answered.len(), 3 * PRUNE_FLOOR + 1);
    }
}
