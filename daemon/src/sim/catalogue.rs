//! EC2 instance types the simulator knows by name: vCPUs, memory, max pods (VPC CNI) and the
//! us-east-1 Linux on-demand price. Allocatable follows the EKS AMI's reservations (`crate::eks`), so a
//! simulated node offers what a real one would.

use ballast_sdk::{InstanceType, Resources};

const GIB: u64 = 1 << 30;

/// A spot instance's price as a fraction of on-demand: a typical discount for general
/// purpose types in us-east-1 (spot prices move; the simulator holds them still).
pub const SPOT_PRICE_RATIO: f64 = 0.35;

/// (name, vCPUs, memory GiB, max pods, GPUs, price per hour)
const TYPES: &[(&str, u64, u64, u32, u32, f64)] = &[
    ("t3.medium", 2, 4, 17, 0, 0.0416),
    ("m5.large", 2, 8, 29, 0, 0.096),
    ("m5.xlarge", 4, 16, 58, 0, 0.192),
    ("m5.2xlarge", 8, 32, 58, 0, 0.384),
    ("m5.4xlarge", 16, 64, 234, 0, 0.768),
    ("m5a.large", 2, 8, 29, 0, 0.086),
    ("m6i.large", 2, 8, 29, 0, 0.096),
    ("m6i.xlarge", 4, 16, 58, 0, 0.192),
    ("m7g.large", 2, 8, 29, 0, 0.0816),
    ("c5.large", 2, 4, 29, 0, 0.085),
    ("c5.xlarge", 4, 8, 58, 0, 0.17),
    ("c5.2xlarge", 8, 16, 58, 0, 0.34),
    ("r5.large", 2, 16, 29, 0, 0.126),
    ("r5.xlarge", 4, 32, 58, 0, 0.252),
    ("g4dn.xlarge", 4, 16, 29, 1, 0.526),
];

/// A known instance type by name.
pub fn instance_type(name: &str) -> Option<InstanceType> {
    let &(name, vcpus, gib, max_pods, gpus, price) = TYPES.iter().find(|t| t.0 == name)?;
    let capacity = Resources {
        cpu_millis: vcpus * 1000,
        memory_bytes: gib * GIB,
        pods: max_pods,
        gpus,
        // The root volume is the group's (`ephemeral-storage` on a scenario's group).
        ephemeral_storage_bytes: Resources::STORAGE_NOT_KNOWN,
    };
    Some(InstanceType {
        name: name.to_string(),
        capacity,
        allocatable: crate::eks::allocatable(capacity),
        price_per_hour: price,
    })
}

pub fn names() -> impl Iterator<Item = &'static str> {
    TYPES.iter().map(|t| t.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocatable_is_what_eks_leaves() {
        let m5 = instance_type("m5.large").unwrap();
        assert_eq!(m5.allocatable.cpu_millis, 1930);
        assert_eq!(m5.allocatable.memory_bytes >> 20, 8192 - 255 - 11 * 29 - 100);
        assert!(instance_type("m9.huge").is_none());
    }
}
