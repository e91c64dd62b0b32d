//! `ballast decisions --summary`: which proposals a journal holds most often, so a reader
//! sees at once what dominates it (a standing refusal, a scale-up made at every burst)
//! before reading it record by record. How many different reasons a proposal's records
//! give tells the two apart: one reason over many records is a standing refusal, one
//! reason a record is the same action taken on as many occasions.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::engine::record::{ActionResult, DecisionRecord, Record};

/// One proposal (plugin and action) and what the journal says of it.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Proposal {
    pub plugin: String,
    pub proposed: String,
    /// Decision records holding it, closing records of folded runs included.
    pub records: usize,
    /// Its records as a fraction of all decision records.
    pub share: f64,
    /// Times it was made: a folded run counts every tick it covered.
    pub times: u64,
    /// Different reasons its records give (a reason names what it was for: a run's due
    /// time, the pods it waits for).
    pub reasons: usize,
    /// Each result and the times it came of the proposal (`done`, `not-applied`, ...).
    pub results: BTreeMap<String, u64>,
}

/// The journal's decision records grouped by plugin and action, most records first (then
/// by plugin and action, so the order is stable).
pub fn summarise<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<Proposal> {
    // Each proposal with the reasons its records give.
    let mut by_proposal: BTreeMap<(String, String), (Proposal, BTreeSet<&str>)> = BTreeMap::new();
    let mut total = 0;
    for record in records {
        let Record::Decision(d) = record else { continue };
        total += 1;
        let key = (d.plugin.clone(), d.proposed.to_string());
        let (entry, reasons) = by_proposal.entry(key).or_insert_with_key(|(plugin, proposed)| {
            (Proposal { plugin: plugin.clone(), proposed: proposed.clone(), ..Proposal::default() }, BTreeSet::new())
        });
        // A closing record's count includes its run's first time, recorded on its own.
        let times = d.repeated.as_ref().map_or(1, |r| r.count.saturating_sub(1));
        entry.records += 1;
        entry.times += times;
        *entry.results.entry(result_name(d)).or_default() += times;
        reasons.insert(&d.reason);
    }
    let mut proposals: Vec<Proposal> = by_proposal
        .into_values()
        .map(|(mut p, reasons)| {
            p.share = p.records as f64 / total.max(1) as f64;
            p.reasons = reasons.len();
            p
        })
        .collect();
    proposals.sort_by_key(|p| std::cmp::Reverse(p.records));
    proposals
}

/// The result's name as the journal spells it.
fn result_name(d: &DecisionRecord) -> String {
    match &d.result {
        ActionResult::Failed { .. } => "failed".to_string(),
        other => {
            serde_json::to_value(other).ok().and_then(|v| v["result"].as_str().map(str::to_string)).unwrap_or_default()
        }
    }
}

/// The summary for people: one row per proposal.
pub fn table(proposals: &[Proposal]) -> comfy_table::Table {
    let mut t = super::render::table(&["records", "share", "times", "reasons", "plugin", "proposed", "results"]);
    for p in proposals {
        let results: Vec<String> = p.results.iter().map(|(name, n)| format!("{name} {n}")).collect();
        t.add_row(vec![
            p.records.to_string(),
            format!("{:.1}%", p.share * 100.0),
            p.times.to_string(),
            p.reasons.to_string(),
            p.plugin.clone(),
            p.proposed.clone(),
            results.join(", "),
        ]);
    }
    t
}
