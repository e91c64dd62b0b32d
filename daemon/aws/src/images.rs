//! The machine images drift is judged by ([`ballast_engine::drift`]): the one each group
//! launches now, read from its launch template version (`$Default`, `$Latest` or a number,
//! aliases such as `resolve:ssm:` resolved) or its launch configuration and kept for
//! `image-ttl`; and the one each instance was launched from, read once with DescribeInstances
//! (an instance's image never changes), with the template version it came from.
//!
//! An instance launched since the group's image was read, from another version of its
//! template (a later one, or an older default set back), means the template moved since:
//! the group's image is read again at once, so that a node launched from the new image is
//! never taken for drifted against the old one.
//!
//! The instance types a group launches are read with its image (its template version's or
//! launch configuration's type), or are its mixed instances policy's overrides, so that an
//! instance of a type the group no longer launches has drifted too.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_autoscaling::types::AutoScalingGroup;
use aws_sdk_ec2::types::Filter;
use ballast_engine::ports::{AdapterResult, GroupView, TemplateVersion};

use super::templates::{self, LaunchSource, TypesSource};
use super::{AwsCapacity, aws_error};

/// DescribeInstances filter values per call.
const IDS_PER_CALL: usize = 200;
/// The tags EC2 puts on an instance launched from a launch template.
const TEMPLATE_ID_TAG: &str = "aws:ec2launchtemplate:id";
const TEMPLATE_VERSION_TAG: &str = "aws:ec2launchtemplate:version";

/// An image, the launch template version it comes from (none for a launch configuration),
/// and when: an instance's launch, a group's reading (Unix millis).
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
    fn shows_stale(&self, read: &Origin) -> bool {
        let (Some((id, version)), Some((read_id, read_version))) = (&self.template, &read.template) else {
            return false;
        };
        (id, version) != (read_id, read_version) && self.at_millis + 1_000 > read.at_millis
    }

    fn template_version(&self) -> Option<TemplateVersion> {
        let (id, version) = self.template.as_ref()?;
        Some(TemplateVersion { id: Arc::from(id.as_str()), version: *version })
    }
}

/// What a group launches, as read: its image (with its template version and the reading's
/// time) and the instance type its template version or launch configuration names.
#[derive(Clone, Debug)]
pub struct Launch {
    origin: Origin,
    instance_type: Option<Arc<str>>,
}

fn now_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
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
    /// Fills in the image each view's group launches and each of its instances runs, and the
    /// instance types the group launches.
    ///
    /// # Caveats
    /// Best effort: an image that cannot be read is left unknown (and logged), so drift is
    /// not judged for it, and the observation goes on: scaling does not wait for drift.
    pub(super) async fn add_images(&self, groups: &[AutoScalingGroup], views: &mut [GroupView]) {
        let group_of = |view: &GroupView| groups.iter().find(|g| g.auto_scaling_group_name() == Some(view.id.as_str()));
        let mut launches = Vec::with_capacity(views.len());
        for view in views.iter() {
            launches.push(match group_of(view) {
                Some(group) => self.launch_image(group, false).await,
                None => None,
            });
        }
        let ids: Vec<&str> = views
            .iter()
            .zip(&launches)
            .filter(|(_, launch)| launch.is_some())
            .flat_map(|(v, _)| v.instances.iter().map(|i| i.id.as_str()))
            .collect();
        let mut images = self.inner.instance_images.lock().await;
        self.read_instance_images(&ids, &mut images).await;
        for (view, mut launch) in views.iter_mut().zip(launches) {
            let origin = |id: &str| images.known.get(id);
            let stale =
                |read: &Origin| view.instances.iter().any(|i| origin(&i.id).is_some_and(|o| o.shows_stale(read)));
            let group = group_of(view);
            if let (Some(read), Some(group)) = (&launch, group)
                && stale(&read.origin)
            {
                launch = self.launch_image(group, true).await;
            }
            // A type read with the image is trusted only while every instance's version is
            // known: one launched from a version the reading predates would re-read it above.
            let all_known = view.instances.iter().all(|i| origin(&i.id).is_some());
            view.launched_types = match group.map(templates::types_source) {
                Some(TypesSource::Listed(types)) => Some(types.into_iter().map(Arc::from).collect()),
                Some(TypesSource::FromLaunch) if all_known => {
                    launch.as_ref().and_then(|l| Some(vec![l.instance_type.clone()?]))
                }
                Some(TypesSource::FromLaunch | TypesSource::Unknown) | None => None,
            };
            view.template = launch.as_ref().and_then(|l| l.origin.template_version());
            view.image = launch.map(|l| l.origin.image);
            for instance in &mut view.instances {
                let origin = images.known.get(&instance.id);
                instance.image = origin.map(|o| o.image.clone());
                instance.template = origin.and_then(Origin::template_version);
            }
        }
    }

    /// The image (and type) `group` launches now, kept for `image-ttl` unless `again`.
    async fn launch_image(&self, group: &AutoScalingGroup, again: bool) -> Option<Launch> {
        let source = templates::image_source(group);
        let key = format!("{source:?}");
        if !again && let Some(origin) = self.inner.launch_images.lock().await.get(&key) {
            return origin;
        }
        let origin = match self.read_launch_image(&source).await {
            Ok(origin) => origin,
            Err(error) => {
                let group = group.auto_scaling_group_name().unwrap_or_default();
                tracing::warn!(group, %error, "cannot read the image the group launches: its nodes' drift is not judged");
                None
            }
        };
        self.inner.launch_images.lock().await.insert(key, origin.clone());
        origin
    }

    async fn read_launch_image(&self, source: &LaunchSource) -> AdapterResult<Option<Launch>> {
        Ok(match source {
            LaunchSource::Template { .. } => self.template_versions(source).await?.iter().find_map(|version| {
                let data = version.launch_template_data()?;
                let template = version.launch_template_id().map(str::to_string).zip(version.version_number());
                let origin = Origin { image: Arc::from(data.image_id()?), template, at_millis: now_millis() };
                Some(Launch { origin, instance_type: data.instance_type().map(|t| Arc::from(t.as_str())) })
            }),
            LaunchSource::LaunchConfiguration(name) => {
                let configuration = self.launch_configuration(name).await?;
                configuration.as_ref().and_then(|c| {
                    let origin = Origin { image: Arc::from(c.image_id()?), template: None, at_millis: now_millis() };
                    Some(Launch { origin, instance_type: c.instance_type().map(Arc::from) })
                })
            }
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
        let read = origin(2, 10_000);
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
