//! From the policies' proposals to CA's answer: the options whose group a scale-up proposal
//! names, in the order the chain proposed them.

use ballast_proto::grpcplugin as ca;
use ballast_sdk::Action;

use super::offers::Offer;
use crate::engine::policies::Proposed;
use crate::engine::record::ChosenOption;

/// What BestOptions answers, and why.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    /// The chosen options as CA sent them (pods left out: CA maps them back by group).
    pub options: Vec<ca::Option>,
    pub chosen: Vec<ChosenOption>,
}

/// The group a proposal grows, if it grows one (from an option's desired size of 0, any
/// `scale-to` above 0 does).
fn grown(action: &Action) -> Option<&str> {
    match action {
        Action::ScaleTo { group, size } if *size > 0 => Some(group),
        Action::ScaleBy { group, delta } if *delta > 0 => Some(group),
        _ => None,
    }
}

/// The options the chain chose, best first.
///
/// # Guarantees
/// Only options CA offered are answered, each at most once, in the order of the first
/// enforced scale-up proposal naming its group. Proposals of plugins in shadow mode are
/// never answered, and neither is anything but a scale-up (removals and placements mean
/// nothing to CA's question).
pub fn choose(offers: &[Offer], proposals: &[Proposed]) -> Answer {
    let mut answer = Answer::default();
    for proposed in proposals.iter().filter(|p| !p.shadow) {
        let Some(group) = grown(&proposed.decision.action) else { continue };
        if answer.chosen.iter().any(|c| c.group == group) {
            continue;
        }
        let Some(offer) = offers.iter().find(|o| o.group == group) else { continue };
        answer.options.push(offer.echo.clone());
        answer.chosen.push(ChosenOption {
            group: group.to_string(),
            plugin: proposed.plugin.to_string(),
            proposed: proposed.decision.action.clone(),
            reason: proposed.decision.reason.clone(),
        });
    }
    answer
}

#[cfg(test)]
mod tests {
    use ballast_sdk::Decision;

    use super::*;

    fn offer(group: &str) -> Offer {
        Offer {
            group: group.into(),
            node_count: 2,
            pods: 3,
            echo: ca::Option { node_group_id: group.into(), node_count: 2, ..ca::Option::default() },
        }
    }

    fn proposed(action: Action, shadow: bool) -> Proposed {
        Proposed { plugin: "p".into(), decision: Decision::new(action, "why"), shadow }
    }

    #[test]
    fn only_enforced_scale_ups_of_offered_groups_are_answered_once_each_in_proposal_order() {
        let offers = [offer("a"), offer("b"), offer("c")];
        let proposals = [
            proposed(Action::ScaleTo { group: "c".into(), size: 1 }, true),
            proposed(Action::ScaleTo { group: "zz".into(), size: 3 }, false),
            proposed(Action::ScaleTo { group: "a".into(), size: 0 }, false),
            proposed(Action::ScaleBy { group: "b".into(), delta: 2 }, false),
            proposed(Action::RemoveNodes { nodes: vec!["n".into()] }, false),
            proposed(Action::ScaleTo { group: "a".into(), size: 2 }, false),
            proposed(Action::ScaleTo { group: "b".into(), size: 5 }, false),
        ];
        let answer = choose(&offers, &proposals);
        let groups: Vec<&str> = answer.options.iter().map(|o| o.node_group_id.as_str()).collect();
        assert_eq!(groups, ["b", "a"]);
        assert_eq!(answer.chosen[0].proposed, Action::ScaleBy { group: "b".into(), delta: 2 });
        assert!(choose(&offers, &proposals[..3]).options.is_empty(), "shadow, unknown and zero sizes answer nothing");
    }
}
