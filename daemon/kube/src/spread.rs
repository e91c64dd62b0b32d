//! How far a workload's pods may lean to one zone or one node, read from its pod template as
//! the scheduler reads it: a topology spread on the zone label (or on the hostname) with
//! `whenUnsatisfiable: DoNotSchedule` whose selector takes in the workload's own pods keeps
//! each zone (each node) within `maxSkew` of the one with the fewest.
//!
//! # Caveats
//! - `minDomains` is not read: with fewer domains than it names, the scheduler counts the
//!   fewest as none, which this reading does not know.
//! - `nodeAffinityPolicy` and `nodeTaintsPolicy` are not read: which zones count is left to
//!   the policies, from the groups that admit the pods; which nodes count, to the engine
//!   (every node whose group's labels admit them, taints aside, as the scheduler's defaults).
//! - A spread whose selector takes in other workloads' pods too is read as over its own
//!   pods alone.

use std::collections::BTreeMap;

use ballast_engine::node_labels::ZONE_KEYS;
use ballast_engine::unreadable::BadValue;
use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::per_node::HOSTNAME;
use crate::store::selects;

/// The most more pods of the template one zone may hold than the zone with the fewest, if
/// its rules say (the smallest `maxSkew` of the zone spreads that may not be broken). A
/// `maxSkew` below 1 (which the API server refuses) is an error naming it.
pub fn max_zone_skew(template: &PodTemplateSpec) -> Result<Option<u32>, BadValue> {
    max_skew(template, &ZONE_KEYS)
}

/// The most more pods of the template one node may run than the node with the fewest, if
/// its rules say (a spread on `kubernetes.io/hostname`); errors as [`max_zone_skew`].
pub fn max_node_skew(template: &PodTemplateSpec) -> Result<Option<u32>, BadValue> {
    max_skew(template, &[HOSTNAME])
}

/// The smallest `maxSkew` of the spreads over one of `keys` that may not be broken and take
/// in the template's own pods.
fn max_skew(template: &PodTemplateSpec, keys: &[&str]) -> Result<Option<u32>, BadValue> {
    let empty = BTreeMap::new();
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref()).unwrap_or(&empty);
    let Some(spec) = template.spec.as_ref() else { return Ok(None) };
    let mut skew: Option<u32> = None;
    for (i, c) in spec.topology_spread_constraints.iter().flatten().enumerate() {
        let held = keys.contains(&c.topology_key.as_str()) && c.when_unsatisfiable == "DoNotSchedule";
        if !held || !c.label_selector.as_ref().is_some_and(|s| selects(s, labels)) {
            continue;
        }
        let max = u32::try_from(c.max_skew).ok().filter(|&m| m >= 1).ok_or_else(|| BadValue {
            field: format!("spec.template.spec.topologySpreadConstraints[{i}].maxSkew"),
            value: c.max_skew.to_string(),
            error: "must be at least 1".into(),
        })?;
        skew = Some(skew.map_or(max, |s| s.min(max)));
    }
    Ok(skew)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// A template labelled app=web with `constraints` as its topology spreads.
    fn template(constraints: Value) -> PodTemplateSpec {
        let spec = json!({"containers": [{"name": "c"}], "topologySpreadConstraints": constraints});
        serde_json::from_value(json!({"metadata": {"labels": {"app": "web"}}, "spec": spec})).unwrap()
    }

    fn spread(key: &str, skew: i32, when: &str, selector: Value) -> Value {
        json!({"topologyKey": key, "maxSkew": skew, "whenUnsatisfiable": when, "labelSelector": selector})
    }

    #[test]
    fn a_zone_spread_that_may_not_be_broken_over_its_own_pods_gives_its_skew() {
        let own = json!({"matchLabels": {"app": "web"}});
        let skew = |constraints| max_zone_skew(&template(constraints)).unwrap();
        assert_eq!(skew(json!([spread("topology.kubernetes.io/zone", 1, "DoNotSchedule", own.clone())])), Some(1));
        let beta = spread("failure-domain.beta.kubernetes.io/zone", 2, "DoNotSchedule", own.clone());
        assert_eq!(skew(json!([beta])), Some(2), "the deprecated zone label");
        let two = json!([
            spread("topology.kubernetes.io/zone", 3, "DoNotSchedule", own.clone()),
            spread("topology.kubernetes.io/zone", 2, "DoNotSchedule", json!({})),
        ]);
        assert_eq!(skew(two), Some(2), "the tighter of two");
        let lax = spread("topology.kubernetes.io/zone", 1, "ScheduleAnyway", own.clone());
        assert_eq!(skew(json!([lax])), None, "a preference the scheduler may break");
        let hostname = spread("kubernetes.io/hostname", 1, "DoNotSchedule", own.clone());
        assert_eq!(skew(json!([hostname])), None, "a spread over nodes, not zones");
        let other = spread("topology.kubernetes.io/zone", 1, "DoNotSchedule", json!({"matchLabels": {"app": "db"}}));
        assert_eq!(skew(json!([other])), None, "another app's pods only");
        let unselected =
            json!({"topologyKey": "topology.kubernetes.io/zone", "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"});
        assert_eq!(skew(json!([unselected])), None, "no selector: it counts no pods");
    }

    #[test]
    fn a_hostname_spread_that_may_not_be_broken_gives_its_skew_over_nodes() {
        let own = json!({"matchLabels": {"app": "web"}});
        let skew = |constraints| max_node_skew(&template(constraints)).unwrap();
        assert_eq!(skew(json!([spread(HOSTNAME, 2, "DoNotSchedule", own.clone())])), Some(2));
        let both = json!([
            spread("topology.kubernetes.io/zone", 1, "DoNotSchedule", own.clone()),
            spread(HOSTNAME, 3, "DoNotSchedule", own.clone()),
        ]);
        assert_eq!(skew(both.clone()), Some(3), "the zone spread is not one over nodes");
        assert_eq!(max_zone_skew(&template(both)).unwrap(), Some(1), "nor the other way round");
        assert_eq!(skew(json!([spread(HOSTNAME, 1, "ScheduleAnyway", own)])), None, "a preference");
        let bad = max_node_skew(&template(json!([spread(HOSTNAME, -1, "DoNotSchedule", json!({}))]))).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "spec.template.spec.topologySpreadConstraints[0].maxSkew = \"-1\" cannot be read (must be at least 1)"
        );
    }

    #[test]
    fn a_skew_below_one_is_an_error_naming_the_constraint_and_its_value() {
        let own = json!({"matchLabels": {"app": "web"}});
        let constraints = json!([
            spread("kubernetes.io/hostname", 1, "DoNotSchedule", own.clone()),
            spread("topology.kubernetes.io/zone", 0, "DoNotSchedule", own),
        ]);
        let bad = max_zone_skew(&template(constraints)).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "spec.template.spec.topologySpreadConstraints[1].maxSkew = \"0\" cannot be read (must be at least 1)"
        );
    }
}
