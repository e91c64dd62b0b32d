//! What the AWS adapter can be told (`aws:` in the daemon's config file).

use std::collections::BTreeMap;
use std::time::Duration;

use ballast_sdk::FargatePricing;
use serde::{Deserialize, Serialize};

/// The AWS adapter's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AwsSettings {
    /// The cluster's name, as Cluster Autoscaler's discovery tag carries it.
    pub cluster_name: String,
    /// The region; otherwise the standard chain's (environment, profile, IMDS).
    pub region: Option<String>,
    /// An endpoint for every service, for emulators (moto) or VPC endpoints.
    pub endpoint_url: Option<String>,
    /// Auto Scaling groups to manage by name, besides those found by tag.
    pub groups: Vec<String>,
    /// Find groups by tag: Cluster Autoscaler's `k8s.io/cluster-autoscaler/enabled` together
    /// with `k8s.io/cluster-autoscaler/<cluster-name>`, or Ballast's `ballast.dev/cluster`
    /// with the cluster's name as its value.
    pub discover_by_tags: bool,
    /// How long instance-type facts (capacity, max pods) are kept before being read again.
    #[serde(with = "ballast_engine::duration")]
    pub template_ttl: Duration,
    /// How long spot prices are kept before being read again.
    #[serde(with = "ballast_engine::duration")]
    pub price_ttl: Duration,
    /// How long what a group launches (its launch template version's, or its launch
    /// configuration's, image and instance type) is kept before being read again: how soon a
    /// new one is seen, new nodes are priced and sized as its type, and the nodes of the old
    /// one count as drifted. Read again at once when a node launched from another version
    /// of the template turns up.
    #[serde(with = "ballast_engine::duration")]
    pub image_ttl: Duration,
    /// Max pods per node when not worked out from the instance type's ENI limits (for
    /// clusters with prefix delegation or a custom CNI).
    pub max_pods: Option<u32>,
    /// On-demand prices (USD per hour) that replace the bundled table's, by instance type.
    pub on_demand_prices: BTreeMap<String, f64>,
    /// Read spot prices with DescribeSpotPriceHistory for groups whose instances are spot.
    pub spot_prices: bool,
    pub fargate_pricing: FargatePricing,
    /// Client-side limit on AWS API calls per second, on top of the SDK's retries, so a
    /// busy cluster does not eat the account's API budget shared with other tools.
    pub max_calls_per_second: f64,
    /// Attempts per call, the first included (the SDK's standard retry mode, with
    /// exponential back-off and jitter).
    pub max_attempts: u32,
    /// Publish Ballast's figures (pending pods, decisions, cost per hour) to CloudWatch.
    pub publish_metrics: bool,
    /// The CloudWatch namespace they are published under.
    pub metrics_namespace: String,
    /// The SQS queue (name or URL) an EventBridge rule sends EC2 spot interruption warnings
    /// to; a warned node is cordoned at once and replaced, and its pods are evicted once the
    /// replacement is Ready. None: warnings are not read.
    pub interruption_queue: Option<String>,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            cluster_name: String::new(),
            region: None,
            endpoint_url: None,
            groups: Vec::new(),
            discover_by_tags: true,
            template_ttl: Duration::from_secs(3600),
            price_ttl: Duration::from_secs(3600),
            image_ttl: Duration::from_secs(300),
            max_pods: None,
            on_demand_prices: BTreeMap::new(),
            spot_prices: true,
            fargate_pricing: FargatePricing::default(),
            max_calls_per_second: 10.0,
            max_attempts: 5,
            publish_metrics: false,
            metrics_namespace: "Ballast".into(),
            interruption_queue: None,
        }
    }
}

impl AwsSettings {
    /// Errors name the field and the value.
    pub fn validate(&self) -> Result<(), String> {
        if self.discover_by_tags && self.cluster_name.is_empty() {
            return Err("aws.cluster-name is empty: discovery by tags needs the cluster's name (or set aws.discover-by-tags: false and list aws.groups)".into());
        }
        if !self.discover_by_tags && self.groups.is_empty() {
            return Err("aws.groups is empty and aws.discover-by-tags is false: no node group would be managed".into());
        }
        if !(self.max_calls_per_second > 0.0 && self.max_calls_per_second.is_finite()) {
            return Err(format!(
                "aws.max-calls-per-second must be a positive number, not {}",
                self.max_calls_per_second
            ));
        }
        if self.max_attempts == 0 {
            return Err("aws.max-attempts must be at least 1, not 0".into());
        }
        if let Some((name, price)) = self.on_demand_prices.iter().find(|(_, p)| !(**p >= 0.0 && p.is_finite())) {
            return Err(format!("aws.on-demand-prices.{name} must be a non-negative price, not {price}"));
        }
        self.fargate_pricing.check().map_err(|e| format!("aws.fargate-pricing.{}: {}", e.field, e.message))
    }
}
