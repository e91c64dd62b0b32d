//! Fargate sizing and price: what a pod is billed as, and what that costs.

use crate::model::{FargatePricing, FargateSize, Resources};

/// The size Fargate bills a pod at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FargateBilledSize {
    pub cpu_millis: u64,
    pub memory_mib: u64,
    /// Ephemeral storage billed beyond the 20 GiB every pod gets, in GiB.
    pub extra_storage_gib: u64,
}

/// A field of [`FargatePricing`] whose value does not hold (see [`FargatePricing::check`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidPricing {
    /// Within `fargate-pricing`: `per-vcpu-hour`, `sizes[1]`.
    pub field: String,
    /// Why, with the value.
    pub message: String,
}

impl std::fmt::Display for InvalidPricing {
    /// As a file's field: ``field `fargate-pricing.per-gb-hour`: must be ...``.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "field `fargate-pricing.{}`: {}", self.field, self.message)
    }
}

impl std::fmt::Display for FargateBilledSize {
    /// `0.25 vCPU / 1 GiB`, and the disk billed beyond what is included when there is some:
    /// `0.25 vCPU / 1 GiB / 7 GiB of disk beyond the 20 included`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} vCPU / {} GiB", self.cpu_millis as f64 / 1000.0, self.memory_mib as f64 / 1024.0)?;
        if self.extra_storage_gib > 0 {
            let included = FargatePricing::INCLUDED_STORAGE_GIB;
            write!(f, " / {} GiB of disk beyond the {included} included", self.extra_storage_gib)?;
        }
        Ok(())
    }
}

impl FargatePricing {
    /// The most ephemeral storage an EKS Fargate pod may ask for: 175 GiB.
    pub const MAX_EPHEMERAL_STORAGE_BYTES: u64 = 175 << 30;
    /// What every EKS Fargate pod gets without paying for it: 20 GiB.
    pub const INCLUDED_STORAGE_GIB: u64 = 20;

    /// Rounds a pod's requests up to the smallest allowed Fargate size, after adding the
    /// memory overhead Fargate reserves. None if no size is large enough, or if the pod asks
    /// more ephemeral storage than Fargate gives a pod
    /// ([`FargatePricing::MAX_EPHEMERAL_STORAGE_BYTES`]).
    ///
    /// A pod asking 1 vCPU and 8 GiB needs 8.25 GiB, which 1 vCPU cannot pair with, so it is
    /// billed as 2 vCPU and 9 GiB. Its disk is what it asks, 10% more for the file system
    /// and 5 GiB for Fargate's own components, in whole GiB; what passes the 20 GiB included
    /// is billed: a pod asking 30Gi pays for 18 GiB.
    pub fn billed_size(&self, requests: &Resources) -> Option<FargateBilledSize> {
        if requests.ephemeral_storage_bytes > Self::MAX_EPHEMERAL_STORAGE_BYTES {
            return None;
        }
        let disk_gib = (requests.ephemeral_storage_bytes + requests.ephemeral_storage_bytes / 10).div_ceil(1 << 30) + 5;
        let extra_storage_gib = disk_gib.saturating_sub(Self::INCLUDED_STORAGE_GIB);
        let memory_mib = requests.memory_bytes.div_ceil(1 << 20) + self.overhead_mib;
        self.sizes
            .iter()
            .filter(|s| s.cpu_millis >= requests.cpu_millis && s.memory_mib_max >= memory_mib)
            .filter_map(|s| {
                let step = s.memory_mib_step.max(1);
                let above_min = memory_mib.saturating_sub(s.memory_mib_min);
                let memory = s.memory_mib_min + above_min.div_ceil(step) * step;
                (memory <= s.memory_mib_max).then_some(FargateBilledSize {
                    cpu_millis: s.cpu_millis,
                    memory_mib: memory,
                    extra_storage_gib,
                })
            })
            .min_by(|a, b| self.hourly_price(a).total_cmp(&self.hourly_price(b)).then(a.cpu_millis.cmp(&b.cpu_millis)))
    }

