//! Finding the node groups and describing them: DescribeAutoScalingGroups (paged, filtered by
//! tag on the server) plus the groups config names, each turned into a [`GroupView`] with
//! every instance type it can launch, priced.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_autoscaling::types::{
    AutoScalingGroup, Filter, LaunchConfiguration, LifecycleState, ScalingActivityStatusCode,
};
use aws_sdk_ec2::types::{InstanceType as Ec2InstanceType, LaunchTemplateVersion};
use ballast_sdk::{CAPACITY_TYPE_LABEL, CapacityType, InstanceType};

use super::templates::{self, LaunchSource, TypeFacts};
use super::{AwsCapacity, aws_error};
use ballast_engine::node_labels::{self, Arch, NewNode};
use ballast_engine::ports::{AdapterResult, GroupView, InstanceLifecycle, InstanceView, LaunchFailure};
use ballast_engine::unreadable::BadValue;

/// Cluster Autoscaler's discovery tags, and Ballast's own.
pub const CA_ENABLED_TAG: &str = "k8s.io/cluster-autoscaler/enabled";
pub const CA_CLUSTER_TAG_PREFIX: &str = "k8s.io/cluster-autoscaler/";
pub const BALLAST_CLUSTER_TAG: &str = "ballast.dev/cluster";

fn lifecycle(state: Option<&LifecycleState>) -> InstanceLifecycle {
    match state {
        Some(LifecycleState::InService) => InstanceLifecycle::InService,
        Some(LifecycleState::Pending | LifecycleState::PendingWait | LifecycleState::PendingProceed) => {
            InstanceLifecycle::Pending
        }
        // Leaving, detached, in standby or warm pool: not capacity pods can count on.
        _ => InstanceLifecycle::Terminating,
    }
}

/// A group's instances as described; their images and template versions are read with
/// DescribeInstances once the views are made ([`super::images`]).
fn instance_views(group: &AutoScalingGroup) -> Vec<InstanceView> {
    let view = |i: &aws_sdk_autoscaling::types::Instance| InstanceView {
        id: i.instance_id().unwrap_or_default().to_string(),
        zone: i.availability_zone().unwrap_or_default().to_string(),
        instance_type: i.instance_type().unwrap_or_default().to_string(),
        lifecycle: lifecycle(i.lifecycle_state()),
        image: None,
        template: None,
    };
    group.instances().iter().map(view).collect()
}

fn tagged_for(group: &AutoScalingGroup, cluster: &str) -> bool {
    let has = |key: &str| group.tags().iter().any(|t| t.key() == Some(key));
    let ballast = group.tags().iter().any(|t| t.key() == Some(BALLAST_CLUSTER_TAG) && t.value() == Some(cluster));
    ballast || (has(CA_ENABLED_TAG) && has(&format!("{CA_CLUSTER_TAG_PREFIX}{cluster}")))
}

impl AwsCapacity {
    /// The groups to manage: those tagged for the cluster and those config names.
    pub(super) async fn describe_groups(&self, names: Option<Vec<String>>) -> AdapterResult<Vec<AutoScalingGroup>> {
        let settings = &self.inner.settings;
        let mut found: BTreeMap<String, AutoScalingGroup> = BTreeMap::new();
        let mut queries: Vec<(Option<Vec<String>>, Option<Filter>)> = Vec::new();
        match names {
            Some(names) => queries.push((Some(names), None)),
            None => {
                if !settings.groups.is_empty() {
                    queries.push((Some(settings.groups.clone()), None));
                }
                if settings.discover_by_tags {
                    let ca = format!("{CA_CLUSTER_TAG_PREFIX}{}", settings.cluster_name);
                    queries.push((None, Some(Filter::builder().name("tag-key").values(ca).build())));
                    let own = Filter::builder()
                        .name(format!("tag:{BALLAST_CLUSTER_TAG}"))
                        .values(&settings.cluster_name)
                        .build();
                    queries.push((None, Some(own)));
                }
            }
        }
        for (names, filter) in queries {
            let by_tag = filter.is_some();
            let mut pages = self
                .inner
                .asg
                .describe_auto_scaling_groups()
                .set_auto_scaling_group_names(names)
                .set_filters(filter.map(|f| vec![f]))
                .into_paginator()
                .send();
            loop {
                self.inner.limit.acquire().await;
                let Some(page) = pages.next().await else { break };
                let page = page.map_err(|e| aws_error("describe Auto Scaling groups", e))?;
                for group in page.auto_scaling_groups() {
                    // The server's tag filter is a first cut; the discovery rule is checked here.
                    if by_tag && !tagged_for(group, &settings.cluster_name) {
                        continue;
                    }
                    if let Some(name) = group.auto_scaling_group_name() {
                        found.insert(name.to_string(), group.clone());
                    }
                }
            }
        }
        Ok(found.into_values().collect())
    }

