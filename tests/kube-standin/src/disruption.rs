//! The part of the disruption controller and the eviction subresource that tests need:
//! PodDisruptionBudget status kept current as pods change, and evictions refused with 429
//! when a budget allows no disruption.
//!
//! Simplification: a budget's expected pod count is the number of pods it selects, where the
//! real controller asks the pods' controller for its scale. The two agree whenever a workload
//! has all its replicas, which is when the tests evict.

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::resources;
use crate::selector::LabelSelector;
use crate::store::Store;

fn pods() -> usize {
    resources::find("", "v1", "pods").unwrap_or_default()
}

fn budgets() -> usize {
    resources::find("policy", "v1", "poddisruptionbudgets").unwrap_or_default()
}

/// A running, ready pod.
pub fn healthy(pod: &Value) -> bool {
    let running = pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running");
    let unready = pod.pointer("/status/conditions").and_then(Value::as_array).into_iter().flatten().any(|c| {
        c.get("type").and_then(Value::as_str) == Some("Ready")
            && c.get("status").and_then(Value::as_str) != Some("True")
    });
    running && !unready
}

/// An int-or-string (`2` or `"50%"`) against a total; percentages round up, as Kubernetes does.
fn scaled(value: &Value, total: u64) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => match s.strip_suffix('%') {
            Some(p) => p.trim().parse::<u64>().ok().map(|p| (p * total).div_ceil(100)),
            None => s.parse().ok(),
        },
        _ => None,
    }
}

/// What a budget's status says now: (expected, healthy, desired healthy, allowed).
fn assess(store: &Store, budget: &Value) -> (u64, u64, u64, u64) {
    let namespace = budget.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
    let selector =
        budget.pointer("/spec/selector").map(LabelSelector::from_object).and_then(Result::ok).unwrap_or_default();
    let selected: Vec<_> = store.list(pods(), Some(namespace)).filter(|p| selector.matches(p)).collect();
    let expected = selected.len() as u64;
    let healthy = selected.iter().filter(|p| healthy(p)).count() as u64;
    let desired = if let Some(min) = budget.pointer("/spec/minAvailable") {
        scaled(min, expected).unwrap_or(expected)
    } else if let Some(max) = budget.pointer("/spec/maxUnavailable") {
        expected.saturating_sub(scaled(max, expected).unwrap_or(0))
    } else {
        expected
    };
    (expected, healthy, desired, healthy.saturating_sub(desired))
}

/// Brings the status of every budget in a namespace up to date, writing only those that
/// changed (each write is a watch event).
pub fn reconcile(store: &mut Store, namespace: &str) {
    let all: Vec<_> = store.list(budgets(), Some(namespace)).cloned().collect();
    for budget in all {
        let (expected, healthy, desired, allowed) = assess(store, &budget);
        let status = json!({
            "expectedPods": expected, "currentHealthy": healthy, "desiredHealthy": desired,
            "disruptionsAllowed": allowed,
            "observedGeneration": budget.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        });
        if budget.get("status") == Some(&status) {
            continue;
        }
        let mut updated = (*budget).clone();
        updated["status"] = status;
        let name = budget.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        if let Some(m) = updated.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        if let Err(error) = store.update(budgets(), namespace, &name, updated, crate::store::Write::Status) {
            tracing::warn!(%error, "cannot update a disruption budget's status");
        }
    }
}

/// The eviction subresource: deletes the pod unless a budget selecting it allows no
/// disruption, which answers 429 as the real server does.
pub fn evict(store: &mut Store, namespace: &str, name: &str) -> Result<(), ApiError> {
    let pod = store.get(pods(), namespace, name)?;
    let matching: Vec<_> = store
        .list(budgets(), Some(namespace))
        .filter(|b| {
            b.pointer("/spec/selector")
                .map(LabelSelector::from_object)
                .and_then(Result::ok)
                .is_some_and(|s| s.matches(&pod))
        })
        .cloned()
        .collect();
    if matching.len() > 1 {
        return Err(ApiError {
            code: 500,
            reason: "InternalError",
            message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
                .into(),
            details: Value::Null,
        });
    }
    if let Some(budget) = matching.first()
        && healthy(&pod)
    {
        let (_, current, desired, allowed) = assess(store, budget);
        if allowed == 0 {
            let budget_name = budget.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            return Err(ApiError::too_many_requests(
                "Cannot evict pod as it would violate the pod's disruption budget.".into(),
                format!("The disruption budget {budget_name} needs {desired} healthy pods and has {current} currently"),
            ));
        }
    }
    store.delete(pods(), namespace, name)?;
    reconcile(store, namespace);
    Ok(())
}