    /// Checks prices and sizes: prices non-negative, at least one size, each with CPU, a
    /// memory step and its memory range the right way round.
    pub fn check(&self) -> Result<(), InvalidPricing> {
        let prices = [
            ("per-vcpu-hour", self.per_vcpu_hour),
            ("per-gb-hour", self.per_gb_hour),
            ("per-storage-gb-hour", self.per_storage_gb_hour),
        ];
        if let Some((field, price)) = prices.iter().find(|(_, p)| !(*p >= 0.0 && p.is_finite())) {
            let message = format!("must be a non-negative price, not {price}");
            return Err(InvalidPricing { field: field.to_string(), message });
        }
        if self.sizes.is_empty() {
            let message = "is empty: no pod could run on Fargate".to_string();
            return Err(InvalidPricing { field: "sizes".into(), message });
        }
        let bad = |s: &FargateSize| s.cpu_millis == 0 || s.memory_mib_step == 0 || s.memory_mib_min > s.memory_mib_max;
        match self.sizes.iter().position(bad) {
            None => Ok(()),
            Some(i) => Err(InvalidPricing {
                field: format!("sizes[{i}]"),
                message: format!(
                    "must have cpu-millis and memory-mib-step above 0 and memory-mib-min at most memory-mib-max, not {}",
                    serde_json::to_string(&self.sizes[i]).unwrap_or_default()
                ),
            }),
        }
    }

    /// US dollars per hour for one pod of this size.
    pub fn hourly_price(&self, size: &FargateBilledSize) -> f64 {
        size.cpu_millis as f64 / 1000.0 * self.per_vcpu_hour
            + size.memory_mib as f64 / 1024.0 * self.per_gb_hour
            + size.extra_storage_gib as f64 * self.per_storage_gb_hour
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
        assert_eq!(size, FargateBilledSize { cpu_millis: 2000, memory_mib: 9 * 1024, extra_storage_gib: 0 });
        // 100m / 128Mi plus 256 MiB overhead fits the smallest size.
        let size = p.billed_size(&Resources::pod(100, 128 << 20)).unwrap();
        assert_eq!(size, FargateBilledSize { cpu_millis: 250, memory_mib: 512, extra_storage_gib: 0 });
        // 250m / 1Gi needs 1.25 GiB: 0.25 vCPU jumps to 2 GB.
        let size = p.billed_size(&Resources::pod(250, GIB)).unwrap();
        assert_eq!(size, FargateBilledSize { cpu_millis: 250, memory_mib: 2048, extra_storage_gib: 0 });
        // Too large for any size.
        assert_eq!(p.billed_size(&Resources::pod(32000, GIB)), None);
    }

    #[test]
    fn a_pod_asking_more_disk_than_fargate_gives_has_no_size() {
        let p = FargatePricing::default();
        let with_disk = |gib: u64| Resources { ephemeral_storage_bytes: gib * GIB, ..Resources::pod(500, GIB) };
        assert!(p.billed_size(&with_disk(175)).is_some(), "175Gi is allowed");
        assert_eq!(p.billed_size(&with_disk(176)), None);
    }

    /// The EKS documentation's example: two containers asking 50 GiB each are given 115 GiB
    /// and billed for 95. Up to 13Gi asked (19 GiB given) costs nothing.
    #[test]
    fn disk_beyond_the_20_gib_included_is_billed_by_the_gb_hour() {
        let p = FargatePricing::default();
        let with_disk = |gib: u64| Resources { ephemeral_storage_bytes: gib * GIB, ..Resources::pod(500, GIB) };
        let extra = |gib: u64| p.billed_size(&with_disk(gib)).map(|s| s.extra_storage_gib);
        assert_eq!([extra(0), extra(13), extra(14), extra(30), extra(100)], [0, 0, 1, 18, 95].map(Some));
        let price = |gib| p.pod_price_per_hour(&with_disk(gib)).unwrap();
        assert!((price(100) - price(0) - 95.0 * 0.000111).abs() < 1e-12);
    }

    #[test]
    fn prices_per_second_rates() {
        let p = FargatePricing::default();
        let price = p.pod_price_per_hour(&Resources::pod(1000, 8 * GIB)).unwrap();
        assert!((price - (2.0 * 0.04048 + 9.0 * 0.004445)).abs() < 1e-9);
    }
}
