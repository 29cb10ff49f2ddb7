//! The [`Notifier`] trait and its blanket implementations.

use std::{future::Future, pin::Pin, sync::Arc};

#[cfg(doc)]
use super::WebhookNotifier;
use super::notification::{Digest, Notification};
use crate::error::BoxError;

/// The future a [`Notifier`] returns.
pub type NotifyFuture = Pin<Box<dyn Future<Output = std::result::Result<(), BoxError>> + Send>>;

/// Delivers notifications. Implemented for closures
/// `Fn(Notification) -> impl Future<Output = Result<(), E>>`, by [`WebhookNotifier`], and for
/// `Arc<dyn Notifier>` and `Box<dyn Notifier>`, to pick a notifier at run time.
///
/// An error means the notification was not delivered: the watch logs it, records it as
/// failed, and tries again at its next check while the account stays in that state.
pub trait Notifier: Send + Sync + 'static {
    /// Delivers one notification.
    fn notify(&self, notification: Notification) -> NotifyFuture;
}

impl<F, Fut, E> Notifier for F
where
    F: Fn(Notification) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn notify(&self, notification: Notification) -> NotifyFuture {
        let fut = self(notification);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

impl Notifier for Arc<dyn Notifier> {
    fn notify(&self, notification: Notification) -> NotifyFuture {
        (**self).notify(notification)
    }
}

impl Notifier for Box<dyn Notifier> {
    fn notify(&self, notification: Notification) -> NotifyFuture {
        (**self).notify(notification)
    }
}

/// Delivers a [`Digest`]: many notifications in one message. Implemented for closures
/// `Fn(Digest) -> impl Future<Output = Result<(), E>>`.
///
/// An error means the digest was not delivered: each of its notifications is recorded as
/// failed and tried again at the next check.
pub trait DigestNotifier: Send + Sync + 'static {
    /// Delivers one digest.
    fn notify_digest(&self, digest: Digest) -> NotifyFuture;
}

impl<F, Fut, E> DigestNotifier for F
where
    F: Fn(Digest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn notify_digest(&self, digest: Digest) -> NotifyFuture {
        let fut = self(digest);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}
