//! `Decisions`: List (filtered, paged newest first), Get, and Watch from a cursor.

use std::pin::Pin;
use std::sync::Arc;

use ballast_proto::v1 as pb;
use futures::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::super::ControlState;
use super::super::convert;
use super::super::filter::Filter;
use super::super::settings::Access;
use crate::engine::record::Record;

pub struct DecisionsService(pub Arc<ControlState>);

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 1_000;
/// Records read from the log at a time by a watcher.
const WATCH_BATCH: usize = 256;

type RecordStream = Pin<Box<dyn Stream<Item = Result<pb::Record, Status>> + Send>>;

fn page_size(requested: u32) -> Result<usize, Status> {
    match requested {
        0 => Ok(DEFAULT_PAGE as usize),
        n if n <= MAX_PAGE => Ok(n as usize),
        n => Err(Status::invalid_argument(format!("page_size: {n} is above the most a page holds, {MAX_PAGE}"))),
    }
}

fn page_token(token: &str) -> Result<Option<u64>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .parse::<u64>()
        .map(Some)
        .map_err(|_| Status::invalid_argument(format!("page_token: '{token}' is not a token this server gave")))
}

#[tonic::async_trait]
impl pb::decisions_server::Decisions for DecisionsService {
    async fn list(
        &self,
        request: Request<pb::ListDecisionsRequest>,
    ) -> Result<Response<pb::ListDecisionsResponse>, Status> {
        self.0.credentials.authorize(&request, Access::Read)?;
        let body = request.into_inner();
        let filter = Filter::parse(body.filter.as_ref(), "filter")?;
        let size = page_size(body.page_size)?;
        let before = page_token(&body.page_token)?;
        let mut found = Vec::with_capacity(size + 1);
        self.0.recorder.scan_back(before, |stamped| {
            if filter.matches(&stamped.record) {
                found.push(stamped.clone());
            }
            found.len() <= size
        });
        let next_page_token = match found.len() > size {
            true => {
                found.pop();
                found.last().map(|s| s.id.to_string()).unwrap_or_default()
            }
            false => String::new(),
        };
        let records = found.iter().map(|s| convert::record(s)).collect();
        Ok(Response::new(pb::ListDecisionsResponse { records, next_page_token }))
    }

    async fn get(&self, request: Request<pb::GetDecisionRequest>) -> Result<Response<pb::GetDecisionResponse>, Status> {
        self.0.credentials.authorize(&request, Access::Read)?;
        let id = request.into_inner().id;
        let recorder = &self.0.recorder;
        let Some(stamped) = recorder.get(id) else {
            return Err(Status::not_found(format!(
                "id: no record {id} is held (the newest is {})",
                recorder.newest_id()
            )));
        };
        let mut tick = None;
        if !matches!(stamped.record, Record::Tick(_)) {
            let wanted = stamped.record.tick();
            recorder.scan_back(Some(id), |s| match &s.record {
                Record::Tick(t) if t.tick == wanted => {
                    tick = Some(convert::record(s));
                    false
                }
                other => other.tick() >= wanted,
            });
        }
        Ok(Response::new(pb::GetDecisionResponse { record: Some(convert::record(&stamped)), tick }))
    }

    type WatchStream = RecordStream;

    async fn watch(&self, request: Request<pb::WatchDecisionsRequest>) -> Result<Response<Self::WatchStream>, Status> {
        self.0.credentials.authorize(&request, Access::Read)?;
        let body = request.into_inner();
        let filter = Filter::parse(body.filter.as_ref(), "filter")?;
        let recorder = self.0.recorder.clone();
        let cursor = if body.from_now { recorder.newest_id() } else { body.after_id };
        if let Err(oldest) = recorder.after(cursor, 0) {
            return Err(gone(cursor, oldest));
        }
        if cursor > recorder.newest_id() {
            return Err(Status::failed_precondition(format!(
                "after_id: {cursor} is ahead of the newest record ({}): this daemon restarted without its journal",
                recorder.newest_id()
            )));
        }
        let (tx, rx) = mpsc::channel(64);
        let stopping = self.0.stopping.subscribe();
        tokio::spawn(follow(recorder, filter, cursor, tx, stopping));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}

fn gone(cursor: u64, oldest: u64) -> Status {
    Status::failed_precondition(format!(
        "after_id: records after {cursor} are no longer held (the oldest is {oldest}); list them from the journal"
    ))
}

/// Sends every record after `cursor` that `filter` wants, in order, then each new one as it
/// is made, until the client goes or the server stops.
///
/// # Guarantees
/// Each record is looked at once, in id order: a client that resumes after the last id it
/// received gets the rest with no gap and no duplicate.
async fn follow(
    recorder: crate::engine::record::Recorder,
    filter: Filter,
    mut cursor: u64,
    tx: mpsc::Sender<Result<pb::Record, Status>>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut newest = recorder.subscribe();
    loop {
        newest.borrow_and_update();
        let batch = match recorder.after(cursor, WATCH_BATCH) {
            Ok(batch) => batch,
            Err(oldest) => {
                let _ = tx.send(Err(gone(cursor, oldest))).await;
                return;
            }
        };
        for stamped in &batch {
            cursor = stamped.id;
            if filter.matches(&stamped.record) && tx.send(Ok(convert::record(stamped))).await.is_err() {
                return;
            }
        }
        if batch.len() == WATCH_BATCH {
            continue;
        }
        tokio::select! {
            changed = newest.changed() => if changed.is_err() { return },
            _ = tx.closed() => return,
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}
