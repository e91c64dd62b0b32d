//! Values from an API that do not parse or are missing (a quantity like `"12x"`, an Auto
//! Scaling group without a MinSize): each is logged once per object and field, counted, and
//! the object is treated as unknown rather than as empty. In the Kubernetes adapter a node
//! whose allocatable cannot be read is left out of the view, a pod whose requests cannot be
//! read keeps its node (a removal blocker) and is not sized for, and usage that cannot be
//! read is absent, not zero. In the AWS adapter a group whose sizes are missing is left out.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Unreadable values seen so far.
#[derive(Debug, Default)]
pub struct Unreadable {
    count: AtomicU64,
    logged: Mutex<HashSet<(String, String)>>,
    last: Mutex<Option<String>>,
}

impl Unreadable {
    /// Records that `field` of `object` held `value`, which `error` explains.
    pub fn report(&self, object: &str, field: &str, value: &str, error: &str) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let message = format!("{object}: {field} = {value:?} cannot be read ({error}); treated as unknown");
        let first =
            self.logged.lock().map(|mut seen| seen.insert((object.to_string(), field.to_string()))).unwrap_or(true);
        if first {
            tracing::warn!(%object, %field, %value, %error, "unreadable value from the API; the object is treated as unknown");
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Some(message);
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The most recent, naming object, field and value.
    pub fn last(&self) -> Option<String> {
        self.last.lock().ok().and_then(|l| l.clone())
    }
}

/// A value that is missing or does not parse: which field, what it held, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadValue {
    pub field: String,
    pub value: String,
    pub error: String,
}

impl BadValue {
    /// The same value, its field named from `prefix`.
    pub fn under(self, prefix: &str) -> Self {
        BadValue { field: format!("{prefix}.{}", self.field), ..self }
    }

    pub fn report_to(&self, unreadable: &Unreadable, object: &str) {
        unreadable.report(object, &self.field, &self.value, &self.error);
    }
}

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {:?} cannot be read ({})", self.field, self.value, self.error)
    }
}
