//! Interruption warnings from an SQS queue that EventBridge feeds, as Karpenter reads them:
//! a rule on `aws.ec2` events sends `EC2 Spot Instance Interruption Warning` (and the
//! rebalance and state-change events people route with it), and a rule on `aws.health`
//! events sends `AWS Health Event`s, to the queue named by `aws.interruption-queue`.
//!
//! Every message read is deleted once it has been understood or found unreadable, so a
//! malformed message is reported once rather than read forever. Spot interruption warnings
//! and EC2 scheduled changes (`eventTypeCategory: scheduledChange`: an instance retirement,
//! a system reboot, maintenance; one [`Interruption`] per affected instance, due at the
//! event's `startTime`) become [`Interruption`]s; the other kinds are counted and dropped (a
//! rebalance recommendation asks for nothing; a state change follows a warning already
//! acted on; a health event of another service or category is not about an instance).

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use aws_smithy_types::date_time::{DateTime, Format};
use ballast_engine::ports::{AdapterResult, Interruption, InterruptionCause};
use serde::Deserialize;

use super::{AwsCapacity, aws_error};

/// The EventBridge envelope, as much of it as is read.
#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "detail-type")]
    detail_type: String,
    time: String,
    detail: serde_json::Value,
}

/// What one message said.
#[derive(Debug, PartialEq)]
pub enum Message {
    /// The instances it warns of: one for a spot warning, each affected one for a scheduled
    /// change.
    Warnings(Vec<Interruption>),
    /// Another kind of event, by its detail-type.
    Other(String),
}

/// An AWS Health event's detail, as much of it as is read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HealthDetail {
    service: String,
    event_type_category: String,
    event_type_code: String,
    start_time: Option<String>,
    #[serde(default)]
    affected_entities: Vec<AffectedEntity>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AffectedEntity {
    entity_value: String,
}

/// Reads one message body. The error names the field and the value.
pub fn parse(body: &str) -> Result<Message, String> {
    let event: Event = serde_json::from_str(body).map_err(|e| format!("not an EventBridge event: {e}"))?;
    match event.detail_type.as_str() {
        "EC2 Spot Instance Interruption Warning" => spot_warning(&event),
        "AWS Health Event" => scheduled_change(event),
        _ => Ok(Message::Other(event.detail_type)),
    }
}

fn spot_warning(event: &Event) -> Result<Message, String> {
    let at = millis(&event.time, Format::DateTime)
        .ok_or_else(|| format!("field `time`: `{}` is not an RFC 3339 time", event.time))?;
    let instance_id = match event.detail.get("instance-id") {
        Some(serde_json::Value::String(id)) if id.starts_with("i-") => id.clone(),
        other => return Err(format!("field `detail.instance-id`: {other:?} is not an instance id")),
    };
    Ok(Message::Warnings(vec![Interruption::spot(instance_id, at)]))
}

/// An EC2 scheduled change: each affected instance goes by the event's `startTime` (an
/// HTTP date, `Sat, 05 Jun 2021 15:10:09 GMT`, as AWS Health writes it, or RFC 3339).
fn scheduled_change(event: Event) -> Result<Message, String> {
    let detail: HealthDetail =
        serde_json::from_value(event.detail).map_err(|e| format!("field `detail` of an AWS Health Event: {e}"))?;
    if detail.service != "EC2" || detail.event_type_category != "scheduledChange" {
        return Ok(Message::Other(format!("AWS Health Event ({} {})", detail.service, detail.event_type_category)));
    }
    let at = millis(&event.time, Format::DateTime)
        .ok_or_else(|| format!("field `time`: `{}` is not an RFC 3339 time", event.time))?;
    let start = detail.start_time.as_deref().unwrap_or_default();
    let due = millis(start, Format::HttpDate)
        .or_else(|| millis(start, Format::DateTime))
        .ok_or_else(|| format!("field `detail.startTime`: `{start}` is not an HTTP date or an RFC 3339 time"))?;
    let mut warnings = Vec::new();
    for (i, entity) in detail.affected_entities.iter().enumerate() {
        if !entity.entity_value.starts_with("i-") {
            return Err(format!(
                "field `detail.affectedEntities[{i}].entityValue`: `{}` is not an instance id",
                entity.entity_value
            ));
        }
        warnings.push(Interruption {
            instance_id: entity.entity_value.clone(),
            at_millis: at,
            deadline_millis: due.max(at),
            cause: InterruptionCause::Scheduled(detail.event_type_code.clone()),
        });
    }
    Ok(Message::Warnings(warnings))
}

fn millis(text: &str, format: Format) -> Option<u64> {
    DateTime::from_str(text, format).ok().and_then(|t| t.to_millis().ok()).and_then(|ms| u64::try_from(ms).ok())
}

impl AwsCapacity {
    /// Drains the queue: up to ten receives of ten messages, none waiting.
    pub(super) async fn receive_interruptions(&self) -> AdapterResult<Vec<Interruption>> {
        let Some(queue) = self.queue_url().await? else { return Ok(Vec::new()) };
        let mut warnings = Vec::new();
        for _ in 0..10 {
            self.inner.limit.acquire().await;
            let out = self
                .inner
                .sqs
                .receive_message()
                .queue_url(&queue)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .map_err(|e| aws_error("receive interruption messages", e))?;
            let messages = out.messages();
            if messages.is_empty() {
                break;
            }
            let mut done = Vec::new();
            for (i, m) in messages.iter().enumerate() {
                match parse(m.body().unwrap_or_default()) {
                    Ok(Message::Warnings(w)) => warnings.extend(w),
                    Ok(Message::Other(kind)) => {
                        tracing::debug!(%kind, "interruption queue: not a warning of an instance's end; dropped")
                    }
                    Err(error) => {
                        let id = m.message_id().unwrap_or("(no id)");
                        let body: String = m.body().unwrap_or_default().chars().take(200).collect();
                        self.inner.unreadable.report(&format!("interruption message {id}"), "body", &body, &error);
                    }
                }
                if let Some(handle) = m.receipt_handle() {
                    done.push(
                        DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(handle).build(),
                    );
                }
            }
            self.delete(&queue, done).await?;
        }
        Ok(warnings)
    }

