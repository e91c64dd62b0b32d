//! What a pod's volumes say about where it may run: whether Fargate can mount each claim,
//! and the zone of the PersistentVolume a claim is bound to. An EBS volume lives in one
//! zone, and the scheduler places a pod using it only on a node in that zone, so a pending
//! pod whose claim is bound selects that zone as if its nodeSelector said so: a scale-up for
//! it goes to a group in that zone, never to a cheaper one elsewhere where it would still
//! wait.

use std::collections::HashMap;
use std::sync::Arc;

use ballast_engine::node_labels::{ZONE, ZONE_KEYS};
use ballast_engine::ports::PodTemplate;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, PodSpec};

use super::convert;

/// The node label the EBS CSI driver pins its volumes with (older driver versions; newer
/// ones use `topology.kubernetes.io/zone`).
const EBS_CSI_ZONE: &str = "topology.ebs.csi.aws.com/zone";

type Key = (String, String);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Claim {
    fargate_mountable: bool,
    /// The PersistentVolume it is bound to (`spec.volumeName`).
    volume: Option<String>,
}

/// Claims by namespace and name, and the zones of the volumes they are bound to.
#[derive(Default)]
pub struct Volumes {
    claims: HashMap<Key, Claim>,
    zones: HashMap<String, Arc<str>>,
}

/// What changed when a claim was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimChange {
    pub mountable: bool,
    pub binding: bool,
}

impl Volumes {
    pub fn claim_keys(&self) -> impl Iterator<Item = &Key> {
        self.claims.keys()
    }

    pub fn volume_names(&self) -> impl Iterator<Item = &String> {
        self.zones.keys()
    }

    pub fn apply_claim(&mut self, key: Key, claim: &PersistentVolumeClaim) -> ClaimChange {
        let new = Claim {
            fargate_mountable: convert::claim_fargate_mountable(claim),
            volume: claim.spec.as_ref().and_then(|s| s.volume_name.clone()).filter(|v| !v.is_empty()),
        };
        let old = self.claims.insert(key, new.clone());
        ClaimChange {
            mountable: old.as_ref().map(|c| c.fargate_mountable) != Some(new.fargate_mountable),
            binding: old.and_then(|c| c.volume) != new.volume,
        }
    }

    pub fn remove_claim(&mut self, key: &Key) {
        self.claims.remove(key);
    }

    /// Returns whether the volume's zone changed.
    pub fn apply_volume(&mut self, volume: &PersistentVolume) -> bool {
        let name = volume.metadata.name.clone().unwrap_or_default();
        match volume_zone(volume) {
            Some(zone) => self.zones.insert(name, zone.clone()) != Some(zone),
            None => self.zones.remove(&name).is_some(),
        }
    }

    pub fn remove_volume(&mut self, name: &str) {
        self.zones.remove(name);
    }

    pub fn fargate_mountable(&self, namespace: &str, claim: &str) -> bool {
        self.claims.get(&(namespace.to_string(), claim.to_string())).is_some_and(|c| c.fargate_mountable)
    }

    /// The zone the first of `claims` bound to a zonal volume is in.
    pub fn zone_of(&self, namespace: &str, claims: &[String]) -> Option<Arc<str>> {
        claims.iter().find_map(|claim| {
            let bound = self.claims.get(&(namespace.to_string(), claim.clone()))?.volume.as_ref()?;
            self.zones.get(bound).cloned()
        })
    }
}

/// The claims a pod spec mounts by name.
pub fn claim_names(spec: &PodSpec) -> Vec<String> {
    spec.volumes
        .iter()
        .flatten()
        .filter_map(|v| v.persistent_volume_claim.as_ref().map(|c| c.claim_name.clone()))
        .collect()
}

/// `template` with the zone selected, unless it selects one already.
pub fn in_zone(template: &PodTemplate, zone: &str) -> Option<PodTemplate> {
    if ZONE_KEYS.iter().any(|k| template.node_selector.contains_key(*k)) {
        return None;
    }
    let mut zoned = template.clone();
    zoned.node_selector.insert(ZONE.to_string(), zone.to_string());
    Some(zoned)
}

/// A volume's zone: its required node affinity pinning a zone label to one value, else its
/// zone label (in-tree EBS volumes carry one).
fn volume_zone(volume: &PersistentVolume) -> Option<Arc<str>> {
    let required = volume.spec.as_ref().and_then(|s| s.node_affinity.as_ref()).and_then(|a| a.required.as_ref());
    let pinned = required.map(convert::pinned_by_affinity).unwrap_or_default();
    let from_affinity =
        pinned.into_iter().find(|(k, _)| ZONE_KEYS.contains(&k.as_str()) || k == EBS_CSI_ZONE).map(|(_, v)| v);
    let labels = volume.metadata.labels.as_ref();
    let from_label = || ZONE_KEYS.iter().find_map(|k| labels?.get(*k).cloned());
    from_affinity.or_else(from_label).map(Arc::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn volume(value: serde_json::Value) -> PersistentVolume {
        serde_json::from_value(value).expect("a valid volume")
    }

    #[test]
    fn a_volumes_zone_is_its_node_affinity_or_its_label() {
        let csi = volume(json!({"metadata": {"name": "pv-1"}, "spec": {"nodeAffinity": {"required":
            {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": EBS_CSI_ZONE, "operator": "In", "values": ["us-east-1b"]}]}]}}}}));
        assert_eq!(volume_zone(&csi).as_deref(), Some("us-east-1b"));
        let in_tree = volume(json!({"metadata": {"name": "pv-2",
            "labels": {"failure-domain.beta.kubernetes.io/zone": "us-east-1c"}}}));
        assert_eq!(volume_zone(&in_tree).as_deref(), Some("us-east-1c"));
        let efs = volume(json!({"metadata": {"name": "pv-3"}, "spec": {"csi": {"driver": "efs.csi.aws.com",
            "volumeHandle": "fs-1"}}}));
        assert_eq!(volume_zone(&efs), None, "an EFS volume is in every zone");
    }

    #[test]
    fn a_bound_claim_gives_its_volumes_zone_and_an_unbound_one_none() {
        let mut volumes = Volumes::default();
        let claim = |bound: Option<&str>| -> PersistentVolumeClaim {
            serde_json::from_value(json!({"metadata": {"name": "data-db-0", "namespace": "shop"},
                "spec": {"volumeName": bound}}))
            .expect("a valid claim")
        };
        let key = ("shop".to_string(), "data-db-0".to_string());
        let change = volumes.apply_claim(key.clone(), &claim(None));
        assert!(change.mountable && !change.binding, "{change:?}");
        let claims = ["cache".to_string(), "data-db-0".to_string()];
        assert_eq!(volumes.zone_of("shop", &claims), None, "waits for first consumer: any zone");
        assert!(volumes.apply_claim(key.clone(), &claim(Some("pv-1"))).binding);
        assert_eq!(volumes.zone_of("shop", &claims), None, "the volume is not seen yet");
        let pv = volume(json!({"metadata": {"name": "pv-1", "labels": {"topology.kubernetes.io/zone": "us-east-1a"}}}));
        assert!(volumes.apply_volume(&pv));
        assert!(!volumes.apply_volume(&pv), "the same zone again is no change");
        assert_eq!(volumes.zone_of("shop", &claims).as_deref(), Some("us-east-1a"));
        assert_eq!(volumes.zone_of("other", &claims), None, "claims are namespaced");
    }
}
