//! The AWS adapter: the engine's [`Capacity`] over EC2 Auto Scaling, EC2 and CloudWatch.
//!
//! - [`groups`]: discovery by tag or name, and each group described with every instance type
//!   it can launch (mixed instances policies included, unlike Cluster Autoscaler, which sizes
//!   a group by its first type only);
//! - [`templates`]: scale-from-zero facts (DescribeInstanceTypes, node-template tags);
//! - [`prices`]: the bundled on-demand table, config overrides, spot prices;
//! - [`cloudwatch`]: metric queries in, Ballast's figures out;
//! - [`interruptions`]: spot interruption warnings from the SQS queue EventBridge feeds;
//! - [`images`]: the machine image each group launches and each instance runs (drift);
//! - [`calls`]: client-side rate limit and counters of attempts and throttling.
//!
//! Changing a size re-reads the group first: a desired capacity someone else changed since
//! Ballast observed it is not overwritten (the next tick sees the new size and decides
//! again). Every call goes through the SDK's standard retry mode (exponential back-off with
//! jitter) and a client-side rate limit.

pub mod calls;
pub mod cloudwatch;
pub mod groups;
pub mod images;
pub mod interruptions;
pub mod prices;
pub mod settings;
pub mod templates;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use ballast_sdk::FargatePricing;
use tokio::sync::Mutex;

use ballast_engine::ports::{
    AdapterError, AdapterErrorKind, AdapterResult, Capacity, GroupView, Interruption, MetricPoint, MetricQuery,
};
pub use calls::{CallCounts, CallStats, Operation};
pub use settings::AwsSettings;
use templates::{TtlCache, TypeFacts};

/// The AWS adapter. Clones share clients, caches and counters.
#[derive(Clone)]
pub struct AwsCapacity {
    inner: Arc<Inner>,
}

struct Inner {
    settings: AwsSettings,
    asg: aws_sdk_autoscaling::Client,
    ec2: aws_sdk_ec2::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    sqs: aws_sdk_sqs::Client,
    /// The interruption queue's URL, once looked up by name.
    queue_url: Mutex<Option<String>>,
    limit: calls::RateLimit,
    stats: Arc<CallStats>,
    types: Mutex<TtlCache<TypeFacts>>,
    /// What each launch template version or launch configuration launches, for `image-ttl`.
    launches: Mutex<TtlCache<images::LaunchReading>>,
    instance_images: Mutex<images::InstanceImages>,
    prices: prices::Prices,
    spot_read: Mutex<TtlCache<()>>,
    /// Each group's desired capacity as last observed, to notice changes made by others.
    observed: Mutex<HashMap<String, u32>>,
    /// Groups described without their sizes, left out of observations.
    unreadable: ballast_engine::unreadable::Unreadable,
}

/// An SDK error as the engine's error, classified by its AWS error code.
pub(crate) fn aws_error<E, R>(
    operation: impl Into<String>,
    error: aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> AdapterError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let kind = match error.code() {
        Some("ValidationError" | "InvalidParameterValue" | "InvalidParameterCombination") => AdapterErrorKind::Refused,
        Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "ResourceContention") => {
            AdapterErrorKind::Throttled
        }
        Some("InvalidInstanceID.NotFound" | "ResourceNotFound") => AdapterErrorKind::NotFound,
        _ => AdapterErrorKind::Failed,
    };
    let operation = operation.into();
    // The whole of it, request id and raw response included, for whoever debugs the call.
    let request_id = error.meta().extra("aws_request_id").unwrap_or("none");
    tracing::debug!(%operation, request_id, error = %DisplayErrorContext(&error), "AWS call failed");
    AdapterError::new(kind, operation, describe(&error))
}

/// An SDK error in words that read the same each time the same thing goes wrong: the
/// service's code and message, or else the chain of causes. Neither the request id nor the
/// raw response (its `Date` header included), which `DisplayErrorContext` ends with, is
/// kept: they differ on every call, so two records of one standing refusal would never read
/// alike (and fold), and a decision record is no place for an HTTP dump. Both go to the
/// debug log.
fn describe<E, R>(error: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if let Some(code) = error.code() {
        return match error.message() {
            Some(message) => format!("{code}: {message}"),
            None => code.to_string(),
        };
    }
    let mut words = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(next) = cause {
        words.push_str(": ");
        words.push_str(&next.to_string());
        cause = next.source();
    }
    words
}

impl AwsCapacity {
    /// Clients from the standard chain: credentials from the environment, IRSA (web
    /// identity), EKS Pod Identity, a profile or IMDS; the region from settings or the chain.
    ///
    /// # Errors
    /// Settings that name no group to manage, or a bad rate, with the field and value.
    pub async fn connect(settings: AwsSettings) -> Result<Self, String> {
        install_crypto();
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        Self::from_config(&loader.load().await, settings)
    }

