//! `static-size`: holds every node group at a fixed size, whatever the demand. The baseline a
//! team gets without an autoscaler: sized for the minimum (pods wait at the peak) or for the
//! peak (idle nodes paid for the rest of the time). `ballast simulate --compare` uses it as
//! `static-min` and `static-peak`.

use std::collections::BTreeMap;

use ballast_sdk::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fallback {
    /// Each group's min-size.
    #[default]
    Min,
    /// Each group's max-size.
    Max,
    /// Leave the group alone.
    Keep,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct Settings {
    /// Size per group id.
    pub sizes: BTreeMap<String, u32>,
    /// For groups not listed in `sizes`.
    pub otherwise: Fallback,
}

pub struct StaticSize;

impl Policy for StaticSize {
    type Settings = Settings;
    type State = ();

    fn evaluate(snapshot: &dyn Snapshot, settings: &Settings, _: &mut ()) -> Result<Vec<Decision>, String> {
        let mut decisions = Vec::new();
        for group in snapshot.node_groups().iter().filter(|g| g.kind == NodeGroupKind::Asg) {
            let (size, why) = match (settings.sizes.get(&group.id), settings.otherwise) {
                (Some(&size), _) => (size, "the size set for it".to_string()),
                (None, Fallback::Min) => (group.min_size, format!("its min-size of {}", group.min_size)),
                (None, Fallback::Max) => (group.max_size, format!("its max-size of {}", group.max_size)),
                (None, Fallback::Keep) => continue,
            };
            if size != group.desired_size {
                decisions.push(Decision::new(
                    Action::ScaleTo { group: group.id.clone(), size },
                    format!("static sizing: group {} is held at {size} nodes, {why}", group.id),
                ));
            }
        }
        Ok(decisions)
    }
}

ballast_sdk::export_policy!(StaticSize);

#[cfg(test)]
mod tests {
    use ballast_sdk::testing::*;

    use super::*;

    #[test]
    fn holds_listed_groups_and_falls_back_for_the_rest() {
        let snapshot = SnapshotBuilder::new()
            .group(GroupBuilder::asg("a").instance_type("m5.large", "2", "8Gi", 0.096).sizes(1, 4, 9))
            .group(GroupBuilder::asg("b").instance_type("m5.large", "2", "8Gi", 0.096).sizes(2, 5, 9))
            .build();
        let settings = serde_json::json!({"sizes": {"a": 6}, "otherwise": "min"});
        let decisions = Harness::<StaticSize>::with_settings(settings).unwrap().evaluate(&snapshot).unwrap();
        let actions: Vec<Action> = decisions.into_iter().map(|d| d.action).collect();
        assert_eq!(
            actions,
            vec![Action::ScaleTo { group: "a".into(), size: 6 }, Action::ScaleTo { group: "b".into(), size: 2 }]
        );
    }
}
