//! The object store: every object by resource, namespace and name, one resourceVersion
//! counter for all of them (as etcd's revision), and a bounded history of changes that
//! watches resume from.
//!
//! A watch that asks for a version older than the history holds gets 410 Gone, exactly the
//! case a real server reaches after etcd compaction; [`Store::compact`] forces it in tests.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::resources::{RESOURCES, Resource};

/// What an update may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// The main resource: the stored status is kept where the type has a status subresource.
    Main,
    /// The `status` subresource: only the status changes.
    Status,
    /// Everything: the tests' own writes, which play the kubelet and controllers.
    Whole,
}

/// Namespace (empty for cluster-scoped objects) and name.
pub type Key = (String, String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "ADDED",
            ChangeKind::Modified => "MODIFIED",
            ChangeKind::Deleted => "DELETED",
        }
    }
}

/// Where a watch receives the changes to come.
pub type Changes = broadcast::Receiver<Arc<Change>>;

/// One write, as watches see it.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub resource: usize,
    pub kind: ChangeKind,
    /// The object after the change (for a delete, as it was).
    pub object: Arc<Value>,
    /// The object before a modification, so a filtered watch can tell an object that
    /// stopped matching its selector (sent as DELETED) from one that changed.
    pub previous: Option<Arc<Value>>,
}

