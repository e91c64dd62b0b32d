//! Replica counts over simulated time.

use std::time::Duration;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::duration;

const DAY_MS: f64 = 86_400_000.0;

/// How many replicas a workload wants over time. Written as a one-key map:
/// `{constant: 10}`, `{ramp: {...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Trace {
    Constant(u32),
    /// Holds each step's count from its time on (zero before the first).
    Steps(Vec<Step>),
    /// Linear from `from` at `start` to `to` at `end`, flat outside.
    Ramp(Ramp),
    /// Straight lines between points (a ramp up, a plateau, a ramp down...), flat before the
    /// first and after the last.
    Linear(Vec<Step>),
    /// A daily cosine between `min` and `max`, highest at `peak` (time of day, `HH:MM`).
    Daily(Daily),
    /// `base`, rising to `peak` for `length` every `every`, each spike shifted by up to
    /// `jitter` of `every` (seeded).
    Spikes(Spikes),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Step {
    #[serde(with = "duration")]
    pub at: Duration,
    pub replicas: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Ramp {
    pub from: u32,
    pub to: u32,
    #[serde(with = "duration")]
    pub start: Duration,
    #[serde(with = "duration")]
    pub end: Duration,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Daily {
    pub min: u32,
    pub max: u32,
    pub peak: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Spikes {
    pub base: u32,
    pub peak: u32,
    #[serde(with = "duration")]
    pub every: Duration,
    #[serde(with = "duration")]
    pub length: Duration,
    #[serde(default, with = "duration")]
    pub start: Duration,
    #[serde(default)]
    pub jitter: f64,
}

/// The count at `t` on the line from `a` to `b`, flat outside.
fn between(a: &Step, b: &Step, t: u64) -> u32 {
    let (start, end) = (a.at.as_millis() as u64, b.at.as_millis() as u64);
    if t <= start {
        a.replicas
    } else if t >= end {
        b.replicas
    } else {
        let f = (t - start) as f64 / (end - start) as f64;
        (a.replicas as f64 + (b.replicas as f64 - a.replicas as f64) * f).round() as u32
    }
}

/// Parses `HH:MM` into milliseconds after midnight.
pub fn time_of_day(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not a time of day; write it as HH:MM, e.g. 14:00");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let (h, m): (u64, u64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok((h * 60 + m) * 60_000)
}

impl Trace {
    /// Checks what serde cannot; the error is about the trace itself (the caller adds the field).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Trace::Ramp(r) if r.end < r.start => Err(format!(
                "ramp ends ({}) before it starts ({})",
                duration::display(r.end),
                duration::display(r.start)
            )),
            Trace::Daily(d) if d.min > d.max => Err(format!("daily min {} is above max {}", d.min, d.max)),
            Trace::Daily(d) => time_of_day(&d.peak).map(|_| ()),
            Trace::Spikes(s) if s.every.is_zero() => Err("spikes every 0s: `every` must be more than zero".into()),
            Trace::Spikes(s) if s.length > s.every => Err(format!(
                "spike length {} is longer than the period {}",
                duration::display(s.length),
                duration::display(s.every)
            )),
            Trace::Spikes(s) if !(0.0..=1.0).contains(&s.jitter) => {
                Err(format!("spike jitter must be in [0, 1], got {}", s.jitter))
            }
            Trace::Steps(steps) | Trace::Linear(steps) if steps.windows(2).any(|w| w[1].at < w[0].at) => {
                Err("points must be in time order".into())
            }
            Trace::Linear(points) if points.is_empty() => Err("linear needs at least one point".into()),
            _ => Ok(()),
        }
    }
}

/// A trace ready to evaluate: spike times drawn once from the seed.
#[derive(Clone, Debug)]
pub struct ReplicaCurve {
    trace: Trace,
    /// Spike windows (start, end) in ms since the simulation start.
    windows: Vec<(u64, u64)>,
    /// Time of day at the simulation start, ms after midnight.
    start_of_day: u64,
    peak_of_day: u64,
}

