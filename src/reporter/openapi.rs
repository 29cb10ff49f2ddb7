//! The endpoint's OpenAPI 3.1 document (feature `openapi`), made with `utoipa` from the
//! types and limits the endpoint itself uses: the answers' [`Message`] and [`ItemError`],
//! the event type's length ([`MAX_EVENT_TYPE_LEN`]), and the reporter's configured body,
//! batch and age limits. [`Reporter::openapi`](super::Reporter::openapi) returns it; the
//! router serves it at `GET /openapi.json`; `docs/openapi/reporter.json` is the document of
//! a reporter with the default settings, and a test fails when the two differ.
//!
//! Two rules JSON Schema cannot state exactly are said in descriptions: `event` is limited
//! in bytes of UTF-8 (`maxLength` counts characters, so it is an upper bound that holds for
//! ASCII), and `timestamp` must lie in a window around the time of the request.

use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        Components, ComponentsBuilder, ContentBuilder, HttpMethod, Info, OpenApi, OpenApiBuilder,
        PathItem, PathsBuilder, Ref, RefOr, Required, ResponseBuilder, Schema,
        header::HeaderBuilder,
        path::OperationBuilder,
        request_body::RequestBodyBuilder,
        schema::{
            AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder,
            SchemaFormat, Type,
        },
        security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme},
    },
};

use crate::event::MAX_EVENT_TYPE_LEN;

use super::{
    response::{ItemError, Message},
    service::Settings,
    validate::describe,
};

/// The name of the bearer scheme in the document.
const BEARER: &str = "bearer";

/// Characters an event type must not contain: Unicode's control characters (`Cc`). The
/// pattern refuses them anywhere; `(?![\s\S])` ends it at the very end of the string, as
/// `$` would not before a final newline in every regular expression dialect.
const EVENT_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]+(?![\\s\\S])";

/// The document for a reporter with these settings.
pub(crate) fn document(settings: &Settings) -> OpenApi {
    let single = operation(
        "reportEvent",
        "Report one event",
        "One usage event of one account. Answers `200 {\"message\":\"success\"}` once the \
         writer has taken it (or, with confirmed writes, once ClickHouse has stored it).",
        RefOr::Ref(Ref::from_schema_name("Event")),
        settings.max_body_bytes,
        false,
    );
    let batch = operation(
        "reportEvents",
        "Report a batch of events",
        &format!(
            "1 to {} events, taken all or none: if any is invalid, the `422` answer lists \
             each bad one by its `index` in `errors`, and none is recorded.",
            settings.max_batch_len
        ),
        ArrayBuilder::new()
            .items(Ref::from_schema_name("Event"))
            .min_items(Some(1))
            .max_items(Some(settings.max_batch_len))
            .into(),
        settings.max_batch_body_bytes,
        true,
    );
    OpenApiBuilder::new()
        .info(
            Info::builder()
                .title("idp-analytics reporter")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Usage events reported over REST by services that are not behind the \
                 tower layer. Every answer is JSON with a `message`; nothing is recorded \
                 unless the answer is `200`.",
                ))
                .build(),
        )
        .paths(
            PathsBuilder::new()
                .path("/event", PathItem::new(HttpMethod::Post, single))
                .path("/events", PathItem::new(HttpMethod::Post, batch)),
        )
        .components(Some(components(settings)))
        .build()
}

fn components(settings: &Settings) -> Components {
    ComponentsBuilder::new()
        .schema("Event", event_schema(settings))
        .schema(Message::name(), Message::schema())
        .schema(ItemError::name(), ItemError::schema())
        .security_scheme(
            BEARER,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Each reporter's own token; its name is stored as the events' \
                         `source`. A missing, malformed or unknown token is `401`.",
                    ))
                    .build(),
            ),
        )
        .build()
}

