//! `grpcplugin.Expander/BestOptions`: read CA's options, run the chain on them, answer with
//! the options it chose and record why.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ballast_proto::grpcplugin as ca;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::choice::{self, Answer};
use super::offers::{self, Offer, Pricing};
use crate::engine::policies::Policies;
use crate::engine::record::{ExpanderRecord, OfferSummary, PluginRun, Record, Recorder};
use crate::policy::PolicyChain;

/// What every call shares.
pub struct ExpanderState {
    /// One pass at a time: CA asks once per scale-up loop, and the plugins keep state.
    pub chain: tokio::sync::Mutex<PolicyChain>,
    pub recorder: Recorder,
    pub pricing: Pricing,
    /// Past this a call is answered DEADLINE_EXCEEDED (CA then makes its own choice).
    pub call_timeout: Duration,
    calls: AtomicU64,
}

impl ExpanderState {
    pub fn new(chain: PolicyChain, recorder: Recorder, pricing: Pricing, call_timeout: Duration) -> Self {
        // Numbering goes on from the journal, so records stay in order across restarts.
        let calls = AtomicU64::new(recorder.last_tick().unwrap_or(0));
        ExpanderState { chain: tokio::sync::Mutex::new(chain), recorder, pricing, call_timeout, calls }
    }
}

pub struct ExpanderService(pub Arc<ExpanderState>);

fn now_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// How a call ended, before it is recorded.
struct Outcome {
    offered: Vec<Offer>,
    plugins: Vec<PluginRun>,
    result: Result<Answer, Status>,
}

impl ExpanderService {
    async fn answer(&self, request: &ca::BestOptionsRequest, at: u64) -> Outcome {
        let read = match offers::read(request, &self.0.pricing, at) {
            Ok(read) => read,
            Err(bad) => {
                let result = Err(Status::invalid_argument(bad.to_string()));
                return Outcome { offered: Vec::new(), plugins: Vec::new(), result };
            }
        };
        let snapshot = Arc::new(read.snapshot);
        let pass = async { Policies::evaluate(&mut *self.0.chain.lock().await, snapshot).await };
        let Ok(evaluation) = tokio::time::timeout(self.0.call_timeout, pass).await else {
            let message = format!("the policies took longer than call-timeout ({:?})", self.0.call_timeout);
            return Outcome {
                offered: read.offers,
                plugins: Vec::new(),
                result: Err(Status::deadline_exceeded(message)),
            };
        };
        let plugins: Vec<PluginRun> = evaluation.calls.iter().map(PluginRun::from).collect();
        // A chain with a failed plugin may have chosen without it: CA's own choice is safer.
        let result = match evaluation.calls.iter().find_map(|c| c.error.as_ref().map(|e| (&c.plugin, e))) {
            Some((plugin, error)) => Err(Status::internal(format!("plugin {plugin} failed ({error})"))),
            None => Ok(choice::choose(&read.offers, &evaluation.proposals)),
        };
        Outcome { offered: read.offers, plugins, result }
    }

    fn record(&self, call: u64, at: u64, outcome: &Outcome) {
        let offered = outcome
            .offered
            .iter()
            .map(|o| OfferSummary { group: o.group.clone(), node_count: o.node_count, pods: o.pods })
            .collect();
        let (chosen, error) = match &outcome.result {
            Ok(answer) => (answer.chosen.clone(), None),
            Err(status) => (Vec::new(), Some(status.message().to_string())),
        };
        let record = ExpanderRecord { call, at_millis: at, offered, chosen, plugins: outcome.plugins.clone(), error };
        self.0.recorder.record(Record::Expander(record));
    }
}

#[tonic::async_trait]
impl ca::expander_server::Expander for ExpanderService {
    /// # Guarantees
    /// Every call is recorded, answered or not. An answer names only options CA offered. A
    /// failed plugin, an unreadable request or a pass past `call-timeout` is an error status,
    /// never a partial answer, so CA falls back to its own choice.
    async fn best_options(
        &self,
        request: Request<ca::BestOptionsRequest>,
    ) -> Result<Response<ca::BestOptionsResponse>, Status> {
        let call = self.0.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let span = tracing::info_span!("expander call", call, options = request.get_ref().options.len());
        async move {
            let at = now_millis();
            let outcome = self.answer(request.get_ref(), at).await;
            self.record(call, at, &outcome);
            match outcome.result {
                Ok(answer) => {
                    tracing::info!(chosen = ?answer.chosen.iter().map(|c| &c.group).collect::<Vec<_>>(), "answered");
                    Ok(Response::new(ca::BestOptionsResponse { options: answer.options }))
                }
                Err(status) => {
                    tracing::warn!(error = status.message(), "no answer; CA makes its own choice");
                    Err(status)
                }
            }
        }
        .instrument(span)
        .await
    }
}
