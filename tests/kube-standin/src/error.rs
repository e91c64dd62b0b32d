//! API errors, answered as `metav1.Status` objects with the reason and code a real server
//! gives, because clients branch on them (kube-rs on 410, kubectl drain on 429).

use serde_json::{Value, json};

use crate::resources::Resource;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String, details: Value) -> Self {
        ApiError { code, reason, message, details }
    }

    fn details(res: &Resource, name: &str) -> Value {
        json!({"name": name, "group": res.group, "kind": res.plural})
    }

    fn qualified(res: &Resource) -> String {
        if res.group.is_empty() { res.plural.to_string() } else { format!("{}.{}", res.plural, res.group) }
    }

    pub fn not_found(res: &Resource, name: &str) -> Self {
        let message = format!("{} \"{name}\" not found", Self::qualified(res));
        Self::new(404, "NotFound", message, Self::details(res, name))
    }

    pub fn already_exists(res: &Resource, name: &str) -> Self {
        let message = format!("{} \"{name}\" already exists", Self::qualified(res));
        Self::new(409, "AlreadyExists", message, Self::details(res, name))
    }

    pub fn conflict(res: &Resource, name: &str) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            Self::qualified(res)
        );
        Self::new(409, "Conflict", message, Self::details(res, name))
    }

    pub fn invalid(res: &Resource, name: &str, message: &str) -> Self {
        Self::new(422, "Invalid", format!("{} \"{name}\" is invalid: {message}", res.kind), Self::details(res, name))
    }

    pub fn bad_request(message: String) -> Self {
        Self::new(400, "BadRequest", message, Value::Null)
    }

    pub fn gone(asked: u64, oldest: u64) -> Self {
        Self::new(410, "Expired", format!("too old resource version: {asked} ({oldest})"), Value::Null)
    }

    pub fn too_many_requests(message: String, cause: String) -> Self {
        let details = json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]});
        Self::new(429, "TooManyRequests", message, details)
    }

    pub fn method_not_allowed(message: String) -> Self {
        Self::new(405, "MethodNotAllowed", message, Value::Null)
    }

    pub fn unsupported_media_type(message: String) -> Self {
        Self::new(415, "UnsupportedMediaType", message, Value::Null)
    }

    pub fn injected(code: u16) -> Self {
        let reason = match code {
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        Self::new(code, reason, format!("injected fault: {code}"), Value::Null)
    }

    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        });
        if !self.details.is_null() {
            status["details"] = self.details.clone();
        }
        status
    }
}
