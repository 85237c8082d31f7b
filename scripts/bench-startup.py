#!/usr/bin/env python3
"""Start-up of a trace, side by side: logprobe's eBPF and ptrace backends and
`dlv trace`, measured in the same run, plus the BPF verifier's own time.

    python3 scripts/bench-startup.py [REPEATS]      # as root; default 10

Launch: `TOOL foo -- fixtures/bin/seed` (`dlv trace --exec seed foo`). The
seed calls main.foo first thing, so the first trace line tells when the
probes were armed (plus the program's own start). For each run it records,
from the moment the tool is started: the first trace line on its output,
the seed's exit (seen through a pidfd on the tool's child, so it does not
depend on the tool noticing), and the tool's own exit (which comes later:
a tracer removes its probes first). The modes take turns, REPEATS times,
and the median of each figure is printed.

Attach: `TOOL -p PID '^main\\.tick$'` on fixtures/bin/attach, which calls
main.tick every 50 ms: the time to the first trace line (the wait for the
next tick, up to 50 ms, is included), then the tool is interrupted (it
detaches) and the program killed.

The output relay's cost to the rest of the machine: while a launched
program's stdout or stderr is relayed (not a terminal), two raw system call
tracepoints are attached, and every system call of every process takes the
kernel's tracepoint path. A small C loop (compiled here with cc) times
getppid() and write() to /dev/null with no trace running and while
`logprobe trace --backend ebpf` runs fixtures/bin/attach with its output in
a file; the best of several rounds of each is kept.

Needs root. Builds logprobe and the fixtures when they are missing
(scripts/setup.sh) and installs Debian's `delve` package for `dlv trace`
when it is not installed (without it the dlv rows say so)."""

import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOGPROBE = os.path.join(ROOT, "target/release/logprobe")
SEED = os.path.join(ROOT, "fixtures/bin/seed")
TICKER = os.path.join(ROOT, "fixtures/bin/attach")


def need(cond, what):
    if not cond:
        sys.exit(f"bench-startup: {what}")


def setup():
    need(os.geteuid() == 0, "run as root (eBPF and ptrace need it)")
    if not (os.access(LOGPROBE, os.X_OK) and os.access(SEED, os.X_OK) and os.access(TICKER, os.X_OK)):
        print("bench-startup: building logprobe and the fixtures (scripts/setup.sh)", file=sys.stderr)
        subprocess.run(["bash", os.path.join(ROOT, "scripts/setup.sh")], check=True, stdout=subprocess.DEVNULL)
    dlv = shutil.which("dlv")
    if dlv is None and shutil.which("apt-get"):
        print("bench-startup: installing Debian's delve for `dlv trace`", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        ok = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "delve"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        if not ok:
            subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL)
            subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "delve"],
                           env=env, stdout=subprocess.DEVNULL)
        dlv = shutil.which("dlv")
    if dlv is None:
        print("bench-startup: no dlv (apt-get install delve): its rows are left out", file=sys.stderr)
    return dlv


