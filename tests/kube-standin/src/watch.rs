//! Watch streams: newline-delimited JSON events over one chunked response, resumable from a
//! resourceVersion, with bookmarks, selectors, a server-side timeout, and the two endings a
//! client must survive: the connection dropped, and 410 Gone.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::SinkExt;
use futures::channel::mpsc;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::error::ApiError;
use crate::resources::RESOURCES;
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::Shared;
use crate::store::{Change, ChangeKind};

pub struct WatchRequest {
    pub resource: usize,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// `None` (or "0"): start with the current objects as ADDED events.
    pub since: Option<u64>,
    pub bookmarks: bool,
    pub timeout: Option<Duration>,
}

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    object: &'a Value,
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(&Event { kind, object }).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

impl WatchRequest {
    fn selects(&self, object: &Value) -> bool {
        let in_namespace = self
            .namespace
            .as_deref()
            .is_none_or(|ns| object.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns));
        in_namespace && self.labels.matches(object) && self.fields.matches(object)
    }

    /// The event this watcher sees for a change, if any: an object that stops matching the
    /// selector is DELETED for it, one that starts matching is ADDED.
    fn event(&self, change: &Change) -> Option<Bytes> {
        if change.resource != self.resource {
            return None;
        }
        let now = self.selects(&change.object);
        let kind = match (change.kind, change.previous.as_deref().map(|p| self.selects(p))) {
            (ChangeKind::Modified, Some(true)) if !now => ChangeKind::Deleted,
            (ChangeKind::Modified, Some(false)) if now => ChangeKind::Added,
            (ChangeKind::Modified, Some(false)) => return None,
            (kind, _) if now => kind,
            _ => return None,
        };
        Some(line(kind.as_str(), &change.object))
    }
}

fn one_event(kind: &str, object: &Value) -> Result<Response, ApiError> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(line(kind, object)))
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

pub fn serve(shared: Arc<Shared>, request: WatchRequest) -> Result<Response, ApiError> {
    let mut dropped = shared.drop_watches.subscribe();
    let (initial, mut changes, mut last_rv) = {
        let store = shared.lock_store();
        let (initial, past, rx) = match request.since {
            Some(since) => match store.watch_from(since) {
                Ok((past, rx)) => (Vec::new(), past, rx),
                // A real server answers an expired version inside the watch, as an ERROR event.
                Err(gone) => return one_event("ERROR", &gone.status()),
            },
            None => {
                let now: Vec<Bytes> = store
                    .list(request.resource, request.namespace.as_deref())
                    .filter(|o| request.selects(o))
                    .map(|o| line("ADDED", o))
                    .collect();
                (now, Vec::new(), store.subscribe())
            }
        };
        let mut lines = initial;
        lines.extend(past.iter().filter_map(|c| request.event(c)));
        (lines, rx, store.resource_version())
    };
    let (mut tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let res = &RESOURCES[request.resource];
    let bookmark_interval = shared.config.bookmark_interval;
    tokio::spawn(async move {
        for l in initial {
            if tx.send(Ok(l)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(request.timeout.unwrap_or(Duration::from_secs(1800)));
        tokio::pin!(deadline);
        let mut bookmark = tokio::time::interval(bookmark_interval);
        bookmark.tick().await;
        loop {
            let out = tokio::select! {
                _ = &mut deadline => return,
                _ = dropped.changed() => return,
                _ = bookmark.tick(), if request.bookmarks => {
                    let mark = json!({"kind": res.kind, "apiVersion": res.api_version(),
                        "metadata": {"resourceVersion": last_rv.to_string()}});
                    line("BOOKMARK", &mark)
                }
                received = changes.recv() => match received {
                    Ok(change) => {
                        last_rv = change.rv;
                        match request.event(&change) { Some(l) => l, None => continue }
                    }
                    // Too slow to keep up: end as a real server does, with 410, so the
                    // client relists.
                    Err(RecvError::Lagged(_)) => {
                        let _ = tx.send(Ok(line("ERROR", &ApiError::gone(last_rv, last_rv + 1).status()))).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                },
            };
            if tx.send(Ok(out)).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from_stream(rx))
        .map_err(|e| ApiError::bad_request(e.to_string()))
}