impl ReplicaCurve {
    pub fn new(trace: &Trace, horizon: Duration, start_of_day: u64, seed: u64) -> Self {
        let mut windows = Vec::new();
        if let Trace::Spikes(s) = trace {
            let mut rng = StdRng::seed_from_u64(seed);
            let every = s.every.as_millis() as u64;
            let mut at = s.start.as_millis() as u64;
            while at < horizon.as_millis() as u64 {
                let shift = (rng.random::<f64>() * s.jitter * every as f64) as u64;
                windows.push((at + shift, at + shift + s.length.as_millis() as u64));
                at += every;
            }
        }
        let peak_of_day = match trace {
            Trace::Daily(d) => time_of_day(&d.peak).unwrap_or(0),
            _ => 0,
        };
        ReplicaCurve { trace: trace.clone(), windows, start_of_day, peak_of_day }
    }

    /// Replicas wanted `t` ms after the simulation start.
    pub fn at(&self, t: u64) -> u32 {
        match &self.trace {
            Trace::Constant(n) => *n,
            Trace::Steps(steps) => {
                steps.iter().take_while(|s| s.at.as_millis() as u64 <= t).last().map_or(0, |s| s.replicas)
            }
            Trace::Ramp(r) => {
                let from = Step { at: r.start, replicas: r.from };
                let to = Step { at: r.end, replicas: r.to };
                between(&from, &to, t)
            }
            Trace::Linear(points) => match points.iter().position(|p| p.at.as_millis() as u64 > t) {
                Some(0) => points[0].replicas,
                Some(i) => between(&points[i - 1], &points[i], t),
                None => points.last().map_or(0, |p| p.replicas),
            },
            Trace::Daily(d) => {
                let day = ((self.start_of_day + t) as f64 - self.peak_of_day as f64) / DAY_MS;
                let f = (1.0 + (day * std::f64::consts::TAU).cos()) / 2.0;
                (d.min as f64 + (d.max - d.min) as f64 * f).round() as u32
            }
            Trace::Spikes(s) => {
                if self.windows.iter().any(|&(a, b)| t >= a && t < b) {
                    s.peak
                } else {
                    s.base
                }
            }
        }
    }

    /// The highest count over the horizon, sampled each minute.
    pub fn peak(&self, horizon: Duration) -> u32 {
        (0..=horizon.as_millis() as u64).step_by(60_000).map(|t| self.at(t)).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(trace: Trace) -> ReplicaCurve {
        ReplicaCurve::new(&trace, Duration::from_secs(86_400), 0, 1)
    }

    #[test]
    fn traces_follow_their_shape() {
        let ramp = curve(Trace::Ramp(Ramp {
            from: 2,
            to: 12,
            start: Duration::from_secs(3600),
            end: Duration::from_secs(7200),
        }));
        assert_eq!((ramp.at(0), ramp.at(5_400_000), ramp.at(9_000_000)), (2, 7, 12));

        let daily = curve(Trace::Daily(Daily { min: 0, max: 10, peak: "12:00".into() }));
        assert_eq!((daily.at(0), daily.at(43_200_000), daily.at(21_600_000)), (0, 10, 5));

        let steps = curve(Trace::Steps(vec![
            Step { at: Duration::from_secs(60), replicas: 3 },
            Step { at: Duration::from_secs(120), replicas: 1 },
        ]));
        assert_eq!((steps.at(0), steps.at(60_000), steps.at(200_000)), (0, 3, 1));

        let linear = curve(Trace::Linear(vec![
            Step { at: Duration::from_secs(0), replicas: 2 },
            Step { at: Duration::from_secs(100), replicas: 12 },
            Step { at: Duration::from_secs(200), replicas: 12 },
            Step { at: Duration::from_secs(300), replicas: 0 },
        ]));
        assert_eq!((linear.at(50_000), linear.at(150_000), linear.at(250_000), linear.at(400_000)), (7, 12, 6, 0));
    }

    #[test]
    fn spikes_are_seeded() {
        let trace = Trace::Spikes(Spikes {
            base: 1,
            peak: 9,
            every: Duration::from_secs(3600),
            length: Duration::from_secs(600),
            start: Duration::ZERO,
            jitter: 0.5,
        });
        let a = ReplicaCurve::new(&trace, Duration::from_secs(86_400), 0, 7);
        let b = ReplicaCurve::new(&trace, Duration::from_secs(86_400), 0, 7);
        let c = ReplicaCurve::new(&trace, Duration::from_secs(86_400), 0, 8);
        assert_eq!(a.windows, b.windows);
        assert_ne!(a.windows, c.windows);
        assert_eq!(a.peak(Duration::from_secs(86_400)), 9);
    }
}
