#!/usr/bin/env bash
# Fuzzes logprobe's readers for a bounded time (docs/fuzzing.md):
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# runs each target (dap, elf, dwarf, pclntab; all by default) for SECONDS
# (20 by default) with a fresh random seed (FUZZ_SEED=N: that seed, so a run
# is repeatable; scripts/test.sh sets one for CI), on stable Rust. A crashing input
# is saved under fuzz/crashes/TARGET/ (FUZZ_CRASHES=DIR elsewhere) with the
# command that replays it; the exit status is 1 if any target crashed,
# aborted or hung.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(dap elf dwarf pclntab)
crashes="${FUZZ_CRASHES:-$PWD/fuzz/crashes}"
cargo build --locked --profile fuzz --example fuzz
fuzz=target/fuzz/examples/fuzz
failed=0
for t in "${targets[@]}"; do
    status=0
    seed=()
    [ -z "${FUZZ_SEED:-}" ] || seed=(--seed "$FUZZ_SEED")
    "$fuzz" run "$t" "$seconds" "${seed[@]}" --crashes "$crashes" || status=$?
    if [ "$status" -ne 0 ]; then
        failed=1
        current="$crashes/$t/.current"
        # Killed by a signal (an abort, out of memory) or hung: the input
        # being run is still in .current.
        if [ -f "$current" ]; then
            kept="$crashes/$t/crash-abort-$(date +%s)"
            mv "$current" "$kept"
            echo "CRASH $t: the fuzzer ended with status $status on $kept"
            echo "  repro: $fuzz repro $t $kept"
        fi
    fi
done
exit "$failed"
