// A Graph Relay subscriber in Node.js: every change to users' messages,
// resuming after any error from the last sequence it handled.
//
// @grpc/grpc-js with @grpc/proto-loader, which reads the .proto files at
// start: nothing generated is checked in. Configure with the environment:
//
//   GRAPH_RELAY_SERVER          host:port of the fan-out (default 127.0.0.1:50051)
//   GRAPH_RELAY_TOKEN           the subscriber's bearer token
//   GRAPH_RELAY_AFTER_SEQUENCE  resume after this sequence (a team persists its
//                               cursor; unset: live from now)
//   GRAPH_RELAY_PROTO           the proto directory (default: ../../proto)
"use strict";

const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const protoDir = process.env.GRAPH_RELAY_PROTO || path.join(__dirname, "..", "..", "proto");
const definition = protoLoader.loadSync("graphrelay/v1/fanout.proto", {
  includeDirs: [protoDir],
  // Sequences are uint64: strings keep every digit.
  longs: String,
  defaults: true,
  oneofs: true,
});
const { Fanout } = grpc.loadPackageDefinition(definition).graphrelay.v1;

const server = process.env.GRAPH_RELAY_SERVER || "127.0.0.1:50051";
const token = process.env.GRAPH_RELAY_TOKEN;
let cursor = process.env.GRAPH_RELAY_AFTER_SEQUENCE || null;
const client = new Fanout(server, grpc.credentials.createInsecure());

function follow() {
  const request = { filter: { resources: ["users/*/messages/*"] } };
  if (cursor !== null) request.afterSequence = cursor;
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  const stream = client.subscribe(request, metadata);
  stream.on("data", (batch) => {
    for (const event of batch.events) {
      if (event.payload === "change") {
        console.log(event.sequence, event.change.changeType, event.change.resource);
      }
      cursor = event.sequence; // handled: resume after it
    }
  });
  stream.on("error", (error) => {
    if (error.code === grpc.status.UNAUTHENTICATED || error.code === grpc.status.PERMISSION_DENIED) {
      console.error(error.details);
      process.exit(1);
    }
    console.error(`${grpc.status[error.code]}: ${error.details}; resuming after ${cursor} in a second`);
    setTimeout(follow, 1000);
  });
  stream.on("end", () => {});
}

if (!token) {
  console.error("set GRAPH_RELAY_TOKEN to the subscriber's bearer token");
  process.exit(1);
}
follow();
