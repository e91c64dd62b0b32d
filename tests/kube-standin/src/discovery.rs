//! Discovery documents: `/api`, `/apis`, and the resource list of each group version.
//! kubectl needs them to find a resource by name or short name, and `kubectl drain` finds
//! the eviction subresource (`pods/eviction`, kind `Eviction` in `policy`) here.

use serde_json::{Value, json};

use crate::resources::{self, RESOURCES};

pub fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-ballast-standin", "gitCommit": "",
        "gitTreeState": "clean", "buildDate": "2026-11-21T00:00:00Z", "goVersion": "go1.24",
        "compiler": "gc", "platform": "linux/amd64",
    })
}

pub fn core_versions(server: &str) -> Value {
    json!({
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}],
    })
}

pub fn groups(metrics: bool) -> Value {
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|(g, _)| metrics || *g != resources::METRICS_GROUP)
        .map(|(group, version)| {
            let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
            json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// The resource list of a group version; `None` when it is not served.
pub fn resources(group: &str, version: &str, metrics: bool) -> Option<Value> {
    if group == resources::METRICS_GROUP && !metrics {
        return None;
    }
    let mut list = Vec::new();
    for r in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        let verbs: &[&str] = if r.read_only {
            &["get", "list"]
        } else {
            &["create", "delete", "get", "list", "patch", "update", "watch"]
        };
        list.push(json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
            "verbs": verbs, "shortNames": r.short_names,
        }));
        for sub in r.subresources {
            let entry = match *sub {
                "eviction" => json!({
                    "name": format!("{}/eviction", r.plural), "singularName": "", "namespaced": r.namespaced,
                    "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"],
                }),
                _ => json!({
                    "name": format!("{}/{sub}", r.plural), "singularName": "", "namespaced": r.namespaced,
                    "kind": r.kind, "verbs": ["get", "patch", "update"],
                }),
            };
            list.push(entry);
        }
    }
    if list.is_empty() {
        return None;
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}))
}
