//! A Kubernetes API stand-in for Ballast's tests.
//!
//! No registry ships a kube-apiserver, and mocks that replay canned answers cannot serve a
//! watch that resumes, so this is a small real server: an in-memory object store with one
//! resourceVersion counter, list and watch with selectors, bookmarks and 410 Gone, create,
//! update with optimistic concurrency, delete, patch (merge, strategic merge, apply), the
//! pods/eviction subresource honouring PodDisruptionBudgets, leases, ConfigMaps and metrics.k8s.io.
//! kube-rs and the real kubectl both drive it (`tests/kubectl.rs` in the daemon proves the
//! latter).
//!
//! Tests start it in-process with [`StandIn::start`], seed and inspect objects directly, and
//! inject faults: dropped watches, compaction (410), error answers.

mod discovery;
mod disruption;
mod error;
mod patch;
mod resources;
mod selector;
mod server;
mod store;
mod time;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::Method;
use serde_json::Value;

pub use error::ApiError;
use server::Shared;
pub use server::{Config, Fault};
use store::Write;

/// A running stand-in, serving on a loopback port until dropped.
pub struct StandIn {
    address: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl StandIn {
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(Config::default()).await
    }

    pub async fn start_with(config: Config) -> std::io::Result<Self> {
        Self::bind("127.0.0.1:0", config).await
    }

    pub async fn bind(address: &str, config: Config) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config, address.to_string()));
        let app = Router::new().fallback(server::handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "stand-in stopped");
            }
        });
        Ok(StandIn { address, shared, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A kubeconfig for kubectl, pointing at this server without credentials.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {}\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: standin\n    namespace: default\ncurrent-context: standin\nusers:\n- name: standin\n  user: {{}}\n",
            self.url()
        )
    }

    fn resource_of(api_version: &str, kind: &str) -> Result<usize, ApiError> {
        resources::for_object(api_version, kind)
            .ok_or_else(|| ApiError::bad_request(format!("the stand-in does not serve {api_version} {kind}")))
    }

    /// Creates an object, as a controller or a user would; its namespace defaults to `default`.
    pub fn create(&self, object: Value) -> Result<Value, ApiError> {
        let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
        let resource = Self::resource_of(api_version, kind)?;
        let ns = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default").to_string();
        let mut store = self.shared.lock_store();
        let created = store.create(resource, &ns, object)?;
        server::after_write(&mut store, resource, &ns);
        Ok((*created).clone())
    }

    /// Merges a patch into an object, status included: the tests' way to play the kubelet
    /// (a pod starts running) or a controller.
    pub fn patch(&self, api_version: &str, kind: &str, ns: &str, name: &str, patch: &Value) -> Result<Value, ApiError> {
        let resource = Self::resource_of(api_version, kind)?;
        let mut store = self.shared.lock_store();
        let mut object = (*store.get(resource, ns, name)?).clone();
        patch::merge(&mut object, patch);
        if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        let updated = store.update(resource, ns, name, object, Write::Whole)?;
        server::after_write(&mut store, resource, ns);
        Ok((*updated).clone())
    }

    pub fn delete(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Result<Value, ApiError> {
        let resource = Self::resource_of(api_version, kind)?;
        let mut store = self.shared.lock_store();
        let deleted = store.delete(resource, ns, name)?;
        server::after_write(&mut store, resource, ns);
        Ok((*deleted).clone())
    }

    pub fn get(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let resource = Self::resource_of(api_version, kind).ok()?;
        self.shared.lock_store().get(resource, ns, name).ok().map(|v| (*v).clone())
    }

    /// Objects of a kind, in one namespace or all.
    pub fn list(&self, api_version: &str, kind: &str, ns: Option<&str>) -> Vec<Value> {
        let Ok(resource) = Self::resource_of(api_version, kind) else { return Vec::new() };
        self.shared.lock_store().list(resource, ns).map(|v| (**v).clone()).collect()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock_store().resource_version()
    }

    /// Ends every open watch, as a server restart or a load balancer timeout does.
    pub fn drop_watches(&self) {
        self.shared.drop_watches.send_modify(|g| *g += 1);
    }

    /// Forgets the change history: watches resuming from an older version get 410 Gone.
    pub fn compact(&self) {
        self.shared.lock_store().compact();
    }

    /// Answers the next `times` requests matching `method` (any when `None`) and containing
    /// `path` with `status`.
    pub fn inject(&self, method: Option<&str>, path: &str, status: u16, times: u32) {
        let method = method.and_then(|m| Method::from_bytes(m.as_bytes()).ok());
        self.shared.faults().push(Fault { method, path: path.to_string(), status, times });
    }

    pub fn clear_faults(&self) {
        self.shared.faults().clear();
    }

    /// Serves metrics.k8s.io or stops serving it (a cluster without metrics-server).
    pub fn set_metrics(&self, on: bool) {
        self.shared.set_metrics(on);
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}
