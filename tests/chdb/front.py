"""A ClickHouse HTTP front over chdb, the ClickHouse engine in process.

Serves the part of ClickHouse's HTTP interface that the `clickhouse` crate 0.15 uses, so the
integration tests can run against the current engine where no current server can be
installed. Test infrastructure only: see README.md beside this file for what it does not do.

    python front.py --port 8223 --data DIR [--user NAME --password SECRET]

Environment: CHDB_FRONT_USER and CHDB_FRONT_PASSWORD name a second user (besides `default`
with an empty password) when the options are not given.
"""

import argparse
import base64
import json
import os
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

os.environ["TZ"] = "UTC"  # as the tests' 18.16 server is configured
time.tzset()

from chdb import state  # noqa: E402  (after TZ, which the engine reads once)

# What 26.x's HTTP handler answers for an exception code (src/Server/HTTP/
# exceptionCodeToHTTPStatus.cpp); the codes are looked up by name in the engine.
STATUS_BY_NAME = {
    401: ["REQUIRED_PASSWORD"],
    403: ["UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE",
          "ACCESS_DENIED"],
    400: ["BAD_ARGUMENTS", "CANNOT_COMPILE_REGEXP", "CANNOT_PARSE_TEXT",
          "CANNOT_PARSE_ESCAPE_SEQUENCE", "CANNOT_PARSE_QUOTED_STRING", "CANNOT_PARSE_DATE",
          "CANNOT_PARSE_DATETIME", "CANNOT_PARSE_NUMBER",
          "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING", "CANNOT_PARSE_IPV4", "CANNOT_PARSE_IPV6",
          "CANNOT_PARSE_INPUT_ASSERTION_FAILED", "CANNOT_PARSE_UUID", "DUPLICATE_COLUMN",
          "ILLEGAL_COLUMN", "UNKNOWN_ELEMENT_IN_AST", "UNKNOWN_TYPE_OF_AST_NODE",
          "THERE_IS_NO_COLUMN", "TOO_DEEP_AST", "TOO_BIG_AST", "UNEXPECTED_AST_STRUCTURE",
          "SYNTAX_ERROR", "INCORRECT_DATA", "TYPE_MISMATCH",
          "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"],
    404: ["UNKNOWN_TABLE", "UNKNOWN_FUNCTION", "UNKNOWN_IDENTIFIER", "UNKNOWN_TYPE",
          "UNKNOWN_STORAGE", "UNKNOWN_DATABASE", "UNKNOWN_SETTING",
          "UNKNOWN_DIRECTION_OF_SORTING", "UNKNOWN_AGGREGATE_FUNCTION", "UNKNOWN_FORMAT",
          "UNKNOWN_DATABASE_ENGINE", "UNKNOWN_TYPE_OF_QUERY", "UNKNOWN_ROLE"],
    413: ["QUERY_IS_TOO_LARGE"],
    501: ["NOT_IMPLEMENTED"],
    503: ["SOCKET_TIMEOUT", "CANNOT_OPEN_FILE", "CANNOT_SCHEDULE_TASK"],
    411: ["HTTP_LENGTH_REQUIRED"],
    408: ["TIMEOUT_EXCEEDED"],
    415: ["UNSUPPORTED_MEDIA_TYPE"],
}
# URL parameters that are not settings.
NOT_SETTINGS = {"query", "database", "default_format", "user", "password", "query_id",
                "session_id", "session_timeout", "session_check", "role", "compress",
                "decompress", "enable_http_compression", "wait_end_of_query"}
INSERT_WITH_FORMAT = re.compile(
    r"^\s*(INSERT\s+INTO\s+.*?)\s+FORMAT\s+(\w+)\s*$", re.IGNORECASE | re.DOTALL)
LEADING_KEYWORD = re.compile(r"^\s*(\w+)")
CODE = re.compile(r"Code: (\d+)\.")

engine = None
engine_lock = threading.Lock()
current_db = "default"
baseline = {}
status_by_code = {}
version = ""
users = {"default": ""}
record = None  # a file that gets each statement run, as a JSON line (--record)


class Failure(Exception):
    """An answer in the shape of a 26.x exception."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def run(sql, fmt="TabSeparated"):
    """Runs one statement on the engine, raising Failure with the engine's code."""
    try:
        return engine.query(sql, fmt).bytes()
    except Exception as e:  # noqa: BLE001 (the engine raises RuntimeError subclasses)
        raise from_engine(e) from None


