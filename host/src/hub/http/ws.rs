//! The hub's WebSockets: Hurozo workers (`/ws?auth=<token>`) and hosted
//! workers (`/api/hosted/ws`). Each connection is one [`pump`]: frames the
//! service queues go out, frames that come in go to the service.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use futures_util::{SinkExt as _, StreamExt as _};

use super::auth::HostedWorker;
use crate::core::AccountId;
use crate::hub::service::{Hub, HubError};

/// A worker's connect URL with a valid token: its account and the nodes
/// the connection serves. Checked before the upgrade.
pub struct WorkerClaims(AccountId, HashSet<String>);

impl FromRequestParts<Arc<Hub>> for WorkerClaims {
    type Rejection = HubError;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub>) -> Result<Self, HubError> {
        let (account, nodes) = hub.accept_worker(parts.uri.query())?;
        Ok(Self(account, nodes))
    }
}

/// `GET /ws?auth=<token>`: a Hurozo worker's connection.
pub async fn worker(
    State(hub): State<Arc<Hub>>,
    WorkerClaims(account, nodes): WorkerClaims,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade.on_upgrade(move |socket| async move {
        let (link, outbox) = hub.worker_connected(account, nodes);
        pump(socket, outbox, None, |text| hub.worker_frame(link, text)).await;
        hub.disconnected(link, "worker");
    })
}

/// `GET /api/hosted/ws`: a hosted worker's connection.
pub async fn hosted_worker(
    State(hub): State<Arc<Hub>>,
    _worker: HostedWorker,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade.on_upgrade(move |socket| async move {
        let (link, outbox, hello) = hub.hosted_worker_connected();
        pump(socket, outbox, Some(hello), |text| {
            hub.hosted_worker_frame(link, text);
        })
        .await;
        hub.disconnected(link, "hosted worker");
    })
}

/// Moves one connection's frames until either side ends: `first` then
/// whatever arrives on `outbox` goes out; each text frame that comes in
/// goes to `on_text`.
async fn pump(
    socket: WebSocket,
    mut outbox: tokio::sync::mpsc::UnboundedReceiver<String>,
    first: Option<String>,
    mut on_text: impl FnMut(&str),
) {
    let (mut sink, mut stream) = socket.split();
    let writer = async {
        if let Some(text) = first
            && sink.send(Message::Text(text.into())).await.is_err()
        {
            return;
        }
        // Frames queued while the last ones were written go out with one
        // flush: `send_all` flushes only when the outbox has nothing ready.
        let mut frames = futures_util::stream::poll_fn(|cx| outbox.poll_recv(cx))
            .map(|text| Ok(Message::Text(text.into())));
        let _ = sink.send_all(&mut frames).await;
    };
    let reader = async {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Text(text) => on_text(text.as_str()),
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    tokio::select! {
        () = writer => {}
        () = reader => {}
    }
}
