//! The engine's handover ([`ballast_engine::handover`]) in a ConfigMap in Ballast's own
//! namespace, beside its Lease: the leader writes it after every tick it leads, off the
//! tick, and a replica that starts to lead reads it before it acts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ballast_engine::handover::{Handover, HandoverError, HandoverStore, StoreFuture};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

/// The ConfigMap key the handover is kept under, as JSON.
pub const KEY: &str = "handover.json";

/// A ConfigMap holds at most 1 MiB; past this the policies' states are left out.
pub const MAX_BYTES: usize = 900 * 1024;

/// A read or write that takes longer is taken for an API server that does not answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// The handover as a ConfigMap. Clones share one writer, which stops when the last clone is
/// dropped.
#[derive(Clone)]
pub struct ConfigMapHandover {
    api: Api<ConfigMap>,
    name: Arc<str>,
    namespace: Arc<str>,
    /// The latest handover left, numbered; the writer takes the latest only.
    left: Arc<watch::Sender<Left>>,
    /// The last handover the writer tried, and how that went.
    tried: watch::Receiver<Tried>,
    counts: Arc<Counts>,
}

/// Writes so far, by how they ended.
#[derive(Debug, Default)]
struct Counts {
    written: AtomicU64,
    failed: AtomicU64,
}

/// A snapshot of the writes so far (`ballast_handover_writes_total`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteCounts {
    pub written: u64,
    pub failed: u64,
}

/// The number of the last handover the writer tried to write, and whether it was written.
#[derive(Clone, Copy, Default)]
struct Tried {
    number: u64,
    written: bool,
}

/// Why the last handover was not written at shutdown.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlushError {
    #[error("the last handover's write failed (the warning before says why)")]
    Failed,
    #[error("the last handover was not written within {0:?}")]
    TimedOut(Duration),
}

#[derive(Clone, Default)]
struct Left {
    number: u64,
    handover: Option<Arc<Handover>>,
}

impl ConfigMapHandover {
    /// Keeps the handover in ConfigMap `name` of `namespace`, starting its writer.
    pub fn spawn(client: Client, namespace: &str, name: &str) -> Self {
        let api: Api<ConfigMap> = Api::namespaced(client, namespace);
        let (left, pending) = watch::channel(Left::default());
        let (done, tried) = watch::channel(Tried { number: 0, written: true });
        let counts = Arc::new(Counts::default());
        let writer = Writer {
            api: api.clone(),
            name: name.to_string(),
            namespace: namespace.to_string(),
            counts: counts.clone(),
        };
        tokio::spawn(writer.run(pending, done));
        let (name, namespace, left) = (Arc::from(name), Arc::from(namespace), Arc::new(left));
        ConfigMapHandover { api, name, namespace, left, tried, counts }
    }

    /// The writes so far, by how they ended.
    pub fn writes(&self) -> WriteCounts {
        WriteCounts {
            written: self.counts.written.load(Ordering::Relaxed),
            failed: self.counts.failed.load(Ordering::Relaxed),
        }
    }

    /// Waits until the writer has tried the last handover left, at most `within`: at
    /// shutdown, before the Lease is released, so that the next leader reads the last tick's.
    ///
    /// # Errors
    /// The write failed (it is not tried again: the caller is shutting down), or was not
    /// tried within `within`.
    pub async fn flush(&self, within: Duration) -> Result<(), FlushError> {
        let number = self.left.borrow().number;
        let mut tried = self.tried.clone();
        match tokio::time::timeout(within, tried.wait_for(|t| t.number >= number)).await {
            Ok(Ok(t)) if t.written => Ok(()),
            Ok(_) => Err(FlushError::Failed),
            Err(_) => Err(FlushError::TimedOut(within)),
        }
    }

