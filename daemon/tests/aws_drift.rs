//! Drift against moto: the image, instance types and template version each Auto Scaling group
//! launches now, against what each of its instances was launched from.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks fail loudly

mod support;

use std::time::Duration;

use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, Tag};
use aws_sdk_ec2::types::{InstanceType as Ec2Type, RequestLaunchTemplateData};
use ballast::aws::{AwsCapacity, AwsSettings};
use ballast::engine::ports::{Capacity, GroupView};
use support::moto::{Fault, Moto, Proxy, aws_settings, ca_tags, mixed_group, sdk_config, template_group};

/// A new launch template version (`$Latest` moving to a new AMI) makes the instances launched
/// before it drifted, and only those, though the group's image was read (and kept) before
/// it: the instance launched from the new version is not taken for drifted against the old
/// image. A mixed instances group's image is its template's. Each instance's image is read
/// once (DescribeInstances), whatever the number of observations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_launched_before_a_new_launch_template_version_have_drifted() {
    let moto = Moto::start().await;
    let config = sdk_config(&moto.url).await;
    template_group(&config, "general", "m5.large", &ca_tags(), 2).await;
    mixed_group(&config, "mixed", &[("m5.large", None)], None, &ca_tags()).await;
    let eks = [ca_tags(), vec![("eks:nodegroup-name", "managed")]].concat();
    template_group(&config, "managed", "m5.large", &eks, 0).await;
    // The group's image is kept for the default five minutes: the new version is seen because
    // an instance launched from it says so (its template version tag), not because the
    // image was read again by chance.
    let capacity = AwsCapacity::from_config(&config, aws_settings()).unwrap();
    let described = |c: &AwsCapacity| {
        let ops = c.calls_by_operation();
        ops.iter().find(|(op, _)| op.name == "DescribeInstances").map_or(0, |(_, n)| n.calls)
    };
    let groups = capacity.node_groups().await.unwrap();
    assert_eq!(groups[0].image.as_deref(), Some("ami-12c6146b"));
    assert!(groups[0].instances.iter().all(|i| i.image.as_deref() == Some("ami-12c6146b")), "{groups:?}");
    assert_eq!(groups[2].image.as_deref(), Some("ami-12c6146b"), "the mixed policy's template");
    let updating_itself: Vec<bool> = groups.iter().map(|g| g.updates_itself).collect();
    assert_eq!(updating_itself, [false, true, false], "EKS rolls its managed node group (general, managed, mixed)");
    let drifted = |groups: &[GroupView]| -> Vec<(String, String)> {
        let instances = groups.iter().flat_map(|g| g.instances.iter().map(move |i| (g, i)));
        instances.filter_map(|(g, i)| Some((i.id.clone(), ballast::engine::drift::of(g, i)?.to_string()))).collect()
    };
    assert!(drifted(&groups).is_empty());

    let ec2 = aws_sdk_ec2::Client::new(&config);
    let data = RequestLaunchTemplateData::builder().image_id("ami-1234abcd").build();
    let new = ec2.create_launch_template_version().launch_template_name("general-lt").source_version("1");
    new.launch_template_data(data).send().await.unwrap();
    // Made the default too: moto tags an instance with its template's default version, where
    // EC2 tags it with the version it was launched from ($Latest here).
    let default = ec2.modify_launch_template().launch_template_name("general-lt").default_version("2");
    default.send().await.unwrap();
    let asg = aws_sdk_autoscaling::Client::new(&config);
    asg.set_desired_capacity().auto_scaling_group_name("general").desired_capacity(3).send().await.unwrap();
    let groups = capacity.node_groups().await.unwrap();
    assert_eq!(groups[0].image.as_deref(), Some("ami-1234abcd"));
    let old: Vec<(String, String)> = groups[0]
        .instances
        .iter()
        .filter(|i| i.image.as_deref() == Some("ami-12c6146b"))
        .map(|i| (i.id.clone(), "launched from ami-12c6146b; its group now launches ami-1234abcd".to_string()))
        .collect();
    assert_eq!(old.len(), 2, "{groups:?}");
    assert_eq!(drifted(&groups), old, "the two launched before the new version, and only those");
    assert_eq!(described(&capacity), 2, "the first two instances, then the new one");
    capacity.node_groups().await.unwrap();
    assert_eq!(described(&capacity), 2, "nothing new to read");
}

