"""Replays the crate's queries on two ClickHouse engines over the same rows, byte for byte.

After the integration tests ran through the chdb front (which records every statement it
runs), this copies each test database's rows from the front to the other server (18.16), then
runs every SELECT the crate issued against both, in the format the crate asked for, and
compares the answers' bytes.

    python compare.py --statements target/chdb/statements.jsonl \
        --new http://127.0.0.1:8223 --old http://127.0.0.1:8123

Exits 1 when an answer differs for a reason other than the known ones it counts apart (see
README.md).
Stdlib only: runs with any python3.
"""

import argparse
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

ERROR_CODE = re.compile(rb"^Code: (\d+)[.,]")
# Answers that depend on how the server laid out its parts, not on the rows: a plain count()
# of an AggregatingMergeTree counts rows not merged yet, and the copy here is merged.
LAYOUT_DEPENDENT = re.compile(r"^SELECT count\(\) FROM `\w+`\.`\w+_daily`$")
# Answers approximate by design: `quantiles` keeps a sample whose make-up each engine decides
# (the detectors use it only to cut account ids into ranges that chain whatever the bounds).
APPROXIMATE = re.compile(r"\bquantiles\(")
SELECT = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)
TEST_DB = re.compile(r"\btest_\w+")
# Settings 18.16 does not know, which the crate adds to the DDL for newer servers only.
NEWER_DDL_SETTINGS = re.compile(r",\s*non_replicated_deduplication_window\s*=\s*\d+")


def post(url, sql, body=None, **params):
    """One request; returns (status, bytes)."""
    if body is None:
        data = sql.encode()
    else:
        params["query"] = sql
        data = body
    request = urllib.request.Request(
        f"{url}/?{urllib.parse.urlencode(params)}", data=data, method="POST",
        headers={"X-Chdb-Front-No-Record": "1"})  # the front records the crate's only
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def ok(url, sql, body=None, **params):
    status, answer = post(url, sql, body, **params)
    if status != 200:
        raise RuntimeError(f"{url}: {sql[:120]!r}: {status} {answer[:300]!r}")
    return answer


def copy_database(db, new, old):
    """Makes `db` on the old server hold the tables and rows it holds on the new one."""
    ok(old, f"DROP DATABASE IF EXISTS `{db}`")
    ok(old, f"CREATE DATABASE `{db}`")
    tables = json.loads(ok(new, "SELECT name, engine FROM system.tables WHERE database = "
                                f"'{db}' FORMAT JSONCompact"))["data"]
    views = []
    for table, engine in tables:
        create = ok(new, f"SHOW CREATE TABLE `{db}`.`{table}` FORMAT TSVRaw").decode()
        if engine == "MaterializedView":
            # 26.9 shows the target's columns between TO and AS, which 18.16 cannot parse.
            views.append(re.sub(r"(TO \S+)\s*\(.*?\)\s*AS ", r"\1 AS ", create, flags=re.S))
            continue
        ok(old, NEWER_DDL_SETTINGS.sub("", create))
        types = json.loads(ok(new, f"SELECT groupArray(type) FROM system.columns WHERE "
                                   f"database = '{db}' AND table = '{table}' FORMAT JSONCompact"))
        if any(t.startswith("AggregateFunction") for t in types["data"][0][0]):
            continue  # the rollup: rebuilt below from the rows it summarises
        rows = ok(new, f"SELECT * FROM `{db}`.`{table}` FORMAT RowBinary")
        if rows:
            ok(old, f"INSERT INTO `{db}`.`{table}` FORMAT RowBinary", rows)
    for rollup in [t for t, _ in tables if t.endswith("_daily")]:
        events = rollup[: -len("_daily")]
        keys = ok(new, f"SELECT account_id, day, event_type FROM `{db}`.`{rollup}` "
                       "GROUP BY account_id, day, event_type FORMAT TabSeparated")
        if not keys.strip():
            continue
        ok(old, f"CREATE TABLE `{db}`.`rollup_keys` (account_id UInt64, day Date, "
                "event_type String) ENGINE = Memory")
        ok(old, f"INSERT INTO `{db}`.`rollup_keys` FORMAT TabSeparated", keys)
        ok(old, f"INSERT INTO `{db}`.`{rollup}` SELECT account_id, toDate(inserted_at, 'UTC') "
                "AS day, event_type, uniqExactState(event_id), "
                "minState(toUInt32(inserted_at)), maxState(toUInt32(inserted_at)) "
                f"FROM `{db}`.`{events}` WHERE (account_id, day, event_type) IN "
                f"(SELECT account_id, day, event_type FROM `{db}`.`rollup_keys`) "
                "GROUP BY account_id, day, event_type")
        ok(old, f"DROP TABLE `{db}`.`rollup_keys`")
    for view in views:  # last, so that the copies above fed no view
        ok(old, view)


