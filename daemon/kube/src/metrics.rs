//! Usage from metrics.k8s.io (metrics-server), read periodically: the API has no watch.
//!
//! A cluster without metrics-server is normal. Its absence is reported once and in the
//! adapter's status, usage stays unknown (policies then judge by requests), and the poll
//! keeps trying so that installing metrics-server later needs no restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballast_sdk::Resources;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client};
use serde_json::Value;

use super::watch::Feed;
use ballast_engine::unreadable::{BadValue, Unreadable};

/// Whether usage is available.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricsStatus {
    /// Not read yet.
    Unknown,
    Available,
    /// The API is not served or failed; why.
    Absent(String),
}

fn api(client: &Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", kind);
    Api::all_with(client.clone(), &ApiResource::from_gvk_with_plural(&gvk, plural))
}

/// CPU and memory of a `usage` object (CPU in nanocores from metrics-server).
fn usage(value: Option<&Value>, at: &str) -> Result<Resources, BadValue> {
    let q = |k: &str, scale: f64| -> Result<u64, BadValue> {
        let Some(field) = value.and_then(|u| u.get(k)) else { return Ok(0) };
        let text = field.as_str().map_or_else(|| field.to_string(), str::to_string);
        ballast_sdk::quantity::parse(&text, scale).map_err(|error| BadValue {
            field: format!("{at}.{k}"),
            value: text,
            error,
        })
    };
    Ok(Resources { cpu_millis: q("cpu", 1000.0)?, memory_bytes: q("memory", 1.0)?, ..Resources::ZERO })
}

type Usage = (HashMap<String, Resources>, HashMap<(String, String), Resources>);

/// Reads all usage; a node or pod whose usage cannot be read is left out (unknown, not 0).
async fn read(client: &Client, unreadable: &Unreadable) -> Result<Usage, kube::Error> {
    let lp = ListParams::default();
    let mut nodes = HashMap::new();
    for node in api(client, "NodeMetrics", "nodes").list(&lp).await? {
        let name = node.metadata.name.clone().unwrap_or_default();
        match usage(node.data.get("usage"), "usage") {
            Ok(used) => {
                nodes.insert(name, used);
            }
            Err(bad) => bad.report_to(unreadable, &format!("NodeMetrics {name}")),
        }
    }
    let mut pods = HashMap::new();
    'pods: for pod in api(client, "PodMetrics", "pods").list(&lp).await? {
        let key = (pod.metadata.namespace.clone().unwrap_or_default(), pod.metadata.name.clone().unwrap_or_default());
        let mut total = Resources::default();
        let containers = pod.data.get("containers").and_then(Value::as_array).into_iter().flatten();
        for (i, c) in containers.enumerate() {
            // The field path is built only for an error: this runs for every container.
            match usage(c.get("usage"), "usage").map_err(|bad| bad.under(&format!("containers[{i}]"))) {
                Ok(used) => total = total.saturating_add(&used),
                Err(bad) => {
                    bad.report_to(unreadable, &format!("PodMetrics {}/{}", key.0, key.1));
                    continue 'pods;
                }
            }
        }
        pods.insert(key, total);
    }
    Ok((nodes, pods))
}

/// Polls metrics.k8s.io every `interval` until aborted.
pub async fn poll(client: Client, feed: Arc<Feed>, status: Arc<Mutex<MetricsStatus>>, interval: Duration) {
    loop {
        let unreadable = feed.read().unreadable.clone();
        let result = read(&client, &unreadable).await;
        let now = match &result {
            Ok(_) => MetricsStatus::Available,
            Err(kube::Error::Api(s)) if s.code == 404 => {
                MetricsStatus::Absent("metrics.k8s.io is not served (is metrics-server installed?)".into())
            }
            Err(other) => MetricsStatus::Absent(other.to_string()),
        };
        let before = std::mem::replace(&mut *status.lock().unwrap_or_else(|p| p.into_inner()), now.clone());
        match result {
            Ok((nodes, pods)) => {
                if before != MetricsStatus::Available {
                    tracing::info!(nodes = nodes.len(), pods = pods.len(), "usage from metrics.k8s.io available");
                }
                feed.write().set_usage(nodes, pods);
            }
            Err(_) => {
                if before != now {
                    if let MetricsStatus::Absent(why) = &now {
                        tracing::warn!(reason = %why, "no usage from metrics.k8s.io; policies see requests only");
                    }
                    // Stale usage would mislead more than none.
                    feed.write().set_usage(HashMap::new(), HashMap::new());
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}
