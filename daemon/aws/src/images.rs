//! What each group launches and what each instance was launched from, for two readers: drift
//! ([`ballast_engine::drift`]) and the instance types a group's view prices and sizes
//! ([`super::groups`]; the disk the launch maps, where no node-template tag says it).
//!
//! A group's launch is read from its launch template version (`$Default`, `$Latest` or a
//! number, aliases such as `resolve:ssm:` resolved) or its launch configuration, once for
//! both readers ([`Launch`]: image, template version, instance type, disk), and kept for
//! `image-ttl`. Each instance's origin (its image and the template version it came from) is
//! read once with DescribeInstances: an instance's image never changes.
//!
//! An instance launched since the group's launch was read, from another version of its
//! template (a later one, or an older default set back), means the template moved since: the
//! reading is dropped before the views are made ([`AwsCapacity::read_origins`]), so the same
//! observation reads it again. A node launched from the new version is never taken for
//! drifted against the old one, and a new version's instance type is what the group's next
//! nodes are priced and sized at from that observation on.
//!
//! The instance types drift judges by are the launch's, or a mixed instances policy's
//! overrides, so that an instance of a type the group no longer launches has drifted too.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_autoscaling::types::AutoScalingGroup;
use aws_sdk_ec2::types::Filter;
use ballast_engine::ports::{AdapterResult, GroupView, TemplateVersion};
use ballast_sdk::Resources;

use super::templates::{self, LaunchSource, TypesSource};
use super::{AwsCapacity, aws_error};

/// DescribeInstances filter values per call.
const IDS_PER_CALL: usize = 200;
/// The tags EC2 puts on an instance launched from a launch template.
const TEMPLATE_ID_TAG: &str = "aws:ec2launchtemplate:id";
const TEMPLATE_VERSION_TAG: &str = "aws:ec2launchtemplate:version";

/// Where an instance was launched from: its image, the launch template version (none for a
/// launch configuration), and when (Unix millis).
#[derive(Clone, Debug)]
pub struct Origin {
    image: Arc<str>,
    template: Option<(String, i64)>,
    at_millis: u64,
}

impl Origin {
    /// An instance launched, since the reading `read` (a group's), from another template
    /// version (of the same template, or of one recreated under its name): what the group
    /// launches has changed since it was read.
    /// EC2 gives launch times to the second, so "since" starts a second before the reading;
    /// a wrong guess (clocks apart) costs one reading more, not a node, and an instance
    /// older than the new reading is never taken for a sign again.
    fn shows_stale(&self, read: &Launch) -> bool {
        let (Some((id, version)), Some((read_id, read_version))) = (&self.template, &read.template) else {
            return false;
        };
        (id, version) != (read_id, read_version) && self.at_millis + 1_000 > read.at_millis
    }

    fn template_version(&self) -> Option<TemplateVersion> {
        template_version(self.template.as_ref())
    }
}

fn template_version(template: Option<&(String, i64)>) -> Option<TemplateVersion> {
    let (id, version) = template?;
    Some(TemplateVersion { id: Arc::from(id.as_str()), version: *version })
}

/// What a group launches, as read from its launch template version or launch configuration:
/// the image, the template version (none for a launch configuration), the instance type it
/// names, the disk it maps, and when it was read (Unix millis).
#[derive(Clone, Debug)]
pub struct Launch {
    image: Option<Arc<str>>,
    template: Option<(String, i64)>,
    instance_type: Option<Arc<str>>,
    disk_bytes: Option<u64>,
    at_millis: u64,
}

/// The largest EBS volume a launch maps, in bytes: the root volume of the EKS AMIs
/// (`/dev/xvda`), the data volume of Bottlerocket's (`/dev/xvdb`, where the kubelet keeps
/// pods' ephemeral storage).
fn largest_volume(gib: impl Iterator<Item = i32>) -> Option<u64> {
    gib.filter_map(|size| u64::try_from(size).ok()).max().map(|size| size << 30)
}

impl Launch {
    /// The instance type the launch names, if it names one.
    pub fn instance_type(&self) -> Option<&str> {
        self.instance_type.as_deref()
    }
}

/// A source's launch as last read: kept for `image-ttl` either way, a failure so that drift
/// asks again (and says so) once per `image-ttl`, not every tick.
#[derive(Clone)]
pub enum LaunchReading {
    /// Read: `None` when the template version or launch configuration was not found.
    Read(Option<Launch>),
    Failed,
}

/// Gives the types whose disk no node-template tag says the disk the launch maps.
fn with_disk(types: &mut [ballast_sdk::InstanceType], bytes: u64) {
    for t in types.iter_mut().filter(|t| t.capacity.ephemeral_storage_bytes == Resources::STORAGE_NOT_KNOWN) {
        t.capacity.ephemeral_storage_bytes = bytes;
        t.allocatable.ephemeral_storage_bytes = ballast_engine::eks::allocatable_storage(bytes);
    }
}

fn now_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn key(source: &LaunchSource) -> String {
    format!("{source:?}")
}

/// One instance as DescribeInstances tells it.
struct Launched {
    id: String,
    image: String,
    template: Option<(String, i64)>,
    at_millis: u64,
}

