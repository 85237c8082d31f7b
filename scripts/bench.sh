#!/usr/bin/env bash
# Per-call cost of tracing, side by side in one run: a Go function
# (fixtures/go/bench, main.target, which has a frame and so Go's stack
# check) is called N times untraced, under logprobe's ptrace and eBPF
# backends, under bare uprobes registered through tracefs with no BPF
# program (the floor any uprobe tracer pays), and under `dlv trace` when
# Delve is installed. The fixture times its own loop, so start-up and
# attaching are left out.
#
#   bash scripts/bench.sh [N] [REPEATS]
#
# Each mode runs REPEATS times; the median loop time is kept. Overhead per
# call = (traced - untraced) / calls; a call is an entry and a return hit.
# Probe sites: "JBE" is logprobe's choice for Go entry probes (the stack
# check's conditional jump, which the kernel emulates); "low" is the
# function's first instruction (the CMP, which the kernel single-steps),
# chosen with LOGPROBE_ENTRY_AT_LOW=1. Return probes sit on every RET;
# "entry only" rows leave them out (LOGPROBE_BENCH_ENTRY_ONLY=1 for eBPF).
# Needs root (uprobes, mounts). The floor's bare uprobes are registered
# through tracefs, which logprobe itself does not need and a new machine
# does not mount: the script runs in a mount namespace of its own and
# mounts tracefs there, so the machine's mounts stay as they are.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${LOGPROBE_BENCH_NS:-}" ]; then
  exec env LOGPROBE_BENCH_NS=1 unshare --mount --propagation private bash "$0" "$@"
fi
n=${1:-20000}
repeats=${2:-3}
slow_n=$(( n < 5000 ? n : 5000 ))   # ptrace: fewer calls suffice
dlv_n=$(( n < 1000 ? n : 1000 ))    # dlv trace is slower still
bin=$PWD/fixtures/bin/bench
lp=$PWD/target/release/logprobe
fn='^main\.target$'
[ -x "$lp" ] && [ -x "$bin" ] || bash scripts/setup.sh >/dev/null

tracefs=/sys/kernel/tracing
[ -e "$tracefs/uprobe_events" ] || mount -t tracefs nodev "$tracefs"
group=logprobe_bench_$$
# shellcheck source=scripts/bench-common.sh
source scripts/bench-common.sh
trap cleanup EXIT


base=$(median "$bin" "$n" target)
base_slow=$(median "$bin" "$slow_n" target)
base_dlv=$(median "$bin" "$dlv_n" target)
ebpf_entry_jbe=$(LOGPROBE_BENCH_ENTRY_ONLY=1 median "$lp" trace --backend ebpf "$fn" -- "$bin" "$n" target)
ebpf_entry_low=$(LOGPROBE_BENCH_ENTRY_ONLY=1 LOGPROBE_ENTRY_AT_LOW=1 median "$lp" trace --backend ebpf "$fn" -- "$bin" "$n" target)
ebpf_jbe=$(median "$lp" trace --backend ebpf "$fn" -- "$bin" "$n" target)
ebpf_low=$(LOGPROBE_ENTRY_AT_LOW=1 median "$lp" trace --backend ebpf "$fn" -- "$bin" "$n" target)
floor_jbe=$(floor "$bin" "$fn" 'entry|return' -- "$bin" "$n" target)
floor_low=$(floor "$bin" "$fn" 'entry|return' LOGPROBE_ENTRY_AT_LOW=1 -- "$bin" "$n" target)
floor_entry_jbe=$(floor "$bin" "$fn" entry -- "$bin" "$n" target)
floor_entry_low=$(floor "$bin" "$fn" entry LOGPROBE_ENTRY_AT_LOW=1 -- "$bin" "$n" target)
ptrace=$(median "$lp" trace --backend ptrace "$fn" -- "$bin" "$slow_n" target)
# Floats: main.ftarget takes and returns a float64 in X0, which eBPF reads
# through a SIGURG signal frame (docs/architecture.md).
base_float=$(median "$bin" "$n" float)
ebpf_float=$(median "$lp" trace --backend ebpf '^main\.ftarget$' -- "$bin" "$n" float)
dlv=""
if command -v dlv >/dev/null 2>&1; then
  dlv=$(cd /tmp && median dlv trace --exec "$bin" "$fn" -- "$dlv_n" target) || dlv=""
fi

awk -v n="$n" -v sn="$slow_n" -v dn="$dlv_n" -v base="$base" -v bases="$base_slow" -v based="$base_dlv" \
  -v eej="$ebpf_entry_jbe" -v eel="$ebpf_entry_low" -v ej="$ebpf_jbe" -v el="$ebpf_low" -v fj="$floor_jbe" -v fl="$floor_low" \
  -v fej="$floor_entry_jbe" -v fel="$floor_entry_low" -v pt="$ptrace" -v dlv="$dlv" \
  -v basef="$base_float" -v ef="$ebpf_float" '
function per(t, b, k) { return (t - b) / k }
function row(name, calls, t, b, note) {
  if (t == "") { printf "%-38s %8s %12s %14s  %s\n", name, "-", "-", "-", note; return }
  printf "%-38s %8d %12.2f %14.3f  %s\n", name, calls, t / 1e6, per(t, b, calls) / 1000, note
}
BEGIN {
  printf "main.target, median of runs; overhead = (traced - untraced) / calls\n"
  printf "%-38s %8s %12s %14s  %s\n", "mode", "calls", "loop (ms)", "us per call", "ratio"
  row("untraced", n, base, base, "")
  fjo = (fj == "") ? 0 : per(fj, base, n); flo = (fl == "") ? 0 : per(fl, base, n)
  row("uprobe floor, entry only, JBE", n, fej, base, "")
  row("uprobe floor, entry only, low", n, fel, base, "")
  row("uprobe floor, entry+RET, JBE", n, fj, base, "")
  row("uprobe floor, entry+RET, low", n, fl, base, "")
  fejo = (fej == "") ? 0 : per(fej, base, n); felo = (fel == "") ? 0 : per(fel, base, n)
  row("logprobe eBPF, entry only, JBE", n, eej, base, fejo > 0 ? sprintf("%.2fx floor", per(eej, base, n) / fejo) : "")
  row("logprobe eBPF, entry only, low", n, eel, base, felo > 0 ? sprintf("%.2fx floor", per(eel, base, n) / felo) : "")
  row("logprobe eBPF, entry+RET, JBE", n, ej, base, fjo > 0 ? sprintf("%.2fx floor", per(ej, base, n) / fjo) : "")
  row("logprobe eBPF, entry+RET, low", n, el, base, flo > 0 ? sprintf("%.2fx floor", per(el, base, n) / flo) : "")
  ebo = per(ej, base, n); pto = per(pt, bases, sn)
  row("logprobe ptrace, JBE", sn, pt, bases, sprintf("%.1fx eBPF", pto / ebo))
  if (dlv != "") {
    dlo = per(dlv, based, dn)
    row("dlv trace", dn, dlv, based, sprintf("%.0fx eBPF, %.1fx ptrace", dlo / ebo, dlo / pto))
  } else row("dlv trace", dn, "", based, "not installed")
  printf "main.ftarget (float64 in X0, read through a signal frame under eBPF)\n"
  row("untraced", n, basef, basef, "")
  row("logprobe eBPF, entry+RET, JBE", n, ef, basef, sprintf("%.2fx main.target", per(ef, basef, n) / ebo))
}'
