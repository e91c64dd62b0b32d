//! The labels every EKS node carries from the moment it registers, known before one exists:
//! what the kubelet sets (architecture, operating system) and what the AWS cloud provider
//! sets (instance type, region, zone). A pod that selects one of them (`kubernetes.io/os:
//! linux`, the default of many charts; `kubernetes.io/arch: arm64`; a zone) is admitted by a
//! group only if the group's labels carry it, so both the AWS adapter's scale-from-zero
//! templates and the simulator's groups add them, as Cluster Autoscaler's templates do.

use std::collections::BTreeMap;

pub const ARCH: &str = "kubernetes.io/arch";
pub const OS: &str = "kubernetes.io/os";
pub const INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
pub const REGION: &str = "topology.kubernetes.io/region";
pub const ZONE: &str = "topology.kubernetes.io/zone";
/// The zone's label, stable and deprecated: what a node's own zone answers.
pub const ZONE_KEYS: [&str; 2] = [ZONE, BETA_ZONE];
/// The deprecated forms the kubelet and the cloud provider still set beside the stable ones.
const BETA_ARCH: &str = "beta.kubernetes.io/arch";
const BETA_OS: &str = "beta.kubernetes.io/os";
const BETA_INSTANCE_TYPE: &str = "beta.kubernetes.io/instance-type";
const BETA_REGION: &str = "failure-domain.beta.kubernetes.io/region";
const BETA_ZONE: &str = "failure-domain.beta.kubernetes.io/zone";