/// Where each instance was launched from, as read so far.
#[derive(Default)]
pub struct InstanceImages {
    /// Instances sharing an image share its name.
    known: HashMap<String, Origin>,
    /// After a failed DescribeInstances, not asked again before this: a missing permission
    /// would otherwise be asked for, and logged, every tick.
    quiet_until: Option<Instant>,
}

impl AwsCapacity {
    /// What `source` launches, read at most once per `image-ttl` for every reader.
    ///
    /// # Errors
    /// The describe call's. A failure is not reused by this function: the next call reads
    /// again (a group's instance types cannot wait `image-ttl`).
    pub(super) async fn launch(&self, source: &LaunchSource) -> AdapterResult<Option<Launch>> {
        if let Some(LaunchReading::Read(launch)) = self.inner.launches.lock().await.get(&key(source)) {
            return Ok(launch);
        }
        let read = self.read_launch(source).await;
        let reading = match &read {
            Ok(launch) => LaunchReading::Read(launch.clone()),
            Err(_) => LaunchReading::Failed,
        };
        self.inner.launches.lock().await.insert(key(source), reading);
        read
    }

    /// Reads where each instance of `groups` was launched from (each instance once), and drops
    /// a group's launch reading that an instance launched since shows stale, so the views
    /// made next read it again.
    ///
    /// # Caveats
    /// Best effort: an instance whose origin cannot be read shows nothing, and its group's
    /// reading stands until `image-ttl` ends.
    pub(super) async fn read_origins(&self, groups: &[AutoScalingGroup]) {
        let judged = |group: &&AutoScalingGroup| templates::image_source(group) != LaunchSource::Unknown;
        let ids: Vec<&str> =
            groups.iter().filter(judged).flat_map(|g| g.instances().iter().filter_map(|i| i.instance_id())).collect();
        let mut images = self.inner.instance_images.lock().await;
        self.read_instance_images(&ids, &mut images).await;
        let mut launches = self.inner.launches.lock().await;
        for group in groups.iter().filter(judged) {
            let key = key(&templates::image_source(group));
            let Some(LaunchReading::Read(Some(read))) = launches.get(&key) else { continue };
            let mut origins = group.instances().iter().filter_map(|i| images.known.get(i.instance_id()?));
            if origins.any(|origin| origin.shows_stale(&read)) {
                launches.remove(&key);
            }
        }
    }

    /// Fills in the image each view's group launches and each of its instances runs, the
    /// template version of each, and the instance types the group launches, from the
    /// readings [`Self::read_origins`] and the views left.
    ///
    /// # Caveats
    /// Best effort: an image that cannot be read is left unknown (and logged), so drift is
    /// not judged for it, and the observation goes on: scaling does not wait for drift.
    pub(super) async fn add_images(&self, groups: &[AutoScalingGroup], views: &mut [GroupView]) {
        let group_of = |view: &GroupView| groups.iter().find(|g| g.auto_scaling_group_name() == Some(view.id.as_str()));
        let mut launches = Vec::with_capacity(views.len());
        for view in views.iter() {
            launches.push(match group_of(view) {
                Some(group) => self.launch_for_drift(group).await,
                None => None,
            });
        }
        let images = self.inner.instance_images.lock().await;
        for (view, launch) in views.iter_mut().zip(launches) {
            let origin = |id: &str| images.known.get(id);
            // A type read with the image is trusted only while every instance's version is
            // known: one launched from a version the reading predates would have had it read
            // again ([`Self::read_origins`]).
            let all_known = view.instances.iter().all(|i| origin(&i.id).is_some());
            view.launched_types = match group_of(view).map(templates::types_source) {
                Some(TypesSource::Listed(types)) => Some(types.into_iter().map(Arc::from).collect()),
                Some(TypesSource::FromLaunch) if all_known => {
                    launch.as_ref().and_then(|l| Some(vec![l.instance_type.clone()?]))
                }
                Some(TypesSource::FromLaunch | TypesSource::Unknown) | None => None,
            };
            view.template = launch.as_ref().and_then(|l| template_version(l.template.as_ref()));
            if let Some(bytes) = launch.as_ref().and_then(|l| l.disk_bytes) {
                with_disk(&mut view.instance_types, bytes);
            }
            view.image = launch.and_then(|l| l.image);
            for instance in &mut view.instances {
                let origin = origin(&instance.id);
                instance.image = origin.map(|o| o.image.clone());
                instance.template = origin.and_then(Origin::template_version);
            }
        }
    }

    /// What `group` launches, for drift: a failure is logged once per `image-ttl`, and judges
    /// nothing meanwhile.
    async fn launch_for_drift(&self, group: &AutoScalingGroup) -> Option<Launch> {
        let source = templates::image_source(group);
        if source == LaunchSource::Unknown
            || matches!(self.inner.launches.lock().await.get(&key(&source)), Some(LaunchReading::Failed))
        {
            return None;
        }
        self.launch(&source).await.unwrap_or_else(|error| {
            let group = group.auto_scaling_group_name().unwrap_or_default();
            tracing::warn!(group, %error, "cannot read the image the group launches: its nodes' drift is not judged");
            None
        })
    }

