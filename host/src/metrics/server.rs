//! The HTTP endpoint: `GET /metrics` and `GET /healthz`, an axum [`Router`] served by
//! `axum::serve` from a `CappedListener`, with graceful shutdown.
//!
//! The endpoint must never cost the runs their file descriptors, whoever connects to it.
//! With `N` = [`MetricsEndpoint::max_connections`] (64, or an eighth of the open-files limit
//! when that is lower: [`connection_cap`]), it holds at most `2N` sockets. The listener
//! decides, before axum sees a connection:
//! - a connection is accepted only while fewer than `N` accepted ones have yet to send a
//!   byte; the others wait in the kernel's listen queue, costing this process nothing;
//! - an accepted connection silent for 1 s is closed, so idle sockets cycle through and
//!   never hold a serving slot;
//! - one that sends takes one of `N` serving slots, or, when none is free, is handed to axum
//!   marked refused: a layer answers it `503` (`connection: close`) and it has 1 s to go.
//!
//! A served connection must send a complete request within 10 s of its start or of its last
//! answer (slowloris; `axum::serve` sets no header timeout of its own), and lives at most
//! 60 s: `CappedStream` ends its reads and writes at that deadline.
//!
//! [`raise_open_files_limit`] lifts the soft open-files limit to the hard one; `serve` calls
//! it at start, before the endpoint derives its cap.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONNECTION, CONTENT_SECURITY_POLICY, CONTENT_TYPE, RETRY_AFTER,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use prometheus_client::encoding::prometheus_text;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Sleep;

use super::Metrics;

/// Most connections the endpoint serves at once when descriptors are plentiful.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a served connection may go without a complete request: from its start, then
/// from its last answer (idle keep-alive and slowloris sockets).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest life of one connection (a client that reads its answers a byte at a time).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// How long an accepted connection may stay silent before it is closed: a client sends its
/// request as soon as the connection is up.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a refused connection is given to read its answer and close.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// How long [`MetricsEndpoint::shutdown`] lets answers in progress finish before it closes
/// every connection.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The process's soft open-files limit (`RLIMIT_NOFILE`); `None` when unlimited or unknown.
pub fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Raises the soft open-files limit to the hard limit, so that idle sockets and many runs
/// do not run the process out of descriptors at a distribution's default of 1024 while the
/// hard limit allows more. Returns (before, after); `None` means unlimited or unknown.
pub fn raise_open_files_limit() -> (Option<u64>, Option<u64>) {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let limit = getrlimit(Resource::Nofile);
        let raised = match (limit.current, limit.maximum) {
            (Some(current), maximum) if maximum.is_none_or(|max| max > current) => setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: maximum,
                    maximum,
                },
            )
            .is_ok(),
            _ => false,
        };
        let after = if raised {
            getrlimit(Resource::Nofile).current
        } else {
            limit.current
        };
        (limit.current, after)
    }
    #[cfg(not(unix))]
    {
        (None, None)
    }
}

/// The connection cap for an open-files limit: [`MAX_CONNECTIONS`], or an eighth of the
/// limit when that is lower (at least 1). The endpoint holds at most twice the cap in
/// sockets, so at least three quarters of the descriptors stay with the runs.
pub fn connection_cap(open_files_limit: Option<u64>) -> usize {
    match open_files_limit {
        None => MAX_CONNECTIONS,
        Some(limit) => usize::try_from(limit / 8)
            .unwrap_or(MAX_CONNECTIONS)
            .clamp(1, MAX_CONNECTIONS),
    }
}

