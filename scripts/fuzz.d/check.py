"""After a schemathesis run: the events table holds exactly the events the API accepted.

Reads the run's HAR report (every request schemathesis sent, with its answer) and the rows
the axum example wrote for the fuzzing reporter, and checks that
- every event of an answered-200 request is stored: one row per event without an `eventId`
  (counted per account and event type), at least one row per (account, `eventId`);
- nothing else is: no row of a refused request, none beyond those.
Usage: check.py HAR CLICKHOUSE_URL DATABASE SOURCE
"""

import collections
import json
import sys
import urllib.parse
import urllib.request
import uuid


def query(url, sql):
    request = urllib.request.Request(url, data=sql.encode())
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read().decode()


def events_of(path, body):
    try:
        value = json.loads(body)
    except (ValueError, TypeError):
        return None
    if path.endswith("/events"):
        return value if isinstance(value, list) else None
    return [value]


def main():
    har_path, url, database, source = sys.argv[1:5]
    with open(har_path) as f:
        har = json.load(f)
    accepted_plain = collections.Counter()
    accepted_ids = collections.defaultdict(set)
    sent = refused = 0
    for entry in har["log"]["entries"]:
        request, response = entry["request"], entry["response"]
        path = urllib.parse.urlparse(request["url"]).path
        if request["method"] != "POST" or not path.endswith(("/event", "/events")):
            continue
        sent += 1
        if response["status"] != 200:
            refused += 1
            continue
        events = events_of(path, (request.get("postData") or {}).get("text"))
        assert events is not None, f"200 for a body that is not events: {request}"
        for event in events:
            account, kind = int(event["accountId"]), event["event"]
            event_id = event.get("eventId")
            if event_id is None:
                accepted_plain[(account, kind)] += 1
            else:
                accepted_ids[(account, str(uuid.UUID(event_id)))].add(kind)
    rows = query(
        url,
        f"SELECT account_id AS a, event_type AS t, toString(event_id) AS id "
        f"FROM `{database}`.`events` FINAL WHERE source = '{source}' FORMAT JSONEachRow",
    )
    stored_plain = collections.Counter()
    stored_ids = collections.defaultdict(set)
    for line in rows.splitlines():
        row = json.loads(line)
        account, kind, event_id = int(row["a"]), row["t"], row["id"]
        if (account, event_id) in accepted_ids:
            stored_ids[(account, event_id)].add(kind)
        else:
            stored_plain[(account, kind)] += 1
    problems = []
    if stored_plain != accepted_plain:
        extra = stored_plain - accepted_plain
        missing = accepted_plain - stored_plain
        problems.append(f"events without eventId: stored but not accepted {dict(extra)}; "
                        f"accepted but not stored {dict(missing)}")
    for key, kinds in accepted_ids.items():
        if not stored_ids.get(key):
            problems.append(f"accepted but not stored: {key} {kinds}")
        elif not stored_ids[key] <= kinds:
            problems.append(f"stored as another event: {key} {stored_ids[key]} not in {kinds}")
    total = sum(accepted_plain.values()) + sum(len(v) for v in stored_ids.values())
    print(f"check: {sent} requests to the reporter, {refused} refused, "
          f"{sent - refused} accepted; {sum(stored_plain.values())} rows without and "
          f"{sum(len(v) for v in stored_ids.values())} with a client eventId")
    if problems:
        print("check: the table does not hold exactly the accepted events:")
        for p in problems[:20]:
            print("  " + p)
        sys.exit(1)
    if sent - refused == 0:
        print("check: no request was accepted; the run tested nothing")
        sys.exit(1)
    print("check: the table holds exactly the accepted events")


if __name__ == "__main__":
    main()
