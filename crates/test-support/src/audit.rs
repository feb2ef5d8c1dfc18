//! The `firefly::audit` lines a test process logs, recorded field by field.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tracing_subscriber::layer::SubscriberExt as _;

/// Every `firefly::audit` event of this test process, as its fields (`message` included).
#[derive(Clone, Default)]
pub struct AuditEvents(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

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
            .filter(|e| e.get("message").map(String::as_str) == Some(message))
            .cloned()
            .collect()
    }

    /// How many events have a message whose first word (up to `:` or a space) is `first_word`.
    pub fn count(&self, first_word: &str) -> u64 {
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter(|e| {
                e.get("message")
                    .and_then(|m| m.split([':', ' ']).next())
                    .is_some_and(|w| w == first_word)
            })
            .count() as u64
    }
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
        let mut fields = Fields(BTreeMap::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
}
