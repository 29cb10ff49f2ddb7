//! An example app run as its own process: start it, send it requests, stop or kill it.

use std::{path::PathBuf, process::Stdio, time::Duration};

use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{Child, ChildStdout, Command},
};

/// Builds the example `name` (nothing to do when `cargo test` has built it already) and
/// returns the path of its binary.
pub async fn build_example(name: &str) -> PathBuf {
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "--quiet", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // `cargo test` sets these for the test, and `ring`'s build script tracks some of them
    // (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`...): with them, this build would differ from
    // the one made from a shell, and each would compile ring and all above it again.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_") || key.starts_with("CARGO_MANIFEST_") {
            cargo.env_remove(&*key);
        }
    }
    let status = cargo.status().await.unwrap();
    assert!(status.success(), "cargo build --example {name} failed");
    // target/debug/deps/<test>-<hash> → target/debug/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    dir.join("examples").join(name)
}

/// A running example.
pub struct App {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl App {
    /// Starts the example `name` on a free port with these environment variables, and waits
    /// until it listens.
    pub async fn start(name: &str, env: &[(&str, &str)]) -> App {
        Self::start_with_file_limit(name, env, None).await
    }

    /// [`start`](Self::start), with at most `files` open file descriptors (`ulimit -n`).
    pub async fn start_with_file_limit(
        name: &str,
        env: &[(&str, &str)],
        files: Option<u32>,
    ) -> App {
        let binary = build_example(name).await;
        let mut command = match files {
            None => Command::new(&binary),
            Some(files) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {files} && exec \"$0\""))
                    .arg(&binary);
                sh
            }
        };
        command
            .env("PORT", "0")
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
            .await
            .expect("the example did not start listening within 30 s")
            .unwrap()
            .unwrap_or_default();
        let base = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
            .to_owned();
        App {
            child,
            stdout,
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The app's address, `http://127.0.0.1:<port>`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The `host:port` the example listens on.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Sends one request, as `account` (the examples' `Bearer demo-<id>` login) or as nobody.
    pub async fn send(&self, method: Method, path: &str, account: Option<u64>) -> StatusCode {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(account) = account {
            request = request.header("authorization", format!("Bearer demo-{account}"));
        }
        let response = self.client.request(request.body(Full::default()).unwrap());
        response.await.unwrap().status()
    }

    /// Sends a GET with an optional `Authorization` value, and returns the status and body.
    pub async fn get(&self, path: &str, authorization: Option<&str>) -> (StatusCode, String) {
        self.request(Method::GET, path, authorization).await
    }

    /// Sends a request without a body, with an optional `Authorization` value, and returns
    /// the status and body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
    ) -> (StatusCode, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = self
            .client
            .request(request.body(Full::default()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Posts a JSON body to the reporter endpoint at `path` with a reporter's bearer token.
    pub async fn report(&self, path: &str, token: &str, json: &str) -> StatusCode {
        let request = Request::post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::from(json.to_owned())))
            .unwrap();
        self.client.request(request).await.unwrap().status()
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the example is running").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Stops the app with SIGTERM, waits for it to exit cleanly, and returns what it printed
    /// after its first line.
    pub async fn stop(mut self) -> Vec<String> {
        self.signal("-TERM");
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the example did not stop within 30 s of SIGTERM")
            .unwrap();
        assert!(exit.success(), "the example exited with {exit}");
        let mut rest = Vec::new();
        while let Some(line) = self.stdout.next_line().await.unwrap() {
            rest.push(line);
        }
        rest
    }

    /// Kills the app with SIGKILL: no shutdown, no flush.
    pub async fn kill(mut self) {
        self.signal("-KILL");
        let exit = self.child.wait().await.unwrap();
        assert!(!exit.success());
    }
}