pub struct Store {
    rv: u64,
    objects: Vec<BTreeMap<Key, Arc<Value>>>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Watches may resume from this version or later.
    oldest_resumable: u64,
    uids: u64,
    changes: broadcast::Sender<Arc<Change>>,
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (changes, _) = broadcast::channel(1 << 16);
        Store {
            rv: 1,
            objects: RESOURCES.iter().map(|_| BTreeMap::new()).collect(),
            history: VecDeque::new(),
            history_limit,
            oldest_resumable: 1,
            uids: 0,
            changes,
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, resource: usize, namespace: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        self.objects[resource]
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&RESOURCES[resource], name))
    }

    /// Objects of a resource, in one namespace or all, in key order.
    pub fn list<'a>(
        &'a self,
        resource: usize,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Arc<Value>> + 'a {
        self.objects[resource].iter().filter(move |((ns, _), _)| namespace.is_none_or(|n| n == ns)).map(|(_, v)| v)
    }

    /// Objects after `after` (exclusive) in key order, for paged lists.
    pub fn list_after<'a>(
        &'a self,
        resource: usize,
        namespace: Option<&'a str>,
        after: Option<Key>,
    ) -> impl Iterator<Item = (&'a Key, &'a Arc<Value>)> + 'a {
        use std::ops::Bound;
        let start = match after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Unbounded,
        };
        self.objects[resource]
            .range((start, Bound::Unbounded))
            .filter(move |((ns, _), _)| namespace.is_none_or(|n| n == ns))
    }

    pub fn create(&mut self, resource: usize, namespace: &str, mut object: Value) -> Result<Arc<Value>, ApiError> {
        let res = &RESOURCES[resource];
        let namespace = scope(res, namespace);
        check_namespace(res, &object, &namespace)?;
        let mut name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        if name.is_empty() {
            let prefix = object.pointer("/metadata/generateName").and_then(Value::as_str).unwrap_or_default();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    res,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
            name = format!("{prefix}{:05x}", self.uids + 1);
        }
        let key = (namespace.clone(), name.clone());
        if self.objects[resource].contains_key(&key) {
            return Err(ApiError::already_exists(res, &name));
        }
        self.uids += 1;
        self.rv += 1;
        stamp_type(res, &mut object);
        let meta = metadata(&mut object);
        meta.insert("name".into(), json!(name));
        if res.namespaced {
            meta.insert("namespace".into(), json!(namespace));
        }
        meta.insert("uid".into(), json!(format!("00000000-0000-4000-8000-{:012x}", self.uids)));
        meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        meta.entry("creationTimestamp").or_insert_with(|| json!(crate::time::now_rfc3339()));
        meta.insert("generation".into(), json!(1));
        if res.plural == "pods" && object.get("status").is_none() {
            object["status"] = json!({"phase": "Pending"});
        }
        let object = Arc::new(object);
        self.objects[resource].insert(key, object.clone());
        self.publish(resource, ChangeKind::Added, object.clone(), None);
        Ok(object)
    }

    /// Replaces an object. A `metadata.resourceVersion` in the new object must match the
    /// stored one (optimistic concurrency); a write to the main resource keeps the stored
    /// status and a write to `status` changes nothing else, as the real server does for types
    /// with a status subresource.
    pub fn update(
        &mut self,
        resource: usize,
        namespace: &str,
        name: &str,
        mut object: Value,
        scope_of_write: Write,
    ) -> Result<Arc<Value>, ApiError> {
        let res = &RESOURCES[resource];
        let namespace = scope(res, namespace);
        check_namespace(res, &object, &namespace)?;
        let key = (namespace, name.to_string());
        let current = self.objects[resource].get(&key).cloned().ok_or_else(|| ApiError::not_found(res, name))?;
        if let Some(given) = object.pointer("/metadata/name").and_then(Value::as_str)
            && given != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(given) = object.pointer("/metadata/resourceVersion").and_then(Value::as_str)
            && !given.is_empty()
            && Some(given) != current.pointer("/metadata/resourceVersion").and_then(Value::as_str)
        {
            return Err(ApiError::conflict(res, name));
        }
        let has_status = res.subresources.contains(&"status");
        if scope_of_write == Write::Status {
            let status = object.get("status").cloned().unwrap_or(Value::Null);
            object = (*current).clone();
            object["status"] = status;
        } else if has_status && scope_of_write == Write::Main {
            match current.get("status") {
                Some(status) => object["status"] = status.clone(),
                None => {
                    if let Some(o) = object.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        self.rv += 1;
        stamp_type(res, &mut object);
        let generation = current.pointer("/metadata/generation").and_then(Value::as_u64).unwrap_or(1);
        let spec_changed = object.get("spec") != current.get("spec");
        let meta = metadata(&mut object);
        meta.insert("name".into(), json!(name));
        if res.namespaced {
            meta.insert("namespace".into(), json!(key.0));
        }
        for kept in ["uid", "creationTimestamp"] {
            if let Some(v) = current.pointer(&format!("/metadata/{kept}")) {
                meta.insert(kept.into(), v.clone());
            }
        }
        meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        meta.insert("generation".into(), json!(generation + u64::from(spec_changed)));
        let object = Arc::new(object);
        self.objects[resource].insert(key, object.clone());
        self.publish(resource, ChangeKind::Modified, object.clone(), Some(current));
        Ok(object)
    }

    pub fn delete(&mut self, resource: usize, namespace: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        let res = &RESOURCES[resource];
        let key = (scope(res, namespace), name.to_string());
        let current = self.objects[resource].remove(&key).ok_or_else(|| ApiError::not_found(res, name))?;
        self.rv += 1;
        let mut object = (*current).clone();
        metadata(&mut object).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let object = Arc::new(object);
        self.publish(resource, ChangeKind::Deleted, object.clone(), None);
        Ok(object)
    }

    fn publish(&mut self, resource: usize, kind: ChangeKind, object: Arc<Value>, previous: Option<Arc<Value>>) {
        let change = Arc::new(Change { rv: self.rv, resource, kind, object, previous });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.oldest_resumable = old.rv;
            }
        }
        // No receiver is not an error: nobody is watching.
        let _ = self.changes.send(change);
    }

    /// Forgets the history: a watch resuming from any earlier version now gets 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest_resumable = self.rv;
    }

    /// The changes after `since` and a receiver for those to come, taken together under the
    /// store's lock so that nothing falls between them.
    pub fn watch_from(&self, since: u64) -> Result<(Vec<Arc<Change>>, Changes), ApiError> {
        if since < self.oldest_resumable {
            return Err(ApiError::gone(since, self.oldest_resumable));
        }
        let past = self.history.iter().filter(|c| c.rv > since).cloned().collect();
        Ok((past, self.changes.subscribe()))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }
}

fn scope(res: &Resource, namespace: &str) -> String {
    if res.namespaced { namespace.to_string() } else { String::new() }
}

fn check_namespace(res: &Resource, object: &Value, namespace: &str) -> Result<(), ApiError> {
    if !res.namespaced {
        return Ok(());
    }
    match object.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(given) if !given.is_empty() && given != namespace => Err(ApiError::bad_request(format!(
            "the namespace of the provided object ({given}) does not match the namespace sent on the request ({namespace})"
        ))),
        _ => Ok(()),
    }
}

fn stamp_type(res: &Resource, object: &mut Value) {
    if !object.is_object() {
        *object = json!({});
    }
    object["apiVersion"] = json!(res.api_version());
    object["kind"] = json!(res.kind);
}

fn metadata(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    match object.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}
