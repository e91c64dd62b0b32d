//! Folding: a decision that changed nothing (or failed the same way), made again on the next
//! tick, is counted instead of kept, and one closing record says how many times (see
//! [`super::record::Recorder::record`]).

use super::record::{ActionResult, DecisionRecord, GuardOutcome, Repeated};

/// A run of identical decisions being folded: its first and latest records and its count.
struct Run {
    first: DecisionRecord,
    first_id: u64,
    count: u64,
    last: DecisionRecord,
}

/// The runs open as of the last tick.
#[derive(Default)]
pub(crate) struct Runs(Vec<Run>);

impl Runs {
    /// Counts `decision` into the open run it continues (same decision, previous tick) and
    /// returns that run's first id; `None` if it starts or belongs to no run.
    pub(crate) fn fold(&mut self, decision: &DecisionRecord) -> Option<u64> {
        if !foldable(decision) {
            return None;
        }
        let run = self.0.iter_mut().find(|r| r.last.tick + 1 == decision.tick && same_as(&r.first, decision))?;
        run.count += 1;
        run.last = decision.clone();
        Some(run.first_id)
    }

    /// Opens a run for a decision just kept under `id`, if it may be folded.
    pub(crate) fn open(&mut self, decision: &DecisionRecord, id: u64) {
        if foldable(decision) && decision.repeated.is_none() {
            self.0.push(Run { first: decision.clone(), first_id: id, count: 1, last: decision.clone() });
        }
    }

    /// Ends the runs not made on the tick before `tick` (all of them with `None`) and
    /// returns the closing record of each that repeated: the last time's record, stamped
    /// `tick`, or `newest` (the newest record's tick) when closing all.
    pub(crate) fn end(&mut self, tick: Option<u64>, newest: u64, at_millis: u64) -> Vec<DecisionRecord> {
        let (ended, open): (Vec<Run>, Vec<Run>) =
            std::mem::take(&mut self.0).into_iter().partition(|r| tick.is_none_or(|t| r.last.tick + 1 < t));
        self.0 = open;
        ended
            .into_iter()
            .filter(|r| r.count > 1)
            .map(|run| DecisionRecord {
                tick: tick.unwrap_or(newest.max(run.last.tick)),
                at_millis,
                repeated: Some(Repeated {
                    count: run.count,
                    first_tick: run.first.tick,
                    last_tick: run.last.tick,
                    first_id: run.first_id,
                }),
                ..run.last
            })
            .collect()
    }
}

/// True if `b` is the same decision as `a` with the same outcome, whatever its tick: same
/// plugin, action and reason, and the same guard outcome, rules and applied actions, and
/// result. The guard's messages may differ ("grew 3m ago", then "3m 10s ago").
fn same_as(a: &DecisionRecord, b: &DecisionRecord) -> bool {
    fn applied(g: &GuardOutcome) -> Option<&Vec<ballast_sdk::Action>> {
        match g {
            GuardOutcome::Changed { applied, .. } => Some(applied),
            _ => None,
        }
    }
    a.plugin == b.plugin
        && a.proposed == b.proposed
        && a.reason == b.reason
        && a.guard.name() == b.guard.name()
        && a.guard.rules() == b.guard.rules()
        && applied(&a.guard) == applied(&b.guard)
        && a.result == b.result
}

/// Only decisions that changed nothing, or failed with the same error, are folded: one that
/// acted is always recorded on its own, as cooldowns are restored from those records after a
/// restart. (A call refused tick after tick, say a termination the IAM role may not make, is
/// one record and a closing count, as a standing refusal of the guardrails is.)
fn foldable(d: &DecisionRecord) -> bool {
    matches!(
        d.result,
        ActionResult::NotApplied
            | ActionResult::Unchanged
            | ActionResult::DryRun
            | ActionResult::Shadow
            | ActionResult::Failed { .. }
    )
}

#[cfg(test)]
mod tests {
    use ballast_sdk::Action;

    use super::super::config::Mode;
    use super::super::record::*;
    use super::super::rule::{Rule, Why};

    fn tick(n: u64) -> Record {
        Record::Tick(TickRecord {
            tick: n,
            at_millis: n * 10,
            mode: Mode::Enforce,
            trigger: Trigger::Periodic,
            error: None,
            standby: false,
            saw: SnapshotSummary::default(),
            plugins: Vec::new(),
        })
    }

    /// A refusal whose message changes every tick, as a cooldown's "grew 3m ago" does.
    fn refused(n: u64, group: &str) -> Record {
        let why = Why::new(Rule::ScaleDownAfterScaleUp, format!("grew {n}0 s ago"));
        Record::Decision(DecisionRecord {
            tick: n,
            at_millis: n * 10,
            plugin: "fargate-placement".into(),
            proposed: Action::ScaleTo { group: group.into(), size: 3 },
            reason: "r".into(),
            guard: GuardOutcome::Refused { why: vec![why] },
            result: ActionResult::NotApplied,
            repeated: None,
        })
    }

    fn decisions(recorder: &Recorder) -> Vec<DecisionRecord> {
        recorder
            .records()
            .filter_map(|r| match r {
                Record::Decision(d) => Some(d),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_refusal_repeated_tick_after_tick_is_one_record_and_one_closing_count() {
        let recorder = Recorder::new(1_000, None);
        for n in 1..=100 {
            recorder.record(tick(n));
            recorder.record(refused(n, "a"));
            if n == 50 {
                recorder.record(refused(n, "b"));
            }
        }
        recorder.record(tick(101));
        recorder.record(refused(101, "a"));
        recorder.record(tick(102));
        let held = decisions(&recorder);
        assert_eq!(held.len(), 2, "{held:#?}");
        assert_eq!(held[0].tick, 1);
        assert!(held[0].repeated.is_none());
        assert_eq!(held[1].proposed, Action::ScaleTo { group: "b".into(), size: 3 }, "a one-off is kept as it is");
        recorder.record(tick(103));
        let held = decisions(&recorder);
        let closing = held.last().unwrap();
        assert_eq!(closing.tick, 103, "stamped when its end is known, so the history stays in tick order");
        let repeated = closing.repeated.as_ref().unwrap();
        assert_eq!((repeated.count, repeated.first_tick, repeated.last_tick, repeated.first_id), (101, 1, 101, 2));
        assert_eq!(
            closing.guard,
            GuardOutcome::Refused { why: vec![Why::new(Rule::ScaleDownAfterScaleUp, "grew 1010 s ago")] },
            "the last time's words"
        );

        // A gap breaks the run; a decision that acted is never folded.
        recorder.record(tick(105));
        recorder.record(refused(105, "a"));
        let done = |n| {
            let Record::Decision(mut d) = refused(n, "a") else { unreachable!() };
            d.result = ActionResult::Done;
            d.guard = GuardOutcome::Accepted;
            Record::Decision(d)
        };
        recorder.record(done(105));
        recorder.record(tick(106));
        recorder.record(done(106));
        recorder.close_runs(1_060);
        let held = decisions(&recorder);
        assert_eq!(held.len(), 3 + 3, "{:#?}", &held[3..]);
        assert!(held[3..].iter().all(|d| d.repeated.is_none()), "a run of one has no closing record");
    }
}
