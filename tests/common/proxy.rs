//! A small TCP proxy between the writer and ClickHouse that can refuse, reset, delay,
//! black-hole or fail connections on command, so outages can be tested without touching
//! the shared server.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
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
    /// Forward, but hold the server's answer back this long.
    Delay(Duration),
    /// Answer each request with HTTP 500 this many times, then forward.
    Http500(u32),
    /// Forward this many bytes of the request, then close both sides cleanly.
    CutAfter(usize),
}

/// A proxy on 127.0.0.1 forwarding to `upstream`.
pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    failures: Arc<Mutex<u32>>,
}

impl Proxy {
    /// Starts a proxy to the ClickHouse at `url` (`http://host:port`).
    pub async fn start(url: &str) -> Proxy {
        let upstream: SocketAddr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .replace("localhost", "127.0.0.1")
            .parse()
            .expect("CLICKHOUSE_URL must be http://IP:PORT for the proxy");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, _) = watch::channel(Mode::Forward);
        let failures = Arc::new(Mutex::new(0));
        tokio::spawn(serve(
            listener,
            addr,
            upstream,
            mode.subscribe(),
            failures.clone(),
        ));
        Proxy {
            addr,
            mode,
            failures,
        }
    }

    /// The URL to give the writer.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many of the injected HTTP 500 answers are still to come.
    pub fn failures_left(&self) -> u32 {
        *self.failures.lock().unwrap()
    }

    /// Switches mode; connections open under the old mode are closed.
    pub fn set(&self, mode: Mode) {
        if let Mode::Http500(n) = mode {
            *self.failures.lock().unwrap() = n;
        }
        self.mode.send_replace(mode);
    }
}

async fn serve(
    mut listener: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    failures: Arc<Mutex<u32>>,
) {
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
                let Ok((client, _)) = accepted else { continue };
                let rx = mode.clone();
                tokio::spawn(handle(client, upstream, current, rx, failures.clone()));
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
            Mode::Http500(_) => {
                let fail = {
                    let mut left = failures.lock().unwrap();
                    let fail = *left > 0;
                    *left = left.saturating_sub(1);
                    fail
                };
                if !fail {
                    return forward(client, upstream, None, None).await;
                }
                let mut buf = vec![0u8; 64 * 1024];
                let _ =
                    tokio::time::timeout(Duration::from_millis(200), client.read(&mut buf)).await;
                let body = "Code: 1000. DB::Exception: injected failure";
                let answer = format!(
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = client.write_all(answer.as_bytes()).await;
                let _ = client.shutdown().await;
            }
            Mode::Delay(d) => forward(client, upstream, Some(d), None).await,
            Mode::CutAfter(n) => forward(client, upstream, None, Some(n)).await,
            Mode::Forward => forward(client, upstream, None, None).await,
        }
    };
    tokio::select! {
        () = work => {}
        _ = changes.changed() => {}
    }
}

async fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    delay: Option<Duration>,
    cut_after: Option<usize>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut sent = 0usize;
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let n = match cut_after {
                Some(limit) if sent + n >= limit => {
                    let _ = sw.write_all(&buf[..limit - sent]).await;
                    let _ = sw.shutdown().await;
                    return true;
                }
                _ => n,
            };
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            sent += n;
        }
        let _ = sw.shutdown().await;
        false
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut first = true;
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if first {
                first = false;
                if let Some(d) = delay {
                    tokio::time::sleep(d).await;
                }
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::pin!(up, down);
    tokio::select! {
        cut = &mut up => if !cut { down.await },
        () = &mut down => {}
    }
}
