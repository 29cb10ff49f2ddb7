//! A small TCP proxy between the writer and ClickHouse that can refuse, reset, delay,
//! black-hole or fail connections on command, so outages can be tested without touching
//! the shared server.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// What the proxy does with connections.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// Pass bytes both ways.
    Forward,
    /// No listener: connecting is refused.
    Down,
    /// Accept, then reset the connection at once.
    Reset,
    /// Accept and read, never answer.
    BlackHole,
    /// Forward, but hold back the server's answer to each insert this long (other queries,
    /// such as the schema checks, are answered at once).
    DelayInserts(Duration),
    /// Answer each request with HTTP 500 this many times, then forward.
    Http500(u32),
    /// Answer each request with HTTP 503 and `Retry-After` of the second number of seconds,
    /// the first number of times, then forward.
    Http503(u32, u64),
    /// Forward the request's head and this many bytes of its body (chunk framing
    /// included), then close both sides cleanly without passing on any answer; once, after
    /// which the proxy goes [`Mode::Down`].
    CutBody(usize),
    /// Forward, but when the server answers an insert (it has committed the rows), close
    /// the connection without passing the answer on; once, after which the proxy goes
    /// [`Mode::Forward`].
    CutAnswer,
}

/// A proxy on 127.0.0.1 forwarding to `upstream`.
pub struct Proxy {
    addr: SocketAddr,
    mode: Arc<watch::Sender<Mode>>,
    failures: Arc<Mutex<u32>>,
    accepted: Arc<Mutex<Vec<std::time::Instant>>>,
}

impl Proxy {
    /// Starts a proxy to the ClickHouse at `url` (`http://host:port`).
    pub async fn start(url: &str) -> Proxy {
        Self::start_at("127.0.0.1", url).await
    }

    /// Starts a proxy listening on `ip` (any loopback address) to the ClickHouse at `url`
    /// (`http://host:port` or `https://host:port`: bytes are passed on as they are).
    pub async fn start_at(ip: &str, url: &str) -> Proxy {
        let upstream: SocketAddr = url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .replace("localhost", "127.0.0.1")
            .parse()
            .expect("the URL must be http(s)://IP:PORT for the proxy");
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(watch::Sender::new(Mode::Forward));
        let failures = Arc::new(Mutex::new(0));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(serve(
            listener,
            addr,
            upstream,
            mode.clone(),
            failures.clone(),
            accepted.clone(),
        ));
        Proxy {
            addr,
            mode,
            failures,
            accepted,
        }
    }

    /// The URL to give the writer.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many of the injected HTTP 500 answers are still to come.
    pub fn failures_left(&self) -> u32 {
        *self.failures.lock().unwrap()
    }

    /// When each connection was accepted, in order.
    pub fn accepted(&self) -> Vec<std::time::Instant> {
        self.accepted.lock().unwrap().clone()
    }

    /// Switches mode; connections open under the old mode are closed.
    pub fn set(&self, mode: Mode) {
        if let Mode::Http500(n) | Mode::Http503(n, _) = mode {
            *self.failures.lock().unwrap() = n;
        }
        self.mode.send_replace(mode);
    }
}

