//! Juturna's remote nodes: node-host serves `MessagingService/SendAndReceive`
//! (gRPC), the call a Juturna pipeline's Warp node makes, and runs each
//! request's message in a fresh sandbox through the one runner. A media
//! payload's fields reach the node only where it declares an input of that
//! name.

mod drain;
pub mod payload;
mod service;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use drain::Drain;
pub use service::{DEFAULT_TTL, MAX_TTL, Messaging, Served, code_name};

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

/// How long a stopping server keeps its connections after its last reply,
/// so that the replies and its goodbye reach the callers.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Serves `messaging`, and the gRPC health service (`grpc.health.v1`), on
/// every listener until `shutdown` resolves. Then it drains: new requests
/// get `UNAVAILABLE` with the reason and health says `NOT_SERVING`, while
/// the requests in hand run to their end, for at most `grace`.
pub async fn serve(
    listeners: Vec<tokio::net::TcpListener>,
    messaging: Messaging,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), tonic::transport::Error> {
    use futures_util::StreamExt as _;
    use proto::messaging::messaging_service_server::MessagingServiceServer;
    let drain = messaging.drain();
    let service = MessagingServiceServer::new(messaging)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<MessagingServiceServer<Messaging>>()
        .await;
    let incoming = futures_util::stream::select_all(listeners.into_iter().map(|listener| {
        tonic::transport::server::TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .boxed()
    }));
    let drained = Arc::new(tokio::sync::Notify::new());
    let stop = {
        let drain = drain.clone();
        let drained = drained.clone();
        async move {
            shutdown.await;
            drain.begin();
            health
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
            health
                .set_not_serving::<MessagingServiceServer<Messaging>>()
                .await;
            let in_hand = drain.in_hand();
            if in_hand > 0 {
                tracing::info!(
                    "stopping: waiting for {in_hand} requests in hand (at most {grace:?})"
                );
            }
            if tokio::time::timeout(grace, drain.idle()).await.is_err() {
                tracing::warn!(
                    "stopping: {} requests still running after the grace period; they are cut off",
                    drain.in_hand()
                );
            }
            drained.notify_one();
        }
    };
    let server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, stop);
    // The server's own shutdown waits for every connection to close; once
    // the drain is over, a caller that keeps its connection open does not
    // hold the process.
    tokio::select! {
        served = server => served,
        () = async {
            drained.notified().await;
            tokio::time::sleep(CLOSE_WAIT).await;
        } => Ok(()),
    }
}

/// The addresses to listen on by default: loopback, IPv4 and IPv6.
pub fn default_listen() -> Vec<SocketAddr> {
    vec![
        SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, DEFAULT_PORT)),
    ]
}
