//! What the benchmarks share: a runtime with a writer that drains its queue without
//! reaching ClickHouse, interleaved rounds, and a pass-through layer. Every round times each
//! variant once, so that a machine whose speed drifts over a minute moves all variants
//! alike, where criterion, timing one variant after another, would move one against the
//! other.

#![allow(dead_code)] // each benchmark uses a part

use std::{
    future::Future,
    task::{Context, Poll},
    time::Instant,
};

use http::Request;
use idp_analytics::Analytics;
use tower::{Layer, Service};

/// A layer that does nothing but wrap: what any layer costs at least.
#[derive(Clone)]
pub(crate) struct PassThroughLayer;

impl<S> Layer<S> for PassThroughLayer {
    type Service = PassThrough<S>;
    fn layer(&self, inner: S) -> Self::Service {
        PassThrough(inner)
    }
}

#[derive(Clone)]
pub(crate) struct PassThrough<S>(S);

impl<S, B> Service<Request<B>> for PassThrough<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }
    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.0.call(request)
    }
}

/// A two-thread runtime, and the real writer handle and queue, whose worker drains batches
/// as usual and drops them: what is timed is the request path, not ClickHouse's work on
/// the same cores.
pub(crate) fn runtime_and_discarding_writer() -> (tokio::runtime::Runtime, Analytics) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (analytics, worker) = Analytics::builder("http://127.0.0.1:1")
        .build_pair()
        .unwrap();
    rt.spawn(worker.run_discarding());
    (rt, analytics)
}

/// The number of rounds: `BENCH_ROUNDS`, default 20; 0 skips them.
pub(crate) fn rounds() -> usize {
    std::env::var("BENCH_ROUNDS").map_or(20, |v| {
        v.parse().expect("BENCH_ROUNDS is a number of rounds")
    })
}

/// Runs `rounds` rounds, plus one before them that warms up and is not counted; in each,
/// variant `i` is called `calls[i]` times in a row. Returns each variant's median round, in
/// nanoseconds per call.
pub(crate) fn median_rounds<F, Fut>(
    rt: &tokio::runtime::Runtime,
    rounds: usize,
    calls: &[u32],
    call: F,
) -> Vec<f64>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut times = vec![Vec::with_capacity(rounds + 1); calls.len()];
    for _ in 0..=rounds {
        for (variant, (&n, times)) in calls.iter().zip(&mut times).enumerate() {
            let elapsed = rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    call(variant).await;
                }
                start.elapsed()
            });
            times.push(elapsed.as_secs_f64() * 1e9 / f64::from(n));
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.remove(0);
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect()
}
