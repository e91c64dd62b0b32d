//! The HTTP side: one handler that parses Kubernetes API paths and dispatches to the store,
//! rather than a router table, because API paths overlap in ways a router cannot express
//! (`/api/v1/namespaces/{name}` is an object, `/api/v1/namespaces/{ns}/pods` a collection).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::disruption;
use crate::error::ApiError;
use crate::patch;
use crate::resources::{self, RESOURCES, Resource};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Store, Write};
use crate::watch::{self as watching, WatchRequest};

/// How the stand-in behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// How often an idle watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// Changes kept for watches to resume from; older versions get 410 Gone.
    pub history_limit: usize,
    /// Serve metrics.k8s.io (NodeMetrics, PodMetrics), as a cluster with metrics-server does.
    pub metrics: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { bookmark_interval: Duration::from_secs(1), history_limit: 200_000, metrics: true }
    }
}

/// A fault to inject: the next `times` requests whose method matches and whose path contains
/// `path` are answered with `status`.
#[derive(Clone, Debug)]
pub struct Fault {
    pub method: Option<Method>,
    pub path: String,
    pub status: u16,
    pub times: u32,
}

pub struct Shared {
    store: Mutex<Store>,
    faults: Mutex<Vec<Fault>>,
    pub drop_watches: watch::Sender<u64>,
    pub config: Config,
    metrics: std::sync::atomic::AtomicBool,
    pub address: String,
}

impl Shared {
    pub fn new(config: Config, address: String) -> Self {
        Shared {
            store: Mutex::new(Store::new(config.history_limit)),
            faults: Mutex::new(Vec::new()),
            drop_watches: watch::channel(0).0,
            metrics: config.metrics.into(),
            config,
            address,
        }
    }

    /// The store; a panic while it was held cannot leave it inconsistent (every write is one
    /// insert), so a poisoned lock is taken over.
    pub fn lock_store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn faults(&self) -> MutexGuard<'_, Vec<Fault>> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn metrics(&self) -> bool {
        self.metrics.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_metrics(&self, on: bool) {
        self.metrics.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn take_fault(&self, method: &Method, path: &str) -> Option<u16> {
        let mut faults = self.faults();
        let i = faults
            .iter()
            .position(|f| f.times > 0 && f.method.as_ref().is_none_or(|m| m == method) && path.contains(&f.path))?;
        faults[i].times -= 1;
        let status = faults[i].status;
        if faults[i].times == 0 {
            faults.remove(i);
        }
        Some(status)
    }
}

/// Writes that change pods or budgets bring budget status up to date, as the disruption
/// controller would.
pub fn after_write(store: &mut Store, resource: usize, namespace: &str) {
    let r = &RESOURCES[resource];
    if (r.group.is_empty() && r.plural == "pods") || r.plural == "poddisruptionbudgets" {
        disruption::reconcile(store, namespace);
    }
}

fn json_response(code: u16, body: &Value) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap_or_default()))
        .unwrap_or_default()
}

fn error_response(error: &ApiError) -> Response {
    json_response(error.code, &error.status())
}

pub async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/').to_string();
    if let Some(code) = shared.take_fault(&method, &path) {
        return error_response(&ApiError::injected(code));
    }
    let query: HashMap<String, String> = serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    let request = Request { method, path: &path, query: &query, headers: &headers, body: &body };
    match route(&shared, &request) {
        Ok(response) => response,
        Err(error) => error_response(&error),
    }
}

struct Request<'a> {
    method: Method,
    path: &'a str,
    query: &'a HashMap<String, String>,
    headers: &'a HeaderMap,
    body: &'a Bytes,
}

fn not_served() -> ApiError {
    ApiError {
        code: 404,
        reason: "NotFound",
        message: "the server could not find the requested resource".into(),
        details: Value::Null,
    }
}