fn event_schema(settings: &Settings) -> Schema {
    let window = settings.window;
    let account = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::Custom("uint64".into())))
        .minimum(Some(0u64 as usize))
        .maximum(Some(usize::try_from(u64::MAX).unwrap_or(usize::MAX)))
        .description(Some("The account the event belongs to."))
        .examples([1]);
    let event = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_EVENT_TYPE_LEN))
        .pattern(Some(EVENT_PATTERN))
        .description(Some(format!(
            "The event's type, stored verbatim: 1 to {MAX_EVENT_TYPE_LEN} bytes of UTF-8 \
             (as many characters in ASCII, fewer otherwise) without control characters."
        )))
        .examples(["search"]);
    let timestamp = OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(format!(
            "When the event happened: an RFC 3339 date-time or a number of Unix seconds \
             (a fraction is dropped); at most {} ahead of the server's clock and at most \
             {} old. Absent or null: the time of the event's first report.",
            describe(window.max_ahead),
            describe(window.max_age),
        )));
    let event_id = OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::Custom("uuid".into()))),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "A UUID of any version (also taken without hyphens, in braces or as a \
             `urn:uuid:`; not the nil UUID). An event sent again with the same `eventId` \
             by the same reporter is stored once: always with the same `timestamp` or a \
             UUID v1, v6 or v7; otherwise within the reporter's resend window of the first \
             report. Absent or null: the event gets a new id.",
        ));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("accountId", account)
        .required("accountId")
        .property("event", event)
        .required("event")
        .property("timestamp", timestamp)
        .property("eventId", event_id)
        .property(
            "method",
            or_null(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(super::validate::MAX_METHOD_LEN))
                    .pattern(Some("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")),
                "For an event that stands for an HTTP request: its method. Absent or null: \
                 none.",
            ),
        )
        .property(
            "status",
            or_null(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .maximum(Some(999)),
                "For an event that stands for an HTTP request: the status it was answered \
                 with; 0 when it had none. Absent or null: 0.",
            ),
        )
        .property(
            "latencyUs",
            or_null(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .maximum(Some(u64::MAX)),
                "For an event that stands for an HTTP request: how long it took, in \
                 microseconds. Absent or null: 0.",
            ),
        )
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
        .description(Some(
            "One usage event. Every field is named once; unknown fields are refused.",
        ))
        .examples([serde_json::json!({"accountId": 1, "event": "search"})])
        .into()
}

/// `value` or `null`, which the reporter reads as the field's absence.
fn or_null(value: ObjectBuilder, description: &str) -> OneOfBuilder {
    OneOfBuilder::new()
        .item(value)
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(description))
}

/// One `POST` operation with every answer it can give.
fn operation(
    id: &str,
    summary: &str,
    description: &str,
    body: RefOr<Schema>,
    max_body_bytes: usize,
    batch: bool,
) -> utoipa::openapi::path::Operation {
    let json = |example: Option<serde_json::Value>| {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(Message::name())))
            .example(example)
            .build()
    };
    let answer = |description: &str, example: &str| {
        ResponseBuilder::new().description(description).content(
            "application/json",
            json(Some(serde_json::json!({ "message": example }))),
        )
    };
    let invalid = if batch {
        ResponseBuilder::new()
            .description(
                "The body is JSON but not a batch of valid events: not an array, empty, \
                 too long, or with bad items, each listed by `index` in `errors`.",
            )
            .content(
                "application/json",
                json(Some(serde_json::json!({
                    "message": "1 of 2 events is invalid; none was recorded",
                    "errors": [{"index": 1, "message": "field event is missing"}]
                }))),
            )
    } else {
        answer(
            "The body is JSON but not a valid event; the message names each bad field.",
            "field event is missing",
        )
    };
    OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
        .description(Some(description))
        .security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(body)).build(),
                )
                .build(),
        ))
        .response("200", answer("Taken.", "success"))
        .response(
            "400",
            answer(
                "The body is not JSON (truncated, invalid UTF-8, nested too deeply) or \
                 could not be read.",
                "the body is not valid JSON: EOF while parsing a value at line 1 column 0",
            ),
        )
        .response(
            "401",
            answer(
                "A missing, malformed or unknown bearer token; the same body every time.",
                "a valid bearer token is required",
            )
            .header(
                "WWW-Authenticate",
                HeaderBuilder::new()
                    .schema(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some(["Bearer"])),
                    )
                    .build(),
            ),
        )
        .response(
            "408",
            answer(
                "The body did not arrive whole within the body timeout (20 s unless \
                 configured); the connection is closed.",
                "the body did not arrive within 20 seconds",
            ),
        )
        .response(
            "413",
            answer(
                &format!("The body is larger than {max_body_bytes} bytes."),
                &format!("the body is larger than {max_body_bytes} bytes"),
            ),
        )
        .response(
            "415",
            answer(
                "The content type is not `application/json` (a charset, if any, must be UTF-8).",
                "the body must be JSON, sent with content-type: application/json",
            ),
        )
        .response("422", invalid)
        .response(
            "500",
            answer(
                "Only with confirmed writes: the events could not be written.",
                "database error",
            ),
        )
        .response(
            "503",
            answer(
                "The writer's queue is full, the writer is paused or shutting down, or the \
                 earlier reports of an `eventId` could not be looked up. Nothing was \
                 recorded; send the same request again after `Retry-After` seconds.",
                "the analytics queue is full; retry later",
            )
            .header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .minimum(Some(1usize)),
                    )
                    .description(Some("Seconds to wait before sending again."))
                    .build(),
            ),
        )
        .build()
}
