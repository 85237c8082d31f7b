#!/usr/bin/env python3
"""Per-call cost of tracing through `logprobe dap` next to `logprobe trace`.

Traces main.work in fixtures/bin/concurrent (WORKERS x CALLS calls) three
ways in one run: untraced, `logprobe trace` (output to /dev/null), and a DAP
session over stdio (launch with `trace`, every hit read as an output event).
Run after scripts/setup.sh:  python3 scripts/bench-dap.py [WORKERS CALLS [BACKEND]]
(BACKEND: auto, the default, ebpf or ptrace; both tracers use it).
"""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOGPROBE = os.path.join(ROOT, "target/release/logprobe")


def dap_session(program, traces, backend):
    p = subprocess.Popen([LOGPROBE, "dap"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
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
    send("launch", {"program": program[0], "args": program[1:], "trace": traces, "backend": backend})
    send("configurationDone")
    start, events = None, 0
    while True:
        m = read()
        if m.get("command") == "configurationDone":
            start = time.time()
        if m.get("event") == "output" and m["body"]["category"] == "console":
            events += 1
        if m.get("event") == "terminated":
            break
    elapsed = time.time() - start
    send("disconnect")
    p.wait()
    return elapsed, events


def main():
    workers, calls = (sys.argv[1], sys.argv[2]) if len(sys.argv) > 2 else ("4", "2500")
    backend = sys.argv[3] if len(sys.argv) > 3 else "auto"
    n = int(workers) * int(calls)
    program = [os.path.join(ROOT, "fixtures/bin/concurrent"), workers, calls]
    t = time.time()
    subprocess.run(program, stdout=subprocess.DEVNULL, check=True)
    base = time.time() - t
    t = time.time()
    subprocess.run([LOGPROBE, "trace", "--backend", backend, r"^main\.work$", "--"] + program, stdout=subprocess.DEVNULL, check=True)
    cli = time.time() - t
    dap, events = dap_session(program, [r"^main\.work$"], backend)
    print(f"{backend}, {n} calls: untraced {base:.3f}s, logprobe trace {cli:.3f}s, logprobe dap {dap:.3f}s ({events} output events)")
    print(f"per call: trace {(cli - base) / n * 1e6:.1f} us, dap {(dap - base) / n * 1e6:.1f} us")


if __name__ == "__main__":
    main()
