//! Spot interruption warnings from an SQS queue that EventBridge feeds, as Karpenter reads
//! them: a rule on `aws.ec2` events sends `EC2 Spot Instance Interruption Warning` (and the
//! rebalance, state-change and health events people route with it) to the queue named by
//! `aws.interruption-queue`.
//!
//! Every message read is deleted once it has been understood or found unreadable, so a
//! malformed message is reported once rather than read forever. Only interruption warnings
//! become [`Interruption`]s; the other kinds are counted and dropped (a rebalance
//! recommendation asks for nothing; a state change follows a warning already acted on).

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use aws_smithy_types::date_time::{DateTime, Format};
use ballast_engine::ports::{AdapterResult, Interruption};
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
    Warning(Interruption),
    /// Another kind of event, by its detail-type.
    Other(String),
}

/// Reads one message body. The error names the field and the value.
pub fn parse(body: &str) -> Result<Message, String> {
    let event: Event = serde_json::from_str(body).map_err(|e| format!("not an EventBridge event: {e}"))?;
    if event.detail_type != "EC2 Spot Instance Interruption Warning" {
        return Ok(Message::Other(event.detail_type));
    }
    let at = DateTime::from_str(&event.time, Format::DateTime)
        .ok()
        .and_then(|t| t.to_millis().ok())
        .and_then(|ms| u64::try_from(ms).ok())
        .ok_or_else(|| format!("field `time`: `{}` is not an RFC 3339 time", event.time))?;
    let instance_id = match event.detail.get("instance-id") {
        Some(serde_json::Value::String(id)) if id.starts_with("i-") => id.clone(),
        other => return Err(format!("field `detail.instance-id`: {other:?} is not an instance id")),
    };
    Ok(Message::Warning(Interruption { instance_id, at_millis: at, deadline_millis: at + Interruption::NOTICE_MS }))
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
                    Ok(Message::Warning(w)) => warnings.push(w),
                    Ok(Message::Other(kind)) => {
                        tracing::debug!(%kind, "interruption queue: not a spot warning; dropped")
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
        let Ok(Message::Warning(w)) = parse(body) else { panic!("{:?}", parse(body)) };
        assert_eq!(w.instance_id, "i-0abc");
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
}
