//! What a new node of a group will be, known before any exists (scale from zero): the group's
//! instance types from its launch template or launch configuration (read with its image,
//! [`super::images`], for `image-ttl`) or its mixed instances policy, their capacity from
//! DescribeInstanceTypes (cached for `template-ttl`), and the labels and taints Cluster
//! Autoscaler's node-template tags declare.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_autoscaling::types::AutoScalingGroup;
use ballast_engine::node_labels::Arch;
use ballast_engine::unreadable::BadValue;
use ballast_sdk::{Resources, Taint};

pub const LABEL_TAG: &str = "k8s.io/cluster-autoscaler/node-template/label/";
pub const TAINT_TAG: &str = "k8s.io/cluster-autoscaler/node-template/taint/";
pub const RESOURCE_TAG: &str = "k8s.io/cluster-autoscaler/node-template/resources/";
/// Cluster Autoscaler's per-group settings (see [`autoscaling_options`]).
pub const OPTIONS_TAG: &str = "k8s.io/cluster-autoscaler/node-template/autoscaling-options/";
/// EKS managed node groups tag their ASG with the node group's name; their nodes carry it as
/// the `eks.amazonaws.com/nodegroup` label.
pub const EKS_NODEGROUP_TAG: &str = "eks:nodegroup-name";

/// What DescribeInstanceTypes says about a type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TypeFacts {
    pub vcpus: u64,
    pub memory_mib: u64,
    pub gpus: u32,
    pub max_enis: u32,
    pub ipv4_per_eni: u32,
    /// The first of its `SupportedArchitectures` an EKS node runs.
    pub arch: Option<Arch>,
}

impl TypeFacts {
    /// Capacity as the kubelet reports it, max pods from the ENI limits unless configured;
    /// ephemeral storage not known (the root volume is the launch template's, not the type's).
    pub fn capacity(&self, max_pods: Option<u32>) -> Resources {
        Resources {
            cpu_millis: self.vcpus * 1000,
            memory_bytes: self.memory_mib << 20,
            pods: max_pods.unwrap_or_else(|| ballast_engine::eks::max_pods(self.max_enis, self.ipv4_per_eni)),
            gpus: self.gpus,
            ephemeral_storage_bytes: Resources::STORAGE_NOT_KNOWN,
        }
    }
}

/// Entries that expire.
pub struct TtlCache<V> {
    ttl: Duration,
    entries: HashMap<String, (Instant, V)>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration) -> Self {
        TtlCache { ttl, entries: HashMap::new() }
    }

    pub fn get(&self, key: &str) -> Option<V> {
        self.entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }

    pub fn insert(&mut self, key: String, value: V) {
        self.entries.insert(key, (Instant::now(), value));
    }

    pub fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

/// How a group says what it launches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaunchSource {
    /// Instance types listed by a mixed instances policy's overrides.
    Types(Vec<String>),
    /// A launch template, by id or name, and version.
    Template {
        id: Option<String>,
        name: Option<String>,
        version: String,
    },
    LaunchConfiguration(String),
    Unknown,
}

/// Ok unless the group weights its instance types. A weighted group's DesiredCapacity counts
/// units (vCPUs, say), not instances, and Ballast sizes groups in instances: growing one by
/// one would add a unit, which may launch nothing. Such a group is reported and left alone,
/// never scaled on a wrong reading.
pub fn unweighted(group: &AutoScalingGroup) -> Result<(), BadValue> {
    let overrides = group.mixed_instances_policy().and_then(|p| p.launch_template()).map(|t| t.overrides());
    for (i, o) in overrides.unwrap_or_default().iter().enumerate() {
        if let Some(weight) = o.weighted_capacity().filter(|w| w.trim() != "1") {
            return Err(BadValue {
                field: format!("MixedInstancesPolicy.LaunchTemplate.Overrides[{i}].WeightedCapacity"),
                value: weight.to_string(),
                error: "a weighted group's DesiredCapacity counts units, not instances; Ballast sizes groups in \
                        instances and leaves this group alone"
                    .to_string(),
            });
        }
    }
    Ok(())
}

/// True if the group launches its on-demand instances cheapest type first
/// (`OnDemandAllocationStrategy: lowest-price`) rather than in its overrides' order
/// (`prioritized`, the default).
pub fn on_demand_lowest_price(group: &AutoScalingGroup) -> bool {
    let distribution = group.mixed_instances_policy().and_then(|p| p.instances_distribution());
    distribution.and_then(|d| d.on_demand_allocation_strategy()) == Some("lowest-price")
}

