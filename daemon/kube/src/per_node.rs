//! How many pods of a workload one node may run, read from its pod template as the scheduler
//! reads it: a required pod anti-affinity on the node's hostname against the workload's own
//! pods allows 1 on every node, whatever else runs. Such a term against another workload's
//! pods keeps the two off each other's nodes ([`keeps_off`]).
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

use k8s_openapi::api::core::v1::{PodAffinityTerm, PodSpec, PodTemplateSpec};

use crate::store::selects;

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
    hostname_terms(spec).any(|term| repels(term, own, own)).then_some(1)
}

/// The required pod anti-affinity terms on the hostname in a pod template: those that may
/// keep its pods off the nodes of other workloads' pods ([`keeps_off`]).
pub fn hostname_repels(template: &PodTemplateSpec) -> Vec<PodAffinityTerm> {
    template.spec.as_ref().map(|spec| hostname_terms(spec).cloned().collect()).unwrap_or_default()
}

fn hostname_terms(spec: &PodSpec) -> impl Iterator<Item = &PodAffinityTerm> {
    (spec.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
        .into_iter()
        .flatten()
        .filter(|term| term.topology_key == HOSTNAME)
}

/// A pod as an affinity term sees it: its labels and namespace.
#[derive(Clone, Copy)]
pub struct PodOf<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub namespace: &'a str,
}

impl<'a> PodOf<'a> {
    /// The pods of `template`, in `namespace`.
    pub fn template(template: &'a PodTemplateSpec, namespace: &'a str) -> Self {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref()).unwrap_or(&NONE);
        PodOf { labels, namespace }
    }
}

/// One of `terms` (a pod like `own`'s, from [`hostname_repels`]) keeps it off any node that
/// runs a pod like `other`.
///
/// # Caveats
/// A term that picks its namespaces by `namespaceSelector` labels (other than the empty
/// selector, every namespace) counts only the namespaces it lists: namespaces' labels are
/// not watched.
pub fn keeps_off(terms: &[PodAffinityTerm], own: PodOf<'_>, other: PodOf<'_>) -> bool {
    terms.iter().any(|term| repels(term, own, other))
}

/// The term, in a pod like `own`, keeps it from nodes running a pod like `other`.
fn repels(term: &PodAffinityTerm, own: PodOf<'_>, other: PodOf<'_>) -> bool {
    let in_namespace = match (&term.namespace_selector, term.namespaces.as_deref()) {
        (Some(selector), _) if selector.match_labels.is_none() && selector.match_expressions.is_none() => true,
        (Some(_), None) => false,
        (None, None | Some([])) => other.namespace == own.namespace,
        (_, Some(listed)) => listed.iter().any(|n| n == other.namespace),
    };
    // `matchLabelKeys` selects pods with the pod's own value of each key, `mismatchLabelKeys`
    // those with another (never its own); a key the pod lacks is ignored.
    let keyed = |keys: &Option<Vec<String>>, same: bool| {
        keys.iter().flatten().all(|k| own.labels.get(k).is_none_or(|v| (other.labels.get(k) == Some(v)) == same))
    };
    in_namespace
        && keyed(&term.match_label_keys, true)
        && keyed(&term.mismatch_label_keys, false)
        && term.label_selector.as_ref().is_some_and(|s| selects(s, other.labels))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// A template labelled app=web, tier=front with `rules` (affinity, spread) in its spec.
    fn template(rules: Value) -> PodTemplateSpec {
        let mut spec = json!({"containers": [{"name": "c"}]});
        for (key, value) in rules.as_object().into_iter().flatten() {
            spec[key] = value.clone();
        }
        serde_json::from_value(json!({"metadata": {"labels": {"app": "web", "tier": "front"}}, "spec": spec})).unwrap()
    }

    fn anti_affinity(term: Value) -> Value {
        json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}})
    }

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

    /// Whether a template labelled app=web, tier=front in `shop`, with the anti-affinity
    /// `term`, keeps its pods off the nodes of pods labelled `labels` in `namespace`.
    fn keeps_web_off(term: Value, labels: Value, namespace: &str) -> bool {
        let web = template(anti_affinity(term));
        let other: BTreeMap<String, String> = serde_json::from_value(labels).unwrap();
        let own = PodOf::template(&web, "shop");
        keeps_off(&hostname_repels(&web), own, PodOf { labels: &other, namespace })
    }

    #[test]
    fn anti_affinity_against_another_workloads_pods_keeps_them_apart() {
        let against = |selector: Value| json!({"topologyKey": HOSTNAME, "labelSelector": selector});
        let indexer = json!({"app": "indexer"});
        assert!(keeps_web_off(against(json!({"matchLabels": {"app": "indexer"}})), indexer.clone(), "shop"));
        assert!(!keeps_web_off(against(json!({"matchLabels": {"app": "indexer"}})), indexer.clone(), "search"));
        let by_expression = json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["indexer"]}]});
        assert!(keeps_web_off(against(by_expression), indexer.clone(), "shop"));
        assert!(!keeps_web_off(against(json!({"matchLabels": {"app": "db"}})), indexer.clone(), "shop"));
        let mut zone = against(json!({"matchLabels": {"app": "indexer"}}));
        zone["topologyKey"] = json!("topology.kubernetes.io/zone");
        assert!(!keeps_web_off(zone, indexer.clone(), "shop"), "a zone-wide rule keeps no node");
        let web =
            template(json!({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": against(json!({"matchLabels": {"app": "indexer"}}))},
            ]}}}));
        assert!(hostname_repels(&web).is_empty(), "a preference the scheduler may break");
    }

    #[test]
    fn anti_affinity_against_another_workload_counts_its_namespaces_and_label_keys() {
        let term = |extra: Value| {
            let mut t = json!({"topologyKey": HOSTNAME, "labelSelector": {"matchLabels": {"app": "indexer"}}});
            for (k, v) in extra.as_object().into_iter().flatten() {
                t[k] = v.clone();
            }
            t
        };
        let indexer = |tier: &str| json!({"app": "indexer", "tier": tier});
        assert!(keeps_web_off(term(json!({"namespaces": ["search"]})), indexer("back"), "search"));
        assert!(!keeps_web_off(term(json!({"namespaces": ["ops"]})), indexer("back"), "search"));
        assert!(keeps_web_off(term(json!({"namespaceSelector": {}})), indexer("back"), "search"), "every namespace");
        let labelled = json!({"namespaceSelector": {"matchLabels": {"team": "a"}}});
        assert!(!keeps_web_off(term(labelled), indexer("back"), "search"), "not judged");
        assert!(keeps_web_off(term(json!({"matchLabelKeys": ["tier"]})), indexer("front"), "shop"));
        assert!(!keeps_web_off(term(json!({"matchLabelKeys": ["tier"]})), indexer("back"), "shop"), "another tier");
        assert!(keeps_web_off(term(json!({"mismatchLabelKeys": ["tier"]})), indexer("back"), "shop"));
        assert!(!keeps_web_off(term(json!({"mismatchLabelKeys": ["tier"]})), indexer("front"), "shop"), "its tier");
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
