"""A starter Ballast policy in Python. Copy this folder and edit `evaluate`.

Build (componentize-py, from PyPI):
    componentize-py -d path/to/sdk/wit -w plugin componentize app -p . -o my_policy.wasm
Try it:
    ballast plugin run my_policy.wasm --snapshot snapshot.yaml --settings '{"warm-nodes": 2}'

This one keeps `warm-nodes` nodes in every EC2 node group that has pods waiting.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import policy
from wit_world.imports import host, types


def parse_settings(text: str) -> dict:
    settings = json.loads(text) if text.strip() not in ("", "null") else {}
    warm = settings.get("warm-nodes", 1)
    if not isinstance(warm, int) or warm < 0:
        # Raising Err refuses the plugin at load with this message: name the setting and value.
        raise Err(f"warm-nodes must be a whole number >= 0, got {warm!r}")
    return {"warm_nodes": warm}


class Policy(exports.Policy):
    def validate_settings(self, settings: str) -> None:
        parse_settings(settings)

    def evaluate(self, snapshot) -> policy.Evaluation:
        settings = parse_settings(snapshot.settings())
        # Each getter fetches from the host on call: read only what you need. Besides nodes,
        # groups, pods and workloads: snapshot.metrics(), the CloudWatch series this policy's
        # configuration names (each a types.MetricSeries: name, points, read_at_millis, error).
        # pending_shapes() groups the pending pods (alike for placement) with a count: far
        # cheaper than pending_pods() when many replicas wait. Ephemeral storage is not in
        # `resources`: each *_storage() getter lists it beside the getter it completes, in
        # the same order (pending_shape_storage()[i] is what each pod of pending_shapes()[i]
        # asks; node_group_storage(), node_storage(), workload_storage() and so on).
        pending = sum(shape.count for shape in snapshot.pending_shapes())
        decisions = []
        for group in snapshot.node_groups():
            if group.kind != types.NodeGroupKind.ASG or pending == 0:
                continue
            target = min(group.max_size, max(group.desired_size, settings["warm_nodes"]))
            if target > group.desired_size:
                decisions.append(types.Decision(
                    action=types.Action_ScaleTo(types.ScaleTo(group=group.id, size=target)),
                    reason=f"{pending} pods pending: keep {target} warm nodes in {group.id}",
                ))
        host.log(host.Level.INFO, f"{len(decisions)} decisions")
        # `state` (bytes) is handed back next time as snapshot.state(); None keeps the old one.
        return policy.Evaluation(decisions=decisions, state=None)