    /// Clients from a loaded SDK configuration (tests pass static credentials and an
    /// emulator's endpoint).
    ///
    /// # Errors
    /// As [`AwsCapacity::connect`].
    pub fn from_config(config: &SdkConfig, settings: AwsSettings) -> Result<Self, String> {
        settings.validate()?;
        install_crypto();
        let stats = Arc::new(CallStats::default());
        let retry = RetryConfig::standard().with_max_attempts(settings.max_attempts);
        let counting = calls::Counting(stats.clone());
        let asg = aws_sdk_autoscaling::Client::from_conf(
            aws_sdk_autoscaling::config::Builder::from(config)
                .retry_config(retry.clone())
                .interceptor(counting.clone())
                .build(),
        );
        let ec2 = aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(config)
                .retry_config(retry.clone())
                .interceptor(counting.clone())
                .build(),
        );
        let cloudwatch = aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::config::Builder::from(config)
                .retry_config(retry.clone())
                .interceptor(counting.clone())
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(config).retry_config(retry).interceptor(counting).build(),
        );
        Ok(AwsCapacity {
            inner: Arc::new(Inner {
                limit: calls::RateLimit::per_second(settings.max_calls_per_second),
                types: Mutex::new(TtlCache::new(settings.template_ttl)),
                launches: Mutex::new(TtlCache::new(settings.image_ttl)),
                instance_images: Mutex::new(images::InstanceImages::default()),
                spot_read: Mutex::new(TtlCache::new(settings.price_ttl)),
                prices: prices::Prices::new(settings.on_demand_prices.clone()),
                settings,
                asg,
                ec2,
                cloudwatch,
                sqs,
                queue_url: Mutex::new(None),
                stats,
                observed: Mutex::new(HashMap::new()),
                unreadable: ballast_engine::unreadable::Unreadable::default(),
            }),
        })
    }

    /// Values AWS described that could not be read (a group without its sizes), and the
    /// most recent, naming group and field.
    pub fn unreadable(&self) -> (u64, Option<String>) {
        (self.inner.unreadable.count(), self.inner.unreadable.last())
    }

    /// Calls, attempts and throttled attempts so far.
    pub fn call_counts(&self) -> CallCounts {
        self.inner.stats.counts()
    }

    /// The same, by operation.
    pub fn calls_by_operation(&self) -> Vec<(Operation, CallCounts)> {
        self.inner.stats.by_operation()
    }

    /// Reads spot prices for types not read within `price-ttl`. Failures keep the old
    /// prices (or on-demand ones) and are logged.
    async fn refresh_spot(&self, names: &BTreeSet<String>) {
        let stale: Vec<String> = {
            let read = self.inner.spot_read.lock().await;
            names.iter().filter(|n| read.get(n).is_none()).cloned().collect()
        };
        if stale.is_empty() {
            return;
        }
        self.inner.limit.acquire().await;
        let out = self
            .inner
            .ec2
            .describe_spot_price_history()
            .set_instance_types(Some(
                stale.iter().map(|n| aws_sdk_ec2::types::InstanceType::from(n.as_str())).collect(),
            ))
            .product_descriptions("Linux/UNIX")
            .start_time(aws_smithy_types::DateTime::from(std::time::SystemTime::now()))
            .send()
            .await;
        match out {
            Ok(out) => {
                let mut latest: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
                for entry in out.spot_price_history() {
                    let (Some(name), Some(price)) = (entry.instance_type(), entry.spot_price()) else { continue };
                    let Ok(price) = price.parse::<f64>() else { continue };
                    // Zones differ; the highest is what a group spread over them may pay.
                    let slot = latest.entry(name.as_str().to_string()).or_insert(0.0);
                    *slot = slot.max(price);
                }
                self.inner.prices.set_spot(latest);
                let mut read = self.inner.spot_read.lock().await;
                for name in stale {
                    read.insert(name, ());
                }
            }
            Err(e) => tracing::warn!(error = %aws_error("describe spot price history", e), "spot prices not refreshed"),
        }
    }

    async fn describe_one(&self, group: &str) -> AdapterResult<aws_sdk_autoscaling::types::AutoScalingGroup> {
        self.describe_groups(Some(vec![group.to_string()])).await?.into_iter().next().ok_or_else(|| {
            AdapterError::new(
                AdapterErrorKind::NotFound,
                format!("describe group {group}"),
                "no such Auto Scaling group",
            )
        })
    }

    /// Terminates `instance_id` in `group`, lowering the group's desired capacity by one when
    /// `decrement`, else leaving the group to launch a replacement.
    ///
    /// # Guarantees
    /// An instance no longer in the group is not terminated again (an earlier attempt went
    /// through although its answer was lost, or the group replaced it): terminating again
    /// would decrement twice.
    async fn terminate(&self, group: &str, instance_id: &str, decrement: bool) -> AdapterResult<()> {
        let verb = if decrement { "terminate" } else { "replace" };
        let operation = format!("{verb} {instance_id} in {group}");
        let current = self.describe_one(group).await?;
        if !current.instances().iter().any(|i| i.instance_id() == Some(instance_id)) {
            tracing::info!(group, instance_id, "instance already left the group; nothing to terminate");
            return Ok(());
        }
        self.inner.limit.acquire().await;
        self.inner
            .asg
            .terminate_instance_in_auto_scaling_group()
            .instance_id(instance_id)
            .should_decrement_desired_capacity(decrement)
            .send()
            .await
            .map_err(|e| aws_error(operation, e))?;
        if !decrement {
            return Ok(());
        }
        match groups::Sizes::of(&current) {
            Ok(sizes) => {
                self.inner.observed.lock().await.insert(group.to_string(), sizes.desired.saturating_sub(1));
            }
            // Unknown: the next observation records what the group says.
            Err(_) => {
                self.inner.observed.lock().await.remove(group);
            }
        }
        Ok(())
    }
}

