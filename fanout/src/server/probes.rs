//! What operators and tools ask of a gRPC server before any call of ours:
//! `grpc.health.v1` on both ports (a load balancer, Kubernetes, a stock
//! client such as Python's `grpcio-health-checking`) and server reflection
//! (v1, and v1alpha for older grpcurl) on the main port, so any language's
//! tooling can call the service without the .proto files.

use tonic::server::NamedService;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;

use crate::grpc::service::FanoutService;
use crate::pb::fanout_server::FanoutServer;

/// The health service, shared by both ports.
pub(crate) type Health = HealthServer<HealthService>;

/// The service name health checks ask about besides "" (the whole server).
pub(crate) const FANOUT: &str = <FanoutServer<FanoutService> as NamedService>::NAME;

/// Sets what the health service answers.
#[derive(Clone)]
pub(crate) struct Probes {
    reporter: HealthReporter,
    /// Set once the server drains: nothing makes it serve again.
    draining: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Probes {
    /// The reporter and the service it feeds; both names serve from the start
    /// (the log opened before the ports were bound).
    pub(crate) async fn new() -> (Self, Health) {
        let reporter = HealthReporter::new();
        reporter.set_service_status(FANOUT, ServingStatus::Serving).await;
        let service = HealthServer::new(HealthService::from_health_reporter(reporter.clone()));
        (Self { reporter, draining: Default::default() }, service)
    }

    /// Draining, or the log cannot be written: route callers elsewhere.
    pub(crate) async fn not_serving(&self) {
        self.draining.store(true, std::sync::atomic::Ordering::Release);
        self.set(ServingStatus::NotServing).await;
    }

    async fn set(&self, status: ServingStatus) {
        for name in ["", FANOUT] {
            self.reporter.set_service_status(name, status).await;
        }
    }

    /// Reports NOT_SERVING while the shared log is out of reach (Publish
    /// cannot store, streams cannot go on), SERVING again once it is back.
    pub(crate) async fn follow(self, mut connected: tokio::sync::watch::Receiver<bool>) {
        loop {
            let up = *connected.borrow_and_update();
            if self.draining.load(std::sync::atomic::Ordering::Acquire) {
                return;
            }
            self.set(if up { ServingStatus::Serving } else { ServingStatus::NotServing }).await;
            if connected.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Reflection over the contract and the health service (build it with
/// `build_v1` or `build_v1alpha`).
pub(crate) fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}
