//! When to tick: periodically, and when a batch of new pending pods closes.
//!
//! A burst of pods (a Deployment scaled from 10 to 500, a Job fanning out) arrives over a few
//! seconds. Planning on the first pod would size capacity for one pod and then again for the
//! rest; waiting for the burst to end plans once. A batch closes when arrivals pause for
//! `idle` or when `max` has passed since it opened, whichever is first.

use super::config::Batching;
use super::record::Trigger;

#[derive(Clone, Debug)]
pub struct TickSchedule {
    interval_ms: u64,
    idle_ms: u64,
    max_ms: u64,
    last_tick: Option<u64>,
    /// First and latest arrival of the open batch.
    batch: Option<(u64, u64)>,
    /// A tick was asked for (a change that acts at once); the next tick covers it.
    asked: bool,
}

impl TickSchedule {
    pub fn new(interval: std::time::Duration, batching: &Batching) -> Self {
        TickSchedule {
            interval_ms: interval.as_millis() as u64,
            idle_ms: batching.idle.as_millis() as u64,
            max_ms: batching.max.as_millis() as u64,
            last_tick: None,
            batch: None,
            asked: false,
        }
    }

    /// A tick is wanted at once (a node replacement asked for through the control API).
    pub fn ask(&mut self) {
        self.asked = true;
    }

    /// New pending pods were seen at `now`.
    pub fn pods_arrived(&mut self, now: u64) {
        self.batch = Some(match self.batch {
            Some((first, _)) => (first, now),
            None => (now, now),
        });
    }

    /// Whether a tick is due at `now`, and why.
    pub fn due(&self, now: u64) -> Option<Trigger> {
        if self.asked {
            return Some(Trigger::Manual);
        }
        if let Some((first, last)) = self.batch
            && (now.saturating_sub(last) >= self.idle_ms || now.saturating_sub(first) >= self.max_ms)
        {
            return Some(Trigger::PendingPods);
        }
        match self.last_tick {
            None => Some(Trigger::Periodic),
            Some(last) if now.saturating_sub(last) >= self.interval_ms => Some(Trigger::Periodic),
            Some(_) => None,
        }
    }

    /// The earliest time a tick can be due, for a runner that sleeps until then.
    pub fn next_due(&self) -> u64 {
        if self.asked {
            return 0;
        }
        let periodic = self.last_tick.map_or(0, |t| t + self.interval_ms);
        match self.batch {
            Some((first, last)) => periodic.min((last + self.idle_ms).min(first + self.max_ms)),
            None => periodic,
        }
    }

    /// A tick ran at `now`: it covered the open batch too.
    pub fn ticked(&mut self, now: u64) {
        self.last_tick = Some(now);
        self.batch = None;
        self.asked = false;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn schedule() -> TickSchedule {
        let mut s = TickSchedule::new(
            Duration::from_secs(60),
            &Batching { idle: Duration::from_secs(1), max: Duration::from_secs(10) },
        );
        s.ticked(0);
        s
    }

    #[test]
    fn a_burst_closes_after_a_second_of_quiet() {
        let mut s = schedule();
        s.pods_arrived(2_000);
        s.pods_arrived(2_500);
        assert_eq!(s.due(3_000), None, "only 0.5 s since the last arrival");
        assert_eq!(s.due(3_500), Some(Trigger::PendingPods));
        assert_eq!(s.next_due(), 3_500);
    }

    #[test]
    fn a_steady_stream_closes_at_the_maximum() {
        let mut s = schedule();
        for t in (1_000..11_000).step_by(500) {
            s.pods_arrived(t);
            assert_eq!(s.due(t), None, "at {t} ms");
        }
        s.pods_arrived(11_000);
        assert_eq!(s.due(11_000), Some(Trigger::PendingPods), "10 s after the batch opened at 1 s");
        s.ticked(11_000);
        assert_eq!(s.due(11_500), None, "the tick closed the batch");
    }

    #[test]
    fn periodic_ticks_without_arrivals() {
        let s = schedule();
        assert_eq!(s.due(59_999), None);
        assert_eq!(s.due(60_000), Some(Trigger::Periodic));
    }
}
