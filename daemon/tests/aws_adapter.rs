//! The AWS adapter against moto: discovery by tag, templates from zero, prices, scaling and
//! termination with decrement, CloudWatch both ways, and faults.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use std::collections::BTreeMap;

use ballast::aws::cloudwatch::Figures;
use ballast::aws::{AwsCapacity, AwsSettings};
use ballast::engine::ports::{AdapterResult, Announcement, Capacity, Cluster, ClusterView, Eviction, MetricQuery};
use ballast::engine::record::{Recorder, Trigger};
use ballast::engine::{Engine, EngineConfig};
use ballast::policy::PolicyChain;
use ballast_sdk::{PlacementTarget, Resources, WorkloadRef};
use serde_json::json;
use support::moto::{self, Fault, Moto, Proxy, aws_settings, ca_tags, mixed_group, sdk_config, template_group};
use support::*;

async fn asg_state(config: &aws_config::SdkConfig, name: &str) -> (i32, usize) {
    let out = aws_sdk_autoscaling::Client::new(config)
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .unwrap();
    let g = &out.auto_scaling_groups()[0];
    (g.desired_capacity().unwrap(), g.instances().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_tagged_for_the_cluster_are_found_and_offer_a_template_from_zero() {
    let moto = Moto::start().await;
    let config = sdk_config(&moto.url).await;
    let mut tags = ca_tags();
    tags.push(("k8s.io/cluster-autoscaler/node-template/label/workload", "web"));
    tags.push(("k8s.io/cluster-autoscaler/node-template/taint/dedicated", "web:NoSchedule"));
    tags.push(("k8s.io/cluster-autoscaler/node-template/resources/ephemeral-storage", "100Gi"));
    template_group(&config, "general", "m5.large", &tags, 0).await;
    template_group(&config, "own-tag", "c5.xlarge", &[("ballast.dev/cluster", moto::CLUSTER)], 0).await;
    template_group(
        &config,
        "other-cluster",
        "m5.large",
        &[("k8s.io/cluster-autoscaler/enabled", "true"), ("k8s.io/cluster-autoscaler/staging", "owned")],
        0,
    )
    .await;
    template_group(&config, "untagged", "m5.large", &[], 0).await;

    let capacity = AwsCapacity::from_config(&config, aws_settings()).unwrap();
    let groups = capacity.node_groups().await.unwrap();
    let ids: Vec<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["general", "own-tag"]);

    let general = &groups[0];
    assert_eq!((general.min_size, general.max_size, general.desired_size), (0, 10, 0));
    assert!(general.instances.is_empty(), "at zero");
    let m5 = &general.instance_types[0];
    assert_eq!(m5.name, "m5.large");
    assert_eq!((m5.capacity.cpu_millis, m5.capacity.memory_bytes), (2000, 8 << 30));
    assert_eq!(m5.capacity.pods, 29, "max pods from m5.large's ENI limits (3 x 10)");
    assert_eq!(m5.allocatable.cpu_millis, 1930);
    assert_eq!(m5.capacity.ephemeral_storage_bytes, 100 << 30, "the root volume its tag says");
    assert_eq!(m5.allocatable.ephemeral_storage_bytes, 89 << 30, "less 1 GiB kube-reserved and 10% for eviction");
    assert_eq!(m5.price_per_hour, 0.096);
    assert_eq!(general.labels.get("workload").map(String::as_str), Some("web"));
    assert_eq!(general.taints.len(), 1);
    let c5 = &groups[1].instance_types[0];
    assert_eq!((c5.name.as_str(), c5.capacity.cpu_millis, c5.price_per_hour), ("c5.xlarge", 4000, 0.17));
    assert_eq!(c5.allocatable.ephemeral_storage_bytes, Resources::STORAGE_NOT_KNOWN, "no tag: not known");
}

/// A group's GPUs come from DescribeInstanceTypes, AWS Neuron devices (inf2, trn1) counted as
/// the kube adapter counts them on nodes and pods, so a group at zero holds a pod asking one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_gpus_and_neuron_devices_are_read_from_its_instance_type() {
    let moto = Moto::start().await;
    let config = sdk_config(&moto.url).await;
    template_group(&config, "gpu", "g5.xlarge", &ca_tags(), 0).await;
    template_group(&config, "inferentia", "inf2.xlarge", &ca_tags(), 0).await;
    let capacity = AwsCapacity::from_config(&config, aws_settings()).unwrap();
    let groups = capacity.node_groups().await.unwrap();
    let gpus: Vec<(&str, u32)> = groups.iter().map(|g| (g.id.as_str(), g.instance_types[0].capacity.gpus)).collect();
    assert_eq!(gpus, [("gpu", 1), ("inferentia", 1)]);
}

