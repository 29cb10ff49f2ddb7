"""schemathesis hooks for scripts/fuzz.

The document says that an event's time must lie within a window around the server's clock
(5 minutes ahead, 7 days old), which JSON Schema cannot state; generated values would almost
all be outside it, and a boundary drawn at load time would be crossed while the run goes on.
For the fuzzer only, the document is narrowed to what is valid whatever the clock says:

- `timestamp`: only `null` (the same as absent) is valid; every other value it draws is
  invalid (a date-time or a number inside the window is too unlikely to be drawn) and must
  be refused;
- `eventId`: a UUID whose version carries no time (any but 1, 6 and 7, whose time would be
  the event's, and outside the window). Drawn UUIDs of versions 1, 6 and 7 are invalid and
  must be refused.

Valid timestamps and time-carrying ids are covered by the crate's own tests
(tests/reporter.rs, tests/resend.rs).
"""

import schemathesis


@schemathesis.hook
def before_load_schema(ctx, raw_schema):
    props = raw_schema["components"]["schemas"]["Event"]["properties"]
    props["timestamp"] = {"type": "null"}
    for alternative in props["eventId"]["oneOf"]:
        if alternative.get("format") == "uuid":
            alternative["pattern"] = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[02-589a-fA-F]"
