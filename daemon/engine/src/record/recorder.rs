//! The recorder: a bounded ring of records in memory and, when configured, the journal they
//! are appended to; the engine records, readers (the control API) list and wait.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::{Record, Stamped};
use crate::journal::Journal;

/// The ring and, optionally, the journal, shared: the engine records, readers (the control
/// API) list and wait for new records. Cheap to clone; every clone is the same log.
#[derive(Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
}

struct Shared {
    log: Mutex<Log>,
    /// The id of the newest record; changes with every record.
    newest: watch::Sender<u64>,
}

struct Log {
    ring: VecDeque<Arc<Stamped>>,
    capacity: usize,
    next_id: u64,
    journal: Option<Journal>,
    journal_errors: u64,
    /// Runs of identical decisions open as of the last tick.
    runs: crate::fold::Runs,
}

impl Recorder {
    pub fn new(capacity: usize, journal: Option<Journal>) -> Self {
        let log = Log {
            ring: VecDeque::with_capacity(capacity.min(1024)),
            capacity: capacity.max(1),
            next_id: 1,
            journal,
            journal_errors: 0,
            runs: crate::fold::Runs::default(),
        };
        Recorder { shared: Arc::new(Shared { log: Mutex::new(log), newest: watch::channel(0).0 }) }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        // A panic while the log was held left at worst one record out; keep recording.
        self.shared.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps the record and returns its id; a journal write that fails is logged and counted,
    /// never fatal: the autoscaler must keep working when its disk is full.
    ///
    /// # Guarantees
    ///
    /// A decision that changed nothing (refused, unchanged, dry-run, shadow) and is made
    /// again on the next tick, identical in plugin, action, reason, guard outcome and
    /// result, is not kept again: the run is counted, and when it ends (a tick passes
    /// without it, or [`Recorder::close_runs`]) one closing record with [`Repeated`] says
    /// how many times and over which ticks. The id returned for a folded decision is that
    /// of its first record. So a standing refusal costs two records, not one per tick.
    ///
    /// # Caveats
    ///
    /// A run still open when the process is killed has only its first record; the closing
    /// record is written at the tick after it ends, with that tick's number.
    pub fn record(&self, record: Record) -> u64 {
        let id = {
            let mut log = self.log();
            if let Record::Tick(tick) = &record {
                log.close_runs_before(Some(tick.tick), tick.at_millis);
            }
            if let Record::Decision(decision) = &record
                && let Some(first_id) = log.runs.fold(decision)
            {
                return first_id;
            }
            let id = log.write(record);
            let Log { ring, runs, .. } = &mut *log;
            if let Some(Record::Decision(decision)) = ring.back().map(|s| &s.record) {
                runs.open(decision, id);
            }
            id
        };
        self.shared.newest.send_replace(id);
        id
    }

    /// Ends every open run of identical decisions, writing the closing record of each that
    /// repeated (at shutdown, at the end of a simulation).
    pub fn close_runs(&self, at_millis: u64) {
        let id = {
            let mut log = self.log();
            log.close_runs_before(None, at_millis);
            log.next_id - 1
        };
        self.shared.newest.send_replace(id);
    }

    /// Seeds the ring with records read back from a journal after a restart; ids continue
    /// from them, so a reader's cursor stays valid across the restart.
    pub fn restore(&self, records: impl IntoIterator<Item = Record>) {
        let id = {
            let mut log = self.log();
            for record in records {
                let stamped = Stamped::new(log.next_id, record);
                log.push(stamped);
            }
            log.next_id - 1
        };
        self.shared.newest.send_replace(id);
    }

    /// Every record held, oldest first (a copy).
    pub fn records(&self) -> std::vec::IntoIter<Record> {
        self.log().ring.iter().map(|s| s.record.clone()).collect::<Vec<_>>().into_iter()
    }

    /// Records held with an id above `after`, oldest first, at most `limit`; `Err` with the
    /// oldest id held when records after `after` were dropped from the ring already.
    pub fn after(&self, after: u64, limit: usize) -> Result<Vec<Arc<Stamped>>, u64> {
        let log = self.log();
        let oldest = log.ring.front().map_or(log.next_id, |s| s.id);
        if after + 1 < oldest {
            return Err(oldest);
        }
        let skip = (after + 1 - oldest) as usize;
        Ok(log.ring.iter().skip(skip).take(limit).cloned().collect())
    }

    /// Walks the records held from the newest with an id below `before` (all with `None`),
    /// handing each to `visit` until it returns false.
    pub fn scan_back(&self, before: Option<u64>, mut visit: impl FnMut(&Arc<Stamped>) -> bool) {
        let log = self.log();
        let oldest = log.ring.front().map_or(log.next_id, |s| s.id);
        let end = match before {
            Some(b) => (b.saturating_sub(oldest) as usize).min(log.ring.len()),
            None => log.ring.len(),
        };
        for stamped in log.ring.range(..end).rev() {
            if !visit(stamped) {
                break;
            }
        }
    }

    /// The record with this id, if still held.
    pub fn get(&self, id: u64) -> Option<Arc<Stamped>> {
        let log = self.log();
        let oldest = log.ring.front()?.id;
        log.ring.get(id.checked_sub(oldest)? as usize).cloned()
    }

    /// Changes whenever a record is added; holds the newest id.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.newest.subscribe()
    }