/// A group whose disk no tag says is sized by its launch template: the largest EBS volume it
/// maps (Bottlerocket keeps pods' storage on its second, data volume), so a group at zero
/// offers its disk to pods that ask for one; a node-template tag still wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_disk_is_the_largest_volume_its_launch_template_maps_unless_a_tag_says_it() {
    use aws_sdk_ec2::types::{LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest};
    let moto = Moto::start().await;
    let config = sdk_config(&moto.url).await;
    let volume = |device: &str, gib: i32| {
        let ebs = LaunchTemplateEbsBlockDeviceRequest::builder().volume_size(gib).build();
        LaunchTemplateBlockDeviceMappingRequest::builder().device_name(device).ebs(ebs).build()
    };
    let bottlerocket = || moto::launch_data("m5.large").block_device_mappings(volume("/dev/xvda", 2));
    let bottlerocket = || bottlerocket().block_device_mappings(volume("/dev/xvdb", 50)).build();
    moto::template_group_of(&config, "mapped", bottlerocket(), &ca_tags(), 0).await;
    let mut tagged = ca_tags();
    tagged.push(("k8s.io/cluster-autoscaler/node-template/resources/ephemeral-storage", "100Gi"));
    moto::template_group_of(&config, "tagged", bottlerocket(), &tagged, 0).await;
    template_group(&config, "unmapped", "m5.large", &ca_tags(), 0).await;

    let capacity = AwsCapacity::from_config(&config, aws_settings()).unwrap();
    let groups = capacity.node_groups().await.unwrap();
    let disk = |id: &str| {
        let group = groups.iter().find(|g| g.id == id).expect("the group is found");
        group.instance_types[0].allocatable.ephemeral_storage_bytes
    };
    assert_eq!(disk("mapped"), 44 << 30, "50 GiB less 1 GiB and 10%");
    assert_eq!(disk("tagged"), 89 << 30, "the tag's 100 GiB");
    assert_eq!(disk("unmapped"), Resources::STORAGE_NOT_KNOWN, "no volume, no tag");
}

/// A pod that selects a label every node registers with (`kubernetes.io/os: linux`, the default
/// of many charts; an architecture; a zone) is admitted by a group only if the group's template
/// carries it: each group's labels are those its nodes will carry, from DescribeInstanceTypes
/// and the group's zones, and a node-template tag still wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_template_carries_the_labels_its_nodes_register_with() {
    let moto = Moto::start().await;
    let config = sdk_config(&moto.url).await;
    template_group(&config, "graviton", "m6g.large", &ca_tags(), 0).await;
    let mut windows = ca_tags();
    windows.push(("k8s.io/cluster-autoscaler/node-template/label/kubernetes.io/os", "windows"));
    template_group(&config, "windows", "m5.large", &windows, 0).await;
    template_group(&config, "two-zones", "m5.large", &ca_tags(), 0).await;
    aws_sdk_autoscaling::Client::new(&config)
        .update_auto_scaling_group()
        .auto_scaling_group_name("two-zones")
        .availability_zones("us-east-1a")
        .availability_zones("us-east-1b")
        .send()
        .await
        .unwrap();

    let capacity = AwsCapacity::from_config(&config, aws_settings()).unwrap();
    let groups = capacity.node_groups().await.unwrap();
    let labels = |id: &str| groups.iter().find(|g| g.id == id).map(|g| g.labels.clone()).unwrap();
    let graviton = labels("graviton");
    let selector = [("kubernetes.io/os", "linux"), ("kubernetes.io/arch", "arm64")];
    let pod = ballast_sdk::PendingPod {
        node_selector: selector.map(|(k, v)| (k.to_string(), v.to_string())).into(),
        ..Default::default()
    };
    let admits = |id: &str| {
        let group = ballast_sdk::NodeGroup { labels: labels(id), ..Default::default() };
        group.admits(&pod)
    };
    assert!(admits("graviton"), "{graviton:?}");
    assert!(!admits("two-zones"), "an amd64 group does not admit an arm64 pod");
    assert_eq!(graviton["node.kubernetes.io/instance-type"], "m6g.large");
    assert_eq!(graviton["topology.kubernetes.io/zone"], "us-east-1a");
    assert_eq!(graviton["topology.kubernetes.io/region"], "us-east-1");
    assert_eq!(labels("windows")["kubernetes.io/os"], "windows", "the node-template tag wins");
    let two_zones = labels("two-zones");
    assert_eq!(two_zones["kubernetes.io/arch"], "amd64");
    assert!(
        !two_zones.contains_key("topology.kubernetes.io/zone"),
        "the group picks the zone of each launch, so none is promised: {two_zones:?}"
    );
}

