//! Which pods a required pod (anti-)affinity term takes in, as the scheduler reads it: its
//! label selector over the pods' labels, in the namespaces it names, narrowed by
//! `matchLabelKeys` and `mismatchLabelKeys` to the pod's own values of those labels. Read
//! against other workloads' templates, a term on `kubernetes.io/hostname` in an anti-affinity
//! keeps two workloads off each other's nodes; a term on `topology.kubernetes.io/zone` in an
//! affinity keeps a workload in the zones of another's pods, and one on the hostname on the
//! nodes of another's pods.
//!
//! # Caveats
//! A term that picks its namespaces by `namespaceSelector` labels (other than the empty
//! selector, every namespace) counts only the namespaces it lists: namespaces' labels are not
//! watched.

use std::collections::BTreeMap;

use ballast_engine::node_labels::ZONE_KEYS;
use k8s_openapi::api::core::v1::{PodAffinityTerm, PodSpec, PodTemplateSpec};

use crate::per_node::HOSTNAME;
use crate::store::selects;

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

/// The required pod anti-affinity terms on the hostname of a pod spec.
pub fn hostname_anti_affinity(spec: &PodSpec) -> impl Iterator<Item = &PodAffinityTerm> {
    (spec.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
        .into_iter()
        .flatten()
        .filter(|term| term.topology_key == HOSTNAME)
}

/// The required pod anti-affinity terms on the hostname in a pod template: those that may keep
/// its pods off the nodes of other workloads' pods.
pub fn hostname_repels(template: &PodTemplateSpec) -> Vec<PodAffinityTerm> {
    template.spec.as_ref().map(|spec| hostname_anti_affinity(spec).cloned().collect()).unwrap_or_default()
}

/// At most this many of the template's pods (in `namespace`) in one zone, if its rules say: a
/// required pod anti-affinity on the zone that takes in its own pods allows 1.
pub fn max_per_zone(template: &PodTemplateSpec, namespace: &str) -> Option<u32> {
    let own = PodOf::template(template, namespace);
    let terms = (template.spec.as_ref())
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
        .into_iter()
        .flatten()
        .filter(|term| ZONE_KEYS.contains(&term.topology_key.as_str()));
    takes_in(terms, own, own).then_some(1)
}

/// The required pod affinity terms on the zone in a pod template: those that keep its pods
/// in the zones of the pods they take in.
pub fn zone_affinity(template: &PodTemplateSpec) -> Vec<PodAffinityTerm> {
    required_affinity(template, &ZONE_KEYS)
}

/// The required pod affinity terms on the hostname in a pod template: those that keep its
/// pods on the nodes of the pods they take in.
pub fn hostname_affinity(template: &PodTemplateSpec) -> Vec<PodAffinityTerm> {
    required_affinity(template, &[HOSTNAME])
}

/// The required pod affinity terms in a pod template on one of `keys`.
fn required_affinity(template: &PodTemplateSpec, keys: &[&str]) -> Vec<PodAffinityTerm> {
    (template.spec.as_ref())
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
        .into_iter()
        .flatten()
        .filter(|term| keys.contains(&term.topology_key.as_str()))
        .cloned()
        .collect()
}

/// One of `terms` (a pod like `own`'s) takes in a pod like `other`.
pub fn takes_in<'t>(terms: impl IntoIterator<Item = &'t PodAffinityTerm>, own: PodOf<'_>, other: PodOf<'_>) -> bool {
    terms.into_iter().any(|term| term_takes_in(term, own, other))
}

/// The term, in a pod like `own`, takes in a pod like `other`.
fn term_takes_in(term: &PodAffinityTerm, own: PodOf<'_>, other: PodOf<'_>) -> bool {
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
pub(crate) mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// A template labelled app=web, tier=front with `rules` (affinity, spread) in its spec.
    pub(crate) fn template(rules: Value) -> PodTemplateSpec {
        let mut spec = json!({"containers": [{"name": "c"}]});
        for (key, value) in rules.as_object().into_iter().flatten() {
            spec[key] = value.clone();
        }
        serde_json::from_value(json!({"metadata": {"labels": {"app": "web", "tier": "front"}}, "spec": spec})).unwrap()
    }

    /// The required pod anti-affinity `term`, as a spec's rules.
    pub(crate) fn anti_affinity(term: Value) -> Value {
        json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}})
    }

    /// Whether a template labelled app=web, tier=front in `shop`, with the anti-affinity
    /// `term`, keeps its pods off the nodes of pods labelled `labels` in `namespace`.
    fn keeps_web_off(term: Value, labels: Value, namespace: &str) -> bool {
        let web = template(anti_affinity(term));
        let other: BTreeMap<String, String> = serde_json::from_value(labels).unwrap();
        let own = PodOf::template(&web, "shop");
        takes_in(&hostname_repels(&web), own, PodOf { labels: &other, namespace })
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
    fn anti_affinity_on_the_zone_against_its_own_pods_allows_one_a_zone() {
        let against = |key: &str, app: &str| {
            anti_affinity(json!({"topologyKey": key, "labelSelector": {"matchLabels": {"app": app}}}))
        };
        let one = |rules| max_per_zone(&template(rules), "shop");
        assert_eq!(one(against("topology.kubernetes.io/zone", "web")), Some(1));
        assert_eq!(one(against("failure-domain.beta.kubernetes.io/zone", "web")), Some(1));
        assert_eq!(one(against("topology.kubernetes.io/zone", "db")), None, "kept from another app's pods only");
        assert_eq!(one(against(HOSTNAME, "web")), None, "a rule per node");
        assert_eq!(one(json!({})), None);
    }

    #[test]
    fn affinity_on_the_zone_or_the_hostname_is_read_and_others_are_not() {
        let term = |key: &str| json!({"topologyKey": key, "labelSelector": {"matchLabels": {"app": "db"}}});
        let required = |term: Value| json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}});
        assert_eq!(zone_affinity(&template(required(term("topology.kubernetes.io/zone")))).len(), 1);
        assert_eq!(zone_affinity(&template(required(term("failure-domain.beta.kubernetes.io/zone")))).len(), 1);
        assert!(zone_affinity(&template(required(term(HOSTNAME)))).is_empty(), "a rule per node, not per zone");
        assert_eq!(hostname_affinity(&template(required(term(HOSTNAME)))).len(), 1);
        assert!(hostname_affinity(&template(required(term("topology.kubernetes.io/zone")))).is_empty());
        assert!(hostname_affinity(&template(anti_affinity(term(HOSTNAME)))).is_empty(), "kept off, not beside");
        assert!(zone_affinity(&template(anti_affinity(term("topology.kubernetes.io/zone")))).is_empty());
        let preferred = json!({"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": term("topology.kubernetes.io/zone")}]}}});
        assert!(zone_affinity(&template(preferred)).is_empty(), "a preference the scheduler may break");
    }
}
