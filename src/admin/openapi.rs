//! The admin router's OpenAPI 3.1 document (feature `openapi`), made with `utoipa` from the
//! handlers and the types they answer with ([`AccountUsage`](crate::usage::AccountUsage),
//! [`InactiveAccount`](crate::usage::InactiveAccount), ...). Served at `GET /openapi.json`
//! under the router's prefix, behind its guard; `docs/openapi/admin.json` is the same
//! document, and a test fails when the two differ.

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use http::header;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};

use super::router::{self, Admin, ErrorBody};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "idp-analytics admin",
        description = "The read-only admin router's JSON endpoints: usage per account and \
                       across accounts, quiet accounts and the accounts at risk. Paths are relative to where the \
                       router is nested (such as /admin/analytics). Every request must pass \
                       the application's guard; with admin::bearer, a bearer token."
    ),
    paths(
        router::inactive,
        router::at_risk,
        router::account_usage,
        router::active,
        router::event_types,
        router::accounts
    ),
    components(schemas(ErrorBody)),
    modifiers(&Bearer)
)]
struct AdminApi;

/// The answers every admin query may give besides its 200, listed once so that each
/// endpoint's document names the same ones: they come from the guard and from
/// [`router::Answer`]'s mapping of errors to statuses.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // never made: it only describes the answers
pub(super) enum QueryErrors<'a> {
    /// A parameter is out of range or malformed.
    #[response(status = 400)]
    BadRequest(ErrorBody<'a>),
    /// The guard refused the request.
    #[response(status = 401, headers(("WWW-Authenticate" = String, description = "`Bearer`.")))]
    Unauthorized(ErrorBody<'a>),
    /// The query failed.
    #[response(status = 500)]
    Failed(ErrorBody<'a>),
    #[response(
        status = 503,
        description = "The events table does not exist yet (a moment after the application \
                       starts), or ClickHouse cannot be reached.",
        headers(("Retry-After" = u32, description = "Seconds to wait: 1."))
    )]
    Unavailable(ErrorBody<'a>),
    /// ClickHouse did not answer within the query timeout.
    #[response(status = 504)]
    TimedOut(ErrorBody<'a>),
}

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "With the admin::bearer guard; an application may guard the router \
                     otherwise.",
                ))
                .build(),
        );
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", scheme);
    }
}

impl Admin {
    /// The admin router's OpenAPI 3.1 document (feature `openapi`, on by default), as
    /// served at `GET /openapi.json` under the router's prefix: pretty JSON ending with a
    /// newline. `docs/openapi/admin.json` in the repository is the same document.
    pub fn openapi_json() -> &'static str {
        static JSON: OnceLock<String> = OnceLock::new();
        JSON.get_or_init(|| {
            // Serializing a document of strings and numbers cannot fail.
            let mut json = AdminApi::openapi().to_pretty_json().unwrap_or_default();
            json.push('\n');
            json
        })
    }
}

pub(super) async fn serve() -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "application/json")],
        Admin::openapi_json(),
    )
        .into_response();
    router::no_store(&mut response);
    response
}