    /// Instance type names a group's launch source names: a mixed instances policy's
    /// overrides, or the type of its launch template version or launch configuration, read
    /// with its image for drift ([`Self::launch`], kept for `image-ttl`).
    async fn launch_types(&self, source: &LaunchSource) -> AdapterResult<Vec<String>> {
        Ok(match source {
            LaunchSource::Types(types) => types.clone(),
            LaunchSource::Template { .. } | LaunchSource::LaunchConfiguration(_) => {
                self.launch(source).await?.and_then(|l| Some(l.instance_type()?.to_string())).into_iter().collect()
            }
            LaunchSource::Unknown => Vec::new(),
        })
    }

    /// A launch template's version, with what it holds (DescribeLaunchTemplateVersions, with
    /// aliases such as `resolve:ssm:` resolved); nothing for any other source.
    pub(super) async fn template_versions(&self, source: &LaunchSource) -> AdapterResult<Vec<LaunchTemplateVersion>> {
        let LaunchSource::Template { id, name, version } = source else { return Ok(Vec::new()) };
        self.inner.limit.acquire().await;
        let out = self
            .inner
            .ec2
            .describe_launch_template_versions()
            .set_launch_template_id(id.clone())
            .set_launch_template_name(if id.is_some() { None } else { name.clone() })
            .versions(version)
            .resolve_alias(true)
            .send()
            .await
            .map_err(|e| aws_error("describe launch template versions", e))?;
        Ok(out.launch_template_versions().to_vec())
    }

    /// A launch configuration by name (DescribeLaunchConfigurations).
    pub(super) async fn launch_configuration(&self, name: &str) -> AdapterResult<Option<LaunchConfiguration>> {
        self.inner.limit.acquire().await;
        let out = self
            .inner
            .asg
            .describe_launch_configurations()
            .launch_configuration_names(name)
            .send()
            .await
            .map_err(|e| aws_error("describe launch configurations", e))?;
        Ok(out.launch_configurations().first().cloned())
    }