    async fn read_launch(&self, source: &LaunchSource) -> AdapterResult<Option<Launch>> {
        let at_millis = now_millis();
        Ok(match source {
            LaunchSource::Template { .. } => self.template_versions(source).await?.iter().find_map(|version| {
                let data = version.launch_template_data()?;
                Some(Launch {
                    image: data.image_id().map(Arc::from),
                    template: version.launch_template_id().map(str::to_string).zip(version.version_number()),
                    instance_type: data.instance_type().map(|t| Arc::from(t.as_str())),
                    disk_bytes: largest_volume(
                        data.block_device_mappings().iter().filter_map(|m| m.ebs()?.volume_size()),
                    ),
                    at_millis,
                })
            }),
            LaunchSource::LaunchConfiguration(name) => self.launch_configuration(name).await?.map(|c| Launch {
                image: c.image_id().map(Arc::from),
                template: None,
                instance_type: c.instance_type().map(Arc::from),
                disk_bytes: largest_volume(c.block_device_mappings().iter().filter_map(|m| m.ebs()?.volume_size())),
                at_millis,
            }),
            LaunchSource::Types(_) | LaunchSource::Unknown => None,
        })
    }

    /// Reads the images of `ids` not known yet, and forgets those of instances gone.
    async fn read_instance_images(&self, ids: &[&str], images: &mut InstanceImages) {
        let listed: HashSet<&str> = ids.iter().copied().collect();
        images.known.retain(|id, _| listed.contains(id.as_str()));
        let missing: Vec<String> =
            ids.iter().filter(|id| !images.known.contains_key(**id)).map(|id| id.to_string()).collect();
        if missing.is_empty() || images.quiet_until.is_some_and(|until| Instant::now() < until) {
            return;
        }
        let mut names: HashMap<String, Arc<str>> =
            images.known.values().map(|o| (o.image.to_string(), o.image.clone())).collect();
        for chunk in missing.chunks(IDS_PER_CALL) {
            match self.launched_images(chunk).await {
                Ok(found) => {
                    for Launched { id, image, template, at_millis } in found {
                        let image = names.entry(image).or_insert_with_key(|image| Arc::from(image.as_str())).clone();
                        images.known.insert(id, Origin { image, template, at_millis });
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read the images instances run: their drift is not judged");
                    images.quiet_until = Some(Instant::now() + self.inner.settings.image_ttl);
                    return;
                }
            }
        }
    }

    /// DescribeInstances by an `instance-id` filter (an id no longer known is skipped, where
    /// `InstanceIds` would fail the call): each instance's image, template version and launch.
    async fn launched_images(&self, ids: &[String]) -> AdapterResult<Vec<Launched>> {
        let filter = Filter::builder().name("instance-id").set_values(Some(ids.to_vec())).build();
        let mut pages = self.inner.ec2.describe_instances().filters(filter).into_paginator().send();
        let mut out = Vec::with_capacity(ids.len());
        loop {
            self.inner.limit.acquire().await;
            let Some(page) = pages.next().await else { break };
            let page = page.map_err(|e| aws_error("describe instances", e))?;
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                let tag = |key: &str| instance.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value());
                let version = tag(TEMPLATE_VERSION_TAG).and_then(|v| v.parse::<i64>().ok());
                let template = tag(TEMPLATE_ID_TAG).map(str::to_string).zip(version);
                let at_millis =
                    instance.launch_time().and_then(|t| t.to_millis().ok()).map_or(0, |ms| ms.max(0) as u64);
                if let (Some(id), Some(image)) = (instance.instance_id(), instance.image_id()) {
                    out.push(Launched { id: id.to_string(), image: image.to_string(), template, at_millis });
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_instance_launched_since_the_reading_from_another_version_shows_it_stale() {
        let origin = |version, at_millis| Origin {
            image: Arc::from("ami-1"),
            template: Some(("lt-1".into(), version)),
            at_millis,
        };
        let read = Launch {
            image: Some(Arc::from("ami-1")),
            template: Some(("lt-1".into(), 2)),
            instance_type: None,
            disk_bytes: None,
            at_millis: 10_000,
        };
        assert!(origin(3, 10_500).shows_stale(&read), "a later version, launched since");
        assert!(origin(1, 12_000).shows_stale(&read), "a default set back");
        assert!(origin(3, 9_500).shows_stale(&read), "launch times are cut to the second");
        assert!(!origin(1, 5_000).shows_stale(&read), "an old node of an old version has drifted: no sign");
        assert!(!origin(3, 5_000).shows_stale(&read), "nor does one older than the reading: read once, not every tick");
        assert!(!origin(2, 12_000).shows_stale(&read), "the version read");
        let other = Origin { template: Some(("lt-2".into(), 3)), ..origin(3, 12_000) };
        assert!(other.shows_stale(&read), "another template (one recreated under the group's template's name)");
        assert!(!Origin { template: None, ..origin(3, 12_000) }.shows_stale(&read), "no version tag: no sign");
    }
}
