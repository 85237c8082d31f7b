#!/usr/bin/env bash
# Per-call cost of tracing a C and a Rust function (fixtures/c/bench.c,
# fixtures/rust/bench.rs: `target`, and Rust's `outer`, called N times),
# side by side in one run: untraced, under bare uprobes registered through tracefs with no BPF
# program (the floor any uprobe tracer pays) at the sites logprobe uses,
# under logprobe's eBPF backend, and under its ptrace backend. The
# fixtures time their own loop, so start-up and arming are left out.
#
#   bash scripts/bench-native.sh [N] [REPEATS]
#
# A call is an entry and a return. eBPF sees the returns of a C function
# that leaves only through its RETs, and of a C++ or Rust one no unwind
# can pass through (adapter/src/plan/unwind.rs), with one uretprobe on its
# entry (the kernel returns through its trampoline: nothing is
# single-stepped); the other returns, and every return under ptrace, are
# probes on each RET, which the kernel single-steps. Rust's `target` is a
# leaf that begins with a `mov` (single-stepped), `outer` calls a leaf and
# begins with a `push` (emulated). The floors: "entry+RET" registers the
# entry and each RET, "entry+uretprobe" the entry and a return probe on
# it. Goal (issue 12): eBPF entry + return within 2 µs a call.
# Needs root; tracefs is mounted in a mount namespace of this script's own
# (logprobe itself does not need it; the machine's mounts stay as they are).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${LOGPROBE_BENCH_NS:-}" ]; then
  exec env LOGPROBE_BENCH_NS=1 unshare --mount --propagation private bash "$0" "$@"
fi
n=${1:-100000}
repeats=${2:-3}
slow_n=$(( n < 5000 ? n : 5000 ))   # ptrace: fewer calls suffice
lp=$PWD/target/release/logprobe
[ -x "$lp" ] && [ -x fixtures/bin/c-bench ] && [ -x fixtures/bin/rust-bench ] || bash scripts/setup.sh >/dev/null

tracefs=/sys/kernel/tracing
[ -e "$tracefs/uprobe_events" ] || mount -t tracefs nodev "$tracefs"
group=logprobe_native_$$
# shellcheck source=scripts/bench-common.sh
source scripts/bench-common.sh
trap cleanup EXIT

# report LABEL FIXTURE REGEX [MODE]: the rows of one function (MODE, the
# fixture's second argument, picks which function its loop calls).
report() {
  local label=$1 bin=$2 fn=$3 mode=()
  local base base_slow ebpf ptrace f_ret f_uret uret
  [ $# -ge 4 ] && mode=("$4")
  bin=$PWD/fixtures/bin/$bin
  base=$(median "$bin" "$n" "${mode[@]}")
  base_slow=$(median "$bin" "$slow_n" "${mode[@]}")
  ebpf=$(median "$lp" trace --backend ebpf "$fn" -- "$bin" "$n" "${mode[@]}")
  ptrace=$(median "$lp" trace --backend ptrace "$fn" -- "$bin" "$slow_n" "${mode[@]}")
  f_ret=$(floor "$bin" "$fn" 'entry|return' -- "$bin" "$n" "${mode[@]}")
  f_uret=$(floor "$bin" "$fn" 'entry|uretprobe' -- "$bin" "$n" "${mode[@]}")
  uret=no
  # (read whole: grep -q would close the pipe while logprobe still writes)
  "$lp" probes "$bin" "$fn" | grep -c '^uretprobe ' >/dev/null && uret=yes
  awk -v label="$label" -v n="$n" -v sn="$slow_n" -v base="$base" -v bases="$base_slow" \
    -v e="$ebpf" -v p="$ptrace" -v fr="$f_ret" -v fu="$f_uret" -v uret="$uret" '
  function per(t, b, k) { return (t - b) / k / 1000 }
  function row(name, calls, t, b, note) {
    if (t == "") { printf "  %-34s %8s %12s %12s  %s\n", name, "-", "-", "-", note; return }
    printf "  %-34s %8d %12.2f %12.3f  %s\n", name, calls, t / 1e6, per(t, b, calls), note
  }
  BEGIN {
    printf "%s (returns through a uretprobe under eBPF: %s)\n", label, uret
    printf "  %-34s %8s %12s %12s  %s\n", "mode", "calls", "loop (ms)", "us per call", "ratio"
    row("untraced", n, base, base, "")
    row("uprobe floor, entry+RET", n, fr, base, "")
    row("uprobe floor, entry+uretprobe", n, fu, base, "")
    floor = (uret == "yes") ? fu : fr
    fo = (floor == "") ? 0 : per(floor, base, n)
    eo = per(e, base, n)
    goal = (eo <= 2) ? "within the 2 us goal" : "over the 2 us goal"
    row("logprobe eBPF", n, e, base, sprintf("%s%s", fo > 0 ? sprintf("%.2fx its floor, ", eo / fo) : "", goal))
    row("logprobe ptrace", sn, p, bases, sprintf("%.1fx eBPF", per(p, bases, sn) / eo))
  }'
}

report "C, gcc -O2: target" c-bench '^target$'
report "C, gcc -O0: target" c-bench-debug '^target$'
report "Rust, opt-level 2: bench::target (mov first: single-stepped entry)" rust-bench '^bench::target$'
report "Rust, opt-level 2: bench::outer (push first: emulated entry)" rust-bench '^bench::outer$' outer