/// A launch template's default set back to an older version (a rolled-back AMI) under a group
/// launching `$Default`: a node launched from it after the group's image was read makes the
/// adapter read the image again, so that node is not taken for drifted and the one left on
/// the withdrawn image is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_version_set_back_is_read_again_once_a_node_launches_from_it() {
    let moto = Moto::start().await;
    let config = sdk_config(&moto.url).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let data =
        |image: &str| RequestLaunchTemplateData::builder().image_id(image).instance_type(Ec2Type::M5Large).build();
    let first = ec2.create_launch_template().launch_template_name("back-lt").launch_template_data(data("ami-12c6146b"));
    first.send().await.unwrap();
    let second = ec2.create_launch_template_version().launch_template_name("back-lt").source_version("1");
    second.launch_template_data(data("ami-1234abcd")).send().await.unwrap();
    let set_default = |v: &str| ec2.modify_launch_template().launch_template_name("back-lt").default_version(v).send();
    set_default("2").await.unwrap();
    let spec = LaunchTemplateSpecification::builder().launch_template_name("back-lt").version("$Default").build();
    let asg = aws_sdk_autoscaling::Client::new(&config);
    let mut create = asg.create_auto_scaling_group().auto_scaling_group_name("back").launch_template(spec);
    for (k, v) in ca_tags() {
        create =
            create.tags(Tag::builder().key(k).value(v).resource_id("back").resource_type("auto-scaling-group").build());
    }
    create.min_size(0).max_size(5).desired_capacity(1).availability_zones("us-east-1a").send().await.unwrap();
    let capacity = AwsCapacity::from_config(&config, aws_settings()).unwrap();
    assert_eq!(capacity.node_groups().await.unwrap()[0].image.as_deref(), Some("ami-1234abcd"));

    set_default("1").await.unwrap();
    // EC2 gives launch times to the second: the next node launches in a later one.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    asg.set_desired_capacity().auto_scaling_group_name("back").desired_capacity(2).send().await.unwrap();
    let groups = capacity.node_groups().await.unwrap();
    assert_eq!(groups[0].image.as_deref(), Some("ami-12c6146b"), "read again: the rolled-back image");
    let drift = |i| ballast::engine::drift::of(&groups[0], i).map(|d| d.to_string());
    let drifted: Vec<String> = groups[0].instances.iter().filter_map(drift).collect();
    assert_eq!(drifted, ["launched from ami-1234abcd; its group now launches ami-12c6146b"], "{groups:?}");
}

