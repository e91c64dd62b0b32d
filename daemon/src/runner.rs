//! The daemon's loop: tick the engine when its schedule says so, open a batch when pending
//! pods arrive, stop when told. Shutdown is passed in (as in tokio's mini-redis), so tests
//! and `main` stop it the same way.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};

use crate::engine::control::{Asked, ChangeError};
use crate::engine::{Capacity, Clock, Cluster};
use crate::policy::{Change, Engine};

/// Drives an engine in real time.
pub struct Runner<C, P, K> {
    pub engine: Engine<C, P>,
    pub clock: K,
    /// Changes when pods newly wait for capacity (the Kubernetes adapter's arrivals).
    pub arrivals: Option<watch::Receiver<u64>>,
    /// Changes asked for while running (the control API), applied between ticks.
    pub commands: Option<mpsc::Receiver<Command>>,
    /// Beaten each time round the loop: what `/healthz` reads.
    pub heartbeat: Arc<Heartbeat>,
}

/// When the runner's loop last came round (between ticks, at least every 50 ms).
#[derive(Debug)]
pub struct Heartbeat(Mutex<Instant>);

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat(Mutex::new(Instant::now()))
    }
}

impl Heartbeat {
    pub fn beat(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// How long since the loop last came round: a tick in progress, or a stuck loop.
    pub fn age(&self) -> Duration {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }
}

/// A change for the engine, and where to answer.
pub struct Command {
    pub change: Change,
    pub asked: Asked,
    pub reply: oneshot::Sender<Result<String, ChangeError>>,
}

impl<C, P, K> Runner<C, P, K> {
    pub fn new(engine: Engine<C, P>, clock: K) -> Self {
        Runner { engine, clock, arrivals: None, commands: None, heartbeat: Arc::default() }
    }

    pub fn with_arrivals(mut self, arrivals: watch::Receiver<u64>) -> Self {
        self.arrivals = Some(arrivals);
        self
    }

    pub fn with_commands(mut self, commands: mpsc::Receiver<Command>) -> Self {
        self.commands = Some(commands);
        self
    }
}

/// How long the loop sleeps at most between looks at the schedule: the resolution of the
/// batching window.
const RESOLUTION: Duration = Duration::from_millis(50);

impl<C: Cluster, P: Capacity, K: Clock> Runner<C, P, K> {
    /// Runs until `shutdown` resolves; returns the engine, with its records.
    ///
    /// # Guarantees
    /// A tick in progress is finished, never cut short; `shutdown` is looked at between any
    /// two ticks, even when ticks run back to back (a tick longer than the interval). Runs
    /// of repeated decisions still open get their closing records before it returns.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Engine<C, P> {
        use futures::FutureExt;
        tokio::pin!(shutdown);
        loop {
            self.heartbeat.beat();
            if (&mut shutdown).now_or_never().is_some() {
                break;
            }
            let now = self.clock.now_millis();
            if let Some(trigger) = self.engine.due(now) {
                self.engine.tick(now, trigger).await;
                continue;
            }
            let wait = self.engine.schedule().next_due().saturating_sub(now).clamp(1, RESOLUTION.as_millis() as u64);
            let arrivals = async {
                match self.arrivals.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            let command = async {
                match self.commands.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                command = command => match command {
                    Some(Command { change, asked, reply }) => {
                        let done = self.engine.change(change, &asked, self.clock.now_millis());
                        let _ = reply.send(done);
                    }
                    None => self.commands = None,
                },
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                arrived = arrivals => {
                    if arrived {
                        self.engine.pods_arrived(self.clock.now_millis());
                    } else {
                        self.arrivals = None;
                    }
                }
            }
        }
        self.engine.recorder().close_runs(self.clock.now_millis());
        self.engine
    }
}