    async fn read_now(&self) -> Result<Option<Handover>, HandoverError> {
        let what = format!("ConfigMap {}/{}", self.namespace, self.name);
        let found = match tokio::time::timeout(ANSWER_WITHIN, self.api.get_opt(&self.name)).await {
            Err(_) => {
                return Err(HandoverError::Unavailable(format!("reading {what}: no answer in {ANSWER_WITHIN:?}")));
            }
            Ok(Err(kube::Error::Api(s))) if s.code == 403 => {
                return Err(HandoverError::Unusable(format!("reading {what} is forbidden: {}", s.message)));
            }
            Ok(Err(error)) => return Err(HandoverError::Unavailable(format!("reading {what}: {error}"))),
            Ok(Ok(found)) => found,
        };
        let Some(map) = found else { return Ok(None) };
        let Some(text) = map.data.as_ref().and_then(|d| d.get(KEY)) else {
            return Err(HandoverError::Unusable(format!("{what} has no key {KEY}")));
        };
        serde_json::from_str(text).map(Some).map_err(|e| HandoverError::Unusable(format!("{what}, key {KEY}: {e}")))
    }
}

impl HandoverStore for ConfigMapHandover {
    fn read(&self) -> StoreFuture<'_, Result<Option<Handover>, HandoverError>> {
        Box::pin(self.read_now())
    }

    fn leave(&self, handover: Handover) {
        self.left.send_modify(|left| {
            left.number += 1;
            left.handover = Some(Arc::new(handover));
        });
    }
}

/// Writes the latest handover left, one at a time.
struct Writer {
    api: Api<ConfigMap>,
    name: String,
    namespace: String,
    counts: Arc<Counts>,
}

impl Writer {
    async fn run(self, mut pending: watch::Receiver<Left>, done: watch::Sender<Tried>) {
        let mut failing = false;
        let mut too_big_reported = false;
        while pending.changed().await.is_ok() {
            let Left { number, handover } = pending.borrow_and_update().clone();
            let Some(handover) = handover else { continue };
            let result = match self.encode(&handover, &mut too_big_reported) {
                Ok(text) => match tokio::time::timeout(ANSWER_WITHIN, self.write(text)).await {
                    Ok(written) => written.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("no answer in {ANSWER_WITHIN:?}")),
                },
                Err(error) => Err(format!("encoding it: {error}")),
            };
            match (&result, failing) {
                (Err(error), false) => tracing::warn!(
                    configmap = %self.name, namespace = %self.namespace, %error,
                    "the handover is not written; a new leader would start its cooldowns afresh"
                ),
                (Ok(()), true) => tracing::info!(configmap = %self.name, "the handover is written again"),
                _ => {}
            }
            failing = result.is_err();
            let count = if failing { &self.counts.failed } else { &self.counts.written };
            count.fetch_add(1, Ordering::Relaxed);
            done.send_replace(Tried { number, written: !failing });
        }
    }

    /// The handover as JSON, without the policies' states if with them it would not fit.
    fn encode(&self, handover: &Handover, too_big_reported: &mut bool) -> serde_json::Result<String> {
        let text = serde_json::to_string(handover)?;
        if text.len() <= MAX_BYTES {
            return Ok(text);
        }
        if !*too_big_reported {
            tracing::warn!(
                bytes = text.len(),
                limit = MAX_BYTES,
                "the policies' states do not fit the handover; a new leader starts its policies afresh"
            );
            *too_big_reported = true;
        }
        let without = Handover { policies: None, ..handover.clone() };
        serde_json::to_string(&without)
    }

    async fn write(&self, text: String) -> Result<(), kube::Error> {
        let patch = serde_json::json!({ "data": { KEY: &text } });
        match self.api.patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            other => return other.map(drop),
        }
        let map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some([("app.kubernetes.io/managed-by".to_string(), "ballast".to_string())].into()),
                ..ObjectMeta::default()
            },
            data: Some([(KEY.to_string(), text)].into()),
            ..ConfigMap::default()
        };
        self.api.create(&PostParams::default(), &map).await.map(drop)
    }
}
