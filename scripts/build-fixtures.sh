#!/usr/bin/env bash
# Builds every fixture program into fixtures/bin: each Go fixture optimized
# (NAME) and without optimizations or inlining (NAME-debug), plus the seed
# without DWARF (seed-nodwarf) and fully stripped (seed-stripped), and the
# values fixture position-independent (values-pie: loaded at a random
# address, so run-time type and code addresses need the load bias). C, C++
# and Rust fixtures are built with debug info at -O2 / opt-level 2
# (c-NAME, cpp-NAME, rust-NAME) and at -O0 / opt-level 0 (…-debug).
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
(cd "$root/fixtures/go/values" && go build -buildmode=pie -o "$out/values-pie" .)
for src in "$root"/fixtures/c/*.c; do
  [ -e "$src" ] || continue
  name="c-$(basename "$src" .c)"
  gcc -g -O2 -Wall -o "$out/$name" "$src"
  gcc -g -O0 -Wall -o "$out/$name-debug" "$src"
done
for src in "$root"/fixtures/cpp/*.cpp; do
  [ -e "$src" ] || continue
  name="cpp-$(basename "$src" .cpp)"
  g++ -g -O2 -Wall -o "$out/$name" "$src"
  g++ -g -O0 -Wall -o "$out/$name-debug" "$src"
done
for src in "$root"/fixtures/rust/*.rs; do
  [ -e "$src" ] || continue
  name="rust-$(basename "$src" .rs)"
  rustc -g -C opt-level=2 -o "$out/$name" "$src"
  rustc -g -C opt-level=0 -o "$out/$name-debug" "$src"
done
# The values fixture with Rust's v0 symbol mangling too (rust-values-v0).
rustc -g -C opt-level=0 -C symbol-mangling-version=v0 -o "$out/rust-values-v0" "$root/fixtures/rust/values.rs"
