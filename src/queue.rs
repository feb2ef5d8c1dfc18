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

use futures::channel::mpsc::{UnboundedReceiver, unbounded};
use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::controller::{ReconcileRequest, trigger_self};
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

/// The applier's queue: one trigger per object `objects` applies (a reflected watch's
/// `applied_objects()`), read by its own task until `stop` resolves or the queue is dropped.
pub(crate) type Triggers<K> = UnboundedReceiver<Result<ReconcileRequest<K>, watcher::Error>>;

/// Reads `objects` in its own task (see the module documentation); the channel ends when `stop`
/// resolves.
pub(crate) fn triggers_from<K, S>(
    objects: S,
    dyntype: K::DynamicType,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> (Triggers<K>, OwnedTask<()>)
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash + Send + Sync + 'static,
    S: Stream<Item = Result<K, watcher::Error>> + Send + 'static,
{
    let (tx, rx) = unbounded();
    let task = OwnedTask(tokio::spawn(async move {
        let triggers = trigger_self(objects, dyntype).take_until(stop);
        futures::pin_mut!(triggers);
        while let Some(trigger) = triggers.next().await {
            if tx.unbounded_send(trigger).is_err() {
                break;
            }
        }
    }));
    (rx, task)
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