    async fn delete(
        &self,
        queue: &str,
        entries: Vec<Result<DeleteMessageBatchRequestEntry, aws_sdk_sqs::error::BuildError>>,
    ) -> AdapterResult<()> {
        let entries: Vec<_> = entries.into_iter().filter_map(Result::ok).collect();
        if entries.is_empty() {
            return Ok(());
        }
        self.inner.limit.acquire().await;
        self.inner
            .sqs
            .delete_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws_error("delete interruption messages", e))?;
        Ok(())
    }

    /// The queue's URL: configured as a URL, or looked up by name once.
    async fn queue_url(&self) -> AdapterResult<Option<String>> {
        let Some(queue) = &self.inner.settings.interruption_queue else { return Ok(None) };
        if queue.starts_with("https://") || queue.starts_with("http://") {
            return Ok(Some(queue.clone()));
        }
        let mut cached = self.inner.queue_url.lock().await;
        if let Some(url) = cached.as_ref() {
            return Ok(Some(url.clone()));
        }
        self.inner.limit.acquire().await;
        let out = self
            .inner
            .sqs
            .get_queue_url()
            .queue_name(queue)
            .send()
            .await
            .map_err(|e| aws_error(format!("find the interruption queue {queue}"), e))?;
        let url = out.queue_url().unwrap_or_default().to_string();
        *cached = Some(url.clone());
        Ok(Some(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_names_its_instance_and_deadline_and_a_bad_one_names_the_field() {
        let body = r#"{"version":"0","id":"1","detail-type":"EC2 Spot Instance Interruption Warning","source":"aws.ec2","account":"1","time":"2026-01-05T10:00:00Z","region":"us-east-1","resources":[],"detail":{"instance-id":"i-0abc","instance-action":"terminate"}}"#;
        let Ok(Message::Warnings(w)) = parse(body) else { panic!("{:?}", parse(body)) };
        let w = &w[0];
        assert_eq!((w.instance_id.as_str(), &w.cause), ("i-0abc", &InterruptionCause::SpotReclaim));
        assert_eq!(w.deadline_millis - w.at_millis, 120_000);
        assert_eq!(w.at_millis, 1_767_607_200_000);
        let rebalance = body.replace("EC2 Spot Instance Interruption Warning", "EC2 Instance Rebalance Recommendation");
        assert_eq!(parse(&rebalance), Ok(Message::Other("EC2 Instance Rebalance Recommendation".into())));
        let no_id = body.replace("\"instance-id\":\"i-0abc\",", "");
        assert!(parse(&no_id).unwrap_err().contains("detail.instance-id"));
        let bad_time = body.replace("2026-01-05T10:00:00Z", "yesterday");
        assert!(parse(&bad_time).unwrap_err().contains("`yesterday`"));
        assert!(parse("hello").unwrap_err().contains("not an EventBridge event"));
    }

    #[test]
    fn an_ec2_scheduled_change_warns_of_each_affected_instance_by_its_start_time() {
        let health = |category: &str, start: &str, entities: &str| {
            format!(
                r#"{{"version":"0","id":"2","detail-type":"AWS Health Event","source":"aws.health","account":"1","time":"2026-01-05T10:00:00Z","region":"us-east-1","resources":[],"detail":{{"eventArn":"arn:aws:health:us-east-1::event/EC2/AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED/x","service":"EC2","eventTypeCode":"AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED","eventTypeCategory":"{category}","startTime":"{start}","endTime":"","eventDescription":[],"affectedEntities":[{entities}]}}}}"#
            )
        };
        let two = r#"{"entityValue":"i-0abc"},{"entityValue":"i-0def"}"#;
        let Ok(Message::Warnings(w)) = parse(&health("scheduledChange", "Tue, 06 Jan 2026 10:00:00 GMT", two)) else {
            panic!("{:?}", parse(&health("scheduledChange", "Tue, 06 Jan 2026 10:00:00 GMT", two)))
        };
        let ids: Vec<&str> = w.iter().map(|i| i.instance_id.as_str()).collect();
        assert_eq!(ids, ["i-0abc", "i-0def"]);
        assert_eq!(w[0].deadline_millis - w[0].at_millis, 86_400_000, "a day's notice");
        assert_eq!(w[0].cause, InterruptionCause::Scheduled("AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED".into()));
        let rfc3339 = parse(&health("scheduledChange", "2026-01-06T10:00:00Z", two)).unwrap();
        assert_eq!(rfc3339, Message::Warnings(w));

        let notice = parse(&health("accountNotification", "", two)).unwrap();
        assert_eq!(notice, Message::Other("AWS Health Event (EC2 accountNotification)".into()));
        let bad_start = parse(&health("scheduledChange", "soon", two)).unwrap_err();
        assert!(bad_start.contains("detail.startTime") && bad_start.contains("`soon`"), "{bad_start}");
        let volume =
            parse(&health("scheduledChange", "2026-01-06T10:00:00Z", r#"{"entityValue":"vol-1"}"#)).unwrap_err();
        assert!(volume.contains("detail.affectedEntities[0].entityValue") && volume.contains("`vol-1`"), "{volume}");
    }
}