    /// The id of the newest record (0 when none).
    pub fn newest_id(&self) -> u64 {
        self.log().next_id - 1
    }

    pub fn last_tick(&self) -> Option<u64> {
        self.log().ring.back().map(|s| s.record.tick())
    }

    pub fn journal_errors(&self) -> u64 {
        self.log().journal_errors
    }
}

impl Log {
    /// Appends to the journal and keeps the record; returns its id.
    fn write(&mut self, record: Record) -> u64 {
        let stamped = Stamped::new(self.next_id, record);
        let written = match &mut self.journal {
            None => Ok(()),
            Some(_) if stamped.json().is_empty() => Err(std::io::Error::other("the record could not be serialised")),
            Some(journal) => journal.append_line(stamped.json()),
        };
        if let Err(error) = written {
            self.journal_errors += 1;
            tracing::error!(%error, "cannot append to the decision journal");
        }
        self.push(stamped)
    }

    /// Ends the runs not made on the tick before `tick` (all of them with `None`), writing
    /// the closing record of each that repeated, stamped `tick` (the tick at which its end
    /// is known) or the newest record's tick, so the history stays in tick order.
    fn close_runs_before(&mut self, tick: Option<u64>, at_millis: u64) {
        let newest = self.ring.back().map_or(0, |s| s.record.tick());
        for closing in self.runs.end(tick, newest, at_millis) {
            self.write(Record::Decision(closing));
        }
    }

    /// Keeps `stamped`, whose id must be `next_id`.
    fn push(&mut self, stamped: Stamped) -> u64 {
        let id = stamped.id;
        self.next_id = id + 1;
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.ring.push_back(Arc::new(stamped));
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::*;

    fn control(n: u64) -> Record {
        Record::Control(ControlRecord {
            tick: n,
            at_millis: n,
            caller: "t".into(),
            change: format!("change {n}"),
            reason: String::new(),
        })
    }

    #[test]
    fn ids_continue_from_the_journal_and_a_cursor_past_the_ring_is_refused_not_skipped() {
        let recorder = Recorder::new(3, None);
        recorder.restore((1..=5).map(control));
        assert_eq!(recorder.newest_id(), 5);
        assert_eq!(recorder.record(control(6)), 6, "ids continue after a restore");
        let held: Vec<u64> = recorder.after(3, 10).unwrap().iter().map(|s| s.id).collect();
        assert_eq!(held, [4, 5, 6]);
        assert_eq!(recorder.after(2, 10).unwrap_err(), 4, "record 3 is gone: say so, never skip it");
        assert!(recorder.after(6, 10).unwrap().is_empty());
        assert_eq!(recorder.get(5).map(|s| s.record.tick()), Some(5));
        assert!(recorder.get(3).is_none());
        let mut back = Vec::new();
        recorder.scan_back(Some(6), |s| {
            back.push(s.id);
            true
        });
        assert_eq!(back, [5, 4], "newest first, below the page token");
    }
}
