//! What an instance costs: a bundled on-demand table, overridable by config, and spot prices
//! read from DescribeSpotPriceHistory.
//!
//! The bundled table is AWS's published on-demand price for Linux, shared tenancy, in
//! us-east-1, for common EKS node types, compiled on 2026-11-21 from the EC2 On-Demand pricing
//! page (the m5/m6i/c5/m7g figures match `shared/reference/domain.md`). Other regions cost a
//! few percent more or less; set `aws.on-demand-prices` where that matters. A type missing
//! from both is estimated at m5's rate per vCPU ($0.048) and memory-heavy types at r5's
//! ($0.063), and the estimate is logged once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

/// (instance type, USD per hour)
const ON_DEMAND_US_EAST_1: &[(&str, f64)] = &[
    ("t3.medium", 0.0416),
    ("t3.large", 0.0832),
    ("t3.xlarge", 0.1664),
    ("t3.2xlarge", 0.3328),
    ("m5.large", 0.096),
    ("m5.xlarge", 0.192),
    ("m5.2xlarge", 0.384),
    ("m5.4xlarge", 0.768),
    ("m5.8xlarge", 1.536),
    ("m5a.large", 0.086),
    ("m5a.xlarge", 0.172),
    ("m6i.large", 0.096),
    ("m6i.xlarge", 0.192),
    ("m6i.2xlarge", 0.384),
    ("m6i.4xlarge", 0.768),
    ("m6a.large", 0.0864),
    ("m6a.xlarge", 0.1728),
    ("m7i.large", 0.1008),
    ("m7i.xlarge", 0.2016),
    ("m6g.large", 0.077),
    ("m7g.large", 0.0816),
    ("m7g.xlarge", 0.1632),
    ("c5.large", 0.085),
    ("c5.xlarge", 0.17),
    ("c5.2xlarge", 0.34),
    ("c5.4xlarge", 0.68),
    ("c6i.large", 0.085),
    ("c6i.xlarge", 0.17),
    ("c6i.2xlarge", 0.34),
    ("c7g.large", 0.0725),
    ("r5.large", 0.126),
    ("r5.xlarge", 0.252),
    ("r5.2xlarge", 0.504),
    ("r6i.large", 0.126),
    ("r6i.xlarge", 0.252),
    ("g4dn.xlarge", 0.526),
    ("g4dn.2xlarge", 0.752),
    ("g5.xlarge", 1.006),
    // AWS Neuron (added 2026-11-29): their accelerators cost far more than an estimate by
    // vCPU and memory would say.
    ("inf2.xlarge", 0.7582),
    ("inf2.8xlarge", 1.9679),
    ("trn1.2xlarge", 1.3438),
    ("trn1.32xlarge", 21.50),
];

/// Where a price came from, for the reasons plugins write and for the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriceSource {
    Config,
    Bundled,
    Spot,
    Estimated,
}

/// On-demand and spot prices by instance type.
pub struct Prices {
    overrides: BTreeMap<String, f64>,
    spot: Mutex<BTreeMap<String, f64>>,
    estimated: Mutex<HashSet<String>>,
}

impl Prices {
    pub fn new(overrides: BTreeMap<String, f64>) -> Self {
        Prices { overrides, spot: Mutex::default(), estimated: Mutex::default() }
    }

    /// The on-demand price of a type with `vcpus` and `memory_gib`.
    pub fn on_demand(&self, name: &str, vcpus: u64, memory_gib: f64) -> (f64, PriceSource) {
        if let Some(price) = self.overrides.get(name) {
            return (*price, PriceSource::Config);
        }
        if let Some((_, price)) = ON_DEMAND_US_EAST_1.iter().find(|(n, _)| *n == name) {
            return (*price, PriceSource::Bundled);
        }
        let per_vcpu = if memory_gib / vcpus.max(1) as f64 >= 8.0 { 0.063 } else { 0.048 };
        let estimate = per_vcpu * vcpus as f64;
        if self.estimated.lock().map(|mut e| e.insert(name.to_string())).unwrap_or(false) {
            tracing::warn!(
                instance_type = name,
                estimate,
                "no on-demand price known; estimated by vCPU (set aws.on-demand-prices)"
            );
        }
        (estimate, PriceSource::Estimated)
    }

    /// The latest spot price read for a type, if any.
    pub fn spot(&self, name: &str) -> Option<f64> {
        self.spot.lock().ok()?.get(name).copied()
    }

    pub fn set_spot(&self, prices: BTreeMap<String, f64>) {
        if let Ok(mut spot) = self.spot.lock() {
            spot.extend(prices);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_overrides_the_table_and_unknown_types_are_estimated() {
        let prices = Prices::new(BTreeMap::from([("m5.large".to_string(), 0.1)]));
        assert_eq!(prices.on_demand("m5.large", 2, 8.0), (0.1, PriceSource::Config));
        assert_eq!(prices.on_demand("c5.large", 2, 4.0), (0.085, PriceSource::Bundled));
        let (estimate, source) = prices.on_demand("x9.large", 2, 32.0);
        assert_eq!(source, PriceSource::Estimated);
        assert!((estimate - 0.126).abs() < 1e-9);
    }
}
