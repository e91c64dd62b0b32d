//! The admin port: `/metrics` (Prometheus), `/healthz` (the process and its tick loop are
//! alive) and `/readyz` (watch caches synced, the cloud and cluster observed, policies
//! loaded). Plain HTTP, unauthenticated, read-only, as Cluster Autoscaler's and Karpenter's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::{Format, Metrics};
use crate::runner::Heartbeat;

/// The `admin:` section of the daemon's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct AdminSettings {
    pub enabled: bool,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; all interfaces by default,
    /// so that Prometheus and the kubelet reach the pod.
    pub listen: SocketAddr,
    /// `/healthz` fails when the tick loop has not come round for this long (a tick stuck
    /// past every deadline), so that the kubelet restarts the pod. As Cluster Autoscaler's
    /// `--max-inactivity`.
    #[serde(with = "crate::duration")]
    pub max_inactivity: Duration,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_inactivity: Duration::from_secs(600),
        }
    }
}

impl AdminSettings {
    /// Errors name the field and the value.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_inactivity < Duration::from_secs(1) {
            return Err(format!("max-inactivity must be at least 1s, not {:?}", self.max_inactivity));
        }
        Ok(())
    }
}

/// One readiness condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// What was seen, for a person reading `/readyz`.
    pub detail: String,
}

/// Works out the readiness conditions now.
pub type ReadyProbe = Arc<dyn Fn() -> Vec<Check> + Send + Sync>;

/// What the admin port serves from.
pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub heartbeat: Arc<Heartbeat>,
    pub max_inactivity: Duration,
    pub ready: ReadyProbe,
}

/// The admin port's routes.
pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(admin)
}

async fn metrics(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let body = tokio::task::spawn_blocking(move || admin.metrics.render(format)).await.unwrap_or_default();
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

async fn healthz(State(admin): State<Arc<Admin>>) -> Response {
    let age = admin.heartbeat.age();
    if age > admin.max_inactivity {
        let body = format!(
            "unhealthy: the tick loop has not come round for {} (admin.max-inactivity {})\n",
            humantime::format_duration(round(age)),
            humantime::format_duration(admin.max_inactivity)
        );
        return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    }
    (StatusCode::OK, format!("ok: the tick loop came round {} ago\n", humantime::format_duration(round(age))))
        .into_response()
}

fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

async fn readyz(State(admin): State<Arc<Admin>>) -> Response {
    let checks = (admin.ready)();
    let ready = checks.iter().all(|c| c.ok);
    let mut body = String::new();
    for c in &checks {
        body.push_str(&format!("[{}] {}: {}\n", if c.ok { "+" } else { "-" }, c.name, c.detail));
    }
    body.push_str(if ready { "ready\n" } else { "not ready\n" });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, body).into_response()
}

/// Serves the admin port on `listener` until `shutdown` resolves.
///
/// # Errors
/// The listener fails (accept errors are retried by axum; this is the rest).
pub async fn serve(
    admin: Arc<Admin>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(admin)).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::policy::Live;

    fn admin(ready: bool) -> (Arc<Admin>, Arc<Heartbeat>) {
        let heartbeat = Arc::new(Heartbeat::default());
        let metrics = Metrics::new(Arc::new(Live::default()), Arc::new(super::super::AdapterFigures::default));
        let check = Check { name: "kubernetes", ok: ready, detail: "pods not yet listed".into() };
        let admin = Admin {
            metrics,
            heartbeat: heartbeat.clone(),
            max_inactivity: Duration::from_secs(600),
            ready: Arc::new(move || vec![check.clone()]),
        };
        (Arc::new(admin), heartbeat)
    }

    async fn get(admin: &Arc<Admin>, path: &str) -> (StatusCode, String) {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        let response = router(admin.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn healthz_fails_once_the_tick_loop_stops_coming_round() {
        let (admin, heartbeat) = admin(true);
        assert_eq!(get(&admin, "/healthz").await.0, StatusCode::OK);
        tokio::time::advance(Duration::from_secs(601)).await;
        let (status, body) = get(&admin, "/healthz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("10m 1s") && body.contains("admin.max-inactivity 10m"), "{body}");
        heartbeat.beat();
        assert_eq!(get(&admin, "/healthz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn readyz_lists_each_condition_and_fails_on_any() {
        let (status, body) = get(&admin(false).0, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "[-] kubernetes: pods not yet listed\nnot ready\n");
        assert_eq!(get(&admin(true).0, "/readyz").await.0, StatusCode::OK);
    }
}
