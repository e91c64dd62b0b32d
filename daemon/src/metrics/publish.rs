//! Ballast's own figures to an outside store (CloudWatch, when `aws.publish-metrics` is on)
//! after each tick, off the engine's task: the tick hands the figures over and goes on; a
//! publication still in flight when the next tick ends makes that tick's figures wait for
//! the one after (the newest always wins), so a slow endpoint never delays a tick.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::watch;

use super::{Metrics, ResultLabel};
use crate::aws::cloudwatch::Figures;
use crate::engine::live::Observed;
use crate::policy::Live;

/// Publishes one tick's figures, stamped with the tick's time.
pub type Publish = Arc<dyn Fn(Figures, u64) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A tick's figures, from what it observed (computed on the publishing task, not the tick's).
fn figures(observed: Option<&Observed>, decisions: usize) -> Figures {
    let snapshot = observed.map(|o| &o.obs.snapshot);
    Figures {
        pending_pods: snapshot.map_or(0, |s| s.pending_pods.len() as u32),
        decisions: decisions as u32,
        cost_per_hour: snapshot.map_or(0.0, |s| crate::engine::cost::cost_per_hour(s).total()),
    }
}

/// What a tick hands over: pointer copies only.
type Handed = (Option<Arc<Observed>>, usize, u64);

/// Publishes after every tick that observed, until `stop`; each publication is counted in
/// `ballast_cloudwatch_publishes_total{result}` (`published` or `failed`).
pub fn spawn(live: Arc<Live>, metrics: Arc<Metrics>, publish: Publish, mut stop: watch::Receiver<bool>) {
    let (latest, mut next) = watch::channel::<Option<Handed>>(None);
    let reader = live.clone();
    live.after_tick(Arc::new(move |tick| {
        if tick.outcome != "failed" {
            latest.send_replace(Some((reader.observed(), tick.proposed, tick.at_millis)));
        }
    }));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = next.changed() => if changed.is_err() { return },
                _ = stop.wait_for(|s| *s) => return,
            }
            let Some((observed, decisions, at)) = next.borrow_and_update().clone() else { continue };
            let result = match publish(figures(observed.as_deref(), decisions), at).await {
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
