#!/usr/bin/env python3
"""Runs the acceptance tests named in acceptance/items.toml and writes
ACCEPTANCE.md. Called by scripts/acceptance (which builds first); see there.

Every test runs as its own process (the `it` test binary with `--exact`), its
output kept in target/acceptance/logs/. A test that prints "SKIPPED" (a tool
missing) counts as failed: nothing is skipped silently. Scenario tests write
their measures to target/acceptance/results/<name>.json; the dashboard test
writes target/dashboard/bench.json (collected per run); the live-view bench
writes a Markdown table that is parsed here.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "acceptance")
RESULTS = os.path.join(OUT, "results")
LOGS = os.path.join(OUT, "logs")
SOAK_KEPT = os.path.join(ROOT, "acceptance", "soak-last.json")

# Repetitions of the timed scenarios in a full run (--quick: 1).
FULL_RUNS = {
    "acceptance::acceptance_camera_disconnect_and_reconnect": 5,
    "acceptance::acceptance_critical_alert_to_telegram": 5,
    "acceptance::acceptance_recording_never_stops": 3,
    "dashboard::dashboard_in_chromium": 3,
}


def log(msg):
    print(f"acceptance: {msg}", file=sys.stderr, flush=True)


def run_test(binary, name, runs, timeout):
    env = dict(os.environ)
    env["VMS_TEST_BIN_DIR"] = os.path.join(ROOT, "target", "release")
    env["VMS_ACCEPT_OUT"] = RESULTS
    env["VMS_ACCEPT_RUNS"] = str(runs)
    args = [binary, "--exact", name, "--nocapture", "--test-threads=1"]
    if name.startswith("acceptance::"):
        args.insert(1, "--ignored")
    t0 = time.monotonic()
    try:
        p = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = -1, f"{e.stdout or ''}{e.stderr or ''}\nTIMED OUT after {timeout} s"
    secs = time.monotonic() - t0
    logfile = os.path.join(LOGS, name.replace("::", "__") + ".log")
    with open(logfile, "a") as f:
        f.write(out)
    ran = re.search(r"test result: \w+\. 1 passed", out) is not None
    skipped = re.search(r"\bSKIP(PED)?\b", out) is not None
    ok = rc == 0 and ran and not skipped
    why = ""
    if not ok:
        why = "skipped (a tool is missing)" if skipped else ("did not run" if rc == 0 else f"failed (exit {rc})")
    return {"ok": ok, "secs": secs, "why": why, "log": os.path.relpath(logfile, ROOT)}


def run_dashboard(binary, runs, timeout):
    merged = {}
    total = {"ok": True, "secs": 0.0, "why": "", "log": ""}
    bench = os.path.join(ROOT, "target", "dashboard", "bench.json")
    for i in range(runs):
        r = run_test(binary, "dashboard::dashboard_in_chromium", 1, timeout)
        total["secs"] += r["secs"]
        total["log"] = r["log"]
        if not r["ok"]:
            total.update(ok=False, why=r["why"])
            break
        with open(bench) as f:
            b = json.load(f)
        flat = {}
        for k, v in b.items():
            if isinstance(v, dict):
                for k2, v2 in v.items():
                    flat[f"{k}.{k2}"] = v2
            else:
                flat[k] = v
        for k, v in flat.items():
            if isinstance(v, (int, float)):
                merged.setdefault(k, []).append(v)
    with open(os.path.join(RESULTS, "dashboard.json"), "w") as f:
        json.dump({"measures": merged, "notes": []}, f, indent=2)
    return total


def run_live_bench(timeout):
    """web/bench/live.mjs (3 runs of its own) into a scratch Markdown file."""
    md = os.path.join(OUT, "live.md")
    if os.path.exists(md):
        os.remove(md)
    env = dict(os.environ)
    env["MTXSIM_BIN"] = os.path.join(ROOT, "target", "release", "mediamtx-sim")
    inner = f"cd {ROOT}/web && exec node bench/live.mjs {md}"
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        cmd = ["unshare", "-n", "sh", "-c", "ip link set lo up && " + inner]
    else:
        cmd = ["sh", "-c", inner]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        rc, out = -1, "TIMED OUT"
    secs = time.monotonic() - t0
    logfile = os.path.join(LOGS, "live-view-bench.log")
    with open(logfile, "w") as f:
        f.write(out)
    measures = {}
    if rc == 0 and os.path.exists(md):
        for line in open(md):
            m = re.match(r"\| WHEP: capture-to-display[^|]*\| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| (\d+) \|", line)
            if m:
                measures["whep_glass_ms"] = {"median": float(m.group(1)), "worst": float(m.group(3)), "n": int(m.group(4))}
            m = re.match(r"\| HLS: capture-to-display[^|]*\| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| (\d+) \|", line)
            if m:
                measures["hls_glass_ms"] = {"median": float(m.group(1)), "worst": float(m.group(3)), "n": int(m.group(4))}
    with open(os.path.join(RESULTS, "live.json"), "w") as f:
        json.dump({"measures": measures, "notes": []}, f, indent=2)
    ok = rc == 0 and "whep_glass_ms" in measures and "skipped" not in out
    why = "" if ok else (f"failed (exit {rc})" if rc else "no measure (skipped?)")
    return {"ok": ok, "secs": secs, "why": why, "log": os.path.relpath(logfile, ROOT)}


def load(src):
    path = os.path.join(RESULTS, f"{src}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def stats(v, bigger_is_worse):
    if isinstance(v, dict):
        return v["median"], v["worst"], v["n"]
    vals = [float(x) for x in v]
    if not vals:
        return None, None, 0
    worst = max(vals) if bigger_is_worse else min(vals)
    return statistics.median(vals), worst, len(vals)


def fmt(x):
    if x is None:
        return "–"
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.2f}" if abs(x) < 100 else f"{x:.0f}"


def judge(item, outcome, soak_from=None):
    """(status, measured text, done text)."""
    lines = []
    ok = True
    for t in item.get("tests", []):
        r = outcome.get(t)
        if r is None:
            ok = False
            lines.append(f"`{t}`: not run")
        elif not r["ok"]:
            ok = False
            lines.append(f"`{t}`: {r['why']} ({r['log']})")
    measured = []
    for c in item.get("checks", []):
        res = load(c["src"]) if soak_from is None else soak_from
        v = (res or {}).get("measures", {}).get(c["key"])
        bigger_is_worse = "max" in c
        bound = c.get("max", c.get("min"))
        unit = c.get("unit", "")
        u = f" {unit}" if unit else ""
        if v is None or stats(v, bigger_is_worse)[2] == 0:
            ok = False
            measured.append(f"{c['label']}: not measured")
            continue
        med, worst, n = stats(v, bigger_is_worse)
        good = worst <= bound if bigger_is_worse else worst >= bound
        ok = ok and good
        op = "≤" if bigger_is_worse else "≥"
        text = f"{c['label']}: median {fmt(med)}{u}, worst {fmt(worst)}{u} ({n} run{'s' if n != 1 else ''}; needs {op} {fmt(bound)}{u})"
        if "ours" in c:
            mine = worst <= c["ours"]
            text += f"; our target {fmt(c['ours'])}{u}: {'met' if mine else 'missed'}"
        if not good:
            text = "**" + text + "**"
        measured.append(text)
    if not item.get("checks"):
        passed = [t for t in item.get("tests", []) if outcome.get(t, {}).get("ok")]
        if passed:
            measured.append(f"{len(passed)} of {len(item['tests'])} tests passed (their assertions are the measure)")
    status = "PASS" if ok else "FAIL"
    if item.get("not_built"):
        status = "NOT BUILT"
        measured.append(f"waits for {item['not_built']}")
    if item.get("note"):
        measured.append(item["note"])
    return status, "; ".join(lines + measured)


def cell(s):
    return s.replace("|", "\\|").replace("\n", " ")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--soak", action="store_true")
    ap.add_argument("--binary", required=True)
    ap.add_argument("--only", default="", help="run only tests whose name contains this (development)")
    ap.add_argument("--output", default=os.path.join(ROOT, "ACCEPTANCE.md"))
    ap.add_argument("--render", metavar="DIR", help="no tests: rewrite the table from a saved run (DIR/results, DIR/outcome.json), e.g. after editing items.toml's texts")
    a = ap.parse_args()
    if a.output == os.path.join(ROOT, "ACCEPTANCE.md") and (a.only or a.quick):
        # Only a full run rewrites the committed table; a quick (CI) or
        # partial run writes beside its logs.
        name = "ACCEPTANCE.partial.md" if a.only else "ACCEPTANCE.quick.md"
        a.output = os.path.join(OUT, name)
    with open(os.path.join(ROOT, "acceptance", "items.toml"), "rb") as f:
        items = tomllib.load(f)
    global RESULTS
    if a.render:
        RESULTS = os.path.join(a.render, "results")
        with open(os.path.join(a.render, "outcome.json")) as f:
            saved = json.load(f)
        return write(a, items, saved["outcome"], saved["elapsed"],
                     datetime.datetime.fromisoformat(saved["began"]), saved["quick"], saved["soak"])
    for d in (RESULTS, LOGS):
        if not a.only:
            shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d, exist_ok=True)
    started = time.monotonic()
    began = datetime.datetime.now(datetime.timezone.utc)
    tests = []
    for item in items["checklist"] + items["criterion"]:
        if item.get("soak") and not a.soak:
            continue
        for t in item.get("tests", []):
            if t not in tests and a.only in t:
                tests.append(t)
    outcome = {}
    for t in tests:
        runs = 1 if a.quick else FULL_RUNS.get(t, 1)
        log(f"{t} ({runs} run{'s' if runs > 1 else ''})")
        timeout = 3 * 3600 if "soak" in t else 1200
        if t == "dashboard::dashboard_in_chromium":
            r = run_dashboard(a.binary, runs, timeout)
        elif t == "live-view-bench":
            r = run_live_bench(timeout)
        else:
            r = run_test(a.binary, t, runs, timeout)
        outcome[t] = r
        log(f"{t}: {'ok' if r['ok'] else r['why']} in {r['secs']:.0f} s")
    if a.soak and outcome.get("acceptance::acceptance_soak_one_day", {}).get("ok") is not None:
        res = load("soak_day")
        if res is not None:
            res["date"] = began.strftime("%Y-%m-%d %H:%M UTC")
            res["passed"] = outcome["acceptance::acceptance_soak_one_day"]["ok"]
            with open(SOAK_KEPT, "w") as f:
                json.dump(res, f, indent=2)
    elapsed = time.monotonic() - started
    with open(os.path.join(OUT, "outcome.json"), "w") as f:
        json.dump({"outcome": outcome, "elapsed": elapsed, "began": began.isoformat(),
                   "quick": a.quick, "soak": a.soak}, f, indent=2)
    return write(a, items, outcome, elapsed, began, a.quick, a.soak)


def write(a, items, outcome, elapsed, began, quick, soak):
    rows = []
    counts = {"PASS": 0, "FAIL": 0, "NOT BUILT": 0, "NOT RUN": 0}

    def row(n, item):
        soak_from = None
        extra = ""
        if item.get("soak") and not soak:
            if os.path.exists(SOAK_KEPT):
                with open(SOAK_KEPT) as f:
                    soak_from = json.load(f)
                outcome_soak = {t: {"ok": soak_from.get("passed", False), "why": "failed", "log": "acceptance/soak-last.json"} for t in item["tests"]}
                status, measured = judge(item, outcome_soak, soak_from)
                extra = f" (from the `--soak` run of {soak_from.get('date')}, not repeated in this run)"
            else:
                status, measured = "NOT RUN", "run `scripts/acceptance --soak` (about an hour)"
        else:
            status, measured = judge(item, outcome)
        counts[status] += 1
        if status == "FAIL":
            # CI shows only the console: say which row failed and why.
            log(f"FAIL {n}: {item['en']}: {measured}")
        tests = ", ".join(f"`{t}`" for t in item.get("tests", []))
        rows.append(
            f"| {n} | {cell(item['pt'])} — _{cell(item['en'])}_ | {cell(item['done'])} Tests: {tests}. | "
            f"{cell(measured)}{extra} | {cell(item['design_target'])} | {cell(item['our_target'])} | **{status}** |"
        )

    for i, item in enumerate(items["checklist"], 1):
        row(f"C{i}", item)
    rows.append("| | **Critérios de Sucesso** — _success criteria_ | | | | | |")
    for i, item in enumerate(items["criterion"], 1):
        row(f"S{i}", item)

    runs_lines = ["## The runs", "", "| Test | Runs | Result | Seconds |", "|---|---|---|---|"]
    for t, r in outcome.items():
        n = 1 if quick else FULL_RUNS.get(t, 1)
        runs_lines.append(f"| `{t}` | {n} | {'passed' if r['ok'] else r['why']} | {r['secs']:.0f} |")
    runs_table = "\n".join(runs_lines)
    mode = "`--quick`: one run per scenario" if quick else "full run"
    if soak:
        mode += ", with the compressed soak"
    host = platform.node()
    cores = os.cpu_count()
    mins = int(elapsed // 60)
    doc = f"""# Acceptance

