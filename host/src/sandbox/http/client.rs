//! The connections nodes' requests travel on: one pooled client per
//! account (HTTP/1.1 and HTTP/2, rustls with the webpki roots), whose
//! resolver drops private addresses. Connections are reused across the
//! events of one account and never across accounts.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::address::is_private;
use super::body::RequestBody;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Idle connections kept per origin and account.
const POOL_IDLE_PER_ORIGIN: usize = 16;

/// Longest a TCP connect may take (the event's deadline may cut it sooner).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) type Client =
    hyper_util::client::legacy::Client<HttpsConnector<HttpConnector<Resolver>>, RequestBody>;

/// The operator's settings for nodes' outbound HTTP.
#[derive(Debug, Clone, Default)]
pub struct OutboundSettings {
    /// Let nodes reach loopback, private and link-local addresses (only
    /// those their grants name). Off by default: allowed names that
    /// resolve to such addresses are refused.
    pub private_addresses: bool,
    /// PEM files of certificate authorities trusted besides the webpki roots
    /// (a company's internal CA, a test's self-signed certificate).
    pub extra_roots: Vec<PathBuf>,
}

/// Why outbound HTTP cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// A CA file cannot be read or holds no certificate.
    #[error("cannot use {} as a trusted CA file: {why}", path.display())]
    Roots {
        /// The file.
        path: PathBuf,
        /// Why not.
        why: String,
    },
    /// rustls refused the configuration.
    #[error("cannot set up TLS for outbound HTTP: {0}")]
    Tls(String),
}

/// The process's outbound HTTP: the TLS setup, and one client per account
/// on each thread that runs events.
///
/// A client's connections are served by tasks on the runtime of the thread
/// that opened them (each event runs on its executor thread's own runtime,
/// see `node::on_event_runtime`), so connections are pooled per thread: a
/// connection whose thread is busy elsewhere is never handed to another.
pub struct Outbound {
    id: u64,
    tls: rustls::ClientConfig,
    private_addresses: bool,
}

/// Tells apart the [`Outbound`]s of a process in the per-thread pools.
static NEXT_OUTBOUND: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's clients, by outbound and account; they go with the
    /// thread (and its runtime, whose tasks serve their connections).
    static CLIENTS: RefCell<HashMap<(u64, String), Client>> = RefCell::default();
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("private_addresses", &self.private_addresses)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// Sets up TLS (webpki roots plus the extra ones) for every client.
    pub fn new(settings: &OutboundSettings) -> Result<Arc<Self>, OutboundError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for path in &settings.extra_roots {
            for cert in read_certificates(path)? {
                roots.add(cert).map_err(|err| OutboundError::Roots {
                    path: path.clone(),
                    why: err.to_string(),
                })?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| OutboundError::Tls(err.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(Self {
            id: NEXT_OUTBOUND.fetch_add(1, Ordering::Relaxed),
            tls,
            private_addresses: settings.private_addresses,
        }))
    }

    /// True when nodes may reach private addresses their grants name.
    pub fn private_addresses(&self) -> bool {
        self.private_addresses
    }

    /// The account's client on this thread (made on first use); its pool
    /// is the account's, never another's.
    pub(crate) fn client(&self, account: &str) -> Client {
        CLIENTS.with_borrow_mut(|clients| {
            if let Some(client) = clients.get(&(self.id, account.to_owned())) {
                return client.clone();
            }
            let client = self.new_client();
            clients.insert((self.id, account.to_owned()), client.clone());
            client
        })
    }

    fn new_client(&self) -> Client {
        let mut http = HttpConnector::new_with_resolver(Resolver {
            private_addresses: self.private_addresses,
        });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(self.tls.clone())
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_IDLE_PER_ORIGIN)
            .build(https)
    }
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, OutboundError> {
    let fail = |why: String| OutboundError::Roots {
        path: path.to_owned(),
        why,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| fail(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| fail(err.to_string()))?;
    if certs.is_empty() {
        return Err(fail("it holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// The error of a name that resolved only to addresses nodes may not reach.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` resolves only to private addresses, which nodes may not reach")]
pub(crate) struct ProhibitedAddress(pub(crate) String);

/// Resolves names with the system resolver and keeps the addresses a node
/// may connect to. The connector then connects to those addresses only,
/// so the check and the connection see the same addresses.
#[derive(Clone)]
pub(crate) struct Resolver {
    private_addresses: bool,
}

impl tower::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let private_addresses = self.private_addresses;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|addr| private_addresses || !is_private(addr.ip()))
                .collect();
            if kept.is_empty() && !resolved.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    ProhibitedAddress(host),
                ));
            }
            Ok(kept.into_iter())
        })
    }
}
