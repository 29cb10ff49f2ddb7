//! [`ResponseFuture`]: records the event once the response head is ready.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::{Method, Response};
use pin_project::{pin_project, pinned_drop};

use crate::{
    account::AccountId,
    clock::Tick,
    event::{Capture, Source},
    route::EventName,
    writer::Analytics,
};

/// Where finished recordings go: shared by every request, one `Arc` to clone.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) analytics: Analytics,
    pub(crate) source: Source,
}

/// One request on its way to becoming an event: what the layer learnt from the request.
pub(crate) struct Recording {
    pub(crate) target: Arc<Target>,
    pub(crate) started: Tick,
    pub(crate) method: Method,
    /// The request's account, or the anonymous id; a response's [`AccountId`] overrides it.
    pub(crate) account: Option<u64>,
    pub(crate) name: EventName,
}

impl Recording {
    /// Enqueues the event, unless it has no account. Never waits: a full queue or a closed
    /// writer is counted by the writer's handle, and the request goes on.
    fn finish(self, status: u16, response_account: Option<&AccountId>) {
        let Some(account_id) = response_account.map(|id| id.0).or(self.account) else {
            return;
        };
        let Self {
            target,
            started,
            method,
            name,
            ..
        } = self;
        // Rejected events are counted in the writer's stats; the request is not concerned.
        // So is a route name that is no event type, when the writer's thread checks it.
        let _ = target.analytics.try_capture(Capture {
            account_id,
            name,
            source: target.source.clone(),
            method,
            status,
            started,
            at: Tick::now(),
        });
    }
}

/// The response future of [`AnalyticsService`](crate::AnalyticsService).
///
/// Resolves to the inner service's output, untouched. When the response head is ready it
/// records the event with the response's status and the time since the request came in.
/// If the inner service fails, or the future is dropped before it completes (the client
/// went away, or the handler panicked), the event is recorded with status `0`: the account
/// was active all the same. The event's time is the moment it is recorded.
///
/// Recording reads a monotonic clock and moves what the request said into the writer's
/// queue; the event type's check, the event's id and its wall-clock time are made on the
/// writer's thread.
#[pin_project(PinnedDrop)]
pub struct ResponseFuture<F> {
    #[pin]
    inner: F,
    recording: Option<Recording>,
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, recording: Option<Recording>) -> Self {
        Self { inner, recording }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("records", &self.recording.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = ready!(this.inner.poll(cx));
        if let Some(recording) = this.recording.take() {
            match &output {
                Ok(response) => recording.finish(
                    response.status().as_u16(),
                    response.extensions().get::<AccountId>(),
                ),
                Err(_) => recording.finish(0, None),
            }
        }
        Poll::Ready(output)
    }
}

#[pinned_drop]
impl<F> PinnedDrop for ResponseFuture<F> {
    fn drop(self: Pin<&mut Self>) {
        if let Some(recording) = self.project().recording.take() {
            recording.finish(0, None);
        }
    }
}