/// Where a group's instance types come from, and whether it launches spot instances.
pub fn launch_source(group: &AutoScalingGroup) -> (LaunchSource, bool) {
    if let Some(policy) = group.mixed_instances_policy() {
        let spot = policy.instances_distribution().is_some_and(|d| {
            d.on_demand_percentage_above_base_capacity() == Some(0) && d.on_demand_base_capacity().unwrap_or(0) == 0
        });
        if let Some(lt) = policy.launch_template() {
            let types: Vec<String> =
                lt.overrides().iter().filter_map(|o| o.instance_type().map(str::to_string)).collect();
            if !types.is_empty() {
                return (LaunchSource::Types(types), spot);
            }
            if let Some(spec) = lt.launch_template_specification() {
                return (template(spec.launch_template_id(), spec.launch_template_name(), spec.version()), spot);
            }
        }
    }
    if let Some(spec) = group.launch_template() {
        return (template(spec.launch_template_id(), spec.launch_template_name(), spec.version()), false);
    }
    match group.launch_configuration_name() {
        Some(name) => (LaunchSource::LaunchConfiguration(name.to_string()), false),
        None => (LaunchSource::Unknown, false),
    }
}

/// Where a group's machine image comes from: its launch template (a mixed instances
/// policy's) or its launch configuration. Unknown when an override of a mixed instances
/// policy brings a template of its own (an arm64 AMI for its Graviton types, say): the group
/// then launches more than one image, and none of its instances is judged drifted.
pub fn image_source(group: &AutoScalingGroup) -> LaunchSource {
    let policy = group.mixed_instances_policy().and_then(|p| p.launch_template());
    if policy.is_some_and(|t| t.overrides().iter().any(|o| o.launch_template_specification().is_some())) {
        return LaunchSource::Unknown;
    }
    let mixed = policy.and_then(|t| t.launch_template_specification());
    if let Some(spec) = mixed.or(group.launch_template()) {
        return template(spec.launch_template_id(), spec.launch_template_name(), spec.version());
    }
    match group.launch_configuration_name() {
        Some(name) => LaunchSource::LaunchConfiguration(name.to_string()),
        None => LaunchSource::Unknown,
    }
}

/// Where the instance types a group launches are named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypesSource {
    /// Its mixed instances policy's overrides, each naming its type.
    Listed(Vec<String>),
    /// Its launch template version or launch configuration (read with its image).
    FromLaunch,
    /// Not all named: an override chooses types by attributes (`InstanceRequirements`).
    Unknown,
}

/// Where `group`'s instance types are named ([`TypesSource`]).
pub fn types_source(group: &AutoScalingGroup) -> TypesSource {
    let policy = group.mixed_instances_policy().and_then(|p| p.launch_template());
    let overrides = policy.map(|t| t.overrides()).unwrap_or_default();
    if overrides.is_empty() {
        return TypesSource::FromLaunch;
    }
    let types: Option<Vec<String>> = overrides.iter().map(|o| o.instance_type().map(str::to_string)).collect();
    types.map_or(TypesSource::Unknown, TypesSource::Listed)
}

fn template(id: Option<&str>, name: Option<&str>, version: Option<&str>) -> LaunchSource {
    LaunchSource::Template {
        id: id.map(str::to_string),
        name: name.map(str::to_string),
        version: version.unwrap_or("$Default").to_string(),
    }
}

/// What a group's node-template tags say its nodes carry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeTemplate {
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub resources: ResourceTags,
    /// Tags that could not be read, each left out of the above.
    pub unreadable: Vec<BadValue>,
}

/// Labels, taints and resources from the group's node-template tags, as Cluster Autoscaler
/// reads them (`label/KEY: VALUE`, `taint/KEY: VALUE:Effect`, `resources/NAME: QUANTITY`).
///
/// # Errors
/// A taint without an effect Kubernetes knows, a resource quantity that does not parse, or a
/// resource Ballast does not count is named in `unreadable` and left out; the other tags
/// still apply.
pub fn node_template(group: &AutoScalingGroup) -> NodeTemplate {
    let mut template = NodeTemplate::default();
    for tag in group.tags() {
        let (Some(key), value) = (tag.key(), tag.value().unwrap_or_default()) else { continue };
        let bad = |error: &str| BadValue { field: format!("tag {key}"), value: value.to_string(), error: error.into() };
        if let Some(label) = key.strip_prefix(LABEL_TAG) {
            template.labels.insert(label.to_string(), value.to_string());
        } else if let Some(taint) = key.strip_prefix(TAINT_TAG) {
            let (value, effect) = value.rsplit_once(':').unwrap_or(("", value));
            match ballast_sdk::TaintEffect::parse(effect) {
                Some(effect) => {
                    template.taints.push(Taint { key: taint.to_string(), value: value.to_string(), effect })
                }
                None => {
                    template.unreadable.push(bad("not VALUE:Effect with NoSchedule, PreferNoSchedule or NoExecute"))
                }
            }
        } else if let Some(resource) = key.strip_prefix(RESOURCE_TAG) {
            if let Err(error) = template.resources.read(resource, value.trim()) {
                template.unreadable.push(bad(&error));
            }
        } else if key == EKS_NODEGROUP_TAG {
            template.labels.insert("eks.amazonaws.com/nodegroup".to_string(), value.to_string());
        }
    }
    template
}

