#!/usr/bin/env bash
# Checks that docs/neovim.md works: runs its Lua in a headless Neovim with the
# nvim-dap checkout given as $1 (e.g. a `git worktree` of tag 0.6.0: nvim-dap is
# not on any registry this project's CI reaches, so it is not fetched here)
# against target/release/logprobe dap and the seed fixture.
# Usage: scripts/check-neovim-doc.sh /path/to/nvim-dap
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
nvim_dap="${1:?usage: $0 NVIM_DAP_CHECKOUT}"
[ -f "$nvim_dap/lua/dap.lua" ] || { echo "check-neovim-doc: $nvim_dap is not an nvim-dap checkout" >&2; exit 1; }
command -v nvim >/dev/null || { echo "check-neovim-doc: nvim not found (apt-get install neovim)" >&2; exit 1; }
adapter="${LOGPROBE_ADAPTER:-$root/target/release/logprobe}"
"$adapter" dap --help >/dev/null 2>&1 || { echo "check-neovim-doc: $adapter has no dap subcommand" >&2; exit 1; }

scratch="$(mktemp -d /tmp/logprobe-nvim.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
cp "$root/fixtures/go/seed/main.go" "$root/fixtures/go/seed/go.mod" "$scratch/"
(cd "$scratch" && GOFLAGS=-mod=mod GOTOOLCHAIN=local go build -o seed .)
mkdir -p "$scratch/bin" && ln -s "$adapter" "$scratch/bin/logprobe"

# init.lua = nvim-dap on the runtimepath + every Lua block of the doc except the
# TCP adapter (it would replace the executable one) and the `functions` example
# (it needs a running session).
{
  echo "vim.g.mapleader = ' '"
  echo "vim.opt.runtimepath:prepend('$nvim_dap')"
  awk '/^```lua$/ {inblock=1; block=""; next}
       /^```$/ && inblock {inblock=0; if (block !~ /type = .server./ && block !~ /request\(.functions/) print block; next}
       inblock {block = block $0 "\n"}' "$root/docs/neovim.md"
} >"$scratch/init.lua"

cd "$scratch"
PATH="$scratch/bin:$PATH" SEED_SOURCE="$scratch/main.go" SEED_BINARY="$scratch/seed" \
  timeout 180 nvim --headless -u "$scratch/init.lua" -c "luafile $root/tests/neovim/run.lua"
