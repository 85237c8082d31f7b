#!/usr/bin/env bash
# What a call stack costs each hit (`--stack N`), under each backend: the
# bench fixture calls main.target N times six frames below main ("deep":
# target's stack has ten frames, so a stack of 8 is walked whole), traced
# without a stack and with `--stack 8`; the fixture times its own loop.
#
#   bash scripts/bench-stack.sh [N] [REPEATS]
#
# Each mode runs REPEATS times; the median loop time is kept. Per hit =
# (with stack - without) / (2 * calls): a call is an entry and a return
# hit, and each carries its stack. Needs root for eBPF.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
repeats=${2:-3}
slow_n=$(( n < 5000 ? n : 5000 ))   # ptrace: fewer calls suffice
bin=$PWD/fixtures/bin/bench
lp=$PWD/target/release/logprobe
[ -x "$lp" ] && [ -x "$bin" ] || bash scripts/setup.sh >/dev/null

# shellcheck source=scripts/bench-common.sh
source scripts/bench-common.sh

printf '%-8s %8s %14s %14s %14s\n' backend calls "no stack/hit" "stack 8/hit" "added/hit"
for backend in ebpf ptrace; do
  calls=$n
  [ "$backend" = ptrace ] && calls=$slow_n
  base=$(median "$lp" trace --backend "$backend" '^main\.target$' -- "$bin" "$calls" deep)
  plain=$(median "$bin" "$calls" deep)
  with=$(median "$lp" trace --backend "$backend" --stack 8 '^main\.target$' -- "$bin" "$calls" deep)
  awk -v b="$backend" -v c="$calls" -v p="$plain" -v x="$base" -v s="$with" 'BEGIN {
    h = 2 * c
    printf "%-8s %8d %12.2fµs %12.2fµs %12.2fµs\n", b, c, (x - p) / h / 1000, (s - p) / h / 1000, (s - x) / h / 1000
  }'
done
