//! How many pods of a workload one node may run, read from its pod template as the scheduler
//! reads it: a required pod anti-affinity on the node's hostname against the workload's own
//! pods allows 1 on every node, whatever else runs. Such a term against another workload's
//! pods keeps the two off each other's nodes ([`crate::affinity`]).
//!
//! # Caveats
//! - A hostname topology spread is read in [`crate::spread`], not here: it caps a node at the
//!   fewest of the workload's pods on any eligible node plus `maxSkew`, a cap that rises as
//!   the workload grows (100 replicas over 20 nodes put 5 or 6 on each), so the engine works
//!   it out from where the pods run.
//! - A term that selects its namespaces by `namespaceSelector` (other than the empty one,
//!   which selects all) is not judged: the namespaces' labels are not watched.
//! - Zone-wide rules limit no single node and are not read here.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};

use crate::affinity::{PodOf, hostname_anti_affinity, takes_in};

/// The label every node carries with its own name: a rule over it is a rule per node.
pub const HOSTNAME: &str = "kubernetes.io/hostname";

/// At most this many of the template's pods on one node, if its rules say; `namespace` is
/// the workload's.
pub fn max_per_node(template: &PodTemplateSpec, namespace: &str) -> Option<u32> {
    let empty = BTreeMap::new();
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref()).unwrap_or(&empty);
    of_pod(labels, template.spec.as_ref()?, namespace)
}

/// At most this many pods like this one (its `labels` and `spec`, in `namespace`) on one
/// node, if its rules say.
pub fn of_pod(labels: &BTreeMap<String, String>, spec: &PodSpec, namespace: &str) -> Option<u32> {
    let own = PodOf { labels, namespace };
    takes_in(hostname_anti_affinity(spec), own, own).then_some(1)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::affinity::tests::{anti_affinity, template};

    /// A hostname topology spread the scheduler may not break.
    fn spread(skew: i32) -> Value {
        json!({"topologySpreadConstraints": [{
            "topologyKey": HOSTNAME, "maxSkew": skew, "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}},
        }]})
    }

    #[test]
    fn anti_affinity_against_its_own_pods_on_the_hostname_allows_one() {
        let own = |selector: Value| anti_affinity(json!({"topologyKey": HOSTNAME, "labelSelector": selector}));
        let one = |rules| max_per_node(&template(rules), "shop");
        assert_eq!(one(own(json!({"matchLabels": {"app": "web"}}))), Some(1));
        let by_expression = json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]});
        assert_eq!(one(own(by_expression)), Some(1));
        assert_eq!(one(own(json!({}))), Some(1), "the empty selector selects every pod, its own too");
        assert_eq!(one(own(json!({"matchLabels": {"app": "db"}}))), None, "kept from another app's pods only");
        let zone = anti_affinity(
            json!({"topologyKey": "topology.kubernetes.io/zone", "labelSelector": {"matchLabels": {"app": "web"}}}),
        );
        assert_eq!(one(zone), None, "a zone-wide rule limits no single node");
        let preferred = json!({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"topologyKey": HOSTNAME, "labelSelector": {"matchLabels": {"app": "web"}}}},
        ]}}});
        assert_eq!(one(preferred), None, "a preference the scheduler may break");
        assert_eq!(one(json!({})), None);
    }

    #[test]
    fn anti_affinity_counts_only_when_its_namespaces_hold_the_workload() {
        let term = |extra: Value| {
            let mut t = json!({"topologyKey": HOSTNAME, "labelSelector": {"matchLabels": {"app": "web"}}});
            for (k, v) in extra.as_object().into_iter().flatten() {
                t[k] = v.clone();
            }
            max_per_node(&template(anti_affinity(t)), "shop")
        };
        assert_eq!(term(json!({"namespaces": ["shop", "ops"]})), Some(1));
        assert_eq!(term(json!({"namespaces": ["ops"]})), None, "other namespaces' pods only");
        assert_eq!(term(json!({"namespaceSelector": {}})), Some(1), "every namespace");
        assert_eq!(term(json!({"namespaceSelector": {"matchLabels": {"team": "a"}}})), None, "not judged");
        assert_eq!(term(json!({"mismatchLabelKeys": ["tier"]})), None, "pods of another tier only");
        assert_eq!(term(json!({"matchLabelKeys": ["tier"]})), Some(1), "pods of its own tier: its own");
    }

    #[test]
    fn a_hostname_spread_caps_no_node_by_itself() {
        // Its cap is the fewest pods on any eligible node plus the skew: not a number a
        // template says.
        let limit = |rules| max_per_node(&template(rules), "shop");
        assert_eq!(limit(spread(1)), None);
        let mut both = spread(3);
        both["affinity"] = anti_affinity(json!({"topologyKey": HOSTNAME, "labelSelector": {}}))["affinity"].clone();
        assert_eq!(limit(both), Some(1), "anti-affinity beside it still holds");
    }
}
