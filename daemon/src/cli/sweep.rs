//! `ballast simulate [--compare SETS] --seeds 1-5`: every set on every seed, and how each set
//! fares across them. Boot times, spike times and interruptions move with the seed, and a
//! policy that wins on one seed may have been lucky: the mean, the range and the seeds on
//! which a set did no worse than the first say whether a win holds.

use anyhow::bail;

use crate::sim::SimReport;

/// The most seeds one sweep runs: a typo like `1-10000` should not run all night.
const MAX_SEEDS: usize = 100;

/// Seeds from `1-5`, `1,4,9` or a mix (`1-3,7`), in the order given, without repeats.
pub(super) fn parse_seeds(text: &str) -> anyhow::Result<Vec<u64>> {
    let mut seeds = Vec::new();
    for part in text.split(',').map(str::trim) {
        let number = |s: &str| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| anyhow::anyhow!("--seeds {text}: `{part}` is not a seed or a range of seeds like `1-5`"))
        };
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(part)?, number(part)?),
        };
        if first > last {
            bail!("--seeds {text}: the range `{part}` runs backwards");
        }
        if last - first >= MAX_SEEDS as u64 || seeds.len() + (last - first) as usize >= MAX_SEEDS {
            bail!("--seeds {text}: more than {MAX_SEEDS} seeds");
        }
        seeds.extend((first..=last).filter(|s| !seeds.contains(s)).collect::<Vec<_>>());
    }
    Ok(seeds)
}

/// One set's runs, one per seed, in the sweep's seed order.
pub(super) struct SetRuns {
    pub set: String,
    pub runs: Vec<(u64, SimReport)>,
}

impl SetRuns {
    fn mean(&self, f: impl Fn(&SimReport) -> f64) -> f64 {
        self.runs.iter().map(|(_, r)| f(r)).sum::<f64>() / self.runs.len().max(1) as f64
    }

    fn range(&self, f: impl Fn(&SimReport) -> f64) -> (f64, f64) {
        let values = self.runs.iter().map(|(_, r)| f(r));
        let min = values.clone().fold(f64::INFINITY, f64::min);
        (min, values.fold(f64::NEG_INFINITY, f64::max))
    }

    /// Seeds on which this set did no worse than `first` by `f` (to the cent or the tenth
    /// the table shows), and how many seeds both ran.
    fn no_worse_than(&self, first: &SetRuns, f: impl Fn(&SimReport) -> f64, step: f64) -> (usize, usize) {
        let rounded = |r: &SimReport| (f(r) / step).round();
        let pairs = self.runs.iter().zip(&first.runs);
        (pairs.clone().filter(|((_, a), (_, b))| rounded(a) <= rounded(b)).count(), pairs.count())
    }
}

/// One row per set: means and ranges over the seeds, and against the first set.
pub(super) fn table(sweep: &[SetRuns]) -> comfy_table::Table {
    let first = sweep.first().map_or("the first set", |s| s.set.as_str());
    let against = [format!("seeds no dearer than {first}"), format!("seeds waiting no longer than {first}")];
    let mut t = super::render::table(&[
        "set",
        "mean cost",
        "cost range",
        "mean x bound",
        "mean pending pod-min",
        "pending range",
        "worst pending",
        "mean nodes removed (pods evicted)",
        &against[0],
        &against[1],
    ]);
    let cost = |r: &SimReport| r.summary.total_cost;
    let pending = |r: &SimReport| r.summary.pending_pod_minutes;
    for (i, s) in sweep.iter().enumerate() {
        let (cost_min, cost_max) = s.range(cost);
        let (pending_min, pending_max) = s.range(pending);
        let versus = |f: &dyn Fn(&SimReport) -> f64, step: f64| match sweep.first() {
            Some(first) if i > 0 => {
                let (n, of) = s.no_worse_than(first, f, step);
                format!("{n} of {of}")
            }
            _ => "-".to_string(),
        };
        t.add_row(vec![
            s.set.clone(),
            format!("${:.2}", s.mean(cost)),
            format!("${cost_min:.2}-{cost_max:.2}"),
            format!("{:.2}x", s.mean(|r| r.summary.cost_to_bound)),
            format!("{:.1}", s.mean(pending)),
            format!("{pending_min:.1}-{pending_max:.1}"),
            format!("{:.0} s", s.range(|r| r.summary.worst_pending_seconds).1),
            format!(
                "{:.1} ({:.1})",
                s.mean(|r| r.summary.nodes_removed as f64),
                s.mean(|r| r.summary.pods_evicted as f64)
            ),
            versus(&cost, 0.01),
            versus(&pending, 0.1),
        ]);
    }
    t
}

/// Every run as `{set, seed, summary}`, for `-o json`.
pub(super) fn json(sweep: &[SetRuns]) -> serde_json::Value {
    let runs = sweep.iter().flat_map(|s| {
        s.runs.iter().map(|(seed, r)| serde_json::json!({ "set": s.set, "seed": seed, "summary": r.summary }))
    });
    serde_json::Value::Array(runs.collect())
}

#[cfg(test)]
mod tests {
    use super::parse_seeds;

    #[test]
    fn seeds_parse_as_ranges_and_lists_and_bad_ones_are_named() {
        assert_eq!(parse_seeds("1-4").unwrap(), [1, 2, 3, 4]);
        assert_eq!(parse_seeds("9, 1-3,2").unwrap(), [9, 1, 2, 3]);
        assert_eq!(parse_seeds("7").unwrap(), [7]);
        let backwards = parse_seeds("5-1").unwrap_err().to_string();
        assert!(backwards.contains("--seeds 5-1") && backwards.contains("backwards"), "{backwards}");
        let word = parse_seeds("1,x").unwrap_err().to_string();
        assert!(word.contains("`x`"), "{word}");
        assert!(parse_seeds("1-1000").unwrap_err().to_string().contains("more than 100"));
        assert!(parse_seeds("").is_err());
    }
}
