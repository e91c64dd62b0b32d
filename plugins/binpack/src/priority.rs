//! Group priorities, as Cluster Autoscaler's priority expander: among the groups that can
//! place pending pods, those whose id matches a pattern of the highest priority are chosen
//! from, ranked by the `expander`; a group no pattern matches comes after every listed one.
//!
//! The setting takes the body of CA's `cluster-autoscaler-priority-expander` ConfigMap as
//! it is (`{50: [".*-spot-.*"], 10: [".*"]}`): a priority, higher first, and its regular
//! expressions, each matched anywhere in the group's id (as Go's `regexp.MatchString`); a
//! group matched at several priorities has the highest.

use std::collections::BTreeMap;

use regex_lite::Regex;
use serde::{Deserialize, Serialize};

/// Priorities as configured: each priority (a whole number, kept as written so that one
/// that is not is refused by name) and its patterns.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Priorities(BTreeMap<String, Vec<String>>);

/// One priority's patterns, compiled.
struct Tier {
    priority: i32,
    patterns: Vec<Regex>,
}

/// Priorities compiled, highest first.
pub struct Ranked(Vec<Tier>);

impl Priorities {
    /// Compiles every pattern.
    ///
    /// # Errors
    /// A priority that is not a whole number, or the first pattern that is not a regular
    /// expression, by priority and index, with the pattern and why.
    pub fn compile(&self) -> Result<Ranked, String> {
        let mut tiers = Vec::with_capacity(self.0.len());
        for (key, patterns) in &self.0 {
            let priority: i32 =
                key.trim().parse().map_err(|_| format!("priorities: `{key}` is not a priority (a whole number)"))?;
            let compiled = patterns.iter().enumerate().map(|(i, pattern)| {
                Regex::new(pattern)
                    .map_err(|e| format!("priorities.{key}[{i}]: `{pattern}` is not a regular expression: {e}"))
            });
            tiers.push(Tier { priority, patterns: compiled.collect::<Result<_, _>>()? });
        }
        tiers.sort_by_key(|tier| std::cmp::Reverse(tier.priority));
        Ok(Ranked(tiers))
    }
}

impl Ranked {
    /// The priority of group `id`: the highest whose patterns match it, `None` when none
    /// does (below every priority).
    pub fn of(&self, id: &str) -> Option<i32> {
        self.0.iter().find(|tier| tier.patterns.iter().any(|p| p.is_match(id))).map(|tier| tier.priority)
    }

    /// No priority is set: every group ranks alike.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn priorities(json: serde_json::Value) -> Result<Ranked, String> {
        serde_json::from_value::<Priorities>(json).map_err(|e| e.to_string())?.compile()
    }

    #[test]
    fn a_group_has_the_highest_priority_that_matches_it_anywhere_in_its_id() {
        let ranked = priorities(serde_json::json!({"10": [".*"], "50": ["spot"], "30": ["^general-"]})).unwrap();
        assert_eq!(ranked.of("workers-spot-a"), Some(50), "matched anywhere, as CA's regexp.MatchString");
        assert_eq!(ranked.of("general-on-demand"), Some(30));
        assert_eq!(ranked.of("batch"), Some(10));
        let narrow = priorities(serde_json::json!({"10": ["^spot$"]})).unwrap();
        assert_eq!(narrow.of("spot-b"), None, "anchored patterns hold");
        let numeric = priorities(serde_json::json!({"9": ["spot"], "10": [".*"]})).unwrap();
        assert_eq!(numeric.of("workers-spot-a"), Some(10), "10 is above 9, though written before it");
        assert!(priorities(serde_json::json!({})).unwrap().is_empty());
    }

    #[test]
    fn a_pattern_that_is_not_a_regular_expression_is_named_with_its_priority_and_index() {
        let Err(error) = priorities(serde_json::json!({"10": [".*", "spot-(a"]})) else { panic!("compiled") };
        assert!(error.starts_with("priorities.10[1]: `spot-(a` is not a regular expression"), "{error}");
        let Err(error) = priorities(serde_json::json!({"high": [".*"]})) else { panic!("compiled") };
        assert_eq!(error, "priorities: `high` is not a priority (a whole number)");
    }
}
