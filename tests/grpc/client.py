"""An independent client of Ballast's control API: Python grpcio, with no generated code.

It learns the services and message types from the server by reflection (grpcio-reflection),
then calls Status.Get, NodeGroups.List, Decisions.List, Explain.Node and, with a write
token, Nodes.Replace and NodeGroups.Replace (as a dry run), printing one line per call for daemon/tests/control.rs to check.
Usage: client.py HOST:PORT WRITE_TOKEN
"""

import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def main(address: str, token: str) -> None:
    channel = grpc.insecure_channel(address)
    reflection = ProtoReflectionDescriptorDatabase(channel)
    services = sorted(reflection.get_services())
    print("services:", ", ".join(services))
    pool = descriptor_pool.DescriptorPool(reflection)

    def call(service: str, method: str, request: dict, metadata: tuple = ()) -> dict:
        descriptor = pool.FindServiceByName(service).FindMethodByName(method)
        request_type = message_factory.GetMessageClass(descriptor.input_type)
        response_type = message_factory.GetMessageClass(descriptor.output_type)
        stub = channel.unary_unary(
            f"/{service}/{method}",
            request_serializer=request_type.SerializeToString,
            response_deserializer=response_type.FromString,
        )
        answer = stub(json_format.ParseDict(request, request_type()), timeout=40, metadata=metadata)
        return json_format.MessageToDict(answer, preserving_proto_field_name=True)

    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="ballast.v1.Status"))
    print("health:", health_pb2.HealthCheckResponse.ServingStatus.Name(health.status))

    status = call("ballast.v1.Status", "Get", {})
    print(f"status: mode={status['mode']} plugins={[p['name'] for p in status.get('plugins', [])]}")

    groups = call("ballast.v1.NodeGroups", "List", {"nodes": True})
    print("groups:", " ".join(g["id"] for g in groups["groups"]))

    page = call("ballast.v1.Decisions", "List", {"filter": {"plugin": "binpack"}, "page_size": 3})
    records = page.get("records", [])
    assert records, "no binpack decisions"
    assert all(r["decision"]["plugin"] == "binpack" for r in records), records
    print("decisions:", " ".join(r["id"] for r in records))

    node = next(n["name"] for g in groups["groups"] for n in g.get("nodes", []))
    explained = call("ballast.v1.Explain", "Node", {"name": node})
    print("explain:", explained["summary"])

    writer = (("authorization", f"Bearer {token}"),)
    staying = next(n["name"] for g in groups["groups"] if g["id"] != "fargate" for n in g.get("nodes", [])
                   if not n.get("being_removed"))
    replaced = call("ballast.v1.Nodes", "Replace", {"name": staying, "reason": "from python"}, writer)
    print("replace:", replaced["decision"]["decision"]["reason"])
    group = {"group": "general", "reason": "from python", "dry_run": True}
    print("replace group:", call("ballast.v1.NodeGroups", "Replace", group, writer)["change"])
    try:
        call("ballast.v1.Nodes", "Replace", {"name": "no-such-node", "reason": "from python"}, writer)
        raise SystemExit("an unknown node was replaced")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND, error
        print("not found:", error.details())

    try:
        call("ballast.v1.Decisions", "List", {"page_size": 5000})
        raise SystemExit("a page of 5000 was accepted")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
        print("invalid:", error.details())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
