//! The public listeners of `hearth up` (the API, and HTTP triggers on their own origin),
//! with the limits every listener facing untrusted callers needs: a connection cap, a time
//! limit on reading a request's headers (which also ends idle keep-alive connections) and
//! on reading its body, a cap on the request bodies buffered at once, optional TLS
//! (certificate and key reloaded when their files change), and a graceful stop that
//! finishes in-flight requests within a grace period.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::serve::Listener;
use bytes::Bytes;
use hearth_agent::CappedListener;
use hearth_api::ApiError;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tower_service::Service;

/// Limits of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Connections open at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time to receive a request's headers, counted from when the connection is ready for
    /// one (so an idle keep-alive connection is closed after it too).
    pub header_timeout: Duration,
    /// Time to receive a request's whole body once its headers are in.
    pub body_timeout: Duration,
    /// Request-body bytes that may be buffered at once across all requests. A request
    /// reserves its `Content-Length` (or `max_body_bytes` when it has none) before its handler
    /// runs; past the budget it waits up to `buffer_wait` for room, then gets 503
    /// `ServerBusy` (a quick refusal a client can back off from, rather than a held
    /// connection).
    pub buffered_body_bytes: u64,
    pub buffer_wait: Duration,
    /// The largest body any route accepts (the reservation of a body of unknown length).
    pub max_body_bytes: u64,
    /// How long a graceful stop waits for in-flight requests.
    pub grace: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            buffered_body_bytes: 256 << 20,
            buffer_wait: Duration::from_secs(1),
            max_body_bytes: 64 << 20,
            grace: Duration::from_secs(30),
        }
    }
}

/// A PEM certificate chain and private key, for HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: String },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: String },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(String),
}

/// The current TLS configuration of a listener, reloaded when its files change.
#[derive(Clone)]
pub struct TlsConfig {
    files: TlsFiles,
    current: Arc<RwLock<(Arc<rustls::ServerConfig>, Option<SystemTime>)>>,
}

impl TlsConfig {
    /// Loads the files now (an error here stops the server from starting).
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let config = Arc::new(build_tls(&files)?);
        let stamp = modified(&files);
        Ok(Self { files, current: Arc::new(RwLock::new((config, stamp))) })
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.read().unwrap_or_else(|p| p.into_inner()).0.clone())
    }

    /// Rebuilds the configuration if a file changed since the last load; a broken new pair
    /// is logged and the previous one kept. Returns whether it reloaded.
    pub fn reload_if_changed(&self) -> bool {
        let stamp = modified(&self.files);
        if stamp == self.current.read().unwrap_or_else(|p| p.into_inner()).1 {
            return false;
        }
        match build_tls(&self.files) {
            Ok(config) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = (Arc::new(config), stamp);
                tracing::info!(cert = %self.files.cert.display(), "reloaded the TLS certificate");
                true
            }
            Err(e) => {
                tracing::warn!(%e, "kept the previous TLS certificate");
                false
            }
        }
    }
}

/// The later of the two files' modification times.
fn modified(files: &TlsFiles) -> Option<SystemTime> {
    let m = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    m(&files.cert).max(m(&files.key))
}

fn build_tls(files: &TlsFiles) -> Result<rustls::ServerConfig, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read =
        |p: &PathBuf| std::fs::read(p).map_err(|source| TlsError::Read { path: p.display().to_string(), source });
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(&files.cert)?).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: files.cert.display().to_string() });
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .map_err(|_| TlsError::NoKey { path: files.key.display().to_string() })?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves `router` on `listener` within `limits` (over TLS when `tls` is set) until
/// `shutdown` resolves; then stops accepting and waits up to `limits.grace` for the
/// requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ListenerLimits,
    tls: Option<TlsConfig>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut listener = CappedListener::new(listener, limits.max_connections);
    let bodies = Arc::new(Semaphore::new(permits(limits.buffered_body_bytes)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let http = Arc::new(http);
    let mut reload = tokio::time::interval(Duration::from_secs(2));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = reload.tick() => {
                if let Some(tls) = &tls {
                    tls.reload_if_changed();
                }
                continue;
            }
            () = &mut shutdown => break,
        };
        let service = EdgeService { router: router.clone(), peer, limits: limits.clone(), bodies: bodies.clone() };
        let (http, watcher, tls) = (http.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => serve_connection(&http, watcher, stream, service).await,
                Some(tls) => {
                    // The handshake counts against the header timeout.
                    let handshake = tokio::time::timeout(limits.header_timeout, tls.acceptor().accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => serve_connection(&http, watcher, stream, service).await,
                        Ok(Err(e)) => tracing::debug!(%e, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after the grace period; closing them");
    }
}

async fn serve_connection<I>(
    http: &hyper::server::conn::http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    io: I,
    service: EdgeService,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = http.serve_connection(TokioIo::new(io), hyper_util::service::TowerToHyperService::new(service));
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%e, "connection ended with an error");
    }
}

/// Semaphore permits are KiB of body.
fn permits(bytes: u64) -> usize {
    usize::try_from(bytes.div_ceil(1024)).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS)
}

/// Per connection: adds the peer address, bounds the body's reading time, and reserves the
/// body's bytes in the listener's budget while the handler runs.
#[derive(Clone)]
struct EdgeService {
    router: Router,
    peer: SocketAddr,
    limits: ListenerLimits,
    bodies: Arc<Semaphore>,
}

impl Service<Request<hyper::body::Incoming>> for EdgeService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<hyper::body::Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            parts.extensions.insert(ConnectInfo(this.peer));
            let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            let has_body = declared.is_some_and(|n| n > 0) || parts.headers.contains_key(header::TRANSFER_ENCODING);
            let reserve = if has_body { declared.unwrap_or(this.limits.max_body_bytes) } else { 0 };
            let reserve = reserve.min(this.limits.max_body_bytes.max(1)).min(this.limits.buffered_body_bytes);
            let _permit = if reserve == 0 {
                None
            } else {
                let want = u32::try_from(permits(reserve)).unwrap_or(u32::MAX);
                match tokio::time::timeout(this.limits.buffer_wait, this.bodies.clone().acquire_many_owned(want)).await
                {
                    Ok(Ok(p)) => Some(p),
                    _ => {
                        let busy = ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "ServerBusy",
                            "too many request bodies are being received at once; retry later",
                        );
                        return Ok(busy.into_response());
                    }
                }
            };
            let body = Body::new(DeadlineBody::new(body, this.limits.body_timeout));
            let mut router = this.router;
            let response = router.call(Request::from_parts(parts, body)).await;
            Ok(response.unwrap_or_else(|e: Infallible| match e {}))
        })
    }
}

/// A request body that fails once `limit` has passed since the headers were read.
struct DeadlineBody {
    inner: hyper::body::Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    fn new(inner: hyper::body::Incoming, limit: Duration) -> Self {
        Self { inner, deadline: Box::pin(tokio::time::sleep(limit)) }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within the time limit")]
pub struct BodyTimeout;

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
