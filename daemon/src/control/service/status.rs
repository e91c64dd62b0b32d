//! `Status` and `Mode`.

use std::sync::Arc;

use ballast_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::super::ControlState;
use super::super::convert;
use super::super::settings::Access;
use super::plugins::plugin_status;
use crate::engine::Mode;
use crate::policy::Change;

pub struct StatusService(pub Arc<ControlState>);
pub struct ModeService(pub Arc<ControlState>);

#[tonic::async_trait]
impl pb::status_server::Status for StatusService {
    async fn get(&self, request: Request<pb::GetStatusRequest>) -> Result<Response<pb::GetStatusResponse>, Status> {
        let state = &self.0;
        state.credentials.authorize(&request, Access::Read)?;
        let live = &state.live;
        let leading = live.leading();
        let taken_over = live.taken_over();
        let tick = live.last_tick();
        let health = (state.health)();
        let adapters = pb::AdapterHealth {
            watch_caches_synced: health.unsynced.is_empty(),
            unsynced_kinds: health.unsynced,
            metrics_api: health.metrics_api,
            throttled_calls: tick.as_ref().map_or(0, |t| t.throttled_calls),
            unreadable_values: health.unreadable_values,
            last_unreadable: health.last_unreadable.unwrap_or_default(),
            journal_errors: state.recorder.journal_errors(),
        };
        let last_tick = tick.map(|t| pb::TickSummary {
            tick: t.tick,
            at_unix_millis: t.at_millis as i64,
            trigger: convert::kebab(&t.trigger),
            duration_micros: t.duration.as_micros() as u64,
            outcome: t.outcome.into(),
            error: t.error.clone().unwrap_or_default(),
            proposed: t.proposed as u32,
            accepted: t.accepted as u32,
            changed: t.changed as u32,
            refused: t.refused as u32,
            plugin_errors: t.plugin_errors as u32,
        });
        Ok(Response::new(pb::GetStatusResponse {
            mode: convert::mode(live.mode()) as i32,
            leadership: Some(pb::Leadership {
                election: state.election,
                identity: state.identity.clone(),
                leading: leading.leading,
                since_unix_millis: leading.since_millis.unwrap_or(0) as i64,
                holder: state.holder.as_ref().and_then(|h| h()).unwrap_or_default(),
                taken_over_from: taken_over.as_ref().map(|t| t.from.clone()).unwrap_or_default(),
                taken_over_unix_millis: taken_over.as_ref().map_or(0, |t| t.at_millis as i64),
                handover_left_unix_millis: taken_over.as_ref().map_or(0, |t| t.left_at_millis as i64),
            }),
            last_tick,
            adapters: Some(adapters),
            plugins: live.plugins().iter().map(plugin_status).collect(),
            version: env!("CARGO_PKG_VERSION").into(),
            source: state.source.clone(),
        }))
    }
}

#[tonic::async_trait]
impl pb::mode_server::Mode for ModeService {
    async fn get(&self, request: Request<pb::GetModeRequest>) -> Result<Response<pb::GetModeResponse>, Status> {
        self.0.credentials.authorize(&request, Access::Read)?;
        Ok(Response::new(pb::GetModeResponse { mode: convert::mode(self.0.live.mode()) as i32 }))
    }

    async fn set(&self, request: Request<pb::SetModeRequest>) -> Result<Response<pb::GetModeResponse>, Status> {
        let caller = self.0.credentials.authorize(&request, Access::Write)?;
        let body = request.into_inner();
        let mode = match pb::EngineMode::try_from(body.mode) {
            Ok(pb::EngineMode::Enforce) => Mode::Enforce,
            Ok(pb::EngineMode::DryRun) => Mode::DryRun,
            Ok(pb::EngineMode::Paused) => Mode::Paused,
            _ => {
                return Err(Status::invalid_argument(format!(
                    "mode: {} is not a mode; use ENGINE_MODE_ENFORCE, ENGINE_MODE_DRY_RUN or ENGINE_MODE_PAUSED",
                    body.mode
                )));
            }
        };
        let asked = super::asked(caller, &body.reason)?;
        super::apply(&self.0, Change::Mode(mode), asked).await?;
        Ok(Response::new(pb::GetModeResponse { mode: convert::mode(self.0.live.mode()) as i32 }))
    }
}