fn route(shared: &Arc<Shared>, request: &Request<'_>) -> Result<Response, ApiError> {
    let segments: Vec<&str> = request.path.split('/').skip(1).collect();
    let metrics = shared.metrics();
    match segments.as_slice() {
        ["version"] => Ok(json_response(200, &crate::discovery::version())),
        ["healthz" | "readyz" | "livez"] => Ok(Response::new(Body::from("ok"))),
        ["api"] => Ok(json_response(200, &crate::discovery::core_versions(&shared.address))),
        ["apis"] => Ok(json_response(200, &crate::discovery::groups(metrics))),
        ["api", "v1"] => {
            crate::discovery::resources("", "v1", metrics).map(|v| json_response(200, &v)).ok_or_else(not_served)
        }
        ["apis", group, version] => {
            crate::discovery::resources(group, version, metrics).map(|v| json_response(200, &v)).ok_or_else(not_served)
        }
        ["api", "v1", rest @ ..] => resource_request(shared, request, "", "v1", rest),
        ["apis", group, version, rest @ ..] => resource_request(shared, request, group, version, rest),
        _ => Err(not_served()),
    }
}

fn resource_request(
    shared: &Arc<Shared>,
    request: &Request<'_>,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    let (resource, namespace, tail) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if resources::find(group, version, plural).is_some_and(|r| RESOURCES[r].namespaced) =>
        {
            (resources::find(group, version, plural).ok_or_else(not_served)?, Some(ns.to_string()), tail)
        }
        [plural, tail @ ..] => (resources::find(group, version, plural).ok_or_else(not_served)?, None, tail),
        [] => return Err(not_served()),
    };
    let res = &RESOURCES[resource];
    if res.is_metrics() && !shared.metrics() {
        return Err(not_served());
    }
    if res.namespaced && namespace.is_none() && !tail.is_empty() {
        return Err(not_served());
    }
    if res.read_only && request.method != Method::GET {
        return Err(ApiError::method_not_allowed(format!("{} is read-only", res.plural)));
    }
    let ns = namespace.clone().unwrap_or_default();
    match (tail, &request.method) {
        ([], &Method::GET) if flag(request.query, "watch") => {
            if res.read_only {
                return Err(ApiError::method_not_allowed(format!("{} cannot be watched", res.plural)));
            }
            let since = match request.query.get("resourceVersion").map(String::as_str) {
                None | Some("") | Some("0") => None,
                Some(v) => {
                    Some(v.parse().map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {v:?}")))?)
                }
            };
            watching::serve(
                shared.clone(),
                WatchRequest {
                    resource,
                    namespace,
                    labels: labels(request.query)?,
                    fields: fields(request.query)?,
                    since,
                    bookmarks: flag(request.query, "allowWatchBookmarks"),
                    timeout: request.query.get("timeoutSeconds").and_then(|t| t.parse().ok()).map(Duration::from_secs),
                },
            )
        }
        ([], &Method::GET) => Ok(json_response(200, &list(shared, resource, namespace.as_deref(), request.query)?)),
        ([], &Method::POST) => {
            let object = body_json(request.body)?;
            let mut store = shared.lock_store();
            let created = store.create(resource, &ns, object)?;
            after_write(&mut store, resource, &ns);
            Ok(json_response(201, &created))
        }
        ([name], &Method::GET) | ([name, "status"], &Method::GET) => {
            let object = shared.lock_store().get(resource, &ns, name)?;
            Ok(json_response(200, &object))
        }
        ([name], &Method::PUT) | ([name, "status"], &Method::PUT) => {
            let write = if tail.len() == 2 { Write::Status } else { Write::Main };
            let object = body_json(request.body)?;
            let mut store = shared.lock_store();
            let updated = store.update(resource, &ns, name, object, write)?;
            after_write(&mut store, resource, &ns);
            Ok(json_response(200, &updated))
        }
        ([name], &Method::PATCH) | ([name, "status"], &Method::PATCH) => {
            let write = if tail.len() == 2 { Write::Status } else { Write::Main };
            patch_object(shared, request, resource, &ns, name, write)
        }
        ([name], &Method::DELETE) => {
            let mut store = shared.lock_store();
            let deleted = store.delete(resource, &ns, name)?;
            after_write(&mut store, resource, &ns);
            Ok(json_response(200, &deleted))
        }
        ([name, "eviction"], &Method::POST) if res.subresources.contains(&"eviction") => {
            disruption::evict(&mut shared.lock_store(), &ns, name)?;
            Ok(json_response(
                201,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{} {} is not supported by the stand-in",
            request.method, request.path
        ))),
    }
}

