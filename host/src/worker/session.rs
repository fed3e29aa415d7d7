//! The one WebSocket session loop of every control plane that pushes events
//! over a WebSocket: the Hurozo worker and the hosted worker.
//!
//! A [`ControlPlane`] says what to connect to (after registering, if its
//! platform wants that), when a refusal is final, and what a frame means;
//! this module does the rest, once: connect with a timeout, back off with
//! jitter, read frames while fewer than the plane's capacity of events are
//! in flight, send everything the [`Outbox`] holds with one flush, ping
//! and notice a silent peer, and on a stop finish the events in flight (up
//! to the grace period) before closing.
//!
//! It refuses to treat anything but the plane's own refusal at start-up as
//! fatal, and to send a reply on a connection other than the one its event
//! came on (each session has its own outbox; replies of a lost session are
//! dropped with it).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use tokio::sync::{Notify, oneshot, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use super::{Backoff, error_chain};
use crate::core::executors;

/// A ping goes out this often; a peer silent for two periods is gone.
pub const KEEPALIVE: Duration = Duration::from_secs(20);

/// While events are in flight the session also looks for ready replies
/// this often: a reply put off until its executor's batch ends
/// ([`executors::after_batch`]) is never held longer than this behind a
/// slow event that thread started next.
pub const STRAGGLERS_EVERY: Duration = Duration::from_millis(5);

/// Frames taken at most, of those already read off the socket, before the
/// replies they made are sent.
pub const BURST_FRAMES: usize = 32;

/// How long the session takes frames already read before it sends the
/// replies they made (a reply waits at most this, plus one event).
pub const BURST_TIME: Duration = Duration::from_micros(200);

/// How long a WebSocket connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The request a session connects with.
pub type ConnectRequest = tungstenite::handshake::client::Request;

/// Why an attempt to connect failed.
#[derive(Debug)]
pub enum Failed<E> {
    /// The platform refused us: final at start-up (a bad token), retried
    /// later on (the platform may be restarting).
    Refused(E),
    /// Worth retrying: why, for the log.
    Retry(String),
}

/// Where events come from and where their replies go, for a platform that
/// pushes events over a WebSocket. One implementation per platform.
pub trait ControlPlane: Send + Sync {
    /// A refusal that ends the worker at start-up.
    type Refusal: std::fmt::Display;

    /// Who is at the other end, for logs: "the backend", "the hub".
    fn peer(&self) -> &'static str;

    /// What to connect to, made afresh before every connect (a Hurozo
    /// worker registers its nodes here, so that a restarted backend learns
    /// them at once).
    fn connect_request(
        &self,
    ) -> impl Future<Output = Result<ConnectRequest, Failed<Self::Refusal>>> + Send;

    /// What a failed connect means (by default: retry).
    fn connect_failed(&self, err: &tungstenite::Error, url: &str) -> Failed<Self::Refusal> {
        Failed::Retry(format!(
            "cannot open the WebSocket at {url}: {}",
            error_chain(err)
        ))
    }

    /// Events in flight beyond which the session stops reading (they then
    /// wait in the platform, where another worker may take them); `None`
    /// when the platform bounds what it sends.
    fn capacity(&self) -> Option<usize>;

    /// Acts on one text frame; true when it started an event, whose reply
    /// it then sends exactly once with [`Outbox::reply`].
    fn receive(&self, text: &str, outbox: &Outbox) -> bool;

    /// How often a ping goes out; a peer silent for two periods while the
    /// session reads is gone ([`KEEPALIVE`]: the hub pings as often).
    fn keepalive(&self) -> Duration {
        KEEPALIVE
    }
}

/// A frame for the peer.
#[derive(Debug)]
enum Outgoing {
    /// An event's reply: it ends one event in flight.
    Reply(String),
    /// Any other frame.
    Other(String),
}

/// What a session sends: replies, and the plane's other frames. Cheap to
/// clone; frames sent after the session ended are dropped.
///
/// A reply made on an executor thread wakes the session once that thread
/// has run its batch of events ([`executors::after_batch`]): under load
/// one wake-up of the session carries several replies.
#[derive(Debug, Clone)]
pub struct Outbox(Arc<Frames>);

