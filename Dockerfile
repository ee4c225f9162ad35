# The fan-out (graph-relay) as a container image:
#   docker build -t graph-relay .
#   docker run -p 50051:50051 -v graph-relay:/var/lib/graph-relay \
#     -e GRAPH_RELAY_INGEST_TOKEN=... -e GRAPH_RELAY_SUBSCRIBER_TOKEN=... graph-relay
# Readiness and liveness: grpc.health.v1 on port 50051 (Kubernetes' native
# gRPC probes, grpc-health-probe). Metrics: GET /metrics on 9464.
# docs/operations.md, "Running it", says what of this was built and run where.

# Build: the release binary without the Graph emulator (a development tool).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p graph-relay-fanout --no-default-features \
 && install -D -m 0755 target/release/graph-relay /out/graph-relay

# Run: a small Debian with CA certificates (Graph and Entra ID over TLS), as
# an unprivileged user, the log on a volume.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/graph-relay --create-home graph-relay
COPY --from=build /out/graph-relay /usr/local/bin/graph-relay
USER 10001
VOLUME /var/lib/graph-relay
ENV GRAPH_RELAY_LISTEN=0.0.0.0:50051 \
    GRAPH_RELAY_DATA_DIR=/var/lib/graph-relay \
    GRAPH_RELAY_METRICS_LISTEN=0.0.0.0:9464 \
    GRAPH_RELAY_LOG_FORMAT=json
EXPOSE 50051 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/graph-relay"]
CMD ["serve"]
