"""Cluster Autoscaler's side of the expander protocol, in Python grpcio: an implementation
independent of tonic and prost, with stubs generated (grpcio-tools) from the same
proto/grpcplugin/expander.proto and Kubernetes protos the server is built from.

It offers three groups for three pending pods (on-demand m5.large `general`, on-demand
c5.xlarge `compute`, tainted spot m5.large `spot`), first with pods that do not tolerate the
spot taint, then with pods that do, each in both encodings CA uses (nodeBytesMap/podBytes
and the deprecated nodeMap/pod), and prints one line per call for daemon/tests/expander.rs:
`<form>, <tolerant|intolerant>: <answered groups>`. Usage: expander_client.py HOST:PORT CA.pem
"""

import os
import sys
import tempfile

import grpc
from grpc_tools import protoc

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")
PROTOS = [
    "grpcplugin/expander.proto",
    "k8s/io/api/core/v1/generated.proto",
    "k8s/io/apimachinery/pkg/api/resource/generated.proto",
    "k8s/io/apimachinery/pkg/apis/meta/v1/generated.proto",
]


def generate() -> None:
    out = tempfile.mkdtemp(prefix="expander-stubs-")
    status = protoc.main(["protoc", f"-I{ROOT}", f"--python_out={out}", f"--grpc_python_out={out}", *PROTOS])
    if status != 0:
        sys.exit(f"grpc_tools.protoc failed with {status}")
    sys.path.insert(0, out)


generate()
from grpcplugin import expander_pb2, expander_pb2_grpc  # noqa: E402
from k8s.io.api.core.v1 import generated_pb2 as core  # noqa: E402


def quantities(message_map, values: dict) -> None:
    for name, text in values.items():
        message_map[name].string = text


def template(group: str, instance: str, cpu: str, memory: str, spot: bool) -> core.Node:
    node = core.Node()
    node.metadata.name = f"template-node-for-{group}-123"
    labels = {"node.kubernetes.io/instance-type": instance, "topology.kubernetes.io/zone": "us-east-1a"}
    if spot:
        labels["eks.amazonaws.com/capacityType"] = "SPOT"
        node.spec.taints.add(key="spot", value="true", effect="NoSchedule")
    node.metadata.labels.update(labels)
    quantities(node.status.capacity, {"cpu": "4", "memory": "16Gi", "pods": "58"})
    quantities(node.status.allocatable, {"cpu": cpu, "memory": memory, "pods": "29"})
    return node


def pod(name: str, tolerant: bool) -> core.Pod:
    p = core.Pod()
    p.metadata.name = name
    p.metadata.namespace = "shop"
    p.metadata.ownerReferences.add(kind="ReplicaSet", name="web-7d9f8c", controller=True)
    container = p.spec.containers.add(name="web")
    quantities(container.resources.requests, {"cpu": "500m", "memory": "1Gi"})
    if tolerant:
        p.spec.tolerations.add(key="spot", operator="Equal", value="true", effect="NoSchedule")
    return p


def request(tolerant: bool, form: str) -> expander_pb2.BestOptionsRequest:
    pods = [pod(f"web-7d9f8c-{i}", tolerant) for i in range(3)]
    groups = [
        ("general", template("general", "m5.large", "1930m", "7Gi", False)),
        ("compute", template("compute", "c5.xlarge", "3920m", "6Gi", False)),
        ("spot", template("spot", "m5.large", "1930m", "7Gi", True)),
    ]
    req = expander_pb2.BestOptionsRequest()
    for group, node in groups:
        option = req.options.add(nodeGroupId=group, nodeCount=1, debug=f"{group}: 1 node(s)")
        if form == "bytes":
            option.podBytes.extend(p.SerializeToString() for p in pods)
            req.nodeBytesMap[group] = node.SerializeToString()
        else:
            option.pod.extend(pods)
            req.nodeMap[group].CopyFrom(node)
    return req


def main(address: str, ca_file: str) -> None:
    with open(ca_file, "rb") as f:
        credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
    port = address.rsplit(":", 1)[1]
    # The server's certificate names localhost, as CA's --grpc-expander-cert would name it.
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        stub = expander_pb2_grpc.ExpanderStub(channel)
        for tolerant in (False, True):
            for form in ("bytes", "messages"):
                answer = stub.BestOptions(request(tolerant, form), timeout=5)
                groups = ",".join(o.nodeGroupId for o in answer.options)
                print(f"{form}, {'tolerant' if tolerant else 'intolerant'}: {groups}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
