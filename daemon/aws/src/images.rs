//! The machine images drift is judged by ([`ballast_engine::drift`]): the one each group
//! launches now, read from its launch template version (`$Default`, `$Latest` or a number,
//! aliases such as `resolve:ssm:` resolved) or its launch configuration and kept for
//! `image-ttl`; and the one each instance was launched from, read once with DescribeInstances
//! (an instance's image never changes).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_autoscaling::types::AutoScalingGroup;
use aws_sdk_ec2::types::Filter;
use ballast_engine::ports::{AdapterResult, GroupView};

use super::templates::{self, LaunchSource};
use super::{AwsCapacity, aws_error};

/// DescribeInstances filter values per call.
const IDS_PER_CALL: usize = 200;

/// The image each instance was launched from, as read so far.
#[derive(Default)]
pub struct InstanceImages {
    /// Instances sharing an image share its name.
    known: HashMap<String, Arc<str>>,
    /// After a failed DescribeInstances, not asked again before this: a missing permission
    /// would otherwise be asked for, and logged, every tick.
    quiet_until: Option<Instant>,
}

impl AwsCapacity {
    /// Fills in the image each view's group launches and each of its instances runs.
    ///
    /// # Caveats
    /// Best effort: an image that cannot be read is left unknown (and logged), so drift is
    /// not judged for it, and the observation goes on: scaling does not wait for drift.
    pub(super) async fn add_images(&self, groups: &[AutoScalingGroup], views: &mut [GroupView]) {
        for view in views.iter_mut() {
            if let Some(group) = groups.iter().find(|g| g.auto_scaling_group_name() == Some(view.id.as_str())) {
                view.image = self.launch_image(group).await;
            }
        }
        let ids: Vec<&str> = views
            .iter()
            .filter(|v| v.image.is_some())
            .flat_map(|v| v.instances.iter().map(|i| i.id.as_str()))
            .collect();
        let mut images = self.inner.instance_images.lock().await;
        self.read_instance_images(&ids, &mut images).await;
        for instance in views.iter_mut().flat_map(|v| v.instances.iter_mut()) {
            instance.image = images.known.get(&instance.id).cloned();
        }
    }

    /// The image `group` launches now, cached for `image-ttl`.
    async fn launch_image(&self, group: &AutoScalingGroup) -> Option<Arc<str>> {
        let source = templates::image_source(group);
        let key = format!("{source:?}");
        if let Some(image) = self.inner.launch_images.lock().await.get(&key) {
            return image;
        }
        let image = match self.read_launch_image(&source).await {
            Ok(image) => image.map(Arc::from),
            Err(error) => {
                let group = group.auto_scaling_group_name().unwrap_or_default();
                tracing::warn!(group, %error, "cannot read the image the group launches: its nodes' drift is not judged");
                None
            }
        };
        self.inner.launch_images.lock().await.insert(key, image.clone());
        image
    }

    async fn read_launch_image(&self, source: &LaunchSource) -> AdapterResult<Option<String>> {
        Ok(match source {
            LaunchSource::Template { .. } => {
                self.template_data(source).await?.iter().find_map(|data| data.image_id().map(str::to_string))
            }
            LaunchSource::LaunchConfiguration(name) => {
                self.launch_configuration(name).await?.and_then(|c| c.image_id().map(str::to_string))
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
            images.known.values().map(|name| (name.to_string(), name.clone())).collect();
        for chunk in missing.chunks(IDS_PER_CALL) {
            match self.launched_images(chunk).await {
                Ok(found) => {
                    for (id, image) in found {
                        let name = names.entry(image).or_insert_with_key(|image| Arc::from(image.as_str()));
                        images.known.insert(id, name.clone());
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
    /// `InstanceIds` would fail the call).
    async fn launched_images(&self, ids: &[String]) -> AdapterResult<Vec<(String, String)>> {
        let filter = Filter::builder().name("instance-id").set_values(Some(ids.to_vec())).build();
        let mut pages = self.inner.ec2.describe_instances().filters(filter).into_paginator().send();
        let mut out = Vec::with_capacity(ids.len());
        loop {
            self.inner.limit.acquire().await;
            let Some(page) = pages.next().await else { break };
            let page = page.map_err(|e| aws_error("describe instances", e))?;
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                if let (Some(id), Some(image)) = (instance.instance_id(), instance.image_id()) {
                    out.push((id.to_string(), image.to_string()));
                }
            }
        }
        Ok(out)
    }
}