def has_2106(new, db):
    """Whether a table of `db` has a DateTime from 2106-01-01 on, whose day 18.16's `toDate`
    maps to 0000-00-00 (and 26.9 does not): answers over such rows differ, and 18.16 is
    wrong."""
    columns = json.loads(ok(new, "SELECT table, name FROM system.columns WHERE database = "
                                 f"'{db}' AND type LIKE 'DateTime%' FORMAT JSONCompact"))
    for table, column in columns["data"]:
        late = ok(new, f"SELECT count() FROM `{db}`.`{table}` WHERE `{column}` >= "
                       "toDateTime('2106-01-01 00:00:00', 'UTC')")
        if late.strip() != b"0":
            return True
    return False


def same_error(a, b):
    """Both answers are errors with the same status and code (18.16 words them otherwise)."""
    codes = [ERROR_CODE.match(x[1]) for x in (a, b)]
    return a[0] != 200 and a[0] == b[0] and all(codes) and codes[0][1] == codes[1][1]


def varint(data, at):
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def column_names(url, s):
    """The names of a statement's columns, from a RowBinaryWithNamesAndTypes header."""
    params = dict(s["settings"], default_format="RowBinaryWithNamesAndTypes",
                  database=s["database"])
    status, data = post(url, s["query"], **params)
    if status != 200:
        return None
    count, at = varint(data, 0)
    names = []
    for _ in range(count):
        size, at = varint(data, at)
        names.append(data[at:at + size].decode())
        at += size
    return names


def in_full_order(url, s, names):
    """The statement's answer with its rows sorted by every column."""
    order = ", ".join("`" + n.replace("`", "\\`") + "`" for n in names)
    params = dict(s["settings"], default_format=s["format"], database=s["database"])
    return post(url, f"SELECT * FROM ({s['query']}) ORDER BY {order}", **params)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", required=True)
    parser.add_argument("--new", required=True, help="the front over chdb")
    parser.add_argument("--old", required=True, help="the other server (18.16)")
    args = parser.parse_args()
    with open(args.statements, encoding="utf-8") as f:
        statements = [json.loads(line) for line in f if line.strip()]

    selects, seen = {}, set()
    for s in statements:
        dbs = set(TEST_DB.findall(s["query"]))
        if s["database"].startswith("test_"):
            dbs.add(s["database"])
        if len(dbs) != 1:
            continue
        db = dbs.pop()
        if SELECT.match(s["query"]) and s["format"].startswith("RowBinary"):
            key = (s["database"], s["format"], json.dumps(s["settings"]), s["query"])
            if key not in seen:
                seen.add(key)
                selects.setdefault(db, []).append(s)

    existing = set(json.loads(ok(args.new, "SELECT groupArray(name) FROM system.databases "
                                           "FORMAT JSONCompact"))["data"][0][0])
    compared = identical = reordered = errors = layout = approximate = wrong_on_old = 0
    differences = []
    for db in sorted(selects):
        if db not in existing:
            continue
        copy_database(db, args.new, args.old)
        late = has_2106(args.new, db)
        for s in selects[db]:
            params = dict(s["settings"], default_format=s["format"], database=s["database"])
            answers = [post(url, s["query"], **params) for url in (args.new, args.old)]
            compared += 1
            if answers[0] == answers[1]:
                identical += 1
                continue
            if same_error(*answers):
                errors += 1
                continue
            if LAYOUT_DEPENDENT.match(s["query"]):
                layout += 1
                continue
            if APPROXIMATE.search(s["query"]):
                approximate += 1
                continue
            names = column_names(args.new, s) if answers[0][0] == 200 else None
            if names and in_full_order(args.new, s, names) == in_full_order(args.old, s, names):
                # The same rows; the query leaves the order of some of them open.
                reordered += 1
            elif late:
                wrong_on_old += 1
            else:
                differences.append((db, s, answers))

    print(f"compare: {compared} distinct SELECTs of the crate over {len(selects)} test "
          f"databases: {identical} answers byte-identical on 26.9 and 18.16, {reordered} "
          "the same rows in another order where the query leaves the order open, "
          f"{errors} the same error (status and code), {layout} not comparable (a count of "
          f"unmerged rollup rows), {approximate} approximate by design (sampled quantiles), "
          f"{wrong_on_old} different over rows from 2106-01-01 on (18.16 maps those days to "
          f"0000-00-00), {len(differences)} different otherwise")
    for db, s, (new, old) in differences:
        print(f"\n--- differs in {db} ({s['format']}):\n{s['query']}\n"
              f"  26.9: {new[0]} {new[1][:200]!r}\n  18.16: {old[0]} {old[1][:200]!r}")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