/// A CPU architecture as Kubernetes names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    /// From one of DescribeInstanceTypes' `SupportedArchitectures` (`x86_64`, `arm64`); none
    /// for the others (`i386`, the Mac types'), which no EKS node runs.
    pub fn from_ec2(name: &str) -> Option<Arch> {
        match name {
            "x86_64" => Some(Arch::Amd64),
            "arm64" => Some(Arch::Arm64),
            _ => None,
        }
    }

    /// From an instance type's name by EC2's naming rule: a family whose generation digit is
    /// followed by `g` (`m7g`, `c6gn`, `t4g`, `im4gn`) is Graviton, `a1` too; the rest are
    /// x86. For the simulator, which has no DescribeInstanceTypes to ask.
    pub fn of_type_name(name: &str) -> Arch {
        let family = name.split('.').next().unwrap_or(name);
        let after_generation = family.trim_start_matches(|c: char| c.is_ascii_lowercase());
        let attributes = after_generation.trim_start_matches(|c: char| c.is_ascii_digit());
        if family == "a1" || (after_generation.len() > attributes.len() && attributes.starts_with('g')) {
            Arch::Arm64
        } else {
            Arch::Amd64
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// What is known of a group's next node before it launches.
#[derive(Clone, Copy, Debug)]
pub struct NewNode<'a> {
    /// The type it launches ([`ballast_sdk::launch_type`]).
    pub instance_type: &'a str,
    /// That type's architecture, if known.
    pub arch: Option<Arch>,
    pub region: Option<&'a str>,
    /// Every zone the group may launch in.
    pub zones: &'a [String],
}

/// Adds the well-known labels a new node of the group will carry to the group's `labels`,
/// leaving any the group already declares (a node-template tag, a scenario's label) as it is.
///
/// # Guarantees
/// A label is added only when every node the group launches carries that value: the zone only
/// for a group in one zone (an Auto Scaling group in several picks the zone itself, so a pod
/// pinned to one of them is not promised a node there); the architecture only when known.
///
/// # Caveats
/// The instance type and architecture are the launch type's: a mixed-instances group that
/// launches another of its types (a spot pool short of capacity) gives a node whose
/// `instance-type` differs, as Cluster Autoscaler's templates assume the same. The operating
/// system is Linux: a Windows group declares `kubernetes.io/os: windows` with a node-template
/// tag, which wins.
pub fn add_well_known(labels: &mut BTreeMap<String, String>, node: &NewNode) {
    // The deprecated key takes the stable one's value where the group declares that.
    let mut add = |[stable, beta]: [&str; 2], value: &str| {
        let value = labels.entry(stable.to_string()).or_insert_with(|| value.to_string()).clone();
        labels.entry(beta.to_string()).or_insert(value);
    };
    add([OS, BETA_OS], "linux");
    if let Some(arch) = node.arch {
        add([ARCH, BETA_ARCH], arch.label());
    }
    add([INSTANCE_TYPE, BETA_INSTANCE_TYPE], node.instance_type);
    if let Some(region) = node.region.or_else(|| region_of_zones(node.zones)) {
        add([REGION, BETA_REGION], region);
    }
    if let [zone] = node.zones {
        add([ZONE, BETA_ZONE], zone);
    }
}

/// The region the zones are in (`us-east-1a` is in `us-east-1`), when they all name the same.
fn region_of_zones(zones: &[String]) -> Option<&str> {
    fn region(zone: &str) -> Option<&str> {
        let trimmed = zone.strip_suffix(|c: char| c.is_ascii_lowercase())?;
        trimmed.ends_with(|c: char| c.is_ascii_digit()).then_some(trimmed)
    }
    let first = region(zones.first()?)?;
    zones.iter().all(|z| region(z) == Some(first)).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels_of(node: NewNode) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        add_well_known(&mut labels, &node);
        labels
    }

    #[test]
    fn a_group_in_one_zone_promises_that_zone_and_one_in_two_does_not() {
        let one = ["us-east-1b".to_string()];
        let labels =
            labels_of(NewNode { instance_type: "m5.large", arch: Some(Arch::Amd64), region: None, zones: &one });
        assert_eq!(labels[ZONE], "us-east-1b");
        assert_eq!(labels[BETA_ZONE], "us-east-1b");
        assert_eq!(labels[REGION], "us-east-1");
        assert_eq!(labels[OS], "linux");
        assert_eq!(labels[ARCH], "amd64");
        assert_eq!(labels[INSTANCE_TYPE], "m5.large");

        let two = ["us-east-1a".to_string(), "us-east-1b".to_string()];
        let labels = labels_of(NewNode { instance_type: "m5.large", arch: None, region: None, zones: &two });
        assert!(!labels.contains_key(ZONE), "{labels:?}");
        assert!(!labels.contains_key(ARCH), "an unknown architecture is not guessed: {labels:?}");
        assert_eq!(labels[REGION], "us-east-1");
    }

    #[test]
    fn the_region_given_wins_over_the_zones_and_zones_of_two_regions_give_none() {
        let local = ["us-west-2-lax-1a".to_string()];
        let labels =
            labels_of(NewNode { instance_type: "m5.large", arch: None, region: Some("us-west-2"), zones: &local });
        assert_eq!(labels[REGION], "us-west-2");
        let apart = ["us-east-1a".to_string(), "eu-west-1a".to_string()];
        let labels = labels_of(NewNode { instance_type: "m5.large", arch: None, region: None, zones: &apart });
        assert!(!labels.contains_key(REGION), "{labels:?}");
    }

    #[test]
    fn a_label_the_group_declares_is_kept() {
        let mut labels = BTreeMap::from([(OS.to_string(), "windows".to_string())]);
        add_well_known(&mut labels, &NewNode { instance_type: "m5.large", arch: None, region: None, zones: &[] });
        assert_eq!(labels[OS], "windows");
        assert_eq!(labels[BETA_OS], "windows", "the deprecated key follows the declared one");
        assert_eq!(labels[INSTANCE_TYPE], "m5.large");
    }

    #[test]
    fn graviton_families_are_arm64_by_name() {
        for name in ["m7g.large", "c6gn.xlarge", "t4g.small", "im4gn.large", "g5g.xlarge", "a1.medium", "r8g.2xlarge"] {
            assert_eq!(Arch::of_type_name(name), Arch::Arm64, "{name}");
        }
        for name in ["m5.large", "g4dn.xlarge", "c5.2xlarge", "m6i.xlarge", "m5a.large", "x2iedn.xlarge", "inf2.xlarge"]
        {
            assert_eq!(Arch::of_type_name(name), Arch::Amd64, "{name}");
        }
    }
}
