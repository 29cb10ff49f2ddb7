"""Checks that the front answers as README.md says: credentials, 26.x's error shape, settings
and databases that last one request only, RowBinary in and out, deduplication tokens.

    python check_front.py http://127.0.0.1:8223 [USER PASSWORD]

Stdlib only. Prints one line per check and `N passed, N failed`; exits 1 on a failure.
"""

import base64
import struct
import sys
import urllib.error
import urllib.parse
import urllib.request

url = sys.argv[1]
user, password = (sys.argv[2:4] + ["analytics", "analytics-test-password"][len(sys.argv[2:4]):])
results = []


def request(sql=None, body=b"", headers=None, path="/", **params):
    if sql is not None and body:
        params["query"] = sql
    elif sql is not None:
        body = sql.encode()
    query = urllib.parse.urlencode(params)
    req = urllib.request.Request(f"{url}{path}?{query}", data=body or None,
                                 headers=headers or {}, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def check(name, condition, detail=""):
    results.append(bool(condition))
    print(f"{'ok  ' if condition else 'FAIL'} {name}{'' if condition else ': ' + str(detail)}")


status, headers, body = request(path="/ping")
check("/ping answers Ok.", status == 200 and body == b"Ok.\n", (status, body))
check("keep-alive timeout is 26.9's 30 s", headers.get("Keep-Alive") == "timeout=30", headers)

status, _, body = request("SELECT version()")
check("the engine is 26.9", status == 200 and body.startswith(b"26.9."), body)

status, headers, body = request("SELECT 1", headers={"X-ClickHouse-User": user,
                                                     "X-ClickHouse-Key": password})
check("the configured user with its password", status == 200 and body == b"1\n", body)
basic = base64.b64encode(f"{user}:{password}".encode()).decode()
status, _, body = request("SELECT 1", headers={"Authorization": f"Basic {basic}"})
check("the same user by basic auth", status == 200, body)
wrong = "wrong-secret-8d1f"
for name, creds in [("a wrong password", {"X-ClickHouse-User": user, "X-ClickHouse-Key": wrong}),
                    ("an unknown user", {"X-ClickHouse-User": "nobody",
                                         "X-ClickHouse-Key": wrong}),
                    ("default with a password", {"X-ClickHouse-Key": wrong})]:
    status, headers, body = request("SELECT 1", headers=creds)
    check(f"{name}: 403, code 516 in the header and the body",
          status == 403 and headers.get("X-ClickHouse-Exception-Code") == "516"
          and body.startswith(b"Code: 516. DB::Exception: ")
          and b"(AUTHENTICATION_FAILED) (version 26.9" in body, (status, headers, body))
    check(f"{name}: the password sent is not in the answer", wrong.encode() not in body)

for sql, want_status, want_code in [("SELECT * FROM no_such_table", 404, "60"),
                                    ("SELEC 1", 400, "62"),
                                    ("SELECT throwIf(1)", 500, "395")]:
    status, headers, body = request(sql)
    check(f"{sql!r}: {want_status} with code {want_code}",
          status == want_status and headers.get("X-ClickHouse-Exception-Code") == want_code
          and body.startswith(f"Code: {want_code}. DB::Exception: ".encode()),
          (status, headers.get("X-ClickHouse-Exception-Code"), body[:120]))
status, headers, _ = request("SELECT 1", no_such_setting="1")
check("an unknown setting in the URL: 404, code 115",
      status == 404 and headers.get("X-ClickHouse-Exception-Code") == "115", status)

setting = "SELECT value FROM system.settings WHERE name = 'max_threads'"
_, _, before = request(setting)
_, _, during = request(setting, max_threads="3")
_, _, after = request(setting)
check("a setting in the URL holds for that request only", during == b"3\n" and after == before,
      (before, during, after))
request("SET max_threads = 5")
_, _, after_set = request(setting)
check("a SET statement does not outlive its request", after_set == before, after_set)
_, _, asked = request("SELECT getSetting('async_insert')", async_insert="0")
check("async_insert=0 is taken, as 26.9 takes it", asked == b"false\n", asked)

request("DROP DATABASE IF EXISTS check_front")
request("CREATE DATABASE check_front")
request("USE check_front")
_, _, current = request("SELECT currentDatabase()")
check("a USE statement does not outlive its request", current == b"default\n", current)
_, _, current = request("SELECT currentDatabase()", database="check_front")
check("database= sets the request's database", current == b"check_front\n", current)
status, headers, _ = request("SELECT 1", database="no_such_database")
check("an unknown database: 404, code 81",
      status == 404 and headers.get("X-ClickHouse-Exception-Code") == "81", status)

request("CREATE TABLE check_front.t (a UInt64, s String) ENGINE = MergeTree ORDER BY a "
        "SETTINGS non_replicated_deduplication_window = 100")
rows = b"".join(struct.pack("<Q", i) + bytes([1]) + b"x" for i in range(5))
for _ in range(2):
    status, _, body = request("INSERT INTO t(a, s) FORMAT RowBinary", rows,
                              database="check_front", insert_deduplication_token="batch-1")
check("RowBinary rows in the body of an insert", status == 200, body)
_, _, count = request("SELECT count() FROM check_front.t")
check("the same insert_deduplication_token twice stores the rows once", count == b"5\n", count)
status, headers, body = request("INSERT INTO t(a, s) FORMAT RowBinary", b"\x01\x02",
                                database="check_front")
check("a torn row: code 33 and nothing stored",
      headers.get("X-ClickHouse-Exception-Code") == "33"
      and request("SELECT count() FROM check_front.t")[2] == b"5\n", (status, body[:120]))
_, headers, out = request("SELECT a, s FROM check_front.t ORDER BY a LIMIT 1",
                          default_format="RowBinary")
check("RowBinary out", out == struct.pack("<Q", 0) + b"\x01x", out)
_, _, out = request("SELECT a FROM check_front.t ORDER BY a LIMIT 1",
                    default_format="RowBinaryWithNamesAndTypes")
check("RowBinaryWithNamesAndTypes out", out == b"\x01\x01a\x06UInt64" + struct.pack("<Q", 0),
      out)
request("DROP DATABASE check_front")

failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