async fn serve(
    mut listener: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    control: Arc<watch::Sender<Mode>>,
    failures: Arc<Mutex<u32>>,
    accepted: Arc<Mutex<Vec<std::time::Instant>>>,
) {
    let mut mode = control.subscribe();
    let accepted_log = accepted;
    loop {
        let current = mode.borrow_and_update().clone();
        if current == Mode::Down {
            drop(listener);
            if mode.changed().await.is_err() {
                return;
            }
            listener = loop {
                match TcpListener::bind(addr).await {
                    Ok(l) => break l,
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
            continue;
        }
        tokio::select! {
            accepted = listener.accept() => {
                let accepted_at = &accepted_log;
                let Ok((client, _)) = accepted else { continue };
                accepted_at.lock().unwrap().push(std::time::Instant::now());
                let rx = mode.clone();
                tokio::spawn(handle(client, upstream, current, rx, control.clone(), failures.clone()));
            }
            changed = mode.changed() => if changed.is_err() { return },
        }
    }
}

async fn handle(
    mut client: TcpStream,
    upstream: SocketAddr,
    mode: Mode,
    mut changes: watch::Receiver<Mode>,
    control: Arc<watch::Sender<Mode>>,
    failures: Arc<Mutex<u32>>,
) {
    changes.mark_unchanged();
    let work = async {
        match mode {
            Mode::Down => {}
            Mode::Reset => {
                let _ = client.set_zero_linger();
                let mut buf = [0u8; 1024];
                let _ =
                    tokio::time::timeout(Duration::from_millis(50), client.read(&mut buf)).await;
            }
            Mode::BlackHole => {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = client.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            }
            Mode::Http500(_) | Mode::Http503(..) => {
                let fail = {
                    let mut left = failures.lock().unwrap();
                    let fail = *left > 0;
                    *left = left.saturating_sub(1);
                    fail
                };
                if !fail {
                    forward(client, upstream, None, None).await;
                    return;
                }
                if matches!(mode, Mode::Http503(..)) {
                    // All of it: closing on unread bytes would reset the connection, and
                    // the client might see the reset instead of the answer.
                    let _ = tokio::time::timeout(Duration::from_secs(5), read_request(&mut client))
                        .await;
                } else {
                    let mut buf = vec![0u8; 64 * 1024];
                    let _ = tokio::time::timeout(Duration::from_millis(200), client.read(&mut buf))
                        .await;
                }
                let answer = match mode {
                    Mode::Http503(_, retry_after) => {
                        let body = r#"{"message":"the analytics queue is full; retry later"}"#;
                        format!(
                            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {retry_after}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                    _ => {
                        let body = "Code: 1000. DB::Exception: injected failure";
                        format!(
                            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                };
                let _ = client.write_all(answer.as_bytes()).await;
                let _ = client.shutdown().await;
            }
            Mode::DelayInserts(d) => {
                forward(client, upstream, Some(d), None).await;
            }
            Mode::CutAnswer => {
                if forward_cutting_answer(client, upstream).await {
                    control.send_replace(Mode::Forward);
                }
            }
            Mode::CutBody(n) => {
                if forward(client, upstream, None, Some(n)).await {
                    control.send_replace(Mode::Down);
                }
            }
            Mode::Forward => {
                forward(client, upstream, None, None).await;
            }
        }
    };
    tokio::select! {
        () = work => {}
        _ = changes.changed() => {}
    }
}

/// Reads one request with a `Content-Length` body, head and body.
async fn read_request(client: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return;
            }
        }
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    delay: Option<Duration>,
    cut_after: Option<usize>,
) -> bool {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return false;
    };
    let _ = server.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let inserts = AtomicUsize::new(0);
    let inserts = &inserts;
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        // Where the body starts, once the head's blank line has been seen.
        let mut seen: Vec<u8> = Vec::new();
        let mut body_sent: Option<usize> = None;
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut chunk = &buf[..n];
            if delay.is_some()
                && chunk
                    .windows(12)
                    .any(|w| w.eq_ignore_ascii_case(b"query=INSERT"))
            {
                inserts.fetch_add(1, Ordering::SeqCst);
            }
            if let Some(limit) = cut_after {
                let body_start = match body_sent {
                    Some(_) => Some(0),
                    None => {
                        let before = seen.len();
                        seen.extend_from_slice(chunk);
                        seen.windows(4)
                            .position(|w| w == b"\r\n\r\n")
                            .map(|p| p + 4 - before)
                    }
                };
                if let Some(start) = body_start {
                    let sent = body_sent.unwrap_or(0);
                    let body = chunk.len() - start;
                    if sent + body >= limit {
                        chunk = &chunk[..start + (limit - sent)];
                        let _ = sw.write_all(chunk).await;
                        let _ = sw.shutdown().await;
                        return true;
                    }
                    body_sent = Some(sent + body);
                }
            }
            if sw.write_all(chunk).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
        false
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(d) = delay
                && inserts.load(Ordering::SeqCst) > 0
            {
                inserts.fetch_sub(1, Ordering::SeqCst);
                tokio::time::sleep(d).await;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::pin!(up, down);
    tokio::select! {
        cut = &mut up => if cut {
            // Let the server read to the end and commit; its answer is never passed on.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return true;
        } else {
            down.await
        },
        () = &mut down => {}
    }
    false
}

/// Forwards one connection until the server answers an insert; that answer is not passed
/// on: the client's connection is reset instead. True when an answer was cut.
async fn forward_cutting_answer(client: TcpStream, upstream: SocketAddr) -> bool {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return false;
    };
    let _ = server.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let _ = client.set_zero_linger();
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let inserts = AtomicUsize::new(0);
    let inserts = &inserts;
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if buf[..n]
                .windows(12)
                .any(|w| w.eq_ignore_ascii_case(b"query=INSERT"))
            {
                inserts.fetch_add(1, Ordering::SeqCst);
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            if inserts.load(Ordering::SeqCst) > 0 {
                // The server answered the insert: it has the rows. Drop the answer.
                return true;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                return false;
            }
        }
    };
    tokio::select! {
        () = up => false,
        cut = down => cut,
    }
}
