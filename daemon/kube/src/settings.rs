//! What the Kubernetes adapter can be told: which labels name a node's group, how placement
//! steers a workload, how often usage is read, and how leadership is held.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The Kubernetes adapter's settings (`kubernetes:` in the daemon's config file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct KubeSettings {
    /// Node labels whose value names the node's group, tried in order, for nodes whose
    /// instance is not (yet) listed by any group. EKS managed node groups and kops instance
    /// groups set the first two.
    pub group_labels: Vec<String>,
    /// The pod-template label the Fargate profile selects on: Ballast sets it to
    /// `fargate-value` to move a workload to Fargate and to `ec2-value` to keep it on EC2.
    pub placement_label: String,
    pub fargate_value: String,
    pub ec2_value: String,
    /// The node label a workload's nodeSelector uses to pin it to one EC2 group.
    pub group_selector_label: String,
    /// Pods whose `spec.priority` is below this are expendable, as Cluster Autoscaler's
    /// `--expendable-pods-priority-cutoff` (same default, -10): they cause no scale-up, keep no
    /// node and hold no room (see `PodShape::expendable`). Pods with no priority are not.
    pub expendable_pods_priority_cutoff: i32,
    /// How often usage is read from metrics.k8s.io.
    #[serde(with = "ballast_engine::duration")]
    pub metrics_interval: Duration,
    /// The name Events are reported under.
    pub reporter: String,
    pub leader: LeaderSettings,
    /// The ConfigMap, in `leader.namespace`, where the leader leaves what the next one needs
    /// (cooldowns, back-offs, placement times, the policies' states); `null` for none, and a
    /// new leader on another pod then starts them afresh.
    pub handover: Option<String>,
}

impl Default for KubeSettings {
    fn default() -> Self {
        KubeSettings {
            group_labels: vec!["eks.amazonaws.com/nodegroup".into(), "kops.k8s.io/instancegroup".into()],
            placement_label: "ballast.dev/compute".into(),
            fargate_value: "fargate".into(),
            ec2_value: "ec2".into(),
            group_selector_label: "eks.amazonaws.com/nodegroup".into(),
            expendable_pods_priority_cutoff: -10,
            metrics_interval: Duration::from_secs(15),
            reporter: "ballast".into(),
            leader: LeaderSettings::default(),
            handover: Some("ballast-handover".into()),
        }
    }
}

/// Leader election on a coordination.k8s.io Lease. The defaults are those of Kubernetes'
/// own controllers (15 s lease, 10 s renew deadline, 2 s retry).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LeaderSettings {
    /// Ballast's own namespace: its Lease and its handover ConfigMap.
    pub namespace: String,
    pub lease_name: String,
    /// How long a lease holds without renewal; another replica may take it after that.
    #[serde(with = "ballast_engine::duration")]
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long stops acting. Shorter than the lease
    /// duration, so it has stopped before anyone else can start.
    #[serde(with = "ballast_engine::duration")]
    pub renew_deadline: Duration,
    /// How often to try to renew or acquire.
    #[serde(with = "ballast_engine::duration")]
    pub retry_period: Duration,
}

impl Default for LeaderSettings {
    fn default() -> Self {
        LeaderSettings {
            namespace: "kube-system".into(),
            lease_name: "ballast-leader".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl LeaderSettings {
    /// Errors name the field and the value.
    pub fn validate(&self) -> Result<(), String> {
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "leader.renew-deadline ({}) must be shorter than leader.lease-duration ({}), or a leader could still act after another took over",
                ballast_engine::duration::display(self.renew_deadline),
                ballast_engine::duration::display(self.lease_duration)
            ));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(format!(
                "leader.retry-period ({}) must be shorter than leader.renew-deadline ({})",
                ballast_engine::duration::display(self.retry_period),
                ballast_engine::duration::display(self.renew_deadline)
            ));
        }
        Ok(())
    }
}
