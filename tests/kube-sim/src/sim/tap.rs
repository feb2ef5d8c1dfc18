//! A record of the bodies clients write (create, update, patch) and of the server's answer, for
//! tests that judge what a client sends against upstream schemas or count accepted writes; off
//! unless asked for, performs no I/O.

use bytes::Bytes;
use parking_lot::Mutex;

/// One write request as it arrived, before the server judged it.
#[derive(Debug, Clone)]
pub struct WriteRecord {
    /// `create`, `update` or `patch`.
    pub verb: &'static str,
    /// API group (`""` for the core group).
    pub group: String,
    /// The resource's plural.
    pub resource: String,
    /// The subresource (`status`), if any.
    pub subresource: Option<String>,
    /// The request's `Content-Type` (names the patch type for patches).
    pub content_type: String,
    /// The namespace of the request path (`""` when cluster-scoped).
    pub namespace: String,
    /// The object name of the request path (`""` for a create by body).
    pub name: String,
    /// The body as sent.
    pub body: Bytes,
    /// The HTTP status the server answered (200/201 for a write it accepted, 409 for a stale
    /// resourceVersion or a field-manager conflict, ...); injected faults answer before the
    /// write is read and are not recorded.
    pub code: u16,
}

/// The recorder: empty and free when disabled.
#[derive(Debug, Default)]
pub struct WriteTap {
    enabled: bool,
    records: Mutex<Vec<WriteRecord>>,
}

impl WriteTap {
    /// A recorder that keeps every write when `enabled`.
    pub fn new(enabled: bool) -> WriteTap {
        WriteTap {
            enabled,
            records: Mutex::new(Vec::new()),
        }
    }

    /// Whether writes are recorded at all (callers skip building the record otherwise).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Keep one write.
    pub fn record(&self, record: WriteRecord) {
        if self.enabled {
            self.records.lock().push(record);
        }
    }

    /// Every write kept so far, oldest first.
    pub fn snapshot(&self) -> Vec<WriteRecord> {
        self.records.lock().clone()
    }
}
