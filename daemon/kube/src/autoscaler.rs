//! HorizontalPodAutoscalers (autoscaling/v2) as the bounds they keep a workload within:
//! what the snapshot's `horizontal-autoscalers` (contract 0.1.7) serves.

use ballast_engine::unreadable::BadValue;
use ballast_sdk::{HorizontalAutoscaler, WorkloadKind, WorkloadRef};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;

/// The bounds one HorizontalPodAutoscaler keeps its target within.
///
/// # Errors
/// A [`BadValue`] naming `spec.maxReplicas` when it is below 1 or below `spec.minReplicas`,
/// or `spec.minReplicas` when it is negative: an autoscaler the API server would not have
/// admitted, whose bounds mean nothing.
pub fn bounds(hpa: &HorizontalPodAutoscaler) -> Result<Option<HorizontalAutoscaler>, BadValue> {
    let Some(spec) = hpa.spec.as_ref() else { return Ok(None) };
    let min = spec.min_replicas.unwrap_or(1);
    if min < 0 {
        return Err(bad("spec.minReplicas", min, "must not be negative".into()));
    }
    if spec.max_replicas < 1 || spec.max_replicas < min {
        let why = format!("must be at least 1 and at least spec.minReplicas ({min})");
        return Err(bad("spec.maxReplicas", spec.max_replicas, why));
    }
    let target = &spec.scale_target_ref;
    Ok(Some(HorizontalAutoscaler {
        target: WorkloadRef {
            kind: target_kind(&target.kind),
            namespace: hpa.metadata.namespace.clone().unwrap_or_default(),
            name: target.name.clone(),
        },
        min_replicas: min as u32,
        max_replicas: spec.max_replicas as u32,
    }))
}

fn bad(field: &str, value: i32, error: String) -> BadValue {
    BadValue { field: field.into(), value: value.to_string(), error }
}

/// The kinds of workload Ballast follows that an autoscaler can scale; any other target (a
/// custom resource with a scale subresource) is `Other`, which no workload of the snapshot is.
fn target_kind(kind: &str) -> WorkloadKind {
    match kind {
        "Deployment" => WorkloadKind::Deployment,
        "StatefulSet" => WorkloadKind::StatefulSet,
        "ReplicaSet" => WorkloadKind::ReplicaSet,
        _ => WorkloadKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::autoscaling::v2::{CrossVersionObjectReference, HorizontalPodAutoscalerSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn hpa(kind: &str, min: Option<i32>, max: i32) -> HorizontalPodAutoscaler {
        HorizontalPodAutoscaler {
            metadata: ObjectMeta { name: Some("web".into()), namespace: Some("shop".into()), ..Default::default() },
            spec: Some(HorizontalPodAutoscalerSpec {
                scale_target_ref: CrossVersionObjectReference {
                    api_version: Some("apps/v1".into()),
                    kind: kind.into(),
                    name: "storefront".into(),
                },
                min_replicas: min,
                max_replicas: max,
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn an_autoscaler_bounds_its_target_in_its_own_namespace_with_min_one_when_unset() {
        let got = bounds(&hpa("Deployment", None, 60)).unwrap().unwrap();
        assert_eq!(
            got.target,
            WorkloadRef { kind: WorkloadKind::Deployment, namespace: "shop".into(), name: "storefront".into() }
        );
        assert_eq!((got.min_replicas, got.max_replicas), (1, 60));
        let rollout = bounds(&hpa("Rollout", Some(2), 9)).unwrap().unwrap();
        assert_eq!((rollout.target.kind, rollout.min_replicas), (WorkloadKind::Other, 2));
    }

    #[test]
    fn bounds_the_api_server_would_refuse_name_the_field_and_value() {
        let below_min = bounds(&hpa("Deployment", Some(5), 3)).unwrap_err();
        assert_eq!((below_min.field.as_str(), below_min.value.as_str()), ("spec.maxReplicas", "3"));
        let negative = bounds(&hpa("Deployment", Some(-1), 3)).unwrap_err();
        assert_eq!((negative.field.as_str(), negative.value.as_str()), ("spec.minReplicas", "-1"));
    }
}
