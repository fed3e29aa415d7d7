//! For tests and benchmarks only: a small HTTP(S) server on loopback that
//! nodes' outbound requests can reach, counting the connections it accepts
//! (to see whether clients reuse them).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

/// A running origin server; it stops when dropped.
pub struct TestOrigin {
    addr: SocketAddr,
    scheme: &'static str,
    host: String,
    connections: Arc<AtomicUsize>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// The routes every test origin serves:
/// - `GET /hello`: `hello from the origin`
/// - `GET /header/{name}`: the value of request header `name` (empty if none)
/// - `GET /redirect?to=URL`: `302 Found` to `URL`
/// - `GET /bytes/{n}`: `n` bytes of `x`
/// - `GET /never`: never answers
/// - `POST /sink`: reads the body and answers with its length
fn routes() -> Router {
    #[derive(serde::Deserialize)]
    struct To {
        to: String,
    }
    Router::new()
        .route("/hello", get(|| async { "hello from the origin" }))
        .route(
            "/header/{name}",
            get(|Path(name): Path<String>, headers: HeaderMap| async move {
                headers
                    .get(name.as_str())
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            }),
        )
        .route(
            "/redirect",
            get(|Query(To { to }): Query<To>| async move {
                (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
            }),
        )
        .route(
            "/bytes/{n}",
            get(|Path(n): Path<usize>| async move { vec![b'x'; n] }),
        )
        .route(
            "/never",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "too late"
            }),
        )
        .route(
            "/sink",
            post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        )
}

impl TestOrigin {
    /// Plain HTTP on 127.0.0.1, on a port the OS chooses.
    pub fn start() -> Self {
        Self::spawn(None)
    }

    /// HTTPS with this certificate (made for `localhost`), reached as
    /// `https://localhost:PORT`.
    pub fn start_tls(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> Self {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("the test certificate");
        Self::spawn(Some(Arc::new(config)))
    }

    fn spawn(tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let secure = tls.is_some();
        let connections = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, addr) = std::sync::mpsc::channel();
        let counted = connections.clone();
        std::thread::Builder::new()
            .name("test-origin".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the test origin");
                runtime.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                    bound.send(listener.local_addr().expect("address")).ok();
                    tokio::select! {
                        () = serve(listener, tls, counted) => {}
                        _ = stopped => {}
                    }
                });
            })
            .expect("the test origin's thread");
        let addr: SocketAddr = addr.recv().expect("the test origin started");
        let (scheme, host) = match secure {
            true => ("https", "localhost".to_owned()),
            false => ("http", addr.ip().to_string()),
        };
        Self {
            addr,
            scheme,
            host,
            connections,
            _stop: stop,
        }
    }

    /// The origin's URL for `path`, e.g. `http://127.0.0.1:PORT/hello`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}:{}{path}", self.scheme, self.host, self.addr.port())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    connections: Arc<AtomicUsize>,
) {
    let app = routes();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        connections.fetch_add(1, Ordering::SeqCst);
        let app = app.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(stream, app).await,
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_connection(stream, app).await;
                    }
                }
            }
        });
    }
}

async fn serve_connection<S>(stream: S, app: Router)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}
