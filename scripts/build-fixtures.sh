#!/usr/bin/env bash
# Builds every fixture program into fixtures/bin with Debian's Go: each Go
# fixture optimized (NAME) and without optimizations or inlining
# (NAME-debug), plus the seed without DWARF (seed-nodwarf) and fully
# stripped (seed-stripped), the values fixture position-independent
# (values-pie: loaded at a random address, so run-time type and code
# addresses need the load bias), and the toolchain's own cmd/gofmt (gofmt:
# a real program). C, C++ and Rust fixtures are built with debug info at
# -O2 / opt-level 2 (c-NAME, cpp-NAME, rust-NAME) and at -O0 / opt-level 0
# (…-debug), and the C values fixture at -O0 with its debug information in
# a separate file (c-values-split, .debug/c-values-split.debug), and a C
# program with the shared library it loads (c-lib, libgeom.so), and the
# Rust unwind fixture with panic=abort (rust-unwind-abort). Then the same Go fixtures, and gofmt, with each Go toolchain
# scripts/toolchains.sh installed, into fixtures/bin/goVERSION/. A program
# newer than its sources, its compiler and this script is not built again,
# so the tests can call this every time.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/fixtures/bin"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
export GOFLAGS=-mod=mod GOTOOLCHAIN=local GO111MODULE=on
self="$(readlink -f "$0")"

# build GO OUT DIR PACKAGE [FLAGS...]: `go build FLAGS -o OUT PACKAGE` in
# DIR, unless OUT is newer than every file in DIR, GO and this script.
build() {
  local go="$1" target="$2" src="$3" package="$4"
  shift 4
  if [ -e "$target" ] &&
    [ -z "$(find "$src" "$(readlink -f "$(command -v "$go")")" "$self" -newer "$target" -print -quit)" ]; then
    return
  fi
  (cd "$src" && "$go" build "$@" -o "$target" "$package")
}

# go_fixtures GO OUT-DIR: every Go fixture, optimized and -N -l, and gofmt.
go_fixtures() {
  local go="$1" dir="$2"
  mkdir -p "$dir"
  for src in "$root"/fixtures/go/*/; do
    local name
    name="$(basename "$src")"
    build "$go" "$dir/$name" "$src" .
    build "$go" "$dir/$name-debug" "$src" . -gcflags='all=-N -l'
  done
  local goroot
  goroot="$("$go" env GOROOT)"
  build "$go" "$dir/gofmt" "$goroot/src/cmd/gofmt" cmd/gofmt
}

# native OUT SRC COMMAND...: runs COMMAND unless OUT is newer than SRC and
# this script.
native() {
  local target="$1" src="$2"
  shift 2
  if [ -e "$target" ] && [ -z "$(find "$src" "$self" -newer "$target" -print -quit)" ]; then
    return
  fi
  "$@"
}

go_fixtures go "$out"
build go "$out/seed-nodwarf" "$root/fixtures/go/seed" . -ldflags=-w
build go "$out/seed-stripped" "$root/fixtures/go/seed" . -ldflags='-s -w'
build go "$out/values-pie" "$root/fixtures/go/values" . -buildmode=pie
for src in "$root"/fixtures/c/*.c; do
  [ -e "$src" ] || continue
  name="c-$(basename "$src" .c)"
  native "$out/$name" "$src" gcc -g -O2 -Wall -o "$out/$name" "$src"
  native "$out/$name-debug" "$src" gcc -g -O0 -Wall -o "$out/$name-debug" "$src"
done
# split_debug OUT SRC: OUT built at -O0 with its debug information moved
# into .debug/OUT.debug beside it, found through .gnu_debuglink as gdb
# finds it.
split_debug() {
  local target="$1" src="$2" debug
  debug="$(dirname "$1")/.debug/$(basename "$1").debug"
  mkdir -p "$(dirname "$debug")"
  gcc -g -O0 -Wall -o "$target" "$src"
  objcopy --only-keep-debug "$target" "$debug"
  objcopy --strip-debug --add-gnu-debuglink="$debug" "$target"
}
native "$out/c-values-split" "$root/fixtures/c/values.c" split_debug "$out/c-values-split" "$root/fixtures/c/values.c"
# A C program and the shared library it loads at start (c-lib, and
# libgeom.so beside it, found through its RUNPATH $ORIGIN), at -O0.
native "$out/libgeom.so" "$root/fixtures/c-lib" \
  gcc -g -O0 -Wall -shared -fPIC -o "$out/libgeom.so" "$root/fixtures/c-lib/geom.c"
native "$out/c-lib" "$root/fixtures/c-lib" \
  gcc -g -O0 -Wall -o "$out/c-lib" "$root/fixtures/c-lib/main.c" -L"$out" -lgeom -Wl,-rpath,'$ORIGIN'
for src in "$root"/fixtures/cpp/*.cpp; do
  [ -e "$src" ] || continue
  name="cpp-$(basename "$src" .cpp)"
  native "$out/$name" "$src" g++ -g -O2 -Wall -o "$out/$name" "$src"
  native "$out/$name-debug" "$src" g++ -g -O0 -Wall -o "$out/$name-debug" "$src"
done
for src in "$root"/fixtures/rust/*.rs; do
  [ -e "$src" ] || continue
  name="rust-$(basename "$src" .rs)"
  native "$out/$name" "$src" rustc -g -C opt-level=2 -o "$out/$name" "$src"
  native "$out/$name-debug" "$src" rustc -g -C opt-level=0 -o "$out/$name-debug" "$src"
done
# The unwind fixture built with panic=abort (rust-unwind-abort): a program
# that cannot unwind at all.
native "$out/rust-unwind-abort" "$root/fixtures/rust/unwind.rs" \
  rustc -g -C opt-level=2 -C panic=abort -o "$out/rust-unwind-abort" "$root/fixtures/rust/unwind.rs"
# The values fixture with Rust's v0 symbol mangling too (rust-values-v0).
native "$out/rust-values-v0" "$root/fixtures/rust/values.rs" \
  rustc -g -C opt-level=0 -C symbol-mangling-version=v0 -o "$out/rust-values-v0" "$root/fixtures/rust/values.rs"

bash "$root/scripts/toolchains.sh" --list | while read -r version go; do
  go_fixtures "$go" "$out/go$version"
done
