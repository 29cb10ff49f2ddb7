//! The endpoint's answers: every body is JSON with a `message`.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{
    HeaderValue, Response, StatusCode,
    header::{ALLOW, CONNECTION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE},
};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use serde::Serialize;

/// The body of every response of the endpoint: one JSON document, sent whole.
#[derive(Debug, Clone)]
pub struct ResponseBody(Full<Bytes>);

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// One bad item of a batch.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct ItemError {
    /// The item's position in the batch, from 0.
    pub(crate) index: usize,
    /// What is wrong with it, naming each bad field.
    pub(crate) message: String,
}

/// The body of every answer.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct Message<'a> {
    /// `success`, or what went wrong.
    message: &'a str,
    /// For a batch with bad items (`422`): each of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [ItemError]>,
}

fn json(status: StatusCode, message: &str, errors: Option<&[ItemError]>) -> Response<ResponseBody> {
    // Serializing strings and numbers cannot fail.
    let body = serde_json::to_vec(&Message { message, errors }).unwrap_or_default();
    json_bytes(status, Bytes::from(body))
}

fn json_bytes(status: StatusCode, body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody(Full::new(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `{"message": message}` with `status`.
pub(crate) fn message(status: StatusCode, message: &str) -> Response<ResponseBody> {
    json(status, message, None)
}

/// `200 {"message":"success"}`: the answer to almost every request, so never serialized.
pub(crate) fn success() -> Response<ResponseBody> {
    json_bytes(
        StatusCode::OK,
        Bytes::from_static(br#"{"message":"success"}"#),
    )
}

/// The most bad items of a batch a `422` lists; the rest are counted in its message.
pub(crate) const MAX_ITEMS_LISTED: usize = 20;

/// `422` listing the bad items of a batch by index: `bad` in all, the first of them in
/// `errors`.
pub(crate) fn bad_items(total: usize, bad: usize, errors: &[ItemError]) -> Response<ResponseBody> {
    let mut message = format!(
        "{bad} of {total} events {} invalid; none was recorded",
        if bad == 1 { "is" } else { "are" }
    );
    if bad > errors.len() {
        message.push_str(&format!("; the first {} are listed", errors.len()));
    }
    json(StatusCode::UNPROCESSABLE_ENTITY, &message, Some(errors))
}

/// `401` with `WWW-Authenticate: Bearer`, the same whatever was wrong with the credentials.
pub(crate) fn unauthorized() -> Response<ResponseBody> {
    let mut response = message(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// `408` with `Connection: close`: the body took too long to arrive.
pub(crate) fn timeout(message_text: &str) -> Response<ResponseBody> {
    let mut response = message(StatusCode::REQUEST_TIMEOUT, message_text);
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `405` with `Allow: POST`.
pub(crate) fn method_not_allowed() -> Response<ResponseBody> {
    let mut response = message(StatusCode::METHOD_NOT_ALLOWED, "use POST");
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("POST"));
    response
}

/// `200` with a JSON document made elsewhere.
#[cfg(feature = "openapi")]
pub(crate) fn document(body: Bytes) -> Response<ResponseBody> {
    json_bytes(StatusCode::OK, body)
}

/// `405` with `Allow: <allow>`, for a path that takes other methods than `POST`.
#[cfg(feature = "openapi")]
pub(crate) fn method_not_allowed_but(allow: &'static str) -> Response<ResponseBody> {
    let mut response = message(StatusCode::METHOD_NOT_ALLOWED, &format!("use {allow}"));
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// `503` with `Retry-After` in whole seconds (at least one).
pub(crate) fn unavailable(message_text: &str, retry_after: Duration) -> Response<ResponseBody> {
    let mut response = message(StatusCode::SERVICE_UNAVAILABLE, message_text);
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body(response: Response<ResponseBody>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn bodies_are_json() {
        let r = success();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(body(r).await, r#"{"message":"success"}"#);

        let r = message(StatusCode::BAD_REQUEST, "a \"quoted\"\nline");
        assert_eq!(body(r).await, r#"{"message":"a \"quoted\"\nline"}"#);

        let errors = [ItemError {
            index: 2,
            message: "field event is missing".into(),
        }];
        let r = bad_items(3, 1, &errors);
        assert_eq!(r.status(), 422);
        assert_eq!(
            body(r).await,
            r#"{"message":"1 of 3 events is invalid; none was recorded","errors":[{"index":2,"message":"field event is missing"}]}"#
        );
    }

    #[test]
    fn headers_of_refusals() {
        let r = unauthorized();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
        let r = method_not_allowed();
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()[ALLOW], "POST");
        let r = unavailable("x", Duration::from_millis(1500));
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[RETRY_AFTER], "2");
        let r = unavailable("x", Duration::ZERO);
        assert_eq!(r.headers()[RETRY_AFTER], "1");
    }
}
