#!/usr/bin/env python3
"""Per-call cost of tracing through `logprobe dap` next to `logprobe trace`.

Traces main.work in fixtures/bin/concurrent (WORKERS x CALLS calls) three
ways in one run: untraced, `logprobe trace` (output to /dev/null), and a DAP
session over stdio (launch with `trace`, every hit read as an output event).
Run after scripts/setup.sh:  python3 scripts/bench-dap.py [WORKERS CALLS [BACKEND]]
(BACKEND: auto, the default, ebpf or ptrace; both tracers use it).

With --volume (python3 scripts/bench-dap.py --volume CALLS [BACKEND]), DAP
sessions trace main.target of fixtures/bin/bench under each console volume
(all, sample, summary) with the live figures on (hitsInterval 250 ms, as the
VS Code extension asks): the cost per call, and what an editor receives,
console lines and logprobe/hits events, which the last two keep bounded
however many calls there are.

With --conditions (python3 scripts/bench-dap.py --conditions CALLS [BACKEND]),
DAP sessions trace main.target of fixtures/bin/bench (which times its own
loop of CALLS calls, so start-up is left out) with a condition that holds
for 10 calls (`i < 10`), checked by the backend (in the kernel under eBPF)
or by the adapter alone (LOGPROBE_PREFILTER=0), as a function trace (entry
and return probes) and with a log message (entry probes only); each prints
its cost per call, the output events, and how many hits reached the adapter.

With --rate-limit (python3 scripts/bench-dap.py --rate-limit CALLS [BACKEND
[RATE]]), DAP sessions trace main.target of fixtures/bin/bench (CALLS calls,
timed by the loop itself) with a log message (entry probes only) and as a
function trace (calls and returns), without a rate limit and with
rateLimit RATE (default 1000): each prints the cost per call, the hits
shown and their rate over the loop against the budget (RATE for the
bucket's first second's worth plus RATE a second of the loop), the
`limited` count of the last logprobe/hits event, and logprobe's CPU time.

With --slow-client (python3 scripts/bench-dap.py --slow-client CALLS [BACKEND]),
DAP sessions trace main.target of fixtures/bin/bench (CALLS calls: 2 x CALLS
events, entry and return) for a client that keeps up and for one that reads
4 KiB every 10 ms: each prints the adapter's peak RSS (VmHWM), the output
events shown and not sent (the adapter's bounded queue), the kernel's drops,
and how long the program ran; then the ratio of the two peaks.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOGPROBE = os.path.join(ROOT, "target/release/logprobe")


def dap_session(program, traces, backend, functions=None, env=None, log=None, launch=None,
                figures=None):
    """Runs `program` in a DAP session; `traces` (regexes) are traced from
    the launch, `functions` (traceFunctions entries) set before
    configurationDone, `launch` adds launch arguments. Returns the seconds
    from configurationDone to `terminated`, the console output events, the
    program's stdout, logprobe's own CPU seconds and the logprobe/hits
    events. `figures`, a dict if given, gets the bodies of the
    logprobe/hits events ("hits") and the text of the `important` output
    events ("important")."""
    args = [LOGPROBE, "dap"] + (["--log", log] if log else [])
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         env=dict(os.environ, **(env or {})))
    seq = [0]

    def send(cmd, args=None):
        seq[0] += 1
        body = json.dumps({"seq": seq[0], "type": "request", "command": cmd, "arguments": args or {}}).encode()
        p.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        p.stdin.flush()

    def read():
        n = None
        while True:
            line = p.stdout.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            n = int(line.split(b":")[1])
        return json.loads(p.stdout.read(n))

    send("initialize")
    send("launch", dict({"program": program[0], "args": program[1:], "trace": traces, "backend": backend},
                        **(launch or {})))
    if functions:
        send("traceFunctions", {"functions": functions})
    send("configurationDone")
    start, events, stdout, hits = None, 0, "", 0
    while True:
        m = read()
        if m.get("event") == "logprobe/hits":
            hits += 1
            if figures is not None:
                figures.setdefault("hits", []).append(m["body"])
        if figures is not None and m.get("event") == "output" and m["body"]["category"] == "important":
            figures["important"] = figures.get("important", "") + m["body"]["output"]
        if m.get("command") == "configurationDone":
            start = time.time()
        if m.get("event") == "output" and m["body"]["category"] == "console":
            events += 1
        if m.get("event") == "output" and m["body"]["category"] == "stdout":
            stdout += m["body"]["output"]
        if m.get("event") == "terminated":
            break
    elapsed = time.time() - start
    # logprobe's own CPU time (not its children's: the traced program).
    fields = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    send("disconnect")
    p.wait()
    return elapsed, events, stdout, cpu, hits


def untraced(program):
    t = time.time()
    subprocess.run(program, stdout=subprocess.DEVNULL, check=True)
    return time.time() - t


def loop_ns(text):
    m = re.search(r"elapsed_ns=(\d+)", text)
    return int(m.group(1)) if m else None


def conditions(n, backend):
    """A condition checked by the backend versus by the adapter."""
    program = [os.path.join(ROOT, "fixtures/bin/bench"), str(n), "target"]
    base = loop_ns(subprocess.run(program, capture_output=True, text=True, check=True).stdout)
    condition = "i < 10"
    print(f"{backend}, {n} calls of main.target, condition `{condition}`: untraced loop {base / 1e6:.1f} ms")
    for label, extra in (("calls and returns", {}), ("log message", {"logMessage": "i={i}"})):
        functions = [dict({"regex": r"^main\.target$", "condition": condition}, **extra)]
        for prefilter, who in (("1", "backend"), ("0", "adapter")):
            with tempfile.NamedTemporaryFile(suffix=".log") as log:
                _, events, out, cpu, _ = dap_session(program, [], backend, functions,
                                                     {"LOGPROBE_PREFILTER": prefilter}, log.name)
                text = open(log.name).read()
            m = re.search(r"(\d+) probe hits, (\d+) not reported by the backend", text)
            hits, kept = (int(m.group(1)), int(m.group(2))) if m else (-1, -1)
            traced = loop_ns(out)
            cost = (traced - base) / n / 1e3 if traced else float("nan")
            print(f"  {label:17}, checked by the {who:7}: {cost:6.2f} us per call, "
                  f"{events} output events, {hits} probe hits, {hits - kept} sent to the adapter, "
                  f"logprobe CPU {cpu:.2f} s")


def volume(n, backend):
    """The console volumes: what each costs per call and sends an editor."""
    program = [os.path.join(ROOT, "fixtures/bin/bench"), str(n), "target"]
    base = loop_ns(subprocess.run(program, capture_output=True, text=True, check=True).stdout)
    print(f"{backend}, {n} calls of main.target: untraced loop {base / 1e6:.1f} ms")
    for v in ("all", "sample", "summary"):
        elapsed, events, out, cpu, hits = dap_session(
            program, [r"^main\.target$"], backend, launch={"consoleVolume": v, "hitsInterval": 250})
        traced = loop_ns(out)
        cost = (traced - base) / n / 1e3 if traced else float("nan")
        print(f"  consoleVolume {v:7}: {cost:6.2f} us per call, {events} console lines, "
              f"{hits} logprobe/hits events in {elapsed:.1f} s, logprobe CPU {cpu:.2f} s")


def rate_limit(n, backend, rate):
    """A hot logpoint and a hot trace held to a rate limit, against none."""
    program = [os.path.join(ROOT, "fixtures/bin/bench"), str(n), "target"]
    base = loop_ns(subprocess.run(program, capture_output=True, text=True, check=True).stdout)
    print(f"{backend}, {n} calls of main.target: untraced loop {base / 1e6:.1f} ms")
    for label, extra, lines in (("log message", {"logMessage": "i={i}"}, 1),
                                ("calls and returns", {}, 2)):
        functions = [dict({"regex": r"^main\.target$"}, **extra)]
        for limit in (0, rate):
            figures = {}
            _, events, out, cpu, _ = dap_session(
                program, [], backend, functions,
                launch={"rateLimit": limit, "hitsInterval": 250}, figures=figures)
            traced = loop_ns(out)
            cost = (traced - base) / n / 1e3 if traced else float("nan")
            # The last logprobe/hits event may come after `terminated`:
            # the count the end of the run says.
            said = re.search(r"(\d+) hits over the rate limit", figures.get("important", ""))
            limited = int(said.group(1)) if said else 0
            events_seen = len(figures.get("hits", []))
            shown = events // lines
            secs = traced / 1e9 if traced else float("nan")
            budget = f", budget {rate + rate * secs:.0f}" if limit else ""
            print(f"  {label:17}, rateLimit {limit:5}: {cost:6.2f} us per call, loop {secs:.2f} s, "
                  f"{shown} calls shown ({shown / secs:.0f}/s{budget}), {limited} limited, "
                  f"{events_seen} logprobe/hits events, logprobe CPU {cpu:.2f} s")


def children_named(pid, name):
    """The pids of process `pid`'s children called `name`."""
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for t in tasks:
        try:
            kids = open(f"/proc/{pid}/task/{t}/children").read().split()
        except OSError:
            continue
        for k in kids:
            try:
                if open(f"/proc/{k}/comm").read().strip() == name:
                    found.append(int(k))
            except OSError:
                pass
    return found