/// The capacity a group's `resources/NAME` tags give its nodes, where they give one.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ResourceTags {
    cpu_millis: Option<u64>,
    memory_bytes: Option<u64>,
    pods: Option<u32>,
    gpus: Option<u32>,
    ephemeral_storage_bytes: Option<u64>,
}

impl ResourceTags {
    /// Reads one `resources/NAME` tag.
    fn read(&mut self, name: &str, value: &str) -> Result<(), String> {
        let parsed = |scale| ballast_sdk::quantity::parse(value, scale);
        let count = |scale| parsed(scale).and_then(|n| u32::try_from(n).map_err(|_| "too large a count".to_string()));
        match name {
            "cpu" => self.cpu_millis = Some(parsed(1000.0)?),
            "memory" => self.memory_bytes = Some(parsed(1.0)?),
            "pods" => self.pods = Some(count(1.0)?),
            gpu if Resources::GPU_RESOURCES.contains(&gpu) => self.gpus = Some(count(1.0)?),
            "ephemeral-storage" => self.ephemeral_storage_bytes = Some(parsed(1.0)?),
            _ => {
                let known = Resources::GPU_RESOURCES.join(", ");
                return Err(format!("not a resource Ballast counts (cpu, memory, pods, ephemeral-storage, {known})"));
            }
        }
        Ok(())
    }

    /// `capacity` with what the tags give instead, where they give it.
    pub fn apply(&self, capacity: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.unwrap_or(capacity.cpu_millis),
            memory_bytes: self.memory_bytes.unwrap_or(capacity.memory_bytes),
            pods: self.pods.unwrap_or(capacity.pods),
            gpus: self.gpus.unwrap_or(capacity.gpus),
            ephemeral_storage_bytes: self.ephemeral_storage_bytes.unwrap_or(capacity.ephemeral_storage_bytes),
        }
    }
}

/// Cluster Autoscaler's per-group settings from the group's `autoscaling-options` tags, as CA
/// reads them: thresholds as fractions (`0.5`), times as durations (`10m`, `10m0s`),
/// `ignoredaemonsetsutilization` as `true` or `false`.
///
/// # Errors
/// Each tag whose value cannot be read, or that names no option CA knows; the others are
/// still applied. A value that cannot be read is left unset, so the policy's own setting
/// applies to that group.
pub fn autoscaling_options(group: &AutoScalingGroup) -> (ballast_sdk::GroupOptions, Vec<BadValue>) {
    let mut options = ballast_sdk::GroupOptions {
        group: group.auto_scaling_group_name().unwrap_or_default().to_string(),
        ..Default::default()
    };
    let mut bad = Vec::new();
    for tag in group.tags() {
        let Some(option) = tag.key().and_then(|k| k.strip_prefix(OPTIONS_TAG)) else { continue };
        let value = tag.value().unwrap_or_default();
        let read = read_option(&mut options, option, value.trim());
        if let Err(error) = read {
            bad.push(BadValue { field: format!("tag {OPTIONS_TAG}{option}"), value: value.to_string(), error });
        }
    }
    (options, bad)
}