#[derive(Debug, Default)]
struct Frames {
    queue: Mutex<VecDeque<Outgoing>>,
    /// Rung when frames are queued.
    ready: Notify,
    /// A wake-up of the session is on its way.
    waking: AtomicBool,
    /// The session ended: frames are dropped.
    closed: AtomicBool,
}

impl Outbox {
    /// Sends the reply of an event that [`ControlPlane::receive`] started.
    pub fn reply(&self, text: String) {
        if self.push(Outgoing::Reply(text)) && !self.0.waking.swap(true, Ordering::AcqRel) {
            let frames = self.0.clone();
            executors::after_batch(move || {
                frames.waking.store(false, Ordering::Release);
                frames.ready.notify_one();
            });
        }
    }

    /// Sends a frame that is not a reply.
    pub fn send(&self, text: String) {
        if self.push(Outgoing::Other(text)) {
            self.0.ready.notify_one();
        }
    }

    /// Queues `frame`; false once the session ended.
    fn push(&self, frame: Outgoing) -> bool {
        if self.0.closed.load(Ordering::Acquire) {
            return false;
        }
        self.0
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(frame);
        true
    }

    /// Everything queued, in order.
    fn take(&self) -> VecDeque<Outgoing> {
        std::mem::take(&mut *self.0.queue.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Ends the outbox: what is queued and what comes later is dropped.
    fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
        drop(self.take());
    }
}

/// Why a session ended.
enum SessionEnd {
    Stopped,
    Lost(String),
}

/// Runs sessions with `plane` until `stop` turns true: connects, serves,
/// reconnects with backoff. `ready` fires after the first connect. Ends
/// with the plane's refusal only if it comes before any connect succeeded.
pub async fn run<P: ControlPlane>(
    plane: &P,
    grace: Duration,
    mut stop: watch::Receiver<bool>,
    mut ready: Option<oneshot::Sender<()>>,
) -> Result<(), P::Refusal> {
    let mut backoff = Backoff::default();
    let mut starting = true;
    let mut session = 0u64;
    loop {
        let request = tokio::select! {
            request = plane.connect_request() => request,
            () = stopped(&mut stop) => return Ok(()),
        };
        let why = match request {
            Err(Failed::Refused(refusal)) if starting => return Err(refusal),
            Err(Failed::Refused(refusal)) => refusal.to_string(),
            Err(Failed::Retry(why)) => why,
            Ok(request) => {
                let url = redact(&request.uri().to_string());
                let connect = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    tokio_tungstenite::connect_async_with_config(
                        request,
                        Some(socket_config()),
                        true,
                    ),
                );
                let connected = tokio::select! {
                    connected = connect => connected,
                    () = stopped(&mut stop) => return Ok(()),
                };
                match connected {
                    Ok(Ok((socket, _response))) => {
                        starting = false;
                        backoff.reset();
                        session += 1;
                        tracing::info!(session, "connected to {} at {url}", plane.peer());
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(());
                        }
                        match serve(plane, socket, grace, &mut stop).await {
                            SessionEnd::Stopped => return Ok(()),
                            SessionEnd::Lost(reason) => {
                                format!("lost the connection to {} ({reason})", plane.peer())
                            }
                        }
                    }
                    Ok(Err(err)) => match plane.connect_failed(&err, &url) {
                        Failed::Refused(refusal) if starting => return Err(refusal),
                        Failed::Refused(refusal) => refusal.to_string(),
                        Failed::Retry(why) => why,
                    },
                    Err(_) => format!("the WebSocket connect to {url} timed out"),
                }
            }
        };
        let wait = backoff.next_wait();
        tracing::warn!("{why}; retrying in {wait:.1?}");
        if sleep_or_stop(wait, &mut stop).await {
            return Ok(());
        }
    }
}

/// A client request for `url` with `headers`.
pub fn request(url: &url::Url, headers: &[(&str, &str)]) -> Result<ConnectRequest, String> {
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|err| format!("cannot connect to `{url}`: {err}"))?;
    for (name, value) in headers {
        let value = value
            .parse()
            .map_err(|_| format!("the {name} header cannot hold the value given"))?;
        let name: tungstenite::http::HeaderName = name
            .parse()
            .map_err(|_| format!("`{name}` is not a header name"))?;
        request.headers_mut().insert(name, value);
    }
    Ok(request)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Sink = futures_util::stream::SplitSink<Socket, Message>;

