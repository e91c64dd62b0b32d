//! What an EKS node offers pods, from what its instance type has: the EKS AMI's kubelet
//! reservations and the VPC CNI's pod limit. The simulator's catalogue and the AWS adapter's
//! scale-from-zero templates both use it, so a simulated node and a template agree with what a
//! real node reports.

use ballast_sdk::Resources;

const MIB: u64 = 1 << 20;

/// Pods the VPC CNI allows without prefix delegation: one IP per pod from every ENI but its
/// primary address, plus two host-network pods.
pub fn max_pods(enis: u32, ipv4_per_eni: u32) -> u32 {
    enis * ipv4_per_eni.saturating_sub(1) + 2
}

/// The EKS AMI's kube-reserved CPU: 6% of the first core, 1% of the second, 0.5% of the
/// next two, 0.25% of the rest.
pub fn reserved_cpu_millis(vcpus: u64) -> u64 {
    let mut reserved = 60;
    if vcpus >= 2 {
        reserved += 10;
    }
    reserved += 5 * vcpus.saturating_sub(2).min(2);
    reserved += (vcpus.saturating_sub(4) * 25).div_ceil(10);
    reserved
}

/// Allocatable from capacity: CPU less kube-reserved; memory less 255 MiB + 11 MiB per pod
/// (kube-reserved) and the 100 MiB hard eviction threshold; ephemeral storage less 1 GiB
/// (kube-reserved) and the `nodefs.available` 10% hard eviction threshold, unless not known.
pub fn allocatable(capacity: Resources) -> Resources {
    let vcpus = capacity.cpu_millis / 1000;
    let reserved_memory = (255 + 11 * u64::from(capacity.pods) + 100) * MIB;
    Resources {
        cpu_millis: capacity.cpu_millis.saturating_sub(reserved_cpu_millis(vcpus)),
        memory_bytes: capacity.memory_bytes.saturating_sub(reserved_memory),
        pods: capacity.pods,
        gpus: capacity.gpus,
        ephemeral_storage_bytes: allocatable_storage(capacity.ephemeral_storage_bytes),
    }
}

/// A root volume's bytes as the kubelet of the EKS AMI leaves them to pods.
pub fn allocatable_storage(capacity: u64) -> u64 {
    if capacity == Resources::STORAGE_NOT_KNOWN {
        return capacity;
    }
    capacity.saturating_sub(1 << 30).saturating_sub(capacity / 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_what_an_m5_large_reports() {
        // m5.large: 3 ENIs of 10 addresses; kubelet reports 1930m and 29 pods.
        assert_eq!(max_pods(3, 10), 29);
        let capacity = Resources { cpu_millis: 2000, memory_bytes: 8 << 30, pods: 29, gpus: 0, ..Resources::ZERO };
        let a = allocatable(capacity);
        assert_eq!((a.cpu_millis, a.pods), (1930, 29));
        assert_eq!(a.memory_bytes, (8 << 30) - (255 + 11 * 29 + 100) * MIB);
        assert_eq!(a.ephemeral_storage_bytes, 0, "no disk said, none to give");
        let disk = allocatable(Resources { ephemeral_storage_bytes: 20 << 30, ..capacity });
        assert_eq!(disk.ephemeral_storage_bytes, 17 << 30, "a 20 GiB root volume less 1 GiB and 10%");
        let unknown = allocatable(Resources { ephemeral_storage_bytes: Resources::STORAGE_NOT_KNOWN, ..capacity });
        assert_eq!(unknown.ephemeral_storage_bytes, Resources::STORAGE_NOT_KNOWN);
    }
}