def children(pid):
    """The child processes of every thread of `pid`."""
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out += [int(c) for c in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def launch_run(argv, cwd):
    """(first trace line, program exit, tool exit) in seconds from the start."""
    start = time.monotonic()
    tool = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    out = tool.stdout.fileno()
    os.set_blocking(out, False)
    buf = b""
    first = program_exit = None
    pidfd = None
    while True:
        if pidfd is None and program_exit is None:
            kids = children(tool.pid)
            if kids:
                try:
                    pidfd = os.pidfd_open(kids[0])
                except OSError:
                    pass
        watch = [out] + ([pidfd] if pidfd is not None else [])
        # Look for the child often until it is found; then wait on events.
        ready, _, _ = select.select(watch, [], [], 0.001 if pidfd is None and program_exit is None else 1)
        now = time.monotonic()
        if pidfd is not None and pidfd in ready:
            program_exit = now - start
            os.close(pidfd)
            pidfd = None
        if out in ready:
            try:
                chunk = os.read(out, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                break
            buf += chunk
            if first is None and any(l.startswith(b">") for l in buf.split(b"\n")):
                first = now - start
    tool.wait()
    end = time.monotonic() - start
    if pidfd is not None:
        os.close(pidfd)
    lines = buf.decode(errors="replace")
    need(first is not None, f"no trace line from {' '.join(argv)}:\n{lines}")
    return first, program_exit if program_exit is not None else end, end


def attach_run(argv_of_pid):
    """Seconds from the tool's start to its first trace line, attached to a fresh ticker."""
    ticker = subprocess.Popen([TICKER, "400"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    try:
        need(ticker.stdout.readline() == b"ready\n", "the attach fixture did not start")
        start = time.monotonic()
        tool = subprocess.Popen(argv_of_pid(ticker.pid), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        first = None
        try:
            for line in tool.stdout:
                if line.startswith(b">"):
                    first = time.monotonic() - start
                    break
        finally:
            tool.send_signal(signal.SIGINT)
            try:
                tool.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                tool.kill()
                tool.wait()
        need(first is not None, f"no trace line from {' '.join(argv_of_pid(ticker.pid))}")
        return first
    finally:
        ticker.kill()
        ticker.wait()


SYSCALLS_C = r"""
#include <stdio.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/syscall.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(void) {
    int n = 500000, fd = open("/dev/null", O_WRONLY);
    double g = 1e9, w = 1e9;
    for (int r = 0; r < 5; r++) {
        double t = now();
        for (int i = 0; i < n; i++) syscall(SYS_getppid);
        double x = (now() - t) / n * 1e9;
        if (x < g) g = x;
        t = now();
        for (int i = 0; i < n; i++) write(fd, "x", 1);
        x = (now() - t) / n * 1e9;
        if (x < w) w = x;
    }
    printf("%.1f %.1f\n", g, w);
    return 0;
}
"""


def syscall_cost(workdir, rounds=4):
    """Best (getppid, write) ns per call without and with a relayed trace."""
    src = os.path.join(workdir, "syscalls.c")
    exe = os.path.join(workdir, "syscalls")
    with open(src, "w") as f:
        f.write(SYSCALLS_C)
    need(subprocess.run(["cc", "-O2", "-o", exe, src]).returncode == 0, "cannot compile the syscall loop (cc)")
    measure = lambda: [float(x) for x in subprocess.run([exe], capture_output=True, text=True).stdout.split()]
    without, during = [], []
    for _ in range(rounds):
        without.append(measure())
        with open(os.path.join(workdir, "trace.out"), "w") as out:
            tool = subprocess.Popen([LOGPROBE, "trace", "--backend", "ebpf", r"^main\.tick$", "--", TICKER, "100000"],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            time.sleep(0.5)
            need(tool.poll() is None, "the relayed trace ended early")
            during.append(measure())
            # SIGTERM: a launched program's SIGINT is the terminal's, which
            # logprobe leaves to the program.
            tool.terminate()
            tool.wait()
    best = lambda runs, i: min(r[i] for r in runs)
    return (best(without, 0), best(without, 1)), (best(during, 0), best(during, 1))


def verifier():
    """(program, ms, instructions) for each BPF program, from `logprobe doctor`."""
    doctor = subprocess.run([LOGPROBE, "doctor"], capture_output=True, text=True)
    found = [(m[1], float(m[2]), int(m[3])) for m in
             re.finditer(r"verified (\w+) in ([0-9.]+) ms \((\d+) instructions processed\)", doctor.stdout)]
    need(found, f"logprobe doctor printed no verifier figures:\n{doctor.stdout}{doctor.stderr}")
    return found


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    dlv = setup()
    cwd = tempfile.mkdtemp(prefix="bench-startup.")
    modes = [
        ("logprobe eBPF", [LOGPROBE, "trace", "--backend", "ebpf", "foo", "--", SEED],
         lambda pid: [LOGPROBE, "trace", "--backend", "ebpf", "-p", str(pid), r"^main\.tick$"]),
        ("logprobe ptrace", [LOGPROBE, "trace", "--backend", "ptrace", "foo", "--", SEED],
         lambda pid: [LOGPROBE, "trace", "--backend", "ptrace", "-p", str(pid), r"^main\.tick$"]),
    ]
    if dlv:
        modes.append(("dlv trace", [dlv, "trace", "--exec", SEED, "foo"],
                      lambda pid: [dlv, "trace", "-p", str(pid), r"^main\.tick$"]))
    launch = {name: [] for name, _, _ in modes}
    attach = {name: [] for name, _, _ in modes}
    for _ in range(repeats):
        for name, argv, _ in modes:
            launch[name].append(launch_run(argv, cwd))
    for _ in range(max(3, repeats // 2)):
        for name, _, of_pid in modes:
            attach[name].append(attach_run(of_pid))
    (g0, w0), (g1, w1) = syscall_cost(cwd)
    shutil.rmtree(cwd, ignore_errors=True)

    ms = lambda xs: statistics.median(xs) * 1e3
    print(f"start-up, launch: TOOL foo -- fixtures/bin/seed; median of {repeats} runs, ms from the tool's start")
    print(f"{'mode':<18} {'first event':>12} {'seed exits':>11} {'tool exits':>11}")
    med = {}
    for name, _, _ in modes:
        runs = launch[name]
        med[name] = [ms([r[i] for r in runs]) for i in range(3)]
        print(f"{name:<18} {med[name][0]:>12.1f} {med[name][1]:>11.1f} {med[name][2]:>11.1f}")
    if dlv:
        e, d = med["logprobe eBPF"], med["dlv trace"]
        print(f"eBPF / dlv trace: first event {e[0] / d[0]:.2f}, seed exits {e[1] / d[1]:.2f}, "
              f"tool exits {e[2] / d[2]:.2f}")
    n = len(next(iter(attach.values())))
    print(f"\nstart-up, attach: TOOL -p PID '^main\\.tick$' (a call every 50 ms); median of {n} runs")
    print(f"{'mode':<18} {'first event':>12}")
    for name, _, _ in modes:
        print(f"{name:<18} {ms(attach[name]):>12.1f}")
    print("\nthe output relay's cost to every process's system calls (ns per call, best of rounds)")
    print(f"{'':<18} {'no trace':>9} {'relaying':>9} {'added':>7}")
    print(f"{'getppid()':<18} {g0:>9.1f} {g1:>9.1f} {g1 - g0:>7.1f}")
    print(f"{'write(/dev/null)':<18} {w0:>9.1f} {w1:>9.1f} {w1 - w0:>7.1f}")
    print("\nBPF verifier (logprobe doctor: the kernel's own count)")
    total = 0.0
    for prog, t, insns in verifier():
        total += t
        print(f"{prog:<18} {t:>8.2f} ms {insns:>8} instructions processed")
    print(f"{'all programs':<18} {total:>8.2f} ms")


if __name__ == "__main__":
    main()
