#!/usr/bin/env bash
# Builds every fixture program into fixtures/bin: each Go fixture optimized
# (NAME) and without optimizations or inlining (NAME-debug), plus the seed
# without DWARF (seed-nodwarf) and fully stripped (seed-stripped).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/fixtures/bin"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
export GOFLAGS=-mod=mod GOTOOLCHAIN=local GO111MODULE=on
for dir in "$root"/fixtures/go/*/; do
  name="$(basename "$dir")"
  (cd "$dir" && go build -o "$out/$name" . && go build -gcflags='all=-N -l' -o "$out/$name-debug" .)
done
(cd "$root/fixtures/go/seed" && go build -ldflags=-w -o "$out/seed-nodwarf" . && go build -ldflags='-s -w' -o "$out/seed-stripped" .)
for src in "$root"/fixtures/c/*.c; do
  [ -e "$src" ] || continue
  name="$(basename "$src" .c)"
  gcc -g -O1 -o "$out/$name" "$src" -lpthread
done