Written by `scripts/acceptance` ({mode}) on {began.strftime('%Y-%m-%d %H:%M')} UTC on {host} ({cores} cores); the run took {mins} min {int(elapsed % 60)} s (tests only; the release build before it not counted).

Each row is one line of the design's validation checklist (C1-C19) or of its success criteria (S1-S8), in the design's order and words (pt-BR) with an English gloss. Everything runs against real components: the daemon and the `mediamtx-sim` stand-in as release builds (the stand-in plays MediaMTX: no MediaMTX binary can be installed here), real Prometheus, Alertmanager and node exporter from Debian, headless Debian Chromium, a real S3 server (moto), a real tmpfs for the disk. Telegram is a local HTTP server speaking the Bot API. Timed measures give the median and the worst of the runs; a check is judged on the worst. The tests and the checks are listed in `acceptance/items.toml`; their logs are in `target/acceptance/logs/`.

**PASS {counts['PASS']} · FAIL {counts['FAIL']} · NOT BUILT {counts['NOT BUILT']} · NOT RUN {counts['NOT RUN']}**

| # | Item (design, pt-BR — English) | What was done | What was measured | Design's target | Our target | Result |
|---|---|---|---|---|---|---|
""" + "\n".join(rows) + """

Criterion S8's fault rate, written down: a municipal box with 8 cameras on a shared network is assumed, pessimistically, to see in a day 2 dropped camera connections per camera (PoE or switch blips, camera reboots: 16), 1 silent camera per camera (a cable or link that dies without closing the connection: 8), 2 recorder stalls, 1 MediaMTX crash, 1 MediaMTX API hang, 1 crash and restart of the supervisor, and 1 camera out long enough for level 3 (then `camera reset`, the intervention the design itself asks for): 30 faults. `scripts/acceptance --soak` replays them back to back, each followed by 20 s in which no new alert may appear, so a day passes in well under 2 hours (the compression is in the soak's measures). `scripts/soak 24h` (SOAK.md) runs the same faults for 24 real hours.

""" + runs_table + """

Approval (the design's last lines): **Documento aprovado para implementação:** ⬜ **Data de aprovação:** ___/___/______ **Responsável técnico:** _________________
"""
    with open(a.output, "w") as f:
        f.write(doc)
    log(f"wrote {os.path.relpath(a.output, ROOT)}: PASS {counts['PASS']}, FAIL {counts['FAIL']}, NOT BUILT {counts['NOT BUILT']}, NOT RUN {counts['NOT RUN']}; {mins} min")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