fn read_option(options: &mut ballast_sdk::GroupOptions, option: &str, value: &str) -> Result<(), String> {
    let fraction = || match value.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err("not a fraction between 0 and 1".to_string()),
    };
    let seconds = || ballast_engine::duration::parse(value).map(|d| d.as_secs());
    match option {
        "scaledownutilizationthreshold" => options.scale_down_utilization_threshold = Some(fraction()?),
        "scaledowngpuutilizationthreshold" => options.scale_down_gpu_utilization_threshold = Some(fraction()?),
        "scaledownunneededtime" => options.scale_down_unneeded_seconds = Some(seconds()?),
        "scaledownunreadytime" => options.scale_down_unready_seconds = Some(seconds()?),
        "ignoredaemonsetsutilization" => {
            let flag = value.parse::<bool>().map_err(|_| "neither true nor false".to_string())?;
            options.ignore_daemonsets_utilization = Some(flag);
        }
        _ => return Err("not an option Cluster Autoscaler knows".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_autoscaling::types::TagDescription;

    #[test]
    fn node_template_tags_become_labels_taints_and_resources() {
        let tag = |k: &str, v: &str| TagDescription::builder().key(k).value(v).build();
        let group = AutoScalingGroup::builder()
            .tags(tag("k8s.io/cluster-autoscaler/node-template/label/workload", "batch"))
            .tags(tag("k8s.io/cluster-autoscaler/node-template/taint/dedicated", "batch:NoSchedule"))
            .tags(tag("k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu", "4"))
            .tags(tag("k8s.io/cluster-autoscaler/node-template/resources/ephemeral-storage", "100Gi"))
            .tags(tag("eks:nodegroup-name", "gpu-nodes"))
            .build();
        let NodeTemplate { labels, taints, resources, unreadable } = node_template(&group);
        assert_eq!(unreadable, vec![]);
        assert_eq!(labels["workload"], "batch");
        assert_eq!(labels["eks.amazonaws.com/nodegroup"], "gpu-nodes");
        assert_eq!(
            taints,
            vec![Taint {
                key: "dedicated".into(),
                value: "batch".into(),
                effect: ballast_sdk::TaintEffect::NoSchedule
            }]
        );
        let capacity = resources.apply(Resources { cpu_millis: 2000, ..Resources::default() });
        assert_eq!((capacity.gpus, capacity.ephemeral_storage_bytes, capacity.cpu_millis), (4, 100 << 30, 2000));
    }

    /// AWS Neuron devices (Inferentia, Trainium) count as the kube adapter counts them on pods
    /// and nodes: as GPUs, so a group of inf2 nodes at zero is known to hold a pod asking one.
    #[test]
    fn a_neuron_device_tag_counts_as_gpus() {
        let tag = |k: &str, v: &str| TagDescription::builder().key(k).value(v).build();
        let group = AutoScalingGroup::builder()
            .tags(tag("k8s.io/cluster-autoscaler/node-template/resources/aws.amazon.com/neuron", "1"))
            .build();
        let NodeTemplate { resources, unreadable, .. } = node_template(&group);
        assert_eq!(unreadable, vec![]);
        assert_eq!(resources.apply(Resources::default()).gpus, 1);
    }

    /// A tag Cluster Autoscaler would read but Ballast cannot is named, not passed over: a
    /// group whose node-template says its disk in a way not understood would otherwise be
    /// taken to hold what it cannot, or the reverse.
    #[test]
    fn node_template_tags_that_cannot_be_read_are_named_and_the_others_kept() {
        let tag = |k: &str, v: &str| TagDescription::builder().key(k).value(v).build();
        let group = AutoScalingGroup::builder()
            .tags(tag("k8s.io/cluster-autoscaler/node-template/resources/ephemeral-storage", "100 gigs"))
            .tags(tag("k8s.io/cluster-autoscaler/node-template/resources/vpc.amazonaws.com/pod-eni", "9"))
            .tags(tag("k8s.io/cluster-autoscaler/node-template/resources/pods", "58"))
            .tags(tag("k8s.io/cluster-autoscaler/node-template/taint/dedicated", "batch:Sometimes"))
            .build();
        let template = node_template(&group);
        let named: Vec<String> = template.unreadable.iter().map(ToString::to_string).collect();
        assert_eq!(named.len(), 3, "{named:?}");
        assert!(named[0].starts_with(
            "tag k8s.io/cluster-autoscaler/node-template/resources/ephemeral-storage = \"100 gigs\" cannot be read"
        ));
        assert!(named[1].contains("pod-eni = \"9\" cannot be read (not a resource Ballast counts"), "{}", named[1]);
        assert!(named[2].contains("taint/dedicated = \"batch:Sometimes\" cannot be read"), "{}", named[2]);
        assert!(template.taints.is_empty());
        let capacity = template.resources.apply(Resources { ephemeral_storage_bytes: 7, ..Resources::default() });
        assert_eq!((capacity.pods, capacity.ephemeral_storage_bytes), (58, 7), "the readable tag applied alone");
    }

    #[test]
    fn a_groups_image_comes_from_its_template_unless_an_override_brings_its_own() {
        use aws_sdk_autoscaling::types::{
            LaunchTemplate, LaunchTemplateOverrides, LaunchTemplateSpecification, MixedInstancesPolicy,
        };
        let spec = |name: &str| LaunchTemplateSpecification::builder().launch_template_name(name).build();
        let mixed = |overrides: Vec<LaunchTemplateOverrides>| {
            let template =
                LaunchTemplate::builder().launch_template_specification(spec("x86")).set_overrides(Some(overrides));
            let policy = MixedInstancesPolicy::builder().launch_template(template.build()).build();
            AutoScalingGroup::builder().mixed_instances_policy(policy).build()
        };
        let x86 = LaunchTemplateOverrides::builder().instance_type("m5.large").build();
        let template =
            |name: &str| LaunchSource::Template { id: None, name: Some(name.into()), version: "$Default".into() };
        assert_eq!(image_source(&mixed(vec![x86.clone()])), template("x86"));
        let graviton = LaunchTemplateOverrides::builder()
            .instance_type("m7g.large")
            .launch_template_specification(spec("arm64"))
            .build();
        assert_eq!(image_source(&mixed(vec![x86, graviton])), LaunchSource::Unknown, "two images: none to judge by");
        let plain = AutoScalingGroup::builder().launch_template(spec("plain")).build();
        assert_eq!(image_source(&plain), template("plain"));
        let configured = AutoScalingGroup::builder().launch_configuration_name("lc-1").build();
        assert_eq!(image_source(&configured), LaunchSource::LaunchConfiguration("lc-1".into()));
    }

    #[test]
    fn autoscaling_option_tags_are_read_and_a_bad_one_is_named_and_left_unset() {
        let tag = |k: &str, v: &str| TagDescription::builder().key(format!("{OPTIONS_TAG}{k}")).value(v).build();
        let group = AutoScalingGroup::builder()
            .auto_scaling_group_name("batch")
            .tags(tag("scaledownutilizationthreshold", "0.7"))
            .tags(tag("scaledownunneededtime", "10m0s"))
            .tags(tag("ignoredaemonsetsutilization", "true"))
            .tags(tag("scaledownunreadytime", "soon"))
            .tags(tag("scaledowngpuutilizationthreshold", "1.5"))
            .build();
        let (options, bad) = autoscaling_options(&group);
        assert_eq!(options.group, "batch");
        assert_eq!(options.scale_down_utilization_threshold, Some(0.7));
        assert_eq!(options.scale_down_unneeded_seconds, Some(600));
        assert_eq!(options.ignore_daemonsets_utilization, Some(true));
        assert_eq!((options.scale_down_unready_seconds, options.scale_down_gpu_utilization_threshold), (None, None));
        let fields: Vec<&str> = bad.iter().map(|b| b.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "tag k8s.io/cluster-autoscaler/node-template/autoscaling-options/scaledownunreadytime",
                "tag k8s.io/cluster-autoscaler/node-template/autoscaling-options/scaledowngpuutilizationthreshold"
            ]
        );
        assert!(bad[1].to_string().contains("\"1.5\""), "{}", bad[1]);
    }

    #[test]
    fn a_groups_types_are_its_overrides_when_each_names_one_else_its_templates() {
        use aws_sdk_autoscaling::types::{
            InstanceRequirements, LaunchTemplate, LaunchTemplateOverrides, MixedInstancesPolicy,
        };
        let mixed = |overrides: Vec<LaunchTemplateOverrides>| {
            let template = LaunchTemplate::builder().set_overrides(Some(overrides)).build();
            let policy = MixedInstancesPolicy::builder().launch_template(template).build();
            AutoScalingGroup::builder().mixed_instances_policy(policy).build()
        };
        let typed = |t: &str| LaunchTemplateOverrides::builder().instance_type(t).build();
        let listed = mixed(vec![typed("m5.large"), typed("m6i.large")]);
        assert_eq!(types_source(&listed), TypesSource::Listed(vec!["m5.large".into(), "m6i.large".into()]));
        let by_attributes =
            LaunchTemplateOverrides::builder().instance_requirements(InstanceRequirements::builder().build());
        assert_eq!(types_source(&mixed(vec![typed("m5.large"), by_attributes.build()])), TypesSource::Unknown);
        assert_eq!(types_source(&mixed(Vec::new())), TypesSource::FromLaunch, "no overrides: the template's");
        assert_eq!(types_source(&AutoScalingGroup::builder().build()), TypesSource::FromLaunch);
    }
}
