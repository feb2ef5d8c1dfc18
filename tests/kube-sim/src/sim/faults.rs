//! Fault injection for reliability tests: dropped watches, forced compaction, per-route errors and latency, pause.

use super::status::ApiError;
use super::store::Store;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// One injected fault: an error status and/or latency for matching requests.
#[derive(Debug, Clone)]
pub struct FaultRule {
    verb: Option<String>,
    resource: Option<String>,
    status: Option<u16>,
    latency: Option<Duration>,
    times: Option<u64>,
    probability: f64,
    retry_after: Option<u64>,
    lose_response: bool,
}

impl FaultRule {
    /// Answer matching requests with this HTTP status (404, 409, 429, 500 or 503; anything else
    /// becomes 500). A 404 stands for an object deleted between a client's read and its write.
    pub fn error(status: u16) -> Self {
        FaultRule {
            verb: None,
            resource: None,
            status: Some(status),
            latency: None,
            times: None,
            probability: 1.0,
            retry_after: None,
            lose_response: false,
        }
    }
    /// Delay matching requests by this much (then serve them normally).
    pub fn latency(d: Duration) -> Self {
        FaultRule {
            verb: None,
            resource: None,
            status: None,
            latency: Some(d),
            times: None,
            probability: 1.0,
            retry_after: None,
            lose_response: false,
        }
    }
    /// Serve matching requests in full (a write is stored and watched), then close the
    /// connection without an answer: the client sees a transport error for a request that took
    /// effect, as when a connection breaks after the API server committed.
    pub fn lost_response() -> Self {
        FaultRule {
            lose_response: true,
            ..FaultRule::latency(Duration::ZERO)
        }
    }
    /// Only requests with this verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`).
    #[must_use]
    pub fn verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.to_string());
        self
    }
    /// Only this resource: `certificaterequests` (any subresource) or `certificaterequests/status`.
    #[must_use]
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_string());
        self
    }
    /// Only the next `n` matching requests.
    #[must_use]
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }
    /// The `Retry-After` seconds of an injected 429 or 503 (header and
    /// `details.retryAfterSeconds`, as kube-apiserver sends both); default 1.
    #[must_use]
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
    /// Each matching request is hit with this probability (0.0–1.0).
    #[must_use]
    pub fn probability(mut self, p: f64) -> Self {
        self.probability = p.clamp(0.0, 1.0);
        self
    }
    fn matches(&self, verb: &str, resource: &str, sub: Option<&str>) -> bool {
        self.verb.as_deref().is_none_or(|v| v == verb)
            && self
                .resource
                .as_deref()
                .is_none_or(|r| match r.split_once('/') {
                    Some((res, s)) => res == resource && sub == Some(s),
                    None => r == resource,
                })
    }
}

#[derive(Debug)]
pub(crate) struct FaultState {
    pub(crate) drop_tx: watch::Sender<u64>,
    pub(crate) pause_tx: watch::Sender<bool>,
    /// Requests waiting for [`Faults::resume`].
    held: std::sync::atomic::AtomicUsize,
    rules: Mutex<Vec<FaultRule>>,
    /// Watch-event delays by resource plural (see [`Faults::delay_watch_events`]).
    watch_delays: Mutex<Vec<(String, Duration)>>,
    store: Arc<Store>,
}

/// Handle to inject faults into a running kube-sim (cheap to clone).
#[derive(Debug, Clone)]
pub struct Faults(pub(crate) Arc<FaultState>);

