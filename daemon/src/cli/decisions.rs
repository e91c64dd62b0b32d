//! `ballast decisions`: read decision records back from a journal.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::{Output, render};
use crate::engine::journal;
use crate::engine::record::{ActionResult, DecisionRecord, ExpanderRecord, GuardOutcome, Record};

#[derive(Debug, Args)]
pub struct DecisionsArgs {
    /// The JSON-lines journal written by the daemon or `ballast simulate --journal`.
    #[arg(long, value_name = "FILE.jsonl")]
    journal: PathBuf,
    /// Only the last N decisions.
    #[arg(long, value_name = "N")]
    tail: Option<usize>,
    /// Include tick, removal and control records, not just decisions and expander answers.
    #[arg(long)]
    all: bool,
    /// Instead of the records, each proposal (plugin and action) with how many decision
    /// records hold it, their share of all decision records, the times it was made (a folded
    /// run counts each tick) and its results, most frequent first.
    #[arg(long, conflicts_with = "all")]
    summary: bool,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(args: DecisionsArgs) -> anyhow::Result<ExitCode> {
    let contents = journal::read(&args.journal).with_context(|| format!("cannot read {}", args.journal.display()))?;
    for (line, error) in &contents.skipped {
        eprintln!("{}:{line}: skipped an unreadable record ({error})", args.journal.display());
    }
    let mut records: Vec<&Record> = contents
        .records
        .iter()
        .filter(|r| args.all || matches!(r, Record::Decision(_) | Record::Expander(_)))
        .collect();
    if let Some(n) = args.tail {
        records = records.split_off(records.len().saturating_sub(n));
    }
    if args.summary {
        let proposals = super::proposals::summarise(records);
        if args.output == Output::Json {
            for proposal in proposals {
                outln!("{}", serde_json::to_string(&proposal)?);
            }
        } else {
            outln!("{}", super::proposals::table(&proposals));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.output == Output::Json {
        for record in records {
            outln!("{}", serde_json::to_string(record)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = render::table(&["tick", "plugin", "proposed", "guardrails", "result", "reason"]);
    for record in records {
        t.add_row(row(record));
    }
    outln!("{t}");
    Ok(ExitCode::SUCCESS)
}

/// A record's row: tick, plugin, proposed, guardrails, result, reason.
fn row(record: &Record) -> Vec<String> {
    match record {
        Record::Decision(d) => decision_row(d),
        Record::Tick(tick) => {
            let failed: Vec<String> = tick.plugins.iter().filter_map(|p| p.error.clone()).collect();
            let saw = &tick.saw;
            vec![
                tick.tick.to_string(),
                "(tick)".into(),
                format!("{:?}, {}", tick.trigger, tick.mode).to_lowercase(),
                render::tick_saw(saw.nodes as u64, saw.pending_pods as u64, saw.unplaceable_pods as u64),
                tick.error.clone().unwrap_or_default(),
                failed.join("; "),
            ]
        }
        Record::Removal(r) => vec![
            r.tick.to_string(),
            "(removal)".into(),
            format!("node {} of {}", r.node, r.group),
            String::new(),
            serde_json::to_value(&r.outcome).map(|v| v.to_string()).unwrap_or_default(),
            format!("started at tick {}", r.started_tick),
        ],
        Record::Expander(e) => expander_row(e),
        Record::Control(c) => vec![
            c.tick.to_string(),
            format!("(control: {})", c.caller),
            c.change.clone(),
            String::new(),
            String::new(),
            c.reason.clone(),
        ],
    }
}

fn decision_row(d: &DecisionRecord) -> Vec<String> {
    let guard = match &d.guard {
        GuardOutcome::Accepted => "accepted".to_string(),
        GuardOutcome::Changed { applied, why } => format!(
            "changed to {}: {}",
            applied.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and "),
            crate::engine::rule::join(why)
        ),
        GuardOutcome::Refused { why } => format!("refused: {}", crate::engine::rule::join(why)),
    };
    let result = match &d.result {
        ActionResult::Failed { error, kind } => format!("{kind:?}: {error}").to_lowercase(),
        other => {
            serde_json::to_value(other).ok().and_then(|v| v["result"].as_str().map(str::to_string)).unwrap_or_default()
        }
    };
    let tick = match &d.repeated {
        Some(r) => format!("{}-{} (x{})", r.first_tick, r.last_tick, r.count),
        None => d.tick.to_string(),
    };
    vec![tick, d.plugin.clone(), d.proposed.to_string(), guard, result, d.reason.clone()]
}

fn expander_row(e: &ExpanderRecord) -> Vec<String> {
    let offered: Vec<String> =
        e.offered.iter().map(|o| format!("{} +{} ({} pods)", o.group, o.node_count, o.pods)).collect();
    let chosen: Vec<&str> = e.chosen.iter().map(|c| c.group.as_str()).collect();
    let (plugin, reason) = e.chosen.first().map_or(("", ""), |c| (c.plugin.as_str(), c.reason.as_str()));
    let answer = match (&e.error, chosen.is_empty()) {
        (Some(error), _) => format!("failed: {error}"),
        (None, true) => "none chosen".into(),
        (None, false) => format!("chose {}", chosen.join(", ")),
    };
    vec![
        e.call.to_string(),
        format!("(expander) {plugin}"),
        format!("options {}", offered.join(", ")),
        String::new(),
        answer,
        reason.to_string(),
    ]
}
