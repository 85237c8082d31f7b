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
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOGPROBE = os.path.join(ROOT, "target/release/logprobe")


def dap_session(program, traces, backend, functions=None, env=None, log=None, launch=None):
    """Runs `program` in a DAP session; `traces` (regexes) are traced from
    the launch, `functions` (traceFunctions entries) set before
    configurationDone, `launch` adds launch arguments. Returns the seconds
    from configurationDone to `terminated`, the console output events, the
    program's stdout, logprobe's own CPU seconds and the logprobe/hits
    events."""
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


def main():
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
