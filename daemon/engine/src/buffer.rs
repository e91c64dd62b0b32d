//! How many pods a CapacityBuffer keeps room for: the rule the shared CRD's field
//! documentation states (`kubectl explain capacitybuffer.spec`), used by the Kubernetes
//! adapter (for the cluster's buffers) and the simulator (for a scenario's), so both size a
//! buffer alike.
//!
//! # Caveats
//!
//! The peers' implementations differ where the CRD is terse: Cluster Autoscaler takes the
//! smaller of `replicas` and `percentage` as the CRD says, but rounds a percentage down;
//! Karpenter's guides take the larger of the two. Ballast follows the CRD's words: the
//! smaller, a percentage rounded up.

use ballast_sdk::Resources;
use serde::{Deserialize, Serialize};

/// What a CapacityBuffer asks for, its pods' shape aside: `replicas`, `percentage` of its
/// workload's replicas, and `limits` on what its pods request in all. In a scenario:
/// `capacity-buffer: {percentage: 20, limits: {cpu: "8"}}` on a workload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct BufferSize {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage: Option<u32>,
    pub limits: BufferLimits,
}

/// `limits`: the CPU and memory a buffer's pods may request in all; a resource not named is
/// not capped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferLimits {
    #[serde(rename = "cpu", skip_serializing_if = "Option::is_none", with = "optional::cpu")]
    pub cpu_millis: Option<u64>,
    #[serde(rename = "memory", skip_serializing_if = "Option::is_none", with = "optional::memory")]
    pub memory_bytes: Option<u64>,
}

impl BufferSize {
    /// Whether it asks for anything at all.
    pub fn is_empty(&self) -> bool {
        self.replicas.is_none()
            && self.percentage.is_none()
            && self.limits.cpu_millis.is_none()
            && self.limits.memory_bytes.is_none()
    }

    /// How many pods of `requests` the buffer keeps room for, `workload_replicas` being the
    /// replicas of the workload it follows: the smallest of `replicas`, `percentage` of them
    /// (rounded up: 20% of 24 is 5, 10% of 3 is 1) and what `limits` hold, among those set;
    /// with nothing set, none.
    pub fn pods(&self, requests: &Resources, workload_replicas: Option<u32>) -> u32 {
        let by_share = (self.percentage.zip(workload_replicas))
            .map(|(percent, replicas)| (u64::from(percent) * u64::from(replicas)).div_ceil(100));
        let wanted = smaller(self.replicas.map(u64::from), by_share);
        let within = |limit: Option<u64>, each: u64| limit.map(|l| l.checked_div(each).unwrap_or(u64::MAX));
        let held = smaller(
            within(self.limits.cpu_millis, requests.cpu_millis),
            within(self.limits.memory_bytes, requests.memory_bytes),
        );
        u32::try_from(smaller(wanted, held).unwrap_or(0)).unwrap_or(u32::MAX)
    }
}

/// The smaller of two counts where both are set, else the one set.
fn smaller(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// An optional CPU or memory quantity as a user writes it (`"1500m"`, `"4Gi"`), for
/// `#[serde(with = ...)]` on an `Option<u64>` of millicores or bytes: here and in the
/// guardrails' cluster `limits`.
pub(crate) mod optional {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) mod cpu {
        use super::*;

        #[derive(Deserialize)]
        #[serde(transparent)]
        struct Cpu(#[serde(with = "ballast_sdk::quantity::cpu")] u64);

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
            Ok(Option::<Cpu>::deserialize(d)?.map(|q| q.0))
        }

        pub(crate) fn serialize<S: Serializer>(millis: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
            ballast_sdk::quantity::cpu::serialize(&millis.unwrap_or_default(), s)
        }
    }

    pub(crate) mod memory {
        use super::*;

        #[derive(Deserialize)]
        #[serde(transparent)]
        struct Memory(#[serde(with = "ballast_sdk::quantity::memory")] u64);

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
            Ok(Option::<Memory>::deserialize(d)?.map(|q| q.0))
        }

        pub(crate) fn serialize<S: Serializer>(bytes: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
            ballast_sdk::quantity::memory::serialize(&bytes.unwrap_or_default(), s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GI: u64 = 1 << 30;

    fn size(yaml: &str) -> BufferSize {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn the_sizing_rule_the_crd_documents() {
        let one_cpu = Resources { cpu_millis: 1000, memory_bytes: GI, pods: 1, gpus: 0, ..Resources::ZERO };
        assert_eq!(size("{replicas: 5}").pods(&one_cpu, Some(10)), 5);
        assert_eq!(size("{percentage: 20}").pods(&one_cpu, Some(10)), 2, "the CRD's example");
        assert_eq!(size("{percentage: 20}").pods(&one_cpu, Some(24)), 5, "4.8 rounds up");
        assert_eq!(size("{percentage: 10}").pods(&one_cpu, Some(3)), 1, "up to a minimum of 1");
        assert_eq!(size("{percentage: 10}").pods(&one_cpu, Some(0)), 0, "a workload scaled to zero");
        assert_eq!(size("{replicas: 5, percentage: 80}").pods(&one_cpu, Some(10)), 5, "both: the smaller");
        assert_eq!(size("{replicas: 5, percentage: 20}").pods(&one_cpu, Some(10)), 2);
        assert_eq!(size("{replicas: 10, limits: {cpu: 3}}").pods(&one_cpu, Some(10)), 3);
        assert_eq!(size("{limits: {cpu: '5'}}").pods(&one_cpu, Some(10)), 5);
        assert_eq!(size("{replicas: 10, limits: {cpu: '20', memory: 4Gi}}").pods(&one_cpu, None), 4);
        assert_eq!(size("{}").pods(&one_cpu, Some(10)), 0, "nothing asked");
        assert!(size("{}").is_empty() && !size("{limits: {memory: 1Gi}}").is_empty());
    }

    #[test]
    fn a_size_reads_back_as_written_and_a_bad_quantity_is_named() {
        let written = size("{percentage: 20, limits: {cpu: 1500m, memory: 2Gi}}");
        let again: BufferSize = serde_yaml::from_str(&serde_yaml::to_string(&written).unwrap()).unwrap();
        assert_eq!(again, written);
        let error = serde_yaml::from_str::<BufferSize>("{limits: {cpu: lots}}").unwrap_err().to_string();
        assert!(error.contains("lots"), "{error}");
    }
}