    /// DescribeInstanceTypes for the names not cached.
    async fn type_facts(&self, names: &BTreeSet<String>) -> AdapterResult<BTreeMap<String, TypeFacts>> {
        let mut out = BTreeMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.inner.types.lock().await;
            for name in names {
                match cache.get(name) {
                    Some(facts) => {
                        out.insert(name.clone(), facts);
                    }
                    None => missing.push(name.clone()),
                }
            }
        }
        for chunk in missing.chunks(100) {
            self.inner.limit.acquire().await;
            let described = self
                .inner
                .ec2
                .describe_instance_types()
                .set_instance_types(Some(chunk.iter().map(|n| Ec2InstanceType::from(n.as_str())).collect()))
                .send()
                .await
                .map_err(|e| aws_error("describe instance types", e))?;
            let mut cache = self.inner.types.lock().await;
            for info in described.instance_types() {
                let Some(name) = info.instance_type().map(|t| t.as_str().to_string()) else { continue };
                let network = info.network_info();
                let facts = TypeFacts {
                    vcpus: info.v_cpu_info().and_then(|v| v.default_v_cpus()).unwrap_or(0).max(0) as u64,
                    memory_mib: info.memory_info().and_then(|m| m.size_in_mib()).unwrap_or(0).max(0) as u64,
                    gpus: accelerators(info),
                    max_enis: network.and_then(|n| n.maximum_network_interfaces()).unwrap_or(1).max(1) as u32,
                    ipv4_per_eni: network.and_then(|n| n.ipv4_addresses_per_interface()).unwrap_or(2).max(2) as u32,
                    arch: info
                        .processor_info()
                        .and_then(|p| p.supported_architectures().iter().find_map(|a| Arch::from_ec2(a.as_str()))),
                };
                cache.insert(name.clone(), facts);
                out.insert(name, facts);
            }
        }
        Ok(out)
    }

    /// The most recent failed launch, asked only of groups short of their desired size.
    async fn last_failure(&self, group: &str) -> Option<LaunchFailure> {
        self.inner.limit.acquire().await;
        let out =
            self.inner.asg.describe_scaling_activities().auto_scaling_group_name(group).max_records(5).send().await;
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                tracing::warn!(group, error = %aws_error("describe scaling activities", e), "cannot read scaling activities");
                return None;
            }
        };
        out.activities()
            .iter()
            .filter(|a| {
                matches!(
                    a.status_code(),
                    Some(ScalingActivityStatusCode::Failed | ScalingActivityStatusCode::Cancelled)
                )
            })
            .filter_map(|a| {
                let at = a.start_time()?.to_millis().ok()?.max(0) as u64;
                let message = a.status_message().or(a.description()).unwrap_or("launch failed").to_string();
                Some(LaunchFailure { at_millis: at, message })
            })
            .max_by_key(|f| f.at_millis)
    }

    /// The types named, in order, each with its capacity (the group's resource tags applied)
    /// and its price: on-demand, or spot in a spot group where a spot price is known.
    fn priced(
        &self,
        names: &[String],
        facts: &BTreeMap<String, TypeFacts>,
        spot: bool,
        resources: &templates::ResourceTags,
    ) -> Vec<InstanceType> {
        let settings = &self.inner.settings;
        let priced = |name: &String| {
            let facts = facts.get(name)?;
            let capacity = resources.apply(facts.capacity(settings.max_pods));
            let (on_demand, _) = self.inner.prices.on_demand(name, facts.vcpus, facts.memory_mib as f64 / 1024.0);
            let price = if spot { self.inner.prices.spot(name).unwrap_or(on_demand) } else { on_demand };
            Some(InstanceType {
                name: name.clone(),
                capacity,
                allocatable: ballast_engine::eks::allocatable(capacity),
                price_per_hour: price,
            })
        };
        names.iter().filter_map(priced).collect()
    }

    /// A described group as the engine sees it, with its sizes already read.
    pub(super) async fn view(&self, group: &AutoScalingGroup, sizes: Sizes) -> AdapterResult<GroupView> {
        let settings = &self.inner.settings;
        let id = group.auto_scaling_group_name().unwrap_or_default().to_string();
        let (source, spot) = templates::launch_source(group);
        // In the group's order: the first is its primary type, the one an on-demand group
        // launches first (`prioritized`), which policies price a new node at.
        let mut names = BTreeSet::new();
        let ordered: Vec<String> =
            self.launch_types(&source).await?.into_iter().filter(|name| names.insert(name.clone())).collect();
        let facts = self.type_facts(&names).await?;
        if spot && settings.spot_prices {
            self.refresh_spot(&names).await;
        }
        let templates::NodeTemplate { mut labels, taints, resources, unreadable: bad_tags } =
            templates::node_template(group);
        let (options, unreadable) = templates::autoscaling_options(group);
        for bad in bad_tags.iter().chain(&unreadable) {
            bad.report_to(&self.inner.unreadable, &format!("Auto Scaling group {id}"));
        }
        // What EKS managed node groups label their nodes with; a node-template tag wins.
        let capacity = if spot { CapacityType::Spot } else { CapacityType::OnDemand };
        labels.entry(CAPACITY_TYPE_LABEL.to_string()).or_insert_with(|| capacity.label().to_string());
        let mut instance_types = self.priced(&ordered, &facts, spot, &resources);
        // The first type is the one an on-demand group launches first (`launch_type`).
        if !spot && templates::on_demand_lowest_price(group) {
            instance_types.sort_by(|a, b| a.price_per_hour.total_cmp(&b.price_per_hour));
        }
        if let Some(launched) = ballast_sdk::launch_type(&instance_types, capacity) {
            let node = NewNode {
                instance_type: &launched.name,
                arch: facts.get(&launched.name).and_then(|f| f.arch),
                region: self.inner.ec2.config().region().map(|r| r.as_ref()),
                zones: group.availability_zones(),
            };
            node_labels::add_well_known(&mut labels, &node);
        }
        let instances = instance_views(group);
        let desired = sizes.desired;
        let launched = instances.iter().filter(|i| i.lifecycle != InstanceLifecycle::Terminating).count() as u32;
        let last_launch_failure = if launched < desired { self.last_failure(&id).await } else { None };
        Ok(GroupView {
            id,
            min_size: sizes.min,
            max_size: sizes.max,
            desired_size: desired,
            instance_types,
            labels,
            taints,
            zones: group.availability_zones().to_vec(),
            instances,
            last_launch_failure,
            options,
            image: None,
            launched_types: None,
            template: None,
            updates_itself: group.tags().iter().any(|t| t.key() == Some(templates::EKS_NODEGROUP_TAG)),
        })
    }
}

/// A group's bounds and desired capacity, all three present and non-negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Sizes {
    pub min: u32,
    pub max: u32,
    pub desired: u32,
}

impl Sizes {
    /// # Errors
    /// The first size that is missing or negative, by its field name: a group whose sizes
    /// are unknown is not one to scale.
    pub fn of(group: &AutoScalingGroup) -> Result<Sizes, BadValue> {
        let read = |field: &str, value: Option<i32>| -> Result<u32, BadValue> {
            let bad = |error: &str| BadValue {
                field: field.to_string(),
                value: value.map_or_else(|| "(missing)".to_string(), |v| v.to_string()),
                error: error.to_string(),
            };
            let value = value.ok_or_else(|| bad("DescribeAutoScalingGroups did not return it"))?;
            u32::try_from(value).map_err(|_| bad("negative"))
        };
        Ok(Sizes {
            min: read("MinSize", group.min_size())?,
            max: read("MaxSize", group.max_size())?,
            desired: read("DesiredCapacity", group.desired_capacity())?,
        })
    }
}

/// A type's GPUs and AWS Neuron devices (Inferentia, Trainium), which the kube adapter counts
/// alike on pods and nodes ([`ballast_sdk::Resources::GPU_RESOURCES`]).
fn accelerators(info: &aws_sdk_ec2::types::InstanceTypeInfo) -> u32 {
    let gpus = info.gpu_info().map_or(0, |g| g.gpus().iter().filter_map(|d| d.count()).sum::<i32>());
    let neuron = info.neuron_info().map_or(0, |n| n.neuron_devices().iter().filter_map(|d| d.count()).sum::<i32>());
    gpus.saturating_add(neuron).max(0) as u32
}
