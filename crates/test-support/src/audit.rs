//! The `firefly::audit` lines a test process logs, recorded field by field.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing_subscriber::layer::SubscriberExt as _;

/// Every `firefly::audit` event of this test process, as its fields (`message` included), with
/// the instant it was logged.
#[derive(Clone, Default)]
pub struct AuditEvents(Arc<Mutex<Vec<Logged>>>);

/// One audit event: when it was logged, and its fields.
type Logged = (Instant, BTreeMap<String, String>);

impl AuditEvents {
    /// Installs the recorder as this test process's subscriber (before the environment, whose
    /// own `try_init` then leaves it in place).
    ///
    /// # Panics
    /// When the process already has a global subscriber.
    pub fn install() -> AuditEvents {
        let events = AuditEvents::default();
        let filter = tracing_subscriber::filter::Targets::new()
            .with_target("firefly::audit", tracing::Level::TRACE);
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::Layer::with_filter(events.clone(), filter),
        );
        tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
        events
    }

    /// The events whose message is `message`.
    pub fn with_message(&self, message: &str) -> Vec<BTreeMap<String, String>> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e)
            .filter(|e| e.get("message").map(String::as_str) == Some(message))
            .cloned()
            .collect()
    }

    /// How many events have a message whose first word (up to `:` or a space) is `first_word`.
    pub fn count(&self, first_word: &str) -> u64 {
        self.times(first_word).len() as u64
    }

    /// When each event whose message's first word is `first_word` was logged, in order.
    pub fn times(&self, first_word: &str) -> Vec<Instant> {
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter(|(_, e)| {
                e.get("message")
                    .and_then(|m| m.split([':', ' ']).next())
                    .is_some_and(|w| w == first_word)
            })
            .map(|(at, _)| *at)
            .collect()
    }

    /// Waits for `n` certificates signed and not delivered (`signed-not-delivered`: a status
    /// write the API server refused) and returns the gaps between them: each line is stamped as
    /// it is logged, so nothing is sampled and a loaded machine cannot merge or shift attempts.
    pub async fn refused_write_gaps(&self, n: usize) -> Vec<Duration> {
        let word = "signed-not-delivered";
        kube_sim::wait_for(crate::PATIENCE, || async { self.times(word).len() >= n })
            .await
            .unwrap_or_else(|_| panic!("fewer than {n} refused writes: {:?}", self.times(word)));
        let times = self.times(word);
        times[..n].windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// The growth of a backoff, judged on the gaps between refused writes with wide margins: 250 ms
/// doubling, jittered into the upper half of each step, gives gaps of 125–250 ms, 250–500,
/// 500–1000, 1–2 s and 2–4 s (plus the signing and the write), so the last is at least twice the
/// first however loaded the machine; a fixed pause keeps them alike. The last gap is at least
/// 1 s too: a pause that grows from next to nothing still hammers.
///
/// # Panics
/// When the gaps do not grow so.
pub fn assert_backoff_grows(gaps: &[Duration]) {
    eprintln!("gaps between refused writes: {gaps:?}");
    let (first, last) = (gaps[0], gaps[gaps.len() - 1]);
    assert!(last >= 2 * first, "the pause does not grow: {gaps:?}");
    assert!(
        last >= Duration::from_secs(1),
        "the pause stays short: {gaps:?}"
    );
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for AuditEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Fields(BTreeMap<String, String>);
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.insert(field.name().to_owned(), value.to_owned());
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                let text = format!("{value:?}");
                self.0
                    .insert(field.name().to_owned(), text.trim_matches('"').to_owned());
            }
        }
        let at = Instant::now();
        let mut fields = Fields(BTreeMap::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push((at, fields.0));
    }
}