/// Serves one connection until it is lost or the worker stops.
async fn serve<P: ControlPlane>(
    plane: &P,
    socket: Socket,
    grace: Duration,
    stop: &mut watch::Receiver<bool>,
) -> SessionEnd {
    let (mut sink, mut stream) = socket.split();
    let outbox = Outbox(Arc::default());
    let end = serve_with(plane, &mut sink, &mut stream, &outbox, grace, stop).await;
    outbox.close();
    end
}

/// [`serve`] on a split socket whose frames `outbox` gathers.
async fn serve_with<P: ControlPlane>(
    plane: &P,
    sink: &mut Sink,
    stream: &mut futures_util::stream::SplitStream<Socket>,
    outbox: &Outbox,
    grace: Duration,
    stop: &mut watch::Receiver<bool>,
) -> SessionEnd {
    let capacity = plane.capacity().unwrap_or(usize::MAX);
    let mut in_flight = 0usize;
    let period = plane.keepalive();
    let mut keepalive = tokio::time::interval(period);
    let mut stragglers = tokio::time::interval(STRAGGLERS_EVERY);
    stragglers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            biased;
            () = outbox.0.ready.notified() => {
                if let Err(err) = send_ready(sink, outbox, &mut in_flight).await {
                    return SessionEnd::Lost(format!("sending failed: {err}"));
                }
            }
            _ = stragglers.tick(), if in_flight > 0 => {
                if let Err(err) = send_ready(sink, outbox, &mut in_flight).await {
                    return SessionEnd::Lost(format!("sending failed: {err}"));
                }
            }
            () = stopped(stop) => {
                finish_then_close(sink, outbox, in_flight, grace).await;
                return SessionEnd::Stopped;
            }
            frame = stream.next(), if in_flight < capacity => {
                last_heard = Instant::now();
                if let Some(end) = take_frame(plane, outbox, frame, &mut in_flight) {
                    return end;
                }
                // Frames that have already arrived are taken before the
                // replies go out: the replies of events run on this thread
                // then leave with one flush a burst, not one each.
                let burst = Instant::now();
                for _ in 1..BURST_FRAMES {
                    if in_flight >= capacity || burst.elapsed() > BURST_TIME {
                        break;
                    }
                    let Some(frame) = stream.next().now_or_never() else {
                        break;
                    };
                    if let Some(end) = take_frame(plane, outbox, frame, &mut in_flight) {
                        return end;
                    }
                }
            }
            _ = keepalive.tick() => {
                // At capacity the session does not read, so it cannot hear
                // the peer: silence counts only while it reads (a dead peer
                // then shows as a failed send).
                if in_flight >= capacity {
                    last_heard = Instant::now();
                }
                if last_heard.elapsed() > 2 * period {
                    return SessionEnd::Lost(format!("{} stopped answering pings", plane.peer()));
                }
                if let Err(err) = sink.send(Message::Ping(Default::default())).await {
                    return SessionEnd::Lost(format!("sending a ping failed: {err}"));
                }
            }
        }
    }
}

/// Acts on one frame read off the socket: an event goes to the plane (and
/// counts into `in_flight` when it takes it); `Some` when the session ends.
fn take_frame<P: ControlPlane>(
    plane: &P,
    outbox: &Outbox,
    frame: Option<Result<Message, tungstenite::Error>>,
    in_flight: &mut usize,
) -> Option<SessionEnd> {
    match frame {
        None | Some(Ok(Message::Close(_))) => Some(SessionEnd::Lost(format!(
            "{} closed the connection",
            plane.peer()
        ))),
        Some(Err(err)) => Some(SessionEnd::Lost(err.to_string())),
        Some(Ok(Message::Text(text))) => {
            if plane.receive(text.as_str(), outbox) {
                *in_flight += 1;
            }
            None
        }
        Some(Ok(_)) => None,
    }
}

/// Sends every frame that is ready with one flush, counting the replies
/// out of `in_flight`.
async fn send_ready(
    sink: &mut Sink,
    outbox: &Outbox,
    in_flight: &mut usize,
) -> Result<(), tungstenite::Error> {
    let frames: Vec<_> = outbox
        .take()
        .into_iter()
        .map(|frame| {
            Ok(Message::text(match frame {
                Outgoing::Reply(text) => {
                    *in_flight -= 1;
                    text
                }
                Outgoing::Other(text) => text,
            }))
        })
        .collect();
    if frames.is_empty() {
        return Ok(());
    }
    sink.send_all(&mut futures_util::stream::iter(frames)).await
}

