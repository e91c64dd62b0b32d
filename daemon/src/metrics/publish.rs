//! Ballast's own figures to an outside store (CloudWatch, when `aws.publish-metrics` is on)
//! after each tick, off the engine's task: the tick hands the figures over and goes on; a
//! publication still in flight when the next tick ends makes that tick's figures wait for
//! the one after (the newest always wins), so a slow endpoint never delays a tick.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::watch;

use super::{Metrics, ResultLabel};
use crate::aws::cloudwatch::Figures;
use crate::engine::live::{Live, TickInfo};

/// Publishes one tick's figures, stamped with the tick's time.
pub type Publish = Arc<dyn Fn(Figures, u64) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A tick's figures, from what it observed.
pub fn figures(live: &Live, tick: &TickInfo) -> Figures {
    let observed = live.observed();
    let snapshot = observed.as_ref().map(|o| o.obs.snapshot.clone());
    Figures {
        pending_pods: snapshot.as_ref().map_or(0, |s| s.pending_pods.len() as u32),
        decisions: tick.proposed as u32,
        cost_per_hour: snapshot.map_or(0.0, |s| crate::engine::cost::cost_per_hour(&s).total()),
    }
}

/// Publishes after every tick that observed, until `stop`; each publication is counted in
/// `ballast_cloudwatch_publishes_total{result}` (`published` or `failed`).
pub fn spawn(live: Arc<Live>, metrics: Arc<Metrics>, publish: Publish, mut stop: watch::Receiver<bool>) {
    let (latest, mut next) = watch::channel::<Option<(Figures, u64)>>(None);
    let reader = live.clone();
    live.after_tick(Arc::new(move |tick| {
        if tick.outcome != "failed" {
            latest.send_replace(Some((figures(&reader, tick), tick.at_millis)));
        }
    }));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = next.changed() => if changed.is_err() { return },
                _ = stop.wait_for(|s| *s) => return,
            }
            let Some((figures, at)) = *next.borrow_and_update() else { continue };
            let result = match publish(figures, at).await {
                Ok(()) => "published",
                Err(error) => {
                    tracing::warn!(%error, "could not publish Ballast's figures");
                    "failed"
                }
            };
            metrics.f.cloudwatch_publishes.get_or_create(&ResultLabel { result: result.into() }).inc();
        }
    });
}