fn flag(query: &HashMap<String, String>, name: &str) -> bool {
    query.get(name).is_some_and(|v| v == "true" || v == "1")
}

fn labels(query: &HashMap<String, String>) -> Result<LabelSelector, ApiError> {
    LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str)).map_err(ApiError::bad_request)
}

fn fields(query: &HashMap<String, String>) -> Result<FieldSelector, ApiError> {
    FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str)).map_err(ApiError::bad_request)
}

fn body_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
}

fn list(
    shared: &Shared,
    resource: usize,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    let res: &Resource = &RESOURCES[resource];
    let (labels, fields) = (labels(query)?, fields(query)?);
    let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).filter(|&l| l > 0).unwrap_or(usize::MAX);
    // The continue token is the last key returned: namespace and name, joined by '/'
    // (neither may contain one).
    let after = query
        .get("continue")
        .filter(|c| !c.is_empty())
        .map(|c| c.split_once('/').map(|(ns, n)| (ns.to_string(), n.to_string())))
        .map(|k| k.ok_or_else(|| ApiError::bad_request("invalid continue token".into())))
        .transpose()?;
    let store = shared.lock_store();
    let mut items = Vec::new();
    let mut next = None;
    let mut last = None;
    for (key, object) in store.list_after(resource, namespace, after) {
        if !(labels.matches(object) && fields.matches(object)) {
            continue;
        }
        if items.len() == limit {
            next = last.map(|(ns, name): &(String, String)| format!("{ns}/{name}"));
            break;
        }
        items.push((**object).clone());
        last = Some(key);
    }
    let mut metadata = json!({"resourceVersion": store.resource_version().to_string()});
    if let Some(next) = next {
        metadata["continue"] = json!(next);
    }
    Ok(
        json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(), "metadata": metadata, "items": items}),
    )
}

fn patch_object(
    shared: &Shared,
    request: &Request<'_>,
    resource: usize,
    ns: &str,
    name: &str,
    write: Write,
) -> Result<Response, ApiError> {
    let content_type = request
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let body = body_json(request.body)?;
    let mut store = shared.lock_store();
    let current = match store.get(resource, ns, name) {
        Ok(current) => current,
        Err(missing) if content_type == "application/apply-patch+yaml" => {
            // Server-side apply creates what does not exist.
            let _ = missing;
            let mut object = body;
            object["metadata"]["name"] = json!(name);
            let created = store.create(resource, ns, object)?;
            after_write(&mut store, resource, ns);
            return Ok(json_response(201, &created));
        }
        Err(e) => return Err(e),
    };
    let mut object = (*current).clone();
    match content_type.as_str() {
        "application/merge-patch+json" => patch::merge(&mut object, &body),
        "application/strategic-merge-patch+json" | "application/apply-patch+yaml" => {
            patch::strategic_merge(&mut object, &body)
        }
        other => {
            return Err(ApiError::unsupported_media_type(format!(
                "the stand-in does not support patches of type {other:?}: use merge, strategic merge or apply"
            )));
        }
    }
    // A patch is checked against the version only when it names one.
    if body.pointer("/metadata/resourceVersion").is_none()
        && let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut)
    {
        m.remove("resourceVersion");
    }
    let updated = store.update(resource, ns, name, object, write)?;
    after_write(&mut store, resource, ns);
    Ok(json_response(200, &updated))
}
