//! How AWS calls are paced and counted: a client-side rate limit in front of every call, and
//! an SDK interceptor that counts each attempt and each throttled answer, so throttling the
//! SDK retried through is still visible.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Counters over every AWS call the adapter made.
#[derive(Debug, Default)]
pub struct CallStats {
    /// Operations started.
    pub calls: AtomicU64,
    /// HTTP attempts, retries included.
    pub attempts: AtomicU64,
    /// Attempts answered with throttling (429, 503, or a 400 whose code says so).
    pub throttled: AtomicU64,
    /// Attempts answered with a server error (500-599 other than 503).
    pub server_errors: AtomicU64,
    /// The same counts by operation (`AutoScaling`, `SetDesiredCapacity`).
    by_operation: std::sync::Mutex<BTreeMap<Operation, CallCounts>>,
}

/// An AWS API operation, as the SDK names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Operation {
    pub service: String,
    pub name: String,
}

/// A snapshot of [`CallStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub calls: u64,
    pub attempts: u64,
    pub throttled: u64,
    pub server_errors: u64,
}

impl CallStats {
    /// Counts by operation, for `/metrics`.
    pub fn by_operation(&self) -> Vec<(Operation, CallCounts)> {
        let map = self.by_operation.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    fn count(&self, cfg: &ConfigBag, add: impl FnOnce(&mut CallCounts)) {
        let Some(metadata) = cfg.load::<Metadata>() else { return };
        // `Auto Scaling` as `AutoScaling`: label values people type.
        let service = metadata.service().replace(' ', "");
        let operation = Operation { service, name: metadata.name().to_string() };
        add(self.by_operation.lock().unwrap_or_else(|p| p.into_inner()).entry(operation).or_default());
    }

    pub fn counts(&self) -> CallCounts {
        CallCounts {
            calls: self.calls.load(Ordering::Relaxed),
            attempts: self.attempts.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            server_errors: self.server_errors.load(Ordering::Relaxed),
        }
    }
}

/// The interceptor every client of the adapter carries.
#[derive(Clone, Debug)]
pub struct Counting(pub Arc<CallStats>);

/// Error codes AWS services use for throttling.
const THROTTLING_CODES: &[&str] =
    &["Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "RequestThrottled"];

impl Intercept for Counting {
    fn name(&self) -> &'static str {
        "BallastCallCounting"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.calls.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Once per operation, retries done (the operation's name is not known before).
    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.count(cfg, |c| c.calls += 1);
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.attempts.fetch_add(1, Ordering::Relaxed);
        self.0.count(cfg, |c| c.attempts += 1);
        if let Some(response) = context.response() {
            let status = response.status().as_u16();
            let body = response.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
            let throttled = status == 429
                || status == 503
                || (status == 400
                    && THROTTLING_CODES
                        .iter()
                        .any(|code| body.contains(&format!(">{code}<")) || body.contains(&format!("\"{code}\""))));
            if throttled {
                self.0.throttled.fetch_add(1, Ordering::Relaxed);
                self.0.count(cfg, |c| c.throttled += 1);
            } else if status >= 500 {
                self.0.server_errors.fetch_add(1, Ordering::Relaxed);
                self.0.count(cfg, |c| c.server_errors += 1);
            }
        }
        Ok(())
    }
}

/// A client-side rate limit: calls are spaced at least `1 / rate` seconds apart.
#[derive(Debug)]
pub struct RateLimit {
    interval: Duration,
    next: Mutex<Instant>,
}

impl RateLimit {
    pub fn per_second(rate: f64) -> Self {
        RateLimit { interval: Duration::from_secs_f64(1.0 / rate.max(0.001)), next: Mutex::new(Instant::now()) }
    }

    /// Waits for this call's turn.
    pub async fn acquire(&self) {
        let turn = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let turn = (*next).max(now);
            *next = turn + self.interval;
            turn
        };
        tokio::time::sleep_until(turn).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn calls_are_spaced_by_the_rate() {
        let limit = RateLimit::per_second(10.0);
        let start = Instant::now();
        for _ in 0..5 {
            limit.acquire().await;
        }
        // The first goes at once, the next four 100 ms apart.
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }
}