/// The running `/metrics` + `/healthz` HTTP server.
#[derive(Debug)]
pub struct MetricsEndpoint {
    local_addr: SocketAddr,
    max_connections: usize,
    stop: Option<oneshot::Sender<()>>,
    close: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl MetricsEndpoint {
    /// Binds `addr` and serves `GET /metrics` (the exposition of `metrics`) and `GET /healthz`
    /// (200 `ok` while serving, 503 while shutting down). Port 0 picks a free port; see
    /// [`MetricsEndpoint::local_addr`].
    ///
    /// Anyone who can reach the address can read tenant keys and counts (never secrets):
    /// keep it on loopback or a private network. At most [`connection_cap`] (of the current
    /// open-files limit) connections are served at once; see the module documentation.
    pub async fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> io::Result<MetricsEndpoint> {
        Self::start_with_cap(addr, metrics, connection_cap(open_files_limit())).await
    }

    /// [`MetricsEndpoint::start`] serving at most `max_connections` connections at once
    /// (at least 1), with as many more accepted and waiting for their first byte; a request
    /// over the cap is answered `503` and closed.
    pub async fn start_with_cap(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        max_connections: usize,
    ) -> io::Result<MetricsEndpoint> {
        Self::start_with_status(addr, metrics, max_connections, None).await
    }

    /// [`MetricsEndpoint::start_with_cap`], also serving `GET /status`: where each tenant of
    /// `status` stands, as an HTML page ([`crate::status::render::html`]).
    pub async fn start_with_status(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        max_connections: usize,
        status: Option<Arc<crate::status::Source>>,
    ) -> io::Result<MetricsEndpoint> {
        let max_connections = max_connections.max(1);
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (close, closed) = watch::channel(false);
        let listener = CappedListener::new(listener, max_connections, closed);
        let app = router(metrics, status).into_make_service_with_connect_info::<Admission>();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await;
        });
        Ok(MetricsEndpoint {
            local_addr,
            max_connections,
            stop: Some(stop),
            close,
            task,
        })
    }

    /// Most connections served at once.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets answers in progress finish (for at most 1 s), closes every
    /// connection and waits for the server to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task)
            .await
            .is_err()
        {
            self.close.send_replace(true);
            let _ = (&mut self.task).await;
        }
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.close.send_replace(true);
        self.task.abort();
    }
}

/// Whether the listener gave a connection a serving slot: what the refusal layer reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admission {
    /// Holding one of the serving slots: its requests are answered.
    Served,
    /// Over the cap: answered `503` and closed.
    Refused,
}

impl Connected<IncomingStream<'_, CappedListener>> for Admission {
    fn connect_info(stream: IncomingStream<'_, CappedListener>) -> Self {
        stream.io().admission
    }
}

/// The routes, behind the layer that refuses connections over the cap.
fn router(metrics: Arc<Metrics>, status: Option<Arc<crate::status::Source>>) -> Router {
    let page = match status {
        Some(source) => get(move || status_page(source.clone())),
        None => get(no_status),
    };
    Router::new()
        .route("/metrics", get(scrape).fallback(use_get))
        .route("/healthz", get(health).fallback(use_get))
        .route("/status", page.fallback(use_get))
        .fallback(not_found)
        .layer(middleware::from_fn(refuse_over_cap))
        .with_state(metrics)
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> Response {
    (
        [(CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
        metrics.render(),
    )
        .into_response()
}

async fn health(State(metrics): State<Arc<Metrics>>) -> Response {
    if metrics.is_serving() {
        "ok\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

/// The status page: read at each request (stores are read-only, nothing is cached), plain
/// HTML with inline CSS and no script; the policy header forbids any script or load, so
/// even text that got through unescaped could not act.
async fn status_page(source: Arc<crate::status::Source>) -> Response {
    let views = source.views().await;
    let page = crate::status::render::html(&views, std::time::SystemTime::now());
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
            (CACHE_CONTROL, "no-store"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        page,
    )
        .into_response()
}

async fn no_status() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found: this endpoint has no tenants to show (serve shows /status)\n",
    )
        .into_response()
}

async fn use_get() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, "use GET\n").into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found: this endpoint serves /metrics and /healthz\n",
    )
        .into_response()
}

/// Answers every request of a connection over the cap `503`, and closes it.
async fn refuse_over_cap(
    ConnectInfo(admission): ConnectInfo<Admission>,
    request: Request,
    next: Next,
) -> Response {
    match admission {
        Admission::Served => next.run(request).await,
        Admission::Refused => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(RETRY_AFTER, "1"), (CONNECTION, "close")],
            "too many connections: try again later\n",
        )
            .into_response(),
    }
}

/// A TCP listener that hands `axum::serve` only connections that sent their first byte,
/// each holding a serving slot or marked refused (see the module documentation).
struct CappedListener {
    listener: TcpListener,
    local_addr: SocketAddr,
    max_connections: usize,
    /// Accepted connections that have not sent a byte yet, and refused ones until closed.
    waiting: Arc<Semaphore>,
    /// Connections being served.
    serving: Arc<Semaphore>,
    /// Accepted connections waiting for their first byte.
    sorting: JoinSet<Option<(CappedStream, SocketAddr)>>,
    refusals: Refusals,
    closed: watch::Receiver<bool>,
}

