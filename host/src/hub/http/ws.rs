//! The hub's WebSockets: Hurozo workers (`/ws?auth=<token>`) and hosted
//! workers (`/api/hosted/ws`). Each connection is one [`pump`]: frames the
//! service queues go out, frames that come in go to the service.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use futures_util::{SinkExt as _, StreamExt as _};

use super::auth::HostedWorker;
use crate::hub::service::{Hub, HubError, WorkerClaims};
use crate::hub::store::{TokenId, TokenKind};

/// The largest message a worker may send (a reply with its outputs and
/// logs): 16 times the default output limit. A bigger one ends the
/// connection; bounded so that no worker makes the hub buffer and parse
/// tens of MiB at once.
pub const MAX_MESSAGE: usize = 16 << 20;

/// A worker's connect URL with a valid token. Checked before the upgrade.
pub struct Claims(WorkerClaims);

impl FromRequestParts<Arc<Hub>> for Claims {
    type Rejection = HubError;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub>) -> Result<Self, HubError> {
        hub.accept_worker(parts.uri.query()).await.map(Claims)
    }
}

/// `GET /ws?auth=<token>`: a Hurozo worker's connection.
pub async fn worker(
    State(hub): State<Arc<Hub>>,
    Claims(claims): Claims,
    upgrade: WebSocketUpgrade,
) -> Response {
    let upgrade = upgrade
        .read_buffer_size(crate::protocol::WS_READ_BUFFER)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE);
    upgrade.on_upgrade(move |socket| async move {
        let (link, outbox) = hub.worker_connected(claims.account, claims.nodes);
        let token = (TokenKind::Api, claims.api_token);
        pump(&hub, socket, outbox, None, token, |text| {
            hub.worker_frame(link, text)
        })
        .await;
        hub.disconnected(link, "worker");
    })
}

/// `GET /api/hosted/ws`: a hosted worker's connection.
pub async fn hosted_worker(
    State(hub): State<Arc<Hub>>,
    HostedWorker(token): HostedWorker,
    upgrade: WebSocketUpgrade,
) -> Response {
    let upgrade = upgrade
        .read_buffer_size(crate::protocol::WS_READ_BUFFER)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE);
    upgrade.on_upgrade(move |socket| async move {
        let (link, outbox, hello) = hub.hosted_worker_connected();
        let token = (TokenKind::Worker, token);
        pump(&hub, socket, outbox, Some(hello), token, |text| {
            hub.hosted_worker_frame(link, text);
        })
        .await;
        hub.disconnected(link, "hosted worker");
    })
}

/// The close code of a connection whose token was revoked (RFC 6455's
/// "policy violation").
const REVOKED: u16 = 1008;

/// Moves one connection's frames until either side ends, the peer is
/// silent for two keepalive periods (a ping goes out every period; any
/// frame from the peer counts, its own pings included), or the `token` it
/// was opened with is revoked or expires (checked every
/// [`Hub::token_recheck`]): `first` then whatever arrives on `outbox` goes
/// out; each text frame that comes in goes to `on_text`. Ending fails the
/// events in flight on it at once.
async fn pump(
    hub: &Hub,
    socket: WebSocket,
    mut outbox: tokio::sync::mpsc::UnboundedReceiver<String>,
    first: Option<String>,
    token: (TokenKind, TokenId),
    mut on_text: impl FnMut(&str),
) {
    let keepalive = hub.keepalive();
    let (mut sink, mut stream) = socket.split();
    let opened = Instant::now();
    // When the peer was last heard from, in nanoseconds since `opened`.
    let heard = AtomicU64::new(0);
    let silent_for = || {
        let last = Duration::from_nanos(heard.load(Ordering::Relaxed));
        opened.elapsed().saturating_sub(last)
    };
    let writer = async {
        if let Some(text) = first
            && sink.send(Message::Text(text.into())).await.is_err()
        {
            return;
        }
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        let recheck = hub.token_recheck();
        let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + recheck, recheck);
        loop {
            tokio::select! {
                frame = outbox.recv() => {
                    let Some(text) = frame else { return };
                    // Frames queued while the last ones were written go out
                    // with one flush.
                    let mut fed = sink.feed(Message::Text(text.into())).await;
                    while fed.is_ok() && let Ok(text) = outbox.try_recv() {
                        fed = sink.feed(Message::Text(text.into())).await;
                    }
                    if fed.is_err() || sink.flush().await.is_err() {
                        return;
                    }
                }
                _ = ping.tick() => {
                    if silent_for() > 2 * keepalive {
                        tracing::warn!("a worker stopped answering pings; dropping its connection");
                        return;
                    }
                    if sink.send(Message::Ping(Default::default())).await.is_err() {
                        return;
                    }
                }
                _ = recheck.tick() => {
                    if !hub.token_live(token.0, token.1).await {
                        tracing::info!("closing a worker connection: its token was revoked or expired");
                        let close = CloseFrame {
                            code: REVOKED,
                            reason: "the token was revoked or has expired".into(),
                        };
                        let _ = sink.send(Message::Close(Some(close))).await;
                        return;
                    }
                }
            }
        }
    };
    let reader = async {
        while let Some(Ok(message)) = stream.next().await {
            let now = opened.elapsed().as_nanos();
            heard.store(u64::try_from(now).unwrap_or(u64::MAX), Ordering::Relaxed);
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
