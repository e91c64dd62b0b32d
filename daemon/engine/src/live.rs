//! What the engine last saw and did, published for readers on other tasks (the control API)
//! without ever holding up a tick: each piece is swapped whole behind a lock held for a
//! pointer copy.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::config::{Guardrails, Mode};
use super::observe::Observation;
use super::record::Trigger;
use super::state::EngineState;

/// The engine's published state. Cheap to share; readers take snapshots. `E` is the
/// policies' entry type (see [`super::policies::Policies::Entry`]).
pub struct Live<E> {
    mode: RwLock<Mode>,
    tick: RwLock<Option<Arc<TickInfo>>>,
    observed: RwLock<Option<Arc<Observed>>>,
    plugins: RwLock<Arc<Vec<E>>>,
    leading: RwLock<Leading>,
    taken_over: RwLock<Option<TakenOver>>,
    after_tick: RwLock<Vec<TickHook>>,
}

impl<E> Default for Live<E> {
    fn default() -> Self {
        Live {
            mode: RwLock::default(),
            tick: RwLock::default(),
            observed: RwLock::default(),
            plugins: RwLock::new(Arc::new(Vec::new())),
            leading: RwLock::default(),
            taken_over: RwLock::default(),
            after_tick: RwLock::default(),
        }
    }
}

/// Called with each tick's [`TickInfo`] as the tick ends, on the engine's task: it must be
/// quick and must not block (count, or hand the figures to another task).
pub type TickHook = Arc<dyn Fn(&TickInfo) + Send + Sync>;

/// How the last tick went.
#[derive(Clone, Debug)]
pub struct TickInfo {
    pub tick: u64,
    pub at_millis: u64,
    pub trigger: Trigger,
    /// Wall-clock time it took.
    pub duration: Duration,
    /// `acted`, `dry-run`, `paused`, `standby` or `failed`.
    pub outcome: &'static str,
    pub error: Option<String>,
    pub proposed: usize,
    pub accepted: usize,
    pub changed: usize,
    pub refused: usize,
    pub plugin_errors: usize,
    /// Adapter calls throttled so far.
    pub throttled_calls: u64,
}

/// The last observation, with the engine's state at that moment: what NodeGroups, Explain
/// and a simulation on the live snapshot read.
pub struct Observed {
    pub at_millis: u64,
    pub obs: Arc<Observation>,
    pub state: EngineState,
    pub guardrails: Guardrails,
    /// Pending pods no node group can hold (`unplaceable::find`).
    pub unplaceable_pods: usize,
}

/// Whether this replica may act, and since when.
#[derive(Clone, Copy, Debug, Default)]
pub struct Leading {
    pub leading: bool,
    pub since_millis: Option<u64>,
}

/// What this replica took over when it last started to lead ([`super::handover`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TakenOver {
    /// The replica that left the handover.
    pub from: String,
    /// When this replica took it.
    pub at_millis: u64,
    /// When it was left: the last tick the other replica led.
    pub left_at_millis: u64,
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read().unwrap_or_else(|p| p.into_inner()).clone()
}

fn write<T>(lock: &RwLock<T>, value: T) {
    *lock.write().unwrap_or_else(|p| p.into_inner()) = value;
}

impl<E> Live<E> {
    pub fn mode(&self) -> Mode {
        read(&self.mode)
    }

    pub fn last_tick(&self) -> Option<Arc<TickInfo>> {
        read(&self.tick)
    }

    pub fn observed(&self) -> Option<Arc<Observed>> {
        read(&self.observed)
    }

    /// The chain's plugins, in order.
    pub fn plugins(&self) -> Arc<Vec<E>> {
        read(&self.plugins)
    }

    pub fn leading(&self) -> Leading {
        read(&self.leading)
    }

    /// What this replica took over when it last started to lead; `None` when it found no
    /// handover (or none it could use), or has not led.
    pub fn taken_over(&self) -> Option<TakenOver> {
        read(&self.taken_over)
    }

    pub(crate) fn set_taken_over(&self, taken: Option<TakenOver>) {
        write(&self.taken_over, taken);
    }

    pub(crate) fn set_mode(&self, mode: Mode) {
        write(&self.mode, mode);
    }

    /// Runs `hook` after every tick from now on (metrics, CloudWatch publishing).
    ///
    /// # Guarantees
    /// Each hook sees every tick once, in order, after [`Live::observed`] holds that tick's
    /// observation (for a tick whose observation failed, the previous one).
    pub fn after_tick(&self, hook: TickHook) {
        self.after_tick.write().unwrap_or_else(|p| p.into_inner()).push(hook);
    }

    pub(crate) fn set_tick(&self, info: TickInfo) {
        let info = Arc::new(info);
        write(&self.tick, Some(info.clone()));
        for hook in read(&self.after_tick) {
            hook(&info);
        }
    }

    pub(crate) fn set_observed(&self, observed: Observed) {
        write(&self.observed, Some(Arc::new(observed)));
    }

    pub(crate) fn set_plugins(&self, entries: Vec<E>) {
        write(&self.plugins, Arc::new(entries));
    }

    /// Notes whether this replica may act at `now`; the start of leadership is kept.
    pub(crate) fn set_leading(&self, leading: bool, now: u64) {
        let mut current = self.leading.write().unwrap_or_else(|p| p.into_inner());
        if leading != current.leading {
            *current = Leading { leading, since_millis: leading.then_some(now) };
        }
    }
}
