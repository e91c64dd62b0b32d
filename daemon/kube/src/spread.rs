//! How far a workload's pods may lean to one zone or one node, read from its pod template as
//! the scheduler reads it: a topology spread on the zone label (or on the hostname) with
//! `whenUnsatisfiable: DoNotSchedule` whose selector takes in the workload's own pods keeps
//! each zone (each node) within `maxSkew` of the one with the fewest.
//!
//! # Caveats
//! - Of several spreads that may not be broken over one key, the one with the smallest
//!   `maxSkew` is read, with its `minDomains`.
//! - A zone spread's `nodeAffinityPolicy` and `nodeTaintsPolicy` are not read: which zones
//!   count is left to the policies, from the groups that admit the pods. A hostname spread's
//!   are, and the engine counts the nodes they say (by default every node whose group's
//!   labels admit the pods, taints aside).
//! - A spread whose selector takes in other workloads' pods too is read as over its own
//!   pods alone.

use std::collections::BTreeMap;

use ballast_engine::node_labels::ZONE_KEYS;
use ballast_engine::ports::NodeInclusion;
use ballast_engine::unreadable::BadValue;
use k8s_openapi::api::core::v1::{PodTemplateSpec, TopologySpreadConstraint};

use crate::per_node::HOSTNAME;
use crate::store::selects;

/// The most more pods of the template one zone may hold than the zone with the fewest, if
/// its rules say (the smallest `maxSkew` of the zone spreads that may not be broken), with
/// that spread's `minDomains`. A `maxSkew` or `minDomains` below 1 (which the API server
/// refuses) is an error naming it.
pub fn zone_spread(template: &PodTemplateSpec) -> Result<Option<ZoneSpread>, BadValue> {
    let Some(held) = tightest(template, &ZONE_KEYS)? else { return Ok(None) };
    Ok(Some(ZoneSpread { max_skew: held.skew, min_domains: min_domains(&held)? }))
}

/// A spread over zones that may not be broken, as [`zone_spread`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneSpread {
    pub max_skew: u32,
    /// Its `minDomains`: while fewer zones count, the scheduler takes the fewest as none.
    pub min_domains: Option<u32>,
}

/// A held spread's `minDomains`, read.
fn min_domains(held: &Held<'_>) -> Result<Option<u32>, BadValue> {
    let Some(m) = held.constraint.min_domains else { return Ok(None) };
    u32::try_from(m).ok().filter(|&m| m >= 1).map(Some).ok_or_else(|| BadValue {
        field: format!("spec.template.spec.topologySpreadConstraints[{}].minDomains", held.index),
        value: m.to_string(),
        error: "must be at least 1".into(),
    })
}

/// The most more pods of the template one node may run than the node with the fewest, if
/// its rules say (a spread on `kubernetes.io/hostname`), with the nodes that spread counts
/// and its `minDomains`; errors as [`zone_spread`], and for a node policy other than `Honor`
/// or `Ignore`.
pub fn node_spread(template: &PodTemplateSpec) -> Result<Option<NodeSpread>, BadValue> {
    let Some(held) = tightest(template, &[HOSTNAME])? else { return Ok(None) };
    let Held { skew, index: i, constraint: c } = held;
    let honors = |policy: &Option<String>, name: &str, default: bool| match policy.as_deref() {
        None => Ok(default),
        Some("Honor") => Ok(true),
        Some("Ignore") => Ok(false),
        Some(other) => Err(BadValue {
            field: format!("spec.template.spec.topologySpreadConstraints[{i}].{name}"),
            value: other.to_string(),
            error: "must be Honor or Ignore".into(),
        }),
    };
    let inclusion = NodeInclusion {
        honors_taints: honors(&c.node_taints_policy, "nodeTaintsPolicy", false)?,
        ignores_affinity: !honors(&c.node_affinity_policy, "nodeAffinityPolicy", true)?,
    };
    Ok(Some(NodeSpread { max_skew: skew, min_domains: min_domains(&held)?, inclusion }))
}

/// A spread over nodes that may not be broken, as [`node_spread`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeSpread {
    pub max_skew: u32,
    /// Its `minDomains`: while fewer nodes count, the scheduler takes the fewest as none.
    pub min_domains: Option<u32>,
    /// The nodes it counts.
    pub inclusion: NodeInclusion,
}

/// A spread that may not be broken: its `maxSkew`, read, and where it stands in the template.
struct Held<'a> {
    skew: u32,
    index: usize,
    constraint: &'a TopologySpreadConstraint,
}

