//! The control API's server: TLS when configured, every service with its size caps, a
//! deadline on every call, `grpc.health.v1` and server reflection.

use std::future::Future;
use std::sync::Arc;

use ballast_proto::v1;
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use super::ControlState;
use super::service::{
    DecisionsService, ExplainService, ModeService, NodeGroupsService, NodesService, PluginsService, SimulateService,
    StatusService,
};
use super::settings::TlsFiles;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// `section` is where `tls` sits in the configuration file: `control.` for the daemon's
    /// control API, empty for the expander's.
    #[error("{section}tls.{field}: cannot read {path}: {source}")]
    TlsFile { section: &'static str, field: &'static str, path: String, source: std::io::Error },
    #[error("{section}tls: {error}")]
    Tls { section: &'static str, error: tonic::transport::Error },
    #[error("tls: required: Cluster Autoscaler connects to its expander only over TLS")]
    TlsRequired,
    #[error("server reflection: {0}")]
    Reflection(String),
    #[error("the gRPC listener stopped: {0}")]
    Transport(tonic::transport::Error),
}

/// rustls's server configuration from the files `tls` names, at `section` of the configuration
/// (for errors).
pub(crate) fn tls_config(files: &TlsFiles, section: &'static str) -> Result<ServerTlsConfig, ServeError> {
    let read = |field: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|source| ServeError::TlsFile {
            section,
            field,
            path: path.display().to_string(),
            source,
        })
    };
    let identity = Identity::from_pem(read("cert", &files.cert)?, read("key", &files.key)?);
    let mut tls = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &files.client_ca {
        // Optional: token holders connect without a certificate; one that is presented must
        // verify against this CA.
        tls = tls.client_ca_root(Certificate::from_pem(read("client-ca", ca)?)).client_auth_optional(true);
    }
    Ok(tls)
}

/// tonic refuses a request above the size cap with OUT_OF_RANGE; gRPC's status codes (and
/// every other implementation) say RESOURCE_EXHAUSTED, which is what clients retry on or not.
/// The refusal is a trailers-only response, so its status is in the headers.
pub(crate) fn too_large_is_resource_exhausted(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let headers = response.headers_mut();
    let too_large = headers.get("grpc-status").is_some_and(|v| v == "11")
        && headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| m.contains("too large") || m.contains("too%20large"));
    if too_large {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    response
}

/// Serves the control API on `listener` until `shutdown` resolves.
///
/// # Guarantees
/// Every request above `max-message-bytes` is refused with RESOURCE_EXHAUSTED before it is
/// handled; no call outlives `call-timeout` (or the client's shorter deadline).
///
/// # Errors
/// TLS files that cannot be read or used; the transport failing.
pub async fn serve(
    state: Arc<ControlState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let settings = state.settings.clone();
    let mut builder = Server::builder().timeout(settings.call_timeout);
    if let Some(files) = &settings.tls {
        crate::tls::install();
        let section = "control.";
        builder =
            builder.tls_config(tls_config(files, section)?).map_err(|error| ServeError::Tls { section, error })?;
    }
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in [
        "ballast.v1.Status",
        "ballast.v1.NodeGroups",
        "ballast.v1.Nodes",
        "ballast.v1.Decisions",
        "ballast.v1.Plugins",
        "ballast.v1.Mode",
        "ballast.v1.Simulate",
        "ballast.v1.Explain",
        "",
    ] {
        health.set_service_status(name, tonic_health::ServingStatus::Serving).await;
    }
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(ballast_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // Both versions: grpcurl and newer clients ask v1, grpcio-reflection and older ones v1alpha.
    let reflection_v1 = reflection().build_v1().map_err(|e| ServeError::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(|e| ServeError::Reflection(e.to_string()))?;
    let max = settings.max_message_bytes;
    macro_rules! capped {
        ($server:path, $service:expr) => {
            <$server>::new($service).max_decoding_message_size(max).max_encoding_message_size(max)
        };
    }
    let router = builder
        .layer(tower::util::MapResponseLayer::new(too_large_is_resource_exhausted))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(capped!(v1::status_server::StatusServer<_>, StatusService(state.clone())))
        .add_service(capped!(v1::node_groups_server::NodeGroupsServer<_>, NodeGroupsService(state.clone())))
        .add_service(capped!(v1::nodes_server::NodesServer<_>, NodesService(state.clone())))
        .add_service(capped!(v1::decisions_server::DecisionsServer<_>, DecisionsService(state.clone())))
        .add_service(capped!(v1::plugins_server::PluginsServer<_>, PluginsService(state.clone())))
        .add_service(capped!(v1::mode_server::ModeServer<_>, ModeService(state.clone())))
        .add_service(capped!(v1::simulate_server::SimulateServer<_>, SimulateService(state.clone())))
        .add_service(capped!(v1::explain_server::ExplainServer<_>, ExplainService(state.clone())));
    let stopping = state.stopping.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.send_replace(true);
    };
    // Without TCP_NODELAY, small answers wait for the peer's delayed ACK (about 40 ms each).
    let incoming = tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(std::time::Duration::from_secs(60)));
    router.serve_with_incoming_shutdown(incoming, shutdown).await.map_err(ServeError::Transport)
}