/// After a stop: sends the replies of the `in_flight` events as they finish
/// (other frames are no longer sent), for at most `grace`, then closes.
async fn finish_then_close(
    sink: &mut Sink,
    outbox: &Outbox,
    mut in_flight: usize,
    grace: Duration,
) {
    let deadline = tokio::time::Instant::now() + grace;
    tracing::info!(in_flight, "stopping: finishing events in flight");
    'finishing: while in_flight > 0 {
        tokio::select! {
            () = outbox.0.ready.notified() => {
                for frame in outbox.take() {
                    if let Outgoing::Reply(text) = frame {
                        in_flight -= 1;
                        if sink.send(Message::text(text)).await.is_err() {
                            break 'finishing;
                        }
                    }
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(in_flight, "events still running after the {grace:?} grace period; leaving without their replies");
                break;
            }
        }
    }
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "worker stopping".into(),
        })))
        .await;
}

/// Resolves once `stop` is true; never, if its sender is gone.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stopped| *stopped).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Sleeps for `wait`; true if the worker was stopped meanwhile.
pub async fn sleep_or_stop(wait: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => false,
        () = stopped(stop) => true,
    }
}

/// A URL fit for logs: the value of an `auth` query parameter replaced.
fn redact(url: &str) -> String {
    let Ok(mut shown) = url::Url::parse(url) else {
        return url.to_owned();
    };
    if shown.query().is_none() {
        return shown.to_string();
    }
    let pairs: Vec<(String, String)> = shown
        .query_pairs()
        .map(|(key, value)| {
            let value = if key == "auth" {
                "…".to_owned()
            } else {
                value.into_owned()
            };
            (key.into_owned(), value)
        })
        .collect();
    shown.query_pairs_mut().clear().extend_pairs(pairs);
    shown.to_string()
}