/// A template's new version of another instance type: the nodes of the type their group no
/// longer launches have drifted, the node launched as the new type has not (the reading kept
/// from before the new version is read again once that node shows it). A mixed instances
/// group's types are its overrides as they are now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_an_instance_type_their_group_no_longer_launches_have_drifted() {
    use aws_sdk_autoscaling::types::{LaunchTemplate, LaunchTemplateOverrides, MixedInstancesPolicy};
    let moto = Moto::start().await;
    let config = sdk_config(&moto.url).await;
    template_group(&config, "general", "m5.large", &ca_tags(), 2).await;
    mixed_group(&config, "mixed", &[("m5.large", None)], None, &ca_tags()).await;
    let asg = aws_sdk_autoscaling::Client::new(&config);
    asg.set_desired_capacity().auto_scaling_group_name("mixed").desired_capacity(1).send().await.unwrap();
    let capacity = AwsCapacity::from_config(&config, aws_settings()).unwrap();
    let drifted = |groups: &[GroupView]| -> Vec<String> {
        let instances = groups.iter().flat_map(|g| g.instances.iter().map(move |i| (g, i)));
        let drifted = instances.filter_map(|(g, i)| Some(format!("{} {}", g.id, ballast::engine::drift::of(g, i)?)));
        drifted.collect()
    };
    let groups = capacity.node_groups().await.unwrap();
    let types: Vec<Option<Vec<&str>>> =
        groups.iter().map(|g| g.launched_types.as_ref().map(|t| t.iter().map(|t| &**t).collect())).collect();
    assert_eq!(types, [Some(vec!["m5.large"]), Some(vec!["m5.large"])], "the template's, the overrides'");
    assert!(drifted(&groups).is_empty(), "{groups:?}");

    let ec2 = aws_sdk_ec2::Client::new(&config);
    let data = RequestLaunchTemplateData::builder().image_id("ami-12c6146b").instance_type(Ec2Type::M5Xlarge).build();
    let new = ec2.create_launch_template_version().launch_template_name("general-lt").source_version("1");
    new.launch_template_data(data).send().await.unwrap();
    // moto tags an instance with its template's default version (EC2: the one launched from).
    ec2.modify_launch_template().launch_template_name("general-lt").default_version("2").send().await.unwrap();
    asg.set_desired_capacity().auto_scaling_group_name("general").desired_capacity(3).send().await.unwrap();
    let spec = LaunchTemplateSpecification::builder().launch_template_name("mixed-lt").version("$Latest").build();
    let overrides = LaunchTemplateOverrides::builder().instance_type("m6i.large").build();
    let template = LaunchTemplate::builder().launch_template_specification(spec).overrides(overrides).build();
    let policy = MixedInstancesPolicy::builder().launch_template(template).build();
    asg.update_auto_scaling_group()
        .auto_scaling_group_name("mixed")
        .mixed_instances_policy(policy)
        .send()
        .await
        .unwrap();

    let groups = capacity.node_groups().await.unwrap();
    let general: Vec<&str> = groups[0].instances.iter().map(|i| i.instance_type.as_str()).collect();
    assert_eq!(general, ["m5.large", "m5.large", "m5.xlarge"], "moto launches the new version's type");
    let mixed = groups[1].launched_types.as_ref().map(|t| t.iter().map(|t| t.to_string()).collect::<Vec<_>>());
    assert_eq!(mixed, Some(vec!["m6i.large".to_string()]), "the overrides as they are now");
    // moto does not say a mixed group's instance's type (EC2 does): not known, not judged.
    assert_eq!(groups[1].instances[0].instance_type, "");
    assert_eq!(
        drifted(&groups),
        [
            "general launched as m5.large; its group now launches m5.xlarge",
            "general launched as m5.large; its group now launches m5.xlarge",
        ]
    );
}

/// A group's launch template is read once for its instance types and its image, and kept for
/// `image-ttl` (an hour here): a new version of another type is what the group's new nodes are
/// priced and sized as from the observation in which a node launched from it shows up, not an
/// hour later, and drift judges by that same reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_template_versions_type_is_priced_once_a_node_of_it_shows() {
    let moto = Moto::start().await;
    let config = sdk_config(&moto.url).await;
    template_group(&config, "general", "m5.large", &ca_tags(), 1).await;
    let settings = AwsSettings { image_ttl: Duration::from_secs(3600), ..aws_settings() };
    let capacity = AwsCapacity::from_config(&config, settings).unwrap();
    let read = |c: &AwsCapacity| {
        let ops = c.calls_by_operation();
        ops.iter().find(|(op, _)| op.name == "DescribeLaunchTemplateVersions").map_or(0, |(_, n)| n.calls)
    };
    let priced =
        |groups: &[GroupView]| -> Vec<String> { groups[0].instance_types.iter().map(|t| t.name.clone()).collect() };
    let judged = |groups: &[GroupView]| {
        groups[0].launched_types.as_ref().map(|t| t.iter().map(|t| t.to_string()).collect::<Vec<_>>())
    };
    let groups = capacity.node_groups().await.unwrap();
    assert_eq!(priced(&groups), ["m5.large"]);
    assert_eq!(read(&capacity), 1, "one reading for the types and the image");

    let ec2 = aws_sdk_ec2::Client::new(&config);
    let data = RequestLaunchTemplateData::builder().image_id("ami-12c6146b").instance_type(Ec2Type::M5Xlarge).build();
    let new = ec2.create_launch_template_version().launch_template_name("general-lt").source_version("1");
    new.launch_template_data(data).send().await.unwrap();
    ec2.modify_launch_template().launch_template_name("general-lt").default_version("2").send().await.unwrap();
    let groups = capacity.node_groups().await.unwrap();
    assert_eq!((priced(&groups), read(&capacity)), (vec!["m5.large".to_string()], 1), "kept: no node shows it yet");

    let asg = aws_sdk_autoscaling::Client::new(&config);
    asg.set_desired_capacity().auto_scaling_group_name("general").desired_capacity(2).send().await.unwrap();
    let groups = capacity.node_groups().await.unwrap();
    assert_eq!(priced(&groups), ["m5.xlarge"], "read again in the observation the new node shows up in");
    assert_eq!(judged(&groups), Some(vec!["m5.xlarge".to_string()]), "drift's reading is the same");
    assert_eq!(read(&capacity), 2);
}

