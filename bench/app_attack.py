"""The stranger's probe of a password-protected `curate app` (issue 30, part 4), rerun: what was tried, what held.

    python -m bench.app_attack -w WS

Starts `curate app -w WS --password-file F` on a free loopback port and, without signing in: loads pages and
assets, floods Streamlit's upload endpoint (8 x 10 MB), opens the websocket, reads the metrics; then guesses
passwords as fast as the server lets it for `--guess-seconds`; then signs in and reads the metrics and the
websocket again. The server's RSS is read from /proc before and after the flood. Prints a table, writes
bench/results/app_attack-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.machine import load_average, machine_facts, summary_line
from bench.report import markdown_table

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "a long passphrase nobody guesses"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def websocket_status(url: str, cookie: str | None = None) -> str:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    try:
        with connect(url.replace("http", "ws") + "/_stcore/stream", subprotocols=["streamlit"], open_timeout=10,
                     additional_headers={"Cookie": cookie} if cookie else {}):
            return "opened"
    except InvalidStatus as refused:
        return f"refused (HTTP {refused.response.status_code})"


def guess(url: str, seconds: float) -> dict:
    """Wrong passwords as fast as the server answers, for `seconds`: how many were checked, how many refused
    unchecked (429), and the longest wait the server asked for."""
    checked = refused = 0
    longest = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        reply = requests.post(url + "/_curate/sign-in", data={"password": f"guess {checked + refused}"},
                              allow_redirects=False, timeout=10)
        if reply.status_code == 429:
            refused += 1
            longest = max(longest, int(reply.headers.get("retry-after", 0)))
        else:
            checked += 1
    return {"checked": checked, "refused unchecked (429)": refused, "longest wait asked (s)": longest}


def probe(url: str, pid: int, guess_seconds: float) -> list[dict]:
    rows = []
    row = lambda attack, result, held: rows.append({"attack": attack, "result": result, "held": held})  # noqa: E731
    pages = {p: requests.get(url + p, headers={"Accept": "text/html"}, allow_redirects=False, timeout=10).status_code
             for p in ("/", "/explore", "/search")}
    row("load pages unsigned", ", ".join(f"{p} {s}" for p, s in pages.items()), all(s == 303 for s in pages.values()))
    assets = {p: requests.get(url + p, timeout=10).status_code
              for p in ("/_stcore/host-config", "/media/x.png", "/component/c/index.html", "/static/js/index.js")}
    row("assets, media, components unsigned", ", ".join(f"{p} {s}" for p, s in assets.items()),
        all(s == 401 for s in assets.values()))
    before = rss_mb(pid)
    t = time.perf_counter()
    flood = [requests.put(f"{url}/_stcore/upload_file/s{i}/f{i}", files={"file": (f"{i}.png", os.urandom(10 << 20))},
                          timeout=60).status_code for i in range(8)]
    after = rss_mb(pid)
    row("8 x 10 MB uploads unsigned", f"statuses {sorted(set(flood))}, {time.perf_counter() - t:.1f} s; server RSS "
        f"{before:,.0f} -> {after:,.0f} MB", all(s == 401 for s in flood) and after - before < 40)
    row("open the websocket unsigned", websocket_status(url), websocket_status(url).startswith("refused"))
    metrics = requests.get(url + "/_stcore/metrics", timeout=10).status_code
    row("read /_stcore/metrics unsigned", f"HTTP {metrics}", metrics == 404)
    tried = guess(url, guess_seconds)
    row(f"guess passwords for {guess_seconds:.0f} s", ", ".join(f"{k} {v}" for k, v in tried.items()),
        tried["checked"] <= 8)
    time.sleep(tried["longest wait asked (s)"] + 0.5)  # let the lockout pass, then sign in for real
    signed = requests.post(url + "/_curate/sign-in", data={"password": PASSWORD}, allow_redirects=False, timeout=10)
    cookie = signed.headers.get("set-cookie", "").split(";")[0]
    row("sign in with the password (after the wait)", f"HTTP {signed.status_code}, cookie {'set' if cookie else 'none'}",
        signed.status_code == 303 and bool(cookie))
    metrics = requests.get(url + "/_stcore/metrics", headers={"Cookie": cookie}, timeout=10).status_code
    row("read /_stcore/metrics signed in", f"HTTP {metrics}", metrics == 404)
    row("open the websocket signed in", websocket_status(url, cookie), websocket_status(url, cookie) == "opened")
    return rows


def main(argv: list[str] | None = None) -> None:
    from tests.apptest_helpers import free_port, wait_until_serving

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-w", "--workspace", type=Path, required=True)
    p.add_argument("--guess-seconds", type=float, default=30.0)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    facts = machine_facts("cpu", REPO)
    with tempfile.TemporaryDirectory() as tmp:
        secret = Path(tmp) / "password.txt"
        secret.write_text(PASSWORD)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CURATE_APP_")}
        server = subprocess.Popen([sys.executable, "-m", "curate", "app", "-w", str(args.workspace), "--host",
                                   "127.0.0.1", "--port", str(port), "--password-file", str(secret)], cwd=REPO,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(url, server)
            rows = probe(url, server.pid, args.guess_seconds)  # `curate app` execs: the same pid
        finally:
            server.terminate()
            log, _ = server.communicate(timeout=30)
    logged = log.count("wrong app password from")
    facts["load_avg_end"] = load_average()
    print(f"\n### The stranger's probe of `curate app` with a password\n\n{summary_line(facts)}\n")
    print(markdown_table(rows))
    print(f"\nserver log: {logged} 'wrong app password' lines")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"app_attack-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"machine": facts, "rows": rows, "wrong_password_log_lines": logged}, indent=1))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
