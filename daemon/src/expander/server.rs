//! The expander's listener: TLS always (CA refuses to connect otherwise), CA's
//! `grpcplugin.Expander`, and beside it `ballast.v1.Decisions` (the expander's records for
//! `ballast ctl decisions`), `grpc.health.v1` and reflection.

use std::future::Future;
use std::sync::Arc;

use ballast_proto::{grpcplugin, v1};
use tokio::net::TcpListener;
use tonic::transport::Server;

use super::service::{ExpanderService, ExpanderState};
use crate::control::ControlState;
use crate::control::server::{ServeError, tls_config, too_large_is_resource_exhausted};
use crate::control::service::DecisionsService;

/// Serves the expander on `listener` until `shutdown` resolves.
///
/// # Guarantees
/// Only TLS connections are accepted. A request above `max-message-bytes` is refused with
/// RESOURCE_EXHAUSTED before it is read; no call outlives `call-timeout`.
///
/// # Errors
/// No TLS configured, TLS files that cannot be read or used, the transport failing.
pub async fn serve(
    expander: Arc<ExpanderState>,
    control: Arc<ControlState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let settings = control.settings.clone();
    let Some(files) = &settings.tls else { return Err(ServeError::TlsRequired) };
    crate::tls::install();
    let builder = Server::builder()
        .timeout(settings.call_timeout)
        .tls_config(tls_config(files, "")?)
        .map_err(|error| ServeError::Tls { section: "", error })?;
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in ["grpcplugin.Expander", "ballast.v1.Decisions", ""] {
        health.set_service_status(name, tonic_health::ServingStatus::Serving).await;
    }
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ballast_proto::EXPANDER_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(ballast_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let max = settings.max_message_bytes;
    let expander_service = grpcplugin::expander_server::ExpanderServer::new(ExpanderService(expander))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let decisions = v1::decisions_server::DecisionsServer::new(DecisionsService(control.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let router = builder
        .layer(tower::util::MapResponseLayer::new(too_large_is_resource_exhausted))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(expander_service)
        .add_service(decisions);
    let stopping = control.stopping.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.send_replace(true);
    };
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    router.serve_with_incoming_shutdown(incoming, shutdown).await.map_err(ServeError::Transport)
}