impl Capacity for AwsCapacity {
    async fn node_groups(&self) -> AdapterResult<Vec<GroupView>> {
        let groups = self.describe_groups(None).await?;
        self.read_origins(&groups).await;
        let mut views = Vec::with_capacity(groups.len());
        for group in &groups {
            match templates::unweighted(group).and_then(|()| groups::Sizes::of(group)) {
                Ok(sizes) => views.push(self.view(group, sizes).await?),
                Err(bad) => {
                    let name = group.auto_scaling_group_name().unwrap_or("(unnamed)");
                    bad.report_to(&self.inner.unreadable, &format!("Auto Scaling group {name}"));
                }
            }
        }
        self.add_images(&groups, &mut views).await;
        let mut observed = self.inner.observed.lock().await;
        for view in &views {
            observed.insert(view.id.clone(), view.desired_size);
        }
        Ok(views)
    }

    async fn set_desired_size(&self, group: &str, size: u32) -> AdapterResult<()> {
        let operation = format!("set desired size of {group} to {size}");
        tracing::debug!(group, size, "setting desired size");
        let current = self.describe_one(group).await?;
        let groups::Sizes { min, max, desired } = groups::Sizes::of(&current)
            .map_err(|bad| AdapterError::new(AdapterErrorKind::Failed, operation.clone(), bad.to_string()))?;
        let seen = self.inner.observed.lock().await.get(group).copied();
        if let Some(seen) = seen
            && seen != desired
        {
            self.inner.observed.lock().await.insert(group.to_string(), desired);
            return Err(AdapterError::new(
                AdapterErrorKind::Refused,
                operation,
                format!(
                    "its desired capacity changed from {seen} to {desired} outside Ballast since it was observed; not overwriting it (the next tick decides again)"
                ),
            ));
        }
        if desired == size {
            return Ok(());
        }
        if size < min || size > max {
            return Err(AdapterError::new(
                AdapterErrorKind::Refused,
                operation,
                format!("outside the group's bounds (min {min}, max {max})"),
            ));
        }
        self.inner.limit.acquire().await;
        self.inner
            .asg
            .set_desired_capacity()
            .auto_scaling_group_name(group)
            .desired_capacity(size as i32)
            .honor_cooldown(false)
            .send()
            .await
            .map_err(|e| aws_error(operation, e))?;
        self.inner.observed.lock().await.insert(group.to_string(), size);
        Ok(())
    }

    async fn terminate_instance(&self, group: &str, instance_id: &str) -> AdapterResult<()> {
        self.terminate(group, instance_id, true).await
    }

    async fn replace_instance(&self, group: &str, instance_id: &str) -> AdapterResult<()> {
        self.terminate(group, instance_id, false).await
    }

    async fn fargate_pricing(&self) -> AdapterResult<FargatePricing> {
        Ok(self.inner.settings.fargate_pricing.clone())
    }

    async fn query_metric(&self, query: &MetricQuery) -> AdapterResult<Vec<MetricPoint>> {
        self.metric(query).await
    }

    async fn interruptions(&self) -> AdapterResult<Vec<Interruption>> {
        self.receive_interruptions().await
    }
}

/// Installs aws-lc-rs (what the AWS SDK uses) as the process's rustls crypto provider, unless
/// one is set: rustls refuses to pick one when more than one is compiled in.
fn install_crypto() {
    // An error only means a provider was installed already, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