impl Faults {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        Faults(Arc::new(FaultState {
            drop_tx: watch::channel(0).0,
            pause_tx: watch::channel(false).0,
            held: std::sync::atomic::AtomicUsize::new(0),
            rules: Mutex::new(Vec::new()),
            watch_delays: Mutex::new(Vec::new()),
            store,
        }))
    }
    /// End every open watch stream now (clients see a clean end of stream and re-watch).
    pub fn drop_watches(&self) {
        self.0.drop_tx.send_modify(|g| *g += 1);
    }
    /// Forget all event history: a watch from any resourceVersion issued so far gets a 410 ERROR event.
    pub fn compact_history(&self) {
        self.0.store.compact();
    }
    /// Add a rule; rules are checked in insertion order.
    pub fn inject(&self, rule: FaultRule) {
        self.0.rules.lock().push(rule);
    }
    /// Remove every rule and watch delay.
    pub fn clear(&self) {
        self.0.rules.lock().clear();
        self.0.watch_delays.lock().clear();
    }
    /// Send every change of `resource` (a plural such as `certificaterequests`) to its watches
    /// `delay` after it was stored, as a lagging watch cache or a slow network would: a client's
    /// reads then trail its own writes. Changes keep their order; replaces an earlier delay for
    /// the resource; `Duration::ZERO` removes it. Until [`Faults::clear`].
    pub fn delay_watch_events(&self, resource: &str, delay: Duration) {
        let mut delays = self.0.watch_delays.lock();
        delays.retain(|(r, _)| r != resource);
        if !delay.is_zero() {
            delays.push((resource.to_string(), delay));
        }
    }
    /// The delay of `resource`'s watch events, if any.
    pub(crate) fn watch_delay(&self, resource: &str) -> Option<Duration> {
        let delays = self.0.watch_delays.lock();
        delays.iter().find(|(r, _)| r == resource).map(|(_, d)| *d)
    }
    /// Hold every incoming request until [`Faults::resume`].
    pub fn pause(&self) {
        self.0.pause_tx.send_replace(true);
    }
    /// Release held requests.
    pub fn resume(&self) {
        self.0.pause_tx.send_replace(false);
    }

    /// Requests held by [`Faults::pause`] right now (received and waiting, not yet served).
    pub fn held_requests(&self) -> usize {
        self.0.held.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) async fn wait_unpaused(&self) {
        /// Counts one held request for as long as it waits (a dropped request stops counting).
        struct Held<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Held<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let mut rx = self.0.pause_tx.subscribe();
        if !*rx.borrow_and_update() {
            return;
        }
        self.0
            .held
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _held = Held(&self.0.held);
        while *rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// The latency and error for one request, consuming counted rules.
    pub(crate) fn check(
        &self,
        verb: &str,
        resource: &str,
        sub: Option<&str>,
    ) -> (Option<Duration>, Option<ApiError>, bool) {
        let mut rules = self.0.rules.lock();
        if rules.is_empty() {
            return (None, None, false);
        }
        let (mut lat, mut err, mut lose) = (None, None, false);
        for r in rules.iter_mut() {
            if !r.matches(verb, resource, sub) || r.times == Some(0) {
                continue;
            }
            if r.probability < 1.0 && rand::random::<f64>() >= r.probability {
                continue;
            }
            if let Some(t) = r.times.as_mut() {
                *t -= 1;
            }
            if let Some(l) = r.latency.filter(|l| !l.is_zero()) {
                lat = Some(lat.unwrap_or_default() + l);
            }
            lose |= r.lose_response;
            if let (Some(code), None) = (r.status, &err) {
                err = Some(injected(code, resource, r.retry_after.unwrap_or(1)));
            }
        }
        rules.retain(|r| r.times != Some(0));
        (lat, err, lose)
    }
}

fn injected(code: u16, resource: &str, retry_after: u64) -> ApiError {
    match code {
        404 => ApiError::new(
            404,
            "NotFound",
            format!("{resource} not found: deleted before this request was served (injected)"),
        ),
        409 => ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {resource}: the object has been modified; please apply your changes to the latest version and try again (injected)"
            ),
        ),
        429 => {
            let mut e = ApiError::new(
                429,
                "TooManyRequests",
                "Too many requests, please try again later. (injected)",
            );
            e.retry_after = Some(retry_after);
            e
        }
        503 => {
            let mut e = ApiError::new(
                503,
                "ServiceUnavailable",
                "the server is currently unable to handle the request (injected)",
            );
            e.retry_after = Some(retry_after);
            e
        }
        _ => ApiError::internal(
            "an error on the server (\"injected\") has prevented the request from succeeding",
        ),
    }
}
