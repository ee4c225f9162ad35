"""Asks a running fan-out what stock gRPC tooling asks, with the stock
Python clients: health (grpcio-health-checking) and, with --reflection, the
services and methods server reflection describes (grpcio-reflection).

Usage: probe.py HOST:PORT [--reflection]. Prints one JSON object.
"""
import json
import sys

import grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def health(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    statuses = {}
    for service in ["", "graphrelay.v1.Fanout"]:
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        statuses[service] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return statuses


def reflection(channel):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    def ask(**request):
        return next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=10))

    services = sorted(s.name for s in ask(list_services="").list_services_response.service)
    files = ask(file_containing_symbol="graphrelay.v1.Fanout").file_descriptor_response.file_descriptor_proto
    methods = []
    for raw in files:
        descriptor = descriptor_pb2.FileDescriptorProto.FromString(raw)
        for service in descriptor.service:
            methods += [f"{descriptor.package}.{service.name}/{m.name}" for m in service.method]
    return services, sorted(methods)


def main():
    with grpc.insecure_channel(sys.argv[1]) as channel:
        result = {"health": health(channel)}
        if "--reflection" in sys.argv:
            result["services"], result["methods"] = reflection(channel)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