/// The WebSocket's settings (see [`WS_READ_BUFFER`](crate::protocol::WS_READ_BUFFER)).
fn socket_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(crate::protocol::WS_READ_BUFFER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_urls_hide_the_token_only() {
        assert_eq!(
            redact("ws://127.0.0.1:1/ws?auth=secret&node=hello"),
            "ws://127.0.0.1:1/ws?auth=%E2%80%A6&node=hello"
        );
        assert_eq!(
            redact("ws://127.0.0.1:1/api/hosted/ws"),
            "ws://127.0.0.1:1/api/hosted/ws"
        );
    }

    /// A plane for tests: takes `capacity` events at a time and hands each
    /// to `start` with its outbox.
    struct TestPlane {
        url: String,
        capacity: Option<usize>,
        keepalive: Duration,
        start: Box<dyn Fn(String, Outbox) + Send + Sync>,
    }

    impl TestPlane {
        fn new(listener: &tokio::net::TcpListener) -> Self {
            Self {
                url: format!("ws://{}/", listener.local_addr().unwrap()),
                capacity: None,
                keepalive: KEEPALIVE,
                start: Box::new(|_, _| {}),
            }
        }
    }

    impl ControlPlane for TestPlane {
        type Refusal = String;

        fn peer(&self) -> &'static str {
            "the test server"
        }

        async fn connect_request(&self) -> Result<ConnectRequest, Failed<String>> {
            request(&url::Url::parse(&self.url).unwrap(), &[]).map_err(Failed::Refused)
        }

        fn capacity(&self) -> Option<usize> {
            self.capacity
        }

        fn receive(&self, text: &str, outbox: &Outbox) -> bool {
            (self.start)(text.to_owned(), outbox.clone());
            true
        }

        fn keepalive(&self) -> Duration {
            self.keepalive
        }
    }

    #[tokio::test]
    async fn a_session_at_capacity_keeps_its_connection_through_long_events() {
        use futures_util::{SinkExt as _, StreamExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        // One event at a time, answered after ten keepalive periods: the
        // session cannot read (it is at capacity), so it hears nothing of
        // the server meanwhile.
        let plane = TestPlane {
            capacity: Some(1),
            keepalive: Duration::from_millis(50),
            start: Box::new(|text, outbox| {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    outbox.reply(format!("done {text}"));
                });
            }),
            ..TestPlane::new(&listener)
        };
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();
            socket.send(Message::text("event")).await.unwrap();
            loop {
                match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
                    Ok(Some(Ok(Message::Text(text)))) => return text.to_string(),
                    Ok(Some(Ok(_))) => {}
                    other => panic!("the session dropped the connection: {other:?}"),
                }
            }
        });
        let session = tokio::spawn(async move { run(&plane, Duration::ZERO, stopped, None).await });
        let reply = server.await.unwrap();
        assert_eq!(
            reply, "done event",
            "the reply came on the first connection"
        );
        stop.send(true).unwrap();
        session.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_quick_reply_is_not_held_behind_a_slow_event_on_its_thread() {
        use futures_util::{SinkExt as _, StreamExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        // Events on one executor thread: `quick` replies after 200 ms,
        // `slow` after 3 s.
        let executors = executors::Executors::new("test-straggler", 1, None);
        let plane = TestPlane {
            start: Box::new(move |text, outbox| {
                executors
                    .run(move || {
                        let hold = if text == "slow" { 3000 } else { 200 };
                        std::thread::sleep(Duration::from_millis(hold));
                        outbox.reply(format!("done {text}"));
                    })
                    .unwrap();
            }),
            ..TestPlane::new(&listener)
        };
        let (stop, stopped) = watch::channel(false);
        let session = tokio::spawn(async move { run(&plane, Duration::ZERO, stopped, None).await });
        let (stream, _) = listener.accept().await.unwrap();
        let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();
        // The slow event is queued while the quick one runs, so the
        // executor's batch goes on with it after the quick reply.
        socket.send(Message::text("quick")).await.unwrap();
        socket.send(Message::text("slow")).await.unwrap();
        let sent = Instant::now();
        let first = loop {
            match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => break text.to_string(),
                Ok(Some(Ok(_))) => {}
                other => panic!("no reply: {other:?}"),
            }
        };
        assert_eq!(first, "done quick");
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "the quick reply waited {:?}, behind the slow event",
            sent.elapsed()
        );
        stop.send(true).unwrap();
        drop(socket);
        session.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn frames_that_arrived_together_are_taken_before_their_replies_go_out() {
        use futures_util::{SinkExt as _, StreamExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        // Each event replies at once, as one run on the session's thread
        // does; each records how many replies wait unsent as it arrives.
        let waiting = Arc::new(Mutex::new(Vec::new()));
        let seen = waiting.clone();
        let plane = TestPlane {
            start: Box::new(move |text, outbox| {
                let unsent = outbox.0.queue.lock().unwrap().len();
                seen.lock().unwrap().push(unsent);
                outbox.reply(format!("done {text}"));
            }),
            ..TestPlane::new(&listener)
        };
        let (stop, stopped) = watch::channel(false);
        let session = tokio::spawn(async move { run(&plane, Duration::ZERO, stopped, None).await });
        let (stream, _) = listener.accept().await.unwrap();
        let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();
        // Four events in one write.
        for n in 0..4 {
            socket.feed(Message::text(format!("e{n}"))).await.unwrap();
        }
        socket.flush().await.unwrap();
        let mut replies = Vec::new();
        while replies.len() < 4 {
            match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => replies.push(text.to_string()),
                Ok(Some(Ok(_))) => {}
                other => panic!("no reply: {other:?}"),
            }
        }
        assert_eq!(replies, ["done e0", "done e1", "done e2", "done e3"]);
        assert_eq!(
            *waiting.lock().unwrap(),
            [0, 1, 2, 3],
            "the burst's replies left together"
        );
        stop.send(true).unwrap();
        drop(socket);
        session.await.unwrap().unwrap();
    }

    #[test]
    fn requests_carry_their_headers() {
        let url = url::Url::parse("ws://127.0.0.1:1/api/hosted/ws").unwrap();
        let made = request(&url, &[("authorization", "Bearer nhw_x")]).unwrap();
        assert_eq!(made.headers()["authorization"], "Bearer nhw_x");
        assert!(request(&url, &[("authorization", "bad\nvalue")]).is_err());
    }
}