/// A cluster side with nothing in it: the AWS tests drive the engine's capacity side only.
struct EmptyCluster;

impl Cluster for EmptyCluster {
    async fn announce(&self, _: Announcement) {}
    async fn observe(&self) -> AdapterResult<ClusterView> {
        Ok(ClusterView::default())
    }
    async fn mark_for_removal(&self, _: &str, _: &ballast::engine::ports::RemovalMark) -> AdapterResult<()> {
        Ok(())
    }
    async fn clear_removal(&self, _: &str) -> AdapterResult<()> {
        Ok(())
    }
    async fn claim_replacement(&self, _: &str, _: &str) -> AdapterResult<()> {
        Ok(())
    }
    async fn evict(&self, _: &str, _: &str) -> AdapterResult<Eviction> {
        Ok(Eviction::Gone)
    }
    async fn place(&self, _: &WorkloadRef, _: &PlacementTarget) -> AdapterResult<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_scales_a_group_up_and_a_removal_terminates_with_a_decrement() {
    let moto = Moto::start().await;
    let config = sdk_config(&moto.url).await;
    template_group(&config, "general", "m5.large", &ca_tags(), 1).await;
    let capacity = AwsCapacity::from_config(&config, aws_settings()).unwrap();

    let plugin = host()
        .load(scripted(json!([{"action": {"scale-to": {"group": "general", "size": 3}}, "reason": "3 pods pending"}])))
        .unwrap();
    let mut engine = Engine::new(
        EmptyCluster,
        capacity.clone(),
        PolicyChain::new(vec![plugin]),
        EngineConfig::default(),
        Recorder::new(100, None),
    );
    let outcome = engine.tick(0, Trigger::Manual).await;
    assert_eq!(outcome.plan.scales.get("general"), Some(&3));
    assert_eq!(asg_state(&config, "general").await, (3, 3), "desired 3 and moto launched the instances");

    let groups = capacity.node_groups().await.unwrap();
    let victim = groups[0].instances[1].id.clone();
    capacity.terminate_instance("general", &victim).await.unwrap();
    assert_eq!(asg_state(&config, "general").await, (2, 2), "one instance gone and desired lowered by one");
    let left = capacity.node_groups().await.unwrap();
    assert!(left[0].instances.iter().all(|i| i.id != victim));
    // Asked again (a retry whose first answer was lost): nothing more is terminated.
    capacity.terminate_instance("general", &victim).await.unwrap();
    assert_eq!(asg_state(&config, "general").await, (2, 2));
}

/// Node repair: a broken node's instance is terminated without a decrement, so the group
/// launches a new one and keeps its size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_instance_leaves_the_group_and_the_group_keeps_its_size() {
    let moto = Moto::start().await;
    let config = sdk_config(&moto.url).await;
    template_group(&config, "general", "m5.large", &ca_tags(), 2).await;
    let capacity = AwsCapacity::from_config(&config, aws_settings()).unwrap();
    let before = capacity.node_groups().await.unwrap();
    let broken = before[0].instances[0].id.clone();
    capacity.replace_instance("general", &broken).await.unwrap();
    let after = capacity.node_groups().await.unwrap();
    assert_eq!(after[0].desired_size, 2, "desired kept");
    assert_eq!(asg_state(&config, "general").await, (2, 2), "moto launched a replacement");
    assert!(after[0].instances.iter().all(|i| i.id != broken), "{:?}", after[0].instances);
    // Asked again: it already left the group, and nothing else is terminated.
    let kept: Vec<String> = after[0].instances.iter().map(|i| i.id.clone()).collect();
    capacity.replace_instance("general", &broken).await.unwrap();
    let again: Vec<String> = capacity.node_groups().await.unwrap()[0].instances.iter().map(|i| i.id.clone()).collect();
    assert_eq!(again, kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_changed_by_someone_else_is_not_overwritten() {
    let moto = Moto::start().await;
    let config = sdk_config(&moto.url).await;
    template_group(&config, "general", "m5.large", &ca_tags(), 1).await;
    let capacity = AwsCapacity::from_config(&config, aws_settings()).unwrap();
    capacity.node_groups().await.unwrap();
    aws_sdk_autoscaling::Client::new(&config)
        .set_desired_capacity()
        .auto_scaling_group_name("general")
        .desired_capacity(5)
        .send()
        .await
        .unwrap();
    let refused = capacity.set_desired_size("general", 2).await.unwrap_err();
    assert!(refused.message.contains("changed from 1 to 5 outside Ballast"), "{refused}");
    assert_eq!(asg_state(&config, "general").await.0, 5);
    // Observed anew, the next decision applies.
    capacity.set_desired_size("general", 6).await.unwrap();
    assert_eq!(asg_state(&config, "general").await.0, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudwatch_series_are_read_and_ballast_figures_published() {
    let moto = Moto::start().await;
    let config = sdk_config(&moto.url).await;
    template_group(&config, "general", "m5.large", &ca_tags(), 0).await;
    let capacity = AwsCapacity::from_config(&config, AwsSettings { publish_metrics: true, ..aws_settings() }).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let cw = aws_sdk_cloudwatch::Client::new(&config);
    for (i, value) in [10.0, 20.0, 30.0].into_iter().enumerate() {
        cw.put_metric_data()
            .namespace("Shop/Queue")
            .metric_data(
                aws_sdk_cloudwatch::types::MetricDatum::builder()
                    .metric_name("Depth")
                    .dimensions(aws_sdk_cloudwatch::types::Dimension::builder().name("Queue").value("orders").build())
                    .value(value)
                    .timestamp(aws_smithy_types::DateTime::from_millis((now - 180_000 + i as u64 * 60_000) as i64))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let query = MetricQuery {
        namespace: "Shop/Queue".into(),
        name: "Depth".into(),
        dimensions: BTreeMap::from([("Queue".to_string(), "orders".to_string())]),
        statistic: "Average".into(),
        period_seconds: 60,
        start_millis: now - 600_000,
        end_millis: now + 60_000,
    };
    let points = capacity.query_metric(&query).await.unwrap();
    let values: Vec<f64> = points.iter().map(|p| p.value).collect();
    assert_eq!(values, [10.0, 20.0, 30.0]);

    capacity.publish(Figures { pending_pods: 7, decisions: 2, cost_per_hour: 1.25 }, now).await.unwrap();
    let pending = MetricQuery {
        namespace: "Ballast".into(),
        name: "PendingPods".into(),
        dimensions: BTreeMap::from([("ClusterName".to_string(), moto::CLUSTER.to_string())]),
        ..query
    };
    let read = capacity.query_metric(&pending).await.unwrap();
    assert_eq!(read.iter().map(|p| p.value).collect::<Vec<_>>(), [7.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_lost_answers_are_retried_without_scaling_twice() {
    let moto = Moto::start().await;
    let proxy = Proxy::start(&moto.url).await;
    let direct = sdk_config(&moto.url).await;
    template_group(&direct, "general", "m5.large", &ca_tags(), 1).await;
    let config = sdk_config(&proxy.url).await;
    let capacity = AwsCapacity::from_config(&config, aws_settings()).unwrap();
    capacity.node_groups().await.unwrap();

    proxy.fail("SetDesiredCapacity", &[Fault::Refuse(400, "Throttling"), Fault::Refuse(500, "InternalFailure")]);
    capacity.set_desired_size("general", 4).await.unwrap();
    assert_eq!(proxy.forwarded("SetDesiredCapacity"), 1, "moto saw the change once");
    assert_eq!(asg_state(&direct, "general").await, (4, 4));
    let counts = capacity.call_counts();
    assert!(counts.throttled >= 1, "{counts:?}");
    assert!(counts.attempts > counts.calls, "retries happened: {counts:?}");

    // The termination goes through but its answer is lost: the SDK retries, moto refuses
    // (the instance is gone), and the next attempt finds nothing to do. Desired drops once.
    let victim = capacity.node_groups().await.unwrap()[0].instances[0].id.clone();
    proxy.fail("TerminateInstanceInAutoScalingGroup", &[Fault::LoseAnswer(500)]);
    let first = capacity.terminate_instance("general", &victim).await;
    if first.is_err() {
        capacity.terminate_instance("general", &victim).await.unwrap();
    }
    assert_eq!(asg_state(&direct, "general").await, (3, 3), "one decrement for one removal");
}

/// A call refused the same way twice is described the same way twice: the service's code
/// and message, without the request id (new on every answer) or a dump of the response, so
/// the decision records of a standing refusal fold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_reads_the_same_each_time_without_its_request_id() {
    let moto = Moto::start().await;
    let proxy = Proxy::start(&moto.url).await;
    let direct = sdk_config(&moto.url).await;
    template_group(&direct, "general", "m5.large", &ca_tags(), 1).await;
    let capacity = AwsCapacity::from_config(&sdk_config(&proxy.url).await, aws_settings()).unwrap();
    let victim = capacity.node_groups().await.unwrap()[0].instances[0].id.clone();
    let denied = Fault::Refuse(403, "AccessDenied");
    proxy.fail("TerminateInstanceInAutoScalingGroup", &[denied, Fault::Refuse(403, "AccessDenied")]);
    let first = capacity.replace_instance("general", &victim).await.unwrap_err();
    let second = capacity.replace_instance("general", &victim).await.unwrap_err();
    assert_eq!(first.to_string(), second.to_string());
    assert!(first.message == "AccessDenied: injected", "{first}");
    assert_eq!(asg_state(&direct, "general").await, (1, 1), "nothing was terminated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_instances_group_reports_every_type_in_its_order_with_capacity_and_price() {
    let moto = Moto::start().await;
    let config = sdk_config(&moto.url).await;
    let overrides = [("m5.large", None), ("c5.xlarge", None), ("r5.large", None)];
    mixed_group(&config, "mixed", &overrides, None, &ca_tags()).await;
    let cheapest_first = [("m5.large", None), ("m5a.large", None)];
    mixed_group(&config, "cheapest-first", &cheapest_first, Some("lowest-price"), &ca_tags()).await;

    let capacity = AwsCapacity::from_config(&config, aws_settings()).unwrap();
    let groups = capacity.node_groups().await.unwrap();
    let group = |id: &str| groups.iter().find(|g| g.id == id).unwrap();
    let types: Vec<(&str, u64, u64, f64)> = group("mixed")
        .instance_types
        .iter()
        .map(|t| (t.name.as_str(), t.capacity.cpu_millis, t.capacity.memory_bytes >> 30, t.price_per_hour))
        .collect();
    // In the overrides' order: the first is the type an on-demand group launches first.
    assert_eq!(types, [("m5.large", 2000, 8, 0.096), ("c5.xlarge", 4000, 8, 0.17), ("r5.large", 2000, 16, 0.126)]);
    // Unless the group launches the cheapest first.
    let names: Vec<&str> = group("cheapest-first").instance_types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["m5a.large", "m5.large"]);
}

/// A group whose types carry weights counts its desired capacity in units: it is reported,
/// naming the field and the value, and left alone; the other groups are managed as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weighted_group_is_reported_and_left_alone() {
    let moto = Moto::start().await;
    let config = sdk_config(&moto.url).await;
    mixed_group(&config, "plain", &[("m5.large", Some("1")), ("m5a.large", None)], None, &ca_tags()).await;
    mixed_group(&config, "weighted", &[("m5.large", Some("2")), ("m5.xlarge", Some("4"))], None, &ca_tags()).await;

    let capacity = AwsCapacity::from_config(&config, aws_settings()).unwrap();
    let groups = capacity.node_groups().await.unwrap();
    let ids: Vec<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["plain"]);
    let (count, last) = capacity.unreadable();
    let last = last.unwrap_or_default();
    assert!(count >= 1, "nothing reported");
    for needle in ["Auto Scaling group weighted", "Overrides[0].WeightedCapacity", "\"2\"", "counts units"] {
        assert!(last.contains(needle), "{needle:?} not in {last}");
    }
}

/// An EventBridge event as the rule forwards it to the queue.
fn event(detail_type: &str, detail: serde_json::Value) -> String {
    json!({
        "version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602", "detail-type": detail_type,
        "source": "aws.ec2", "account": "123456789012", "time": "2026-01-05T10:00:00Z",
        "region": "us-east-1", "resources": [], "detail": detail,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_warnings_and_scheduled_retirements_are_read_from_the_queue_once_and_a_bad_message_is_reported_not_retried()
 {
    let moto = Moto::start().await;
    let config = sdk_config(&moto.url).await;
    template_group(&config, "general", "m5.large", &ca_tags(), 2).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let created = sqs.create_queue().queue_name("ballast-interruptions").send().await.unwrap();
    let queue = created.queue_url().unwrap().to_string();
    let settings = AwsSettings { interruption_queue: Some("ballast-interruptions".into()), ..aws_settings() };
    let capacity = AwsCapacity::from_config(&config, settings).unwrap();
    let groups = capacity.node_groups().await.unwrap();
    assert_eq!(groups[0].labels.get(ballast_sdk::CAPACITY_TYPE_LABEL).map(String::as_str), Some("ON_DEMAND"));
    let victim = groups[0].instances[0].id.clone();

    let warning = json!({"instance-id": victim, "instance-action": "terminate"});
    let retired = groups[0].instances[1].id.clone();
    let retirement = json!({"service": "EC2", "eventTypeCategory": "scheduledChange",
        "eventTypeCode": "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED", "startTime": "Tue, 06 Jan 2026 10:00:00 GMT",
        "affectedEntities": [{"entityValue": retired}]});
    for body in [
        event("EC2 Spot Instance Interruption Warning", warning),
        event("EC2 Instance Rebalance Recommendation", json!({"instance-id": victim})),
        event("EC2 Spot Instance Interruption Warning", json!({"instance-action": "terminate"})),
        event("AWS Health Event", retirement),
    ] {
        sqs.send_message().queue_url(&queue).message_body(body).send().await.unwrap();
    }
    let warnings = capacity.interruptions().await.unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert_eq!(warnings[0].instance_id, victim);
    assert_eq!(warnings[0].at_millis, 1_767_607_200_000);
    assert_eq!(warnings[0].deadline_millis, warnings[0].at_millis + 120_000, "EC2's two minutes");
    assert_eq!(warnings[1].instance_id, retired, "the scheduled retirement's instance");
    assert_eq!(warnings[1].deadline_millis, warnings[1].at_millis + 86_400_000, "due at its startTime, a day on");
    let code = ballast::engine::ports::InterruptionCause::Scheduled("AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED".into());
    assert_eq!(warnings[1].cause, code);

    assert!(capacity.interruptions().await.unwrap().is_empty(), "each message is handed out once");
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let left = |name: aws_sdk_sqs::types::QueueAttributeName| {
        attributes.attributes().and_then(|a| a.get(&name)).map(String::as_str).unwrap_or("?").to_string()
    };
    assert_eq!(left(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages), "0");
    assert_eq!(
        left(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        "0",
        "read messages are deleted, the unreadable one too, not left to come back"
    );
    let (unreadable, last) = capacity.unreadable();
    assert_eq!(unreadable, 1);
    let last = last.unwrap();
    assert!(last.contains("interruption message") && last.contains("detail.instance-id"), "{last}");
}

/// Group `batch` of twelve 4-vCPU nodes: one at 10%, one at 55%, ten at 75%, taken at
/// `minutes` past the first look.
fn batch_nodes(group: &ballast::engine::ports::GroupView, minutes: u64) -> ballast_sdk::SnapshotData {
    use ballast_sdk::testing::{GroupBuilder, NodeBuilder, SnapshotBuilder};
    let m5 = &group.instance_types[0];
    let mut snapshot = SnapshotBuilder::new()
        .at_millis(minutes * 60_000)
        .group(GroupBuilder::asg(&group.id).instance_type(&m5.name, "4", "16Gi", m5.price_per_hour).sizes(0, 12, 20));
    let mut node = |name: String, cpu: &str| {
        snapshot = std::mem::take(&mut snapshot)
            .node(NodeBuilder::new(&name, &group.id).allocatable("4", "16Gi").requested(cpu, "1Gi", 3));
    };
    node("quiet".into(), "400m");
    node("half".into(), "2200m");
    for i in 0..10 {
        node(format!("busy-{i}"), "3000m");
    }
    let mut data = snapshot.build();
    if !group.options.is_empty() {
        data.group_options = vec![group.options.clone()];
    }
    data
}

/// Which nodes the bundled binpack (the component, through the host) removes from `group`
/// once they have been under its threshold for 10 minutes.
async fn removed_by_binpack(group: &ballast::engine::ports::GroupView) -> Vec<String> {
    let spec = ballast::bundled::spec("binpack", json!({})).unwrap();
    let mut chain = PolicyChain::new(vec![host().load(spec).unwrap()]);
    chain.evaluate(std::sync::Arc::new(batch_nodes(group, 0))).await;
    let outcome = chain.evaluate(std::sync::Arc::new(batch_nodes(group, 10))).await;
    outcome
        .proposals
        .iter()
        .flat_map(|p| match &p.decision.action {
            ballast_sdk::Action::RemoveNodes { nodes } => nodes.clone(),
            _ => Vec::new(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_autoscalers_scale_down_threshold_tag_changes_which_nodes_binpack_removes() {
    let moto = Moto::start().await;
    let config = sdk_config(&moto.url).await;
    let option = |name: &str| format!("k8s.io/cluster-autoscaler/node-template/autoscaling-options/{name}");
    let (threshold, unneeded) = (option("scaledownutilizationthreshold"), option("scaledownunneededtime"));
    let mut strict = ca_tags();
    strict.push((&threshold, "0.05"));
    let mut loose = ca_tags();
    loose.push((&threshold, "0.6"));
    loose.push((&unneeded, "5m0s"));
    let mut broken = ca_tags();
    broken.push((&threshold, "most"));
    template_group(&config, "plain", "m5.xlarge", &ca_tags(), 0).await;
    template_group(&config, "strict", "m5.xlarge", &strict, 0).await;
    template_group(&config, "loose", "m5.xlarge", &loose, 0).await;
    template_group(&config, "broken", "m5.xlarge", &broken, 0).await;

    let capacity = AwsCapacity::from_config(&config, aws_settings()).unwrap();
    let groups = capacity.node_groups().await.unwrap();
    let by_id = |id: &str| groups.iter().find(|g| g.id == id).unwrap();
    assert_eq!(by_id("loose").options.scale_down_utilization_threshold, Some(0.6));
    assert_eq!(by_id("loose").options.scale_down_unneeded_seconds, Some(300));

    // binpack's own threshold is 50%: only the node at 10% goes.
    assert_eq!(removed_by_binpack(by_id("plain")).await, ["quiet"]);
    // Tagged 5%: no node is that idle.
    assert!(removed_by_binpack(by_id("strict")).await.is_empty());
    // Tagged 60%: the node at 55% goes too, its pods fitting on the ten at 75%.
    assert_eq!(removed_by_binpack(by_id("loose")).await, ["quiet", "half"]);
    // A tag that cannot be read leaves binpack's own threshold, and is reported by name.
    assert_eq!(removed_by_binpack(by_id("broken")).await, ["quiet"]);
    let (count, last) = capacity.unreadable();
    assert!(count >= 1, "the bad tag is counted");
    assert!(last.unwrap().contains("autoscaling-options/scaledownutilizationthreshold"), "named");
}
