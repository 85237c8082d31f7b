#!/usr/bin/env bash
# Per-call cost of tracing, side by side in one run: a Go function
# (fixtures/go/bench, main.target) is called N times untraced, under
# logprobe's ptrace backend, and under `dlv trace` when Delve is installed.
# The fixture times its own loop, so start-up and attach are left out.
#
#   bash scripts/bench.sh [N] [REPEATS]
#
# Prints the median loop time of REPEATS runs for each mode, the overhead
# per call (traced minus untraced, divided by the calls), and the ratio to
# `dlv trace`.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
repeats=${2:-3}
dlv_n=$(( n < 1000 ? n : 1000 ))   # dlv trace is slow: fewer calls suffice
bin=fixtures/bin/bench
lp=target/release/logprobe
[ -x "$lp" ] && [ -x "$bin" ] || bash scripts/setup.sh >/dev/null

# median of the loop time (ns) over $repeats runs of "$@"
median() {
  local times=()
  for _ in $(seq "$repeats"); do
    t=$("$@" 2>/dev/null | sed -n 's/^calls=[0-9]* elapsed_ns=\([0-9]*\)$/\1/p' | tail -1)
    [ -n "$t" ] || { echo "bench: no timing from: $*" >&2; return 1; }
    times+=("$t")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (repeats + 1) / 2 ))p"
}

base=$(median "$bin" "$n" target)
base_dlv=$(median "$bin" "$dlv_n" target)
ptrace=$(median "$lp" trace --backend ptrace '^main\.target$' -- "$bin" "$n" target)
dlv=""
if command -v dlv >/dev/null 2>&1; then
  dlv=$(cd /tmp && median dlv trace --exec "$OLDPWD/$bin" '^main\.target$' -- "$dlv_n" target) || dlv=""
fi

awk -v n="$n" -v dn="$dlv_n" -v base="$base" -v based="$base_dlv" -v pt="$ptrace" -v dlv="$dlv" '
function us(x) { return sprintf("%.2f", x / 1000) }
BEGIN {
  printf "main.target traced: %d calls (dlv: %d), median of runs\n", n, dn
  printf "%-20s %14s %16s %12s\n", "mode", "loop time (ms)", "overhead/call (us)", "vs dlv"
  printf "%-20s %14.2f %16s %12s\n", "untraced", base / 1e6, "-", "-"
  pto = (pt - base) / n
  dlo = (dlv == "") ? 0 : (dlv - based) / dn
  ratio = (dlo > 0) ? sprintf("1/%.0f", dlo / pto) : "-"
  printf "%-20s %14.2f %16s %12s\n", "logprobe ptrace", pt / 1e6, us(pto), ratio
  if (dlv != "") printf "%-20s %14.2f %16s %12s\n", "dlv trace", dlv / 1e6, us(dlo), "1"
  else printf "%-20s %14s %16s %12s\n", "dlv trace", "not installed", "-", "-"
}'
