//! Patches: JSON merge (RFC 7386), strategic merge for the fields Ballast and kubectl touch,
//! and server-side apply approximated as a merge of the applied configuration.

use serde_json::{Map, Value};

/// List fields that strategic merge patches merge by a key instead of replacing; the rest of
/// the Kubernetes merge keys are never patched by the tools the stand-in serves.
const MERGE_KEYS: &[(&str, &str)] = &[
    ("containers", "name"),
    ("initContainers", "name"),
    ("volumes", "name"),
    ("env", "name"),
    ("volumeMounts", "mountPath"),
    ("ports", "containerPort"),
    ("conditions", "type"),
    ("ownerReferences", "uid"),
];

/// RFC 7386: objects merge, `null` deletes, everything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target) = target else { return };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// A strategic merge patch: [`merge`], except that lists with a merge key merge element by
/// element, and `$patch`/`$setElementOrder`/`$retainKeys` directives are honoured or dropped.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut clean = patch.clone();
        clean.remove("$patch");
        *target = Value::Object(clean);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target) = target else { return };
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        if value.is_null() {
            target.remove(key);
            continue;
        }
        let merge_key = MERGE_KEYS.iter().find(|(field, _)| field == key).map(|(_, k)| *k);
        match (merge_key, value, target.get_mut(key)) {
            (Some(mk), Value::Array(items), Some(Value::Array(existing))) => merge_list(existing, items, mk),
            _ => strategic_merge(target.entry(key.clone()).or_insert(Value::Null), value),
        }
    }
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let id = item.get(key).cloned();
        let position = id.as_ref().and_then(|id| existing.iter().position(|e| e.get(key) == Some(id)));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (Some(i), false) => strategic_merge(&mut existing[i], item),
            (None, false) => existing.push(item.clone()),
            (None, true) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_deletes_with_null_and_replaces_lists() {
        let mut v = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"taints": [{"key": "x"}]}});
        merge(&mut v, &json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"taints": []}}));
        assert_eq!(v, json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"taints": []}}));
    }

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let mut v = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        strategic_merge(
            &mut v,
            &json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "a", "$patch": "delete"}],
                     "$setElementOrder/containers": [{"name": "b"}]}}),
        );
        assert_eq!(v, json!({"spec": {"containers": [{"name": "b", "image": "z"}]}}));
    }
}