def from_engine(e):
    text = str(e)
    start = text.find("Code: ")
    text = text[start:] if start >= 0 else text
    m = CODE.search(text)
    code = int(m.group(1)) if m else 1001  # STD_EXCEPTION
    if m is None:
        text = f"Code: {code}. DB::Exception: {text}. (STD_EXCEPTION)"
    text = re.sub(r" \(version [^)]*\)$", "", text.rstrip())
    return Failure(code, text)


def quote(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def restore_settings():
    """Puts every setting back as it was when the front started (a SET leaks otherwise)."""
    changed = run("SELECT name, value FROM system.settings WHERE changed", "JSONCompact")
    for name, value in json.loads(changed)["data"]:
        if name == "database" or baseline.get(name) == value:
            continue
        if name in baseline:
            run(f"SET {name} = {quote(baseline[name])}")
        else:
            run(f"SET {name} = DEFAULT")


def execute(database, settings, sql, body, out_format, recorded):
    """Runs one request's statement under the engine lock; returns the result's bytes."""
    global current_db
    keyword = (LEADING_KEYWORD.match(sql) or [None, ""])[1].upper()
    with engine_lock:
        try:
            if database != current_db:
                run(f"USE `{database}`")
                current_db = database
            for name, value in settings.items():
                run(f"SET {name} = {quote(value)}")
            insert = INSERT_WITH_FORMAT.match(sql) if body else None
            if insert:
                return insert_stream(insert.group(1), insert.group(2), body)
            if body:
                sql = sql + "\n" + body.decode("utf-8", "replace")
            if record and recorded:
                record.write(json.dumps({"database": database, "settings": settings,
                                         "format": out_format, "query": sql}) + "\n")
                record.flush()
            result = run(sql, out_format)
            if keyword == "USE":
                current_db = run("SELECT currentDatabase()").decode().strip()
            return result
        finally:
            # A statement's SET and USE last for that request only, as on a server without
            # a session; settings from the URL likewise.
            if current_db != "default":
                run("USE `default`")
                current_db = "default"
            if settings or keyword == "SET":
                restore_settings()


def insert_stream(statement, fmt, body):
    """An INSERT whose rows are in the body: the engine's streaming insert parses them."""
    try:
        inserter = engine.send_insert(statement, fmt)
    except Exception as e:  # noqa: BLE001
        raise from_engine(e) from None
    try:
        inserter.append(body)
        inserter.finish()
    except Exception as e:  # noqa: BLE001
        try:
            inserter.cancel()
        except Exception:  # noqa: BLE001 (already finished by the failure)
            pass
        raise from_engine(e) from None
    return b""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ClickHouse"
    sys_version = ""

    def version_string(self):
        return "ClickHouse"
    timeout = 30  # 26.9's keep_alive_timeout, in seconds

    def log_message(self, fmt, *args):  # quiet: one line per error only
        pass

    def do_GET(self):
        self.handle_request(b"")

    def do_POST(self):
        try:
            body = self.read_body()
        except (ConnectionError, ValueError, TimeoutError, OSError):
            # A cut body: nothing of it runs, and there is no one to answer.
            self.close_connection = True
            return
        self.handle_request(body)

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                line = self.rfile.readline(1024)
                if not line.endswith(b"\n"):
                    raise ConnectionError("body cut in a chunk header")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                chunk = self.rfile.read(size + 2)
                if len(chunk) != size + 2:
                    raise ConnectionError("body cut in a chunk")
                parts.append(chunk[:size])
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if len(body) != length:
            raise ConnectionError("body cut")
        return body

    def handle_request(self, body):
        url = urlsplit(self.path)
        if url.path == "/ping" or (url.path == "/" and not url.query and not body):
            return self.answer(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
        if url.path != "/":
            return self.answer(404, f"There is no handle {url.path}\n".encode(),
                               {"Content-Type": "text/plain; charset=UTF-8"})
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        try:
            self.authenticate(params)
            if self.headers.get("Content-Type", "").startswith("multipart/form-data"):
                raise Failure(48, "Code: 48. DB::Exception: The front over chdb does not "
                                  "take query parameters in a multipart body. (NOT_IMPLEMENTED)")
            if params.get("compress") == "1" or params.get("decompress") == "1":
                raise Failure(48, "Code: 48. DB::Exception: The front over chdb does not "
                                  "compress. (NOT_IMPLEMENTED)")
            if "query" in params:
                sql = params["query"]
            else:
                sql, body = body.decode("utf-8", "replace"), b""
            # Every setting is applied, async_insert too: the engine takes it as 26.9 does,
            # and inserts synchronously whatever it says (README.md: no async-insert queue).
            settings = {k: v for k, v in params.items() if k not in NOT_SETTINGS}
            out_format = params.get("default_format") or "TabSeparated"
            result = execute(params.get("database") or "default", settings, sql, body,
                             out_format, not self.headers.get("X-Chdb-Front-No-Record"))
        except Failure as failure:
            print(f"chdb front: {failure.message.splitlines()[0][:300]}", file=sys.stderr,
                  flush=True)
            return self.fail(failure, query_id=query_id)
        summary = {"read_rows": "0", "read_bytes": "0", "written_rows": "0",
                   "written_bytes": "0", "total_rows_to_read": "0", "result_rows": "0",
                   "result_bytes": str(len(result)), "elapsed_ns": "0"}
        self.answer(200, result, {
            "Content-Type": "application/octet-stream"
            if out_format.startswith("RowBinary") else "text/tab-separated-values; charset=UTF-8",
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Format": out_format,
            "X-ClickHouse-Timezone": "UTC",
            "X-ClickHouse-Summary": json.dumps(summary, separators=(",", ":")),
        })

    def authenticate(self, params):
        user = self.headers.get("X-ClickHouse-User")
        password = self.headers.get("X-ClickHouse-Key")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user, password = None, None
        user = user if user is not None else params.get("user", "default")
        password = password if password is not None else params.get("password", "")
        if users.get(user) != password:
            raise Failure(516, f"Code: 516. DB::Exception: {user}: Authentication failed: "
                               "password is incorrect, or there is no user with such name. "
                               "(AUTHENTICATION_FAILED)")

    def fail(self, failure, status=None, query_id=None):
        status = status or status_by_code.get(failure.code, 500)
        body = f"{failure.message} (version {version} (official build))\n".encode()
        headers = {"Content-Type": "text/plain; charset=UTF-8",
                   "X-ClickHouse-Exception-Code": str(failure.code)}
        if query_id:
            headers["X-ClickHouse-Query-Id"] = query_id
        self.answer(status, body, headers)

    def answer(self, status, body, headers):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("X-ClickHouse-Server-Display-Name", "chdb-front")
        self.send_header("Keep-Alive", f"timeout={Handler.timeout}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client left (a test's proxy, a timeout)


def main():
    global engine, version, baseline, record
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("CHDB_HTTP_PORT", 8223)))
    parser.add_argument("--data", required=True, help="the engine's data directory")
    parser.add_argument("--user", default=os.environ.get("CHDB_FRONT_USER"))
    parser.add_argument("--password", default=os.environ.get("CHDB_FRONT_PASSWORD", ""))
    parser.add_argument("--record", help="append each statement run to this file (JSON lines)")
    args = parser.parse_args()
    if args.record:
        record = open(args.record, "a", encoding="utf-8")
    if args.user:
        users[args.user] = args.password
    os.makedirs(args.data, exist_ok=True)
    engine = state.connect(args.data)
    # chdb turns this on for its own users; a server has it off.
    run("SET implicit_select = 0")
    version = run("SELECT version()").decode().strip()
    names = [n for names in STATUS_BY_NAME.values() for n in names]
    codes = run("SELECT errorCodeToName(number), number FROM numbers(2000) WHERE "
                f"errorCodeToName(number) IN ({', '.join(quote(n) for n in names)})",
                "JSONCompact")
    code_of = dict(json.loads(codes)["data"])
    status_by_code.update({int(code_of[n]): status for status, names in STATUS_BY_NAME.items()
                           for n in names if n in code_of})
    changed = run("SELECT name, value FROM system.settings WHERE changed", "JSONCompact")
    baseline = dict(json.loads(changed)["data"])
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"chdb front: ClickHouse {version} on http://127.0.0.1:{args.port}", file=sys.stderr,
          flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