impl CappedListener {
    fn new(
        listener: TcpListener,
        max_connections: usize,
        closed: watch::Receiver<bool>,
    ) -> CappedListener {
        let local_addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        CappedListener {
            listener,
            local_addr,
            max_connections,
            waiting: Arc::new(Semaphore::new(max_connections)),
            serving: Arc::new(Semaphore::new(max_connections)),
            sorting: JoinSet::new(),
            refusals: Refusals::default(),
            closed,
        }
    }
}

/// What [`CappedListener::accept`] waits for first.
enum Event {
    Sorted(Option<(CappedStream, SocketAddr)>),
    Accepted(io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)>),
}

impl Listener for CappedListener {
    type Io = CappedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CappedStream, SocketAddr) {
        loop {
            let event = tokio::select! {
                Some(sorted) = self.sorting.join_next(), if !self.sorting.is_empty() => {
                    Event::Sorted(sorted.ok().flatten())
                }
                accepted = accept_waiting(&self.listener, &self.waiting) => Event::Accepted(accepted),
            };
            match event {
                Event::Sorted(Some((stream, peer))) => {
                    if stream.admission == Admission::Refused {
                        self.refusals.count(self.local_addr, self.max_connections);
                    }
                    return (stream, peer);
                }
                Event::Sorted(None) => {}
                Event::Accepted(Ok((stream, peer, slot))) => {
                    let serving = self.serving.clone();
                    let closed = self.closed.clone();
                    self.sorting
                        .spawn(sort(stream, peer, slot, serving, closed));
                }
                Event::Accepted(Err(e)) => {
                    // Out of file descriptors and the like: say so, breathe, go on.
                    tracing::warn!(address = %self.local_addr, "metrics endpoint cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Accepts a connection once one of the waiting slots is free (until then the kernel holds
/// it in the listen queue).
async fn accept_waiting(
    listener: &TcpListener,
    waiting: &Arc<Semaphore>,
) -> io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = waiting
        .clone()
        .acquire_owned()
        .await
        .map_err(io::Error::other)?;
    let (stream, peer) = listener.accept().await?;
    Ok((stream, peer, slot))
}

/// Waits up to [`FIRST_BYTE_TIMEOUT`] for the connection's first byte (`None`: closed
/// silent), then gives it a serving slot, or marks it refused when none is free.
async fn sort(
    stream: TcpStream,
    peer: SocketAddr,
    waiting_slot: OwnedSemaphorePermit,
    serving: Arc<Semaphore>,
    closed: watch::Receiver<bool>,
) -> Option<(CappedStream, SocketAddr)> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(FIRST_BYTE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => return None, // idle, closed or failed: close it
    }
    let (admission, slot, quiet, lifetime) = match serving.try_acquire_owned() {
        Ok(serving_slot) => (
            Admission::Served,
            serving_slot,
            REQUEST_TIMEOUT,
            CONNECTION_LIFETIME,
        ),
        Err(_) => (
            Admission::Refused,
            waiting_slot,
            REFUSAL_LINGER,
            REFUSAL_LINGER,
        ),
    };
    let stream = CappedStream::new(stream, admission, slot, quiet, lifetime, closed);
    Some((stream, peer))
}

/// A connection the `CappedListener` let through. It holds its slot until dropped, and
/// its reads end (EOF) and writes fail once it has gone `quiet` without writing an answer
/// (from its start or its last write), once it has lived `lifetime`, or once the endpoint
/// closes every connection: hyper then drops it.
struct CappedStream {
    stream: TcpStream,
    admission: Admission,
    _slot: OwnedSemaphorePermit,
    quiet: Duration,
    end: tokio::time::Instant,
    deadline: Pin<Box<Sleep>>,
    closed: Pin<Box<dyn Future<Output = ()> + Send>>,
    expired: bool,
}

impl CappedStream {
    fn new(
        stream: TcpStream,
        admission: Admission,
        slot: OwnedSemaphorePermit,
        quiet: Duration,
        lifetime: Duration,
        mut closed: watch::Receiver<bool>,
    ) -> CappedStream {
        let now = tokio::time::Instant::now();
        let end = now + lifetime;
        CappedStream {
            stream,
            admission,
            _slot: slot,
            quiet,
            end,
            deadline: Box::pin(tokio::time::sleep_until((now + quiet).min(end))),
            closed: Box::pin(async move {
                // The endpoint closing every connection, or gone.
                let _ = closed.wait_for(|closed| *closed).await;
            }),
            expired: false,
        }
    }

    /// Whether the connection's time is up; registers the wake-up for when it will be.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.expired {
            self.expired = self.deadline.as_mut().poll(cx).is_ready()
                || self.closed.as_mut().poll(cx).is_ready();
        }
        self.expired
    }

    /// An answer went out: the client gets `quiet` again for its next request.
    fn wrote(&mut self, n: usize) {
        if n > 0 {
            let next = (tokio::time::Instant::now() + self.quiet).min(self.end);
            self.deadline.as_mut().reset(next);
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "metrics connection out of time or closed",
    )
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Ok(())); // end of stream
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            self.wrote(n);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Connections refused over the cap, logged at most once per 10 s.
#[derive(Default)]
struct Refusals {
    since_last_log: u64,
    last_log: Option<Instant>,
}

impl Refusals {
    fn count(&mut self, address: SocketAddr, cap: usize) {
        self.since_last_log += 1;
        let due = self
            .last_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
        if due {
            tracing::warn!(
                address = %address,
                refused = self.since_last_log,
                max_connections = cap,
                "metrics endpoint at its connection cap: refusing connections (503); scrape less often or find who holds connections open"
            );
            self.since_last_log = 0;
            self.last_log = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn operator_connection_cap_leaves_most_descriptors_to_runs() {
        assert_eq!(connection_cap(None), MAX_CONNECTIONS);
        assert_eq!(connection_cap(Some(1_048_576)), 64);
        assert_eq!(connection_cap(Some(1024)), 64);
        assert_eq!(connection_cap(Some(256)), 32);
        assert_eq!(connection_cap(Some(16)), 2);
        assert_eq!(connection_cap(Some(3)), 1);
    }

    async fn start(cap: usize) -> (MetricsEndpoint, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new(3));
        let endpoint =
            MetricsEndpoint::start_with_cap("127.0.0.1:0".parse().unwrap(), metrics.clone(), cap)
                .await
                .unwrap();
        (endpoint, metrics)
    }

    async fn read_all(stream: &mut TcpStream) -> String {
        let mut text = Vec::new();
        let _ = stream.read_to_end(&mut text).await;
        String::from_utf8_lossy(&text).into_owned()
    }

    /// Sends one request on `stream` and reads one whole answer (head and body by its
    /// content-length), leaving the connection open.
    async fn exchange(stream: &mut TcpStream, request: &str) -> String {
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&text));
            text.extend_from_slice(&buf[..n]);
            let s = String::from_utf8_lossy(&text).into_owned();
            if let Some(head_end) = s.find("\r\n\r\n") {
                let length = s[..head_end]
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if text.len() >= head_end + 4 + length {
                    return s;
                }
            }
        }
    }

    async fn get(addr: SocketAddr, method: &str, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        read_all(&mut stream).await
    }

    #[tokio::test]
    async fn routes_answer_metrics_health_and_say_what_is_wrong() {
        let (endpoint, metrics) = start(4).await;
        let addr = endpoint.local_addr();
        metrics.add_tenant("t1");
        let scrape = get(addr, "GET", "/metrics").await;
        assert!(scrape.starts_with("HTTP/1.1 200 OK\r\n"), "{scrape}");
        assert!(
            scrape.contains("\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{scrape}"
        );
        assert!(
            scrape.contains("\nconnector_runs_total{tenant=\"t1\",outcome=\"success\"} 0\n"),
            "{scrape}"
        );
        let head = get(addr, "HEAD", "/metrics").await;
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        assert!(get(addr, "GET", "/healthz").await.ends_with("\r\n\r\nok\n"));
        let post = get(addr, "POST", "/metrics").await;
        assert!(
            post.starts_with("HTTP/1.1 405 ") && post.ends_with("use GET\n"),
            "{post}"
        );
        let lost = get(addr, "GET", "/other").await;
        assert!(
            lost.starts_with("HTTP/1.1 404 ")
                && lost.ends_with("not found: this endpoint serves /metrics and /healthz\n"),
            "{lost}"
        );
        metrics.set_serving(false);
        let health = get(addr, "GET", "/healthz").await;
        assert!(
            health.starts_with("HTTP/1.1 503 ") && health.ends_with("shutting down\n"),
            "{health}"
        );
        endpoint.shutdown().await;
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_refused_while_the_others_are_served() {
        let (endpoint, _metrics) = start(2).await;
        let addr = endpoint.local_addr();
        let request = "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
        // Two keep-alive connections take both serving slots.
        let mut a = TcpStream::connect(addr).await.unwrap();
        let mut b = TcpStream::connect(addr).await.unwrap();
        assert!(exchange(&mut a, request)
            .await
            .starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(exchange(&mut b, request)
            .await
            .starts_with("HTTP/1.1 200 OK\r\n"));
        // A third is answered 503 and closed.
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(request.as_bytes()).await.unwrap();
        let refused = read_all(&mut c).await;
        assert!(
            refused.starts_with("HTTP/1.1 503 Service Unavailable\r\n")
                && refused.contains("\r\nretry-after: 1\r\n")
                && refused.contains("\r\nconnection: close\r\n")
                && refused.ends_with("\r\n\r\ntoo many connections: try again later\n"),
            "{refused}"
        );
        // The two served connections still are.
        assert!(exchange(&mut a, request)
            .await
            .starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(exchange(&mut b, request)
            .await
            .starts_with("HTTP/1.1 200 OK\r\n"));
        // Once one of them closes, its slot serves a new connection.
        drop(a);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut d = TcpStream::connect(addr).await.unwrap();
        assert!(exchange(&mut d, request)
            .await
            .starts_with("HTTP/1.1 200 OK\r\n"));
        endpoint.shutdown().await;
    }

    #[tokio::test]
    async fn hostile_idle_and_slow_clients_cannot_hold_the_metrics_endpoint() {
        let (endpoint, _metrics) = start(1).await;
        let addr = endpoint.local_addr();
        // A slow client holds the only serving slot with half a request head.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        // A request over the cap gets a clean 503 (the answer, then the close).
        let mut over = TcpStream::connect(addr).await.unwrap();
        over.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = read_all(&mut over).await;
        assert!(
            answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n")
                && answer.ends_with("\r\n\r\ntoo many connections: try again later\n"),
            "{answer}"
        );
        // An idle client is closed without an answer once its first second of silence ends.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        assert_eq!(read_all(&mut idle).await, "");
        // The slow client's headers never complete: it is closed after the request timeout
        // (with no answer, or hyper's 408), and the slot serves the next request.
        let late = read_all(&mut slow).await;
        assert!(
            late.is_empty() || late.starts_with("HTTP/1.1 408"),
            "{late}"
        );
        let answer = get(addr, "GET", "/healthz").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        endpoint.shutdown().await;
    }

    #[tokio::test]
    async fn shutdown_stops_accepting_and_closes_lingering_connections() {
        let (endpoint, _metrics) = start(4).await;
        let addr = endpoint.local_addr();
        // A keep-alive connection that was served, and one stuck in the middle of its head.
        let mut kept = TcpStream::connect(addr).await.unwrap();
        let request = "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
        assert!(exchange(&mut kept, request)
            .await
            .starts_with("HTTP/1.1 200 OK\r\n"));
        let mut stuck = TcpStream::connect(addr).await.unwrap();
        stuck.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Shutdown closes both: it does not wait for the stuck one's 10 s deadline.
        tokio::time::timeout(Duration::from_secs(5), endpoint.shutdown())
            .await
            .expect("shutdown waited for a stuck connection's deadline");
        let (kept_rest, stuck_rest) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(5), read_all(&mut kept)),
            tokio::time::timeout(Duration::from_secs(5), read_all(&mut stuck)),
        );
        assert_eq!(
            kept_rest.as_deref(),
            Ok(""),
            "the idle keep-alive connection is closed"
        );
        assert!(stuck_rest.is_ok(), "the stuck connection is closed");
        // Nothing listens any more.
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
