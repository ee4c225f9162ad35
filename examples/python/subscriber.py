"""A Graph Relay subscriber in Python: every change to users' messages,
resuming after any error from the last sequence it handled.

Needs grpcio and grpcio-tools (requirements.txt); the stubs are built from
the .proto files at start (grpc.protos_and_services), so nothing generated
is checked in. Configure with the environment:

  GRAPH_RELAY_SERVER          host:port of the fan-out (default 127.0.0.1:50051)
  GRAPH_RELAY_TOKEN           the subscriber's bearer token
  GRAPH_RELAY_AFTER_SEQUENCE  resume after this sequence (a team persists its
                              cursor; unset: live from now)
  GRAPH_RELAY_PROTO           the proto directory (default: ../../proto)
"""

import os
import sys
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.append(os.environ.get("GRAPH_RELAY_PROTO", os.path.join(HERE, "..", "..", "proto")))
protos, services = grpc.protos_and_services("graphrelay/v1/fanout.proto")


def follow(server, token, cursor):
    """Prints events until the stream fails; returns the new cursor and the error."""
    request = protos.SubscribeRequest(filter=protos.Filter(resources=["users/*/messages/*"]))
    if cursor is not None:
        request.after_sequence = cursor
    with grpc.insecure_channel(server) as channel:
        stub = services.FanoutStub(channel)
        try:
            for batch in stub.Subscribe(request, metadata=[("authorization", f"Bearer {token}")]):
                for event in batch.events:
                    if event.WhichOneof("payload") == "change":
                        print(event.sequence, event.change.change_type, event.change.resource, flush=True)
                    cursor = event.sequence  # handled: resume after it
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                raise
            return cursor, f"{error.code().name}: {error.details()}"
    return cursor, "the stream ended"


def main():
    server = os.environ.get("GRAPH_RELAY_SERVER", "127.0.0.1:50051")
    token = os.environ["GRAPH_RELAY_TOKEN"]
    after = os.environ.get("GRAPH_RELAY_AFTER_SEQUENCE")
    cursor = int(after) if after else None
    while True:
        cursor, reason = follow(server, token, cursor)
        print(f"{reason}; resuming after {cursor} in a second", file=sys.stderr, flush=True)
        time.sleep(1)


if __name__ == "__main__":
    main()