/// Without the instances' template versions (DescribeInstances refused: a permission
/// missing), a template's type read earlier could be stale with nothing to show it, so no
/// node is judged by its type: a node launched as a new version's type is never taken for
/// drifted against the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_instances_versions_a_templates_type_judges_nothing() {
    let moto = Moto::start().await;
    let proxy = Proxy::start(&moto.url).await;
    template_group(&sdk_config(&moto.url).await, "general", "m5.large", &ca_tags(), 1).await;
    let capacity = AwsCapacity::from_config(&sdk_config(&proxy.url).await, aws_settings()).unwrap();
    proxy.fail("DescribeInstances", &[Fault::Refuse(403, "UnauthorizedOperation")]);
    let groups = capacity.node_groups().await.unwrap();
    assert_eq!(proxy.forwarded("DescribeInstances"), 0, "refused");
    assert_eq!(groups[0].image.as_deref(), Some("ami-12c6146b"), "the group's own reading stands");
    assert_eq!(groups[0].launched_types, None, "{groups:?}");
}

/// A new template version changing neither image nor type (EBS optimisation here): the nodes
/// launched from the version before have drifted, by their `aws:ec2launchtemplate:version`
/// tag, and the node launched from the new one has not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_launched_from_a_template_version_their_group_no_longer_launches_have_drifted() {
    let moto = Moto::start().await;
    let config = sdk_config(&moto.url).await;
    template_group(&config, "general", "m5.large", &ca_tags(), 2).await;
    let capacity = AwsCapacity::from_config(&config, aws_settings()).unwrap();
    let groups = capacity.node_groups().await.unwrap();
    let template = groups[0].template.clone().expect("the group's template version");
    assert_eq!(template.version, 1);
    assert!(groups[0].instances.iter().all(|i| i.template.as_ref() == Some(&template)), "{groups:?}");

    let ec2 = aws_sdk_ec2::Client::new(&config);
    let data = RequestLaunchTemplateData::builder()
        .image_id("ami-12c6146b")
        .instance_type(Ec2Type::M5Large)
        .ebs_optimized(true)
        .build();
    let new = ec2.create_launch_template_version().launch_template_name("general-lt").source_version("1");
    new.launch_template_data(data).send().await.unwrap();
    // moto tags an instance with its template's default version (EC2: the one launched from).
    ec2.modify_launch_template().launch_template_name("general-lt").default_version("2").send().await.unwrap();
    let asg = aws_sdk_autoscaling::Client::new(&config);
    asg.set_desired_capacity().auto_scaling_group_name("general").desired_capacity(3).send().await.unwrap();
    let groups = capacity.node_groups().await.unwrap();
    let drift = |i| ballast::engine::drift::of(&groups[0], i).map(|d| d.to_string());
    let drifted: Vec<String> = groups[0].instances.iter().filter_map(drift).collect();
    let id = &template.id;
    let expected = format!("launched from {id} version 1; its group now launches {id} version 2");
    assert_eq!(drifted, [expected.clone(), expected], "the two launched before the new version: {groups:?}");
}