def running(pid):
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def slow_session(n, backend, slow):
    """One DAP session tracing main.target for N calls; the client reads
    4 KiB every 10 ms when `slow`, else as fast as it can. Returns the
    adapter's VmHWM (KiB), console lines shown, events not sent, kernel
    drops and the program's run time (s)."""
    program = [os.path.join(ROOT, "fixtures/bin/bench"), str(n), "target"]
    p = subprocess.Popen([LOGPROBE, "dap"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    seq = [0]

    def send(cmd, args=None):
        seq[0] += 1
        body = json.dumps({"seq": seq[0], "type": "request", "command": cmd, "arguments": args or {}}).encode()
        p.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        p.stdin.flush()

    # The program's run time, seen from outside: from when it appears as
    # the adapter's child to when it ends.
    times = {}

    def watch():
        while "end" not in times and p.poll() is None:
            kids = children_named(p.pid, "bench")
            if kids and "start" not in times:
                times["start"], times["pid"] = time.time(), kids[0]
            if "pid" in times and not running(times["pid"]):
                times["end"] = time.time()
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    send("initialize")
    send("launch", {"program": program[0], "args": program[1:], "trace": [r"^main\.target$"],
                    "backend": backend})
    send("configurationDone")
    fd = p.stdout.fileno()
    buf = b""
    shown = not_sent = dropped = 0
    done = False
    while not done:
        chunk = os.read(fd, 4096 if slow else 1 << 20)
        if not chunk:
            break
        buf += chunk
        while True:
            head = buf.find(b"\r\n\r\n")
            if head < 0:
                break
            length = int(buf[:head].split(b":")[1])
            if len(buf) < head + 4 + length:
                break
            frame, buf = buf[head + 4:head + 4 + length], buf[head + 4 + length:]
            # Only the few frames that matter are parsed.
            if b'"category":"console"' in frame:
                shown += 1
            elif b'"notSent"' in frame and b'"category":"important"' in frame:
                not_sent += json.loads(frame)["body"]["data"]["count"]
            elif b"events dropped" in frame:
                m = re.search(rb"logprobe: (\d+) events dropped", frame)
                dropped += int(m.group(1)) if m else 0
            elif b'"event":"terminated"' in frame:
                done = True
        if slow:
            time.sleep(0.01)
    status = open(f"/proc/{p.pid}/status").read()
    hwm = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
    send("disconnect")
    # What the adapter says after the disconnect (a last notice) is read too.
    rest = p.stdout.read()
    for m in re.finditer(rb'"count":(\d+),"kind":"notSent"|"kind":"notSent","count":(\d+)', rest):
        not_sent += int(m.group(1) or m.group(2))
    p.wait()
    watcher.join(timeout=1)
    run = times.get("end", float("nan")) - times.get("start", float("nan"))
    return hwm, shown, not_sent, dropped, run


def slow_client(n, backend):
    """A client that keeps up against one that reads slowly."""
    print(f"{backend}, {n} calls of main.target ({2 * n} events), default queue (16 MiB):")
    peaks = {}
    for label, slow in (("keeps up", False), ("4 KiB / 10 ms", True)):
        hwm, shown, not_sent, dropped, run = slow_session(n, backend, slow)
        peaks[slow] = hwm
        print(f"  client {label:13}: adapter peak RSS {hwm / 1024:6.1f} MiB, {shown} events shown, "
              f"{not_sent} not sent, {dropped} dropped by the kernel, program ran {run:.2f} s")
    print(f"  peak RSS, slow / keeping up: {peaks[True] / peaks[False]:.2f}")


def main():
    if sys.argv[1:2] == ["--slow-client"]:
        calls = int(sys.argv[2]) if len(sys.argv) > 2 else 500000
        return slow_client(calls, sys.argv[3] if len(sys.argv) > 3 else "ebpf")
    if sys.argv[1:2] == ["--rate-limit"]:
        calls = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
        backend = sys.argv[3] if len(sys.argv) > 3 else "auto"
        return rate_limit(calls, backend, int(sys.argv[4]) if len(sys.argv) > 4 else 1000)
    if sys.argv[1:2] == ["--volume"]:
        calls = int(sys.argv[2]) if len(sys.argv) > 2 else 200000
        return volume(calls, sys.argv[3] if len(sys.argv) > 3 else "auto")
    if sys.argv[1:2] == ["--conditions"]:
        calls = int(sys.argv[2]) if len(sys.argv) > 2 else 200000
        return conditions(calls, sys.argv[3] if len(sys.argv) > 3 else "auto")
    workers, calls = (sys.argv[1], sys.argv[2]) if len(sys.argv) > 2 else ("4", "2500")
    backend = sys.argv[3] if len(sys.argv) > 3 else "auto"
    n = int(workers) * int(calls)
    program = [os.path.join(ROOT, "fixtures/bin/concurrent"), workers, calls]
    base = untraced(program)
    t = time.time()
    subprocess.run([LOGPROBE, "trace", "--backend", backend, r"^main\.work$", "--"] + program, stdout=subprocess.DEVNULL, check=True)
    cli = time.time() - t
    dap, events, _, _, _ = dap_session(program, [r"^main\.work$"], backend)
    print(f"{backend}, {n} calls: untraced {base:.3f}s, logprobe trace {cli:.3f}s, logprobe dap {dap:.3f}s ({events} output events)")
    print(f"per call: trace {(cli - base) / n * 1e6:.1f} us, dap {(dap - base) / n * 1e6:.1f} us")


if __name__ == "__main__":
    main()
