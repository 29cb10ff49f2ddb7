"""Request-to-row latency: how long after a request is sent its row is visible in ClickHouse.

    python3 scripts/load.d/latency.py APP_URL CLICKHOUSE_URL DATABASE FIRST_ACCOUNT COUNT

Sends COUNT requests, `GET APP_URL/projects/7`, one every INTERVAL_MS (default 20 ms), each
as its own account (FIRST_ACCOUNT, FIRST_ACCOUNT + 1, ...): the account is the marker that
tells its row from every other. Meanwhile it asks ClickHouse every POLL_MS (default 10 ms)
which of those accounts have a row in DATABASE.events, and notes when each first appears.
Prints one line: `latency_ms p50 P90 p99 max samples N`, the time from just before each
request was sent to the first poll that saw its row (so up to POLL_MS late). Exits non-zero
if a row has not appeared within TIMEOUT_S (default 30 s) of the last request.
"""

import http.client
import os
import sys
import threading
import time
import urllib.parse
import urllib.request


def main():
    app, clickhouse, database, first, count = sys.argv[1:6]
    first, count = int(first), int(count)
    interval = float(os.environ.get("INTERVAL_MS", "20")) / 1000
    poll = float(os.environ.get("POLL_MS", "10")) / 1000
    timeout = float(os.environ.get("TIMEOUT_S", "30"))

    sent = {}
    seen = {}
    done_sending = threading.Event()
    query = (
        f"SELECT DISTINCT account_id FROM `{database}`.events "
        f"WHERE account_id >= {first} AND account_id < {first + count} FORMAT TSV"
    )
    query_url = clickhouse.rstrip("/") + "/?" + urllib.parse.urlencode({"query": query})

    def poller():
        deadline = None
        while len(seen) < count:
            with urllib.request.urlopen(query_url, timeout=10) as answer:
                body = answer.read().decode()
            now = time.monotonic()
            for line in body.split():
                seen.setdefault(int(line), now)
            if done_sending.is_set():
                deadline = deadline or now + timeout
                if now > deadline:
                    return
            time.sleep(poll)

    watcher = threading.Thread(target=poller, daemon=True)
    watcher.start()

    target = urllib.parse.urlsplit(app)
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
    start = time.monotonic()
    for i in range(count):
        account = first + i
        pause = start + i * interval - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        sent[account] = time.monotonic()
        conn.request("GET", "/projects/7", headers={"Authorization": f"Bearer demo-{account}"})
        answer = conn.getresponse()
        answer.read()
        if answer.status != 200:
            sys.exit(f"latency.py: GET /projects/7 answered {answer.status}")
    done_sending.set()
    watcher.join()

    missing = [a for a in sent if a not in seen]
    if missing:
        sys.exit(f"latency.py: {len(missing)} of {count} rows never appeared, e.g. account {missing[0]}")
    latencies = sorted((seen[a] - sent[a]) * 1000 for a in sent)

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    print(
        f"latency_ms p50 {pct(50):.0f} p90 {pct(90):.0f} p99 {pct(99):.0f} "
        f"max {latencies[-1]:.0f} samples {len(latencies)}"
    )


if __name__ == "__main__":
    main()
