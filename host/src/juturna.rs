//! Juturna's remote nodes: node-host serves `MessagingService/SendAndReceive`
//! (gRPC), the call a Juturna pipeline's Warp node makes, and runs each
//! request's message in a fresh sandbox through the one runner. A media
//! payload's fields reach the node only where it declares an input of that
//! name.

pub mod payload;
mod service;

use std::net::SocketAddr;

pub use service::{DEFAULT_TTL, MAX_TTL, Messaging, Served};

/// The wire types and service stubs generated from `host/proto/juturna/`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    /// `juturna.proto.payloads`.
    pub mod payloads {
        tonic::include_proto!("juturna.proto.payloads");
    }
    /// `juturna.proto.messaging`.
    pub mod messaging {
        tonic::include_proto!("juturna.proto.messaging");
    }
}

/// Juturna's default port.
pub const DEFAULT_PORT: u16 = 50051;

/// The largest message either way: Juturna's 100 MiB.
pub const MAX_MESSAGE: usize = 100 << 20;

/// Serves `messaging` on every listener until `shutdown` resolves; requests
/// in flight then finish.
pub async fn serve(
    listeners: Vec<tokio::net::TcpListener>,
    messaging: Messaging,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    use futures_util::StreamExt as _;
    let service =
        proto::messaging::messaging_service_server::MessagingServiceServer::new(messaging)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
    let incoming = futures_util::stream::select_all(listeners.into_iter().map(|listener| {
        tonic::transport::server::TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .boxed()
    }));
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// The addresses to listen on by default: loopback, IPv4 and IPv6.
pub fn default_listen() -> Vec<SocketAddr> {
    vec![
        SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, DEFAULT_PORT)),
    ]
}