/// Of the spreads over one of `keys` that may not be broken and take in the template's own
/// pods, the one with the smallest `maxSkew` (the first of equals).
fn tightest<'a>(template: &'a PodTemplateSpec, keys: &[&str]) -> Result<Option<Held<'a>>, BadValue> {
    let empty = BTreeMap::new();
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref()).unwrap_or(&empty);
    let Some(spec) = template.spec.as_ref() else { return Ok(None) };
    let mut tightest: Option<Held<'a>> = None;
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
        if tightest.as_ref().is_none_or(|t| max < t.skew) {
            tightest = Some(Held { skew: max, index: i, constraint: c });
        }
    }
    Ok(tightest)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn max_zone_skew(template: &PodTemplateSpec) -> Result<Option<u32>, BadValue> {
        Ok(zone_spread(template)?.map(|z| z.max_skew))
    }

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
        let skew = |constraints| node_spread(&template(constraints)).unwrap().map(|s| s.max_skew);
        assert_eq!(skew(json!([spread(HOSTNAME, 2, "DoNotSchedule", own.clone())])), Some(2));
        let both = json!([
            spread("topology.kubernetes.io/zone", 1, "DoNotSchedule", own.clone()),
            spread(HOSTNAME, 3, "DoNotSchedule", own.clone()),
        ]);
        assert_eq!(skew(both.clone()), Some(3), "the zone spread is not one over nodes");
        assert_eq!(max_zone_skew(&template(both)).unwrap(), Some(1), "nor the other way round");
        assert_eq!(skew(json!([spread(HOSTNAME, 1, "ScheduleAnyway", own)])), None, "a preference");
        let bad = node_spread(&template(json!([spread(HOSTNAME, -1, "DoNotSchedule", json!({}))]))).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "spec.template.spec.topologySpreadConstraints[0].maxSkew = \"-1\" cannot be read (must be at least 1)"
        );
    }

    #[test]
    fn a_hostname_spread_s_node_policies_say_which_nodes_count() {
        let with = |policies: Value| {
            let mut s = spread(HOSTNAME, 1, "DoNotSchedule", json!({"matchLabels": {"app": "web"}}));
            for (k, v) in policies.as_object().into_iter().flatten() {
                s[k] = v.clone();
            }
            node_spread(&template(json!([s]))).map(|s| s.map(|s| s.inclusion))
        };
        let inclusion = |honors_taints, ignores_affinity| Ok(Some(NodeInclusion { honors_taints, ignores_affinity }));
        assert_eq!(with(json!({})), inclusion(false, false), "the scheduler's defaults");
        assert_eq!(with(json!({"nodeTaintsPolicy": "Honor"})), inclusion(true, false));
        assert_eq!(with(json!({"nodeAffinityPolicy": "Ignore", "nodeTaintsPolicy": "Ignore"})), inclusion(false, true));
        let bad = with(json!({"nodeTaintsPolicy": "honor"})).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "spec.template.spec.topologySpreadConstraints[0].nodeTaintsPolicy = \"honor\" cannot be read (must be Honor or Ignore)"
        );
    }

    #[test]
    fn a_hostname_spread_s_min_domains_is_read() {
        let with = |min_domains: Value| {
            let mut s = spread(HOSTNAME, 1, "DoNotSchedule", json!({"matchLabels": {"app": "web"}}));
            s["minDomains"] = min_domains;
            node_spread(&template(json!([s]))).map(|s| s.and_then(|s| s.min_domains))
        };
        assert_eq!(with(json!(3)), Ok(Some(3)));
        assert_eq!(with(Value::Null), Ok(None), "not set");
        assert_eq!(
            with(json!(0)).unwrap_err().to_string(),
            "spec.template.spec.topologySpreadConstraints[0].minDomains = \"0\" cannot be read (must be at least 1)"
        );
    }

    #[test]
    fn a_zone_spread_s_min_domains_is_read_from_the_spread_that_holds() {
        let own = json!({"matchLabels": {"app": "web"}});
        let mut loose = spread("topology.kubernetes.io/zone", 2, "DoNotSchedule", own.clone());
        loose["minDomains"] = json!(5);
        let mut tight = spread("topology.kubernetes.io/zone", 1, "DoNotSchedule", own);
        tight["minDomains"] = json!(3);
        let read = |constraints| zone_spread(&template(constraints)).map(|z| z.and_then(|z| z.min_domains));
        assert_eq!(read(json!([loose.clone(), tight.clone()])), Ok(Some(3)), "the tighter skew's");
        assert_eq!(read(json!([loose])), Ok(Some(5)));
        tight["minDomains"] = json!(-1);
        assert_eq!(
            read(json!([tight])).unwrap_err().to_string(),
            "spec.template.spec.topologySpreadConstraints[0].minDomains = \"-1\" cannot be read (must be at least 1)"
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
