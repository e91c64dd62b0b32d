//! Fargate sizing and price: what a pod is billed as, and what that costs.

use crate::model::{FargatePricing, Resources};

/// The size Fargate bills a pod at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FargateBilledSize {
    pub cpu_millis: u64,
    pub memory_mib: u64,
}

impl FargatePricing {
    /// The most ephemeral storage an EKS Fargate pod may ask for: 175 GiB (20 GiB come with
    /// every pod; what it asks beyond them is billed by the GB-hour, which Ballast does not
    /// price yet).
    pub const MAX_EPHEMERAL_STORAGE_BYTES: u64 = 175 << 30;

    /// Rounds a pod's requests up to the smallest allowed Fargate size, after adding the
    /// memory overhead Fargate reserves. None if no size is large enough, or if the pod asks
    /// more ephemeral storage than Fargate gives a pod
    /// ([`FargatePricing::MAX_EPHEMERAL_STORAGE_BYTES`]).
    ///
    /// A pod asking 1 vCPU and 8 GiB needs 8.25 GiB, which 1 vCPU cannot pair with, so it is
    /// billed as 2 vCPU and 9 GiB.
    pub fn billed_size(&self, requests: &Resources) -> Option<FargateBilledSize> {
        if requests.ephemeral_storage_bytes > Self::MAX_EPHEMERAL_STORAGE_BYTES {
            return None;
        }
        let memory_mib = requests.memory_bytes.div_ceil(1 << 20) + self.overhead_mib;
        self.sizes
            .iter()
            .filter(|s| s.cpu_millis >= requests.cpu_millis && s.memory_mib_max >= memory_mib)
            .filter_map(|s| {
                let step = s.memory_mib_step.max(1);
                let above_min = memory_mib.saturating_sub(s.memory_mib_min);
                let memory = s.memory_mib_min + above_min.div_ceil(step) * step;
                (memory <= s.memory_mib_max)
                    .then_some(FargateBilledSize { cpu_millis: s.cpu_millis, memory_mib: memory })
            })
            .min_by(|a, b| self.hourly_price(a).total_cmp(&self.hourly_price(b)).then(a.cpu_millis.cmp(&b.cpu_millis)))
    }

    /// US dollars per hour for one pod of this size.
    pub fn hourly_price(&self, size: &FargateBilledSize) -> f64 {
        size.cpu_millis as f64 / 1000.0 * self.per_vcpu_hour + size.memory_mib as f64 / 1024.0 * self.per_gb_hour
    }

    /// US dollars per hour to run one pod with these requests, if Fargate has a size for it.
    pub fn pod_price_per_hour(&self, requests: &Resources) -> Option<f64> {
        self.billed_size(requests).map(|s| self.hourly_price(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn rounds_up_with_overhead() {
        let p = FargatePricing::default();
        // The example from the EKS documentation: 1 vCPU / 8 GB is billed as 2 vCPU / 9 GB.
        let size = p.billed_size(&Resources::pod(1000, 8 * GIB)).unwrap();
        assert_eq!(size, FargateBilledSize { cpu_millis: 2000, memory_mib: 9 * 1024 });
        // 100m / 128Mi plus 256 MiB overhead fits the smallest size.
        let size = p.billed_size(&Resources::pod(100, 128 << 20)).unwrap();
        assert_eq!(size, FargateBilledSize { cpu_millis: 250, memory_mib: 512 });
        // 250m / 1Gi needs 1.25 GiB: 0.25 vCPU jumps to 2 GB.
        let size = p.billed_size(&Resources::pod(250, GIB)).unwrap();
        assert_eq!(size, FargateBilledSize { cpu_millis: 250, memory_mib: 2048 });
        // Too large for any size.
        assert_eq!(p.billed_size(&Resources::pod(32000, GIB)), None);
    }

    #[test]
    fn a_pod_asking_more_disk_than_fargate_gives_has_no_size() {
        let p = FargatePricing::default();
        let with_disk = |gib: u64| Resources { ephemeral_storage_bytes: gib * GIB, ..Resources::pod(500, GIB) };
        assert_eq!(p.billed_size(&with_disk(175)), p.billed_size(&Resources::pod(500, GIB)), "175Gi is allowed");
        assert_eq!(p.billed_size(&with_disk(176)), None);
    }

    #[test]
    fn prices_per_second_rates() {
        let p = FargatePricing::default();
        let price = p.pod_price_per_hour(&Resources::pod(1000, 8 * GIB)).unwrap();
        assert!((price - (2.0 * 0.04048 + 9.0 * 0.004445)).abs() < 1e-9);
    }
}
