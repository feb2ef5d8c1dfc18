//! Metadata-only responses (`Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`),
//! as kube-rs's `metadata_watcher` and `kubectl get` with `--output=name` ask for them.

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Whether the Accept header asks for metadata only.
pub fn wanted(accept: &str) -> bool {
    accept.contains("as=PartialObjectMetadata")
}

/// One object as `PartialObjectMetadata`.
pub fn object(v: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": v.get("metadata").cloned().unwrap_or(json!({}))})
}

/// A list body as `PartialObjectMetadataList`.
pub fn list(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or(json!({}));
    let items: Vec<Value> = v
        .get("items")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(object).collect())
        .unwrap_or_default();
    json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": v.get("metadata").cloned().unwrap_or(json!({})), "items": items})
}

/// Rewrite a watch stream's objects (not its ERROR events) to `PartialObjectMetadata`.
pub fn watch(mut rx: mpsc::Receiver<Bytes>) -> mpsc::Receiver<Bytes> {
    let (tx, out) = mpsc::channel::<Bytes>(1024);
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            let converted = match serde_json::from_slice::<Value>(&line) {
                Ok(mut ev) if ev.get("type").and_then(Value::as_str) != Some("ERROR") => {
                    ev["object"] = object(&ev["object"]);
                    let mut b = serde_json::to_vec(&ev).unwrap_or_default();
                    b.push(b'\n');
                    Bytes::from(b)
                }
                _ => line,
            };
            if tx.send(converted).await.is_err() {
                return;
            }
        }
    });
    out
}
