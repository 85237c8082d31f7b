#!/usr/bin/env bash
# End-to-end test of the VS Code extension in a real VS Code: packages the
# extension with the release adapter bundled, installs the .vsix into
# code-server 4.100.3 (from npm), and drives it with playwright-core and
# Debian's headless Chromium (vscode-extension/e2e/run.mjs): Trace function on
# the seed fixture's `foo`, then a logpoint, then tracing changes made while
# the attach fixture runs. Screenshots go to docs/.
#
# Everything it starts (code-server and its children, Chromium) runs in a
# process group of its own that is killed on exit; scratch files live in one
# temporary directory that is removed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

adapter="${LOGPROBE_BUNDLE_SOURCE:-$root/target/release/logprobe}"
if [ ! -x "$adapter" ]; then
  cargo build --release --locked -p logprobe
fi
if ! "$adapter" dap --help >/dev/null 2>&1; then
  echo "test-vscode-e2e: $adapter has no \`dap\` subcommand yet (issue 5): nothing to test against" >&2
  exit 1
fi
for tool in chromium rg node npm go rustc; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "test-vscode-e2e: $tool not found: run LOGPROBE_WITH_VSCODE_E2E=1 scripts/setup.sh as root" >&2
    exit 1
  fi
done

if [ "$(node -p 'process.versions.node.split(".")[0]')" != 20 ]; then
  echo "test-vscode-e2e: code-server 4.100.3 needs Node.js 20, found $(node --version)" >&2
  exit 1
fi

# 1. The .vsix, with the adapter bundled.
(cd vscode-extension && npm ci --no-audit --no-fund --loglevel=error &&
  LOGPROBE_BUNDLE_SOURCE="$adapter" npm run --silent package >/dev/null)
vsix="$root/vscode-extension/logprobe-linux-x64.vsix"

# 2. code-server without its install scripts (they download ripgrep from
# GitHub): Debian's rg takes the place of the download, then the native modules
# the server loads are built against the local Node headers.
e2e="$root/vscode-extension/e2e"
cs="$e2e/node_modules/code-server"
stamp="$e2e/node_modules/.logprobe-e2e-ready"
if [ ! -f "$stamp" ] || [ "$e2e/package-lock.json" -nt "$stamp" ]; then
  (cd "$e2e" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  # Its shrinkwrap lists dev tools package.json omits, so `npm ci` refuses it.
  (cd "$cs/lib/vscode" && npm install --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
  mkdir -p "$cs/lib/vscode/node_modules/@vscode/ripgrep/bin"
  cp "$(command -v rg)" "$cs/lib/vscode/node_modules/@vscode/ripgrep/bin/rg"
  ln -sfn node_modules "$cs/lib/vscode/node_modules.asar"
  # npm_config_yes: node-pty's post-install runs `npx node-gyp` for an editor file.
  (cd "$cs/lib/vscode" && npm_config_yes=true npm rebuild --loglevel=error @vscode/spdlog native-watchdog node-pty)
  (cd "$e2e" && npm rebuild --loglevel=error argon2)
  touch "$stamp"
fi

# 3. A scratch workspace: the seed program, built with debug information, and a
# launch configuration for it.
scratch="$(mktemp -d /tmp/logprobe-vscode-e2e.XXXXXX)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill -- "-$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT
ws="$scratch/seed"
mkdir -p "$ws/.vscode" "$scratch/data" "$scratch/extensions" "$scratch/home"
cp fixtures/go/seed/main.go fixtures/go/seed/go.mod "$ws/"
mkdir -p "$ws/ticker"
cp fixtures/go/attach/main.go fixtures/go/attach/go.mod "$ws/ticker/"
(cd "$ws" && GOFLAGS=-mod=mod GOTOOLCHAIN=local go build -o seed .)
(cd "$ws/ticker" && GOFLAGS=-mod=mod GOTOOLCHAIN=local go build -o ticker .)
# A Rust program for "Trace function" in a .rs file: tick() every 50 ms.
mkdir -p "$ws/rust"
cp fixtures/rust/ticker.rs "$ws/rust/"
rustc -g -C opt-level=0 -o "$ws/rust/ticker" "$ws/rust/ticker.rs"
# seed comes first: it is what "Trace function" starts when no session runs.
# ticker calls tick() every 50 ms for 100 s, for changes made while it runs.
cat >"$ws/.vscode/launch.json" <<'JSON'
{
  "version": "0.2.0",
  "configurations": [
    { "type": "logprobe", "request": "launch", "name": "seed", "program": "${workspaceFolder}/seed" },
    { "type": "logprobe", "request": "launch", "name": "ticker", "program": "${workspaceFolder}/ticker/ticker", "args": ["2000"] },
    { "type": "logprobe", "request": "launch", "name": "rust ticker", "program": "${workspaceFolder}/rust/ticker", "args": ["2000"] }
  ]
}
JSON
mkdir -p "$scratch/data/User"
cat >"$scratch/data/User/settings.json" <<'JSON'
{
  "workbench.startupEditor": "none",
  "security.workspace.trust.enabled": false,
  "debug.internalConsoleOptions": "openOnSessionStart",
  "telemetry.telemetryLevel": "off",
  "extensions.autoCheckUpdates": false,
  "extensions.autoUpdate": false
}
JSON

# 4. Install the .vsix and start code-server on a free loopback port.
export HOME="$scratch/home" XDG_CONFIG_HOME="$scratch/home/.config" XDG_DATA_HOME="$scratch/home/.local/share"
server=(node "$cs/out/node/entry.js" --config "$scratch/config.yaml" --user-data-dir "$scratch/data"
  --extensions-dir "$scratch/extensions" --disable-telemetry --disable-update-check)
"${server[@]}" --install-extension "$vsix" >"$scratch/install.log" 2>&1 ||
  { cat "$scratch/install.log" >&2; exit 1; }
port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
setsid "${server[@]}" --auth none --bind-addr "127.0.0.1:$port" "$ws" >"$scratch/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 60); do
  if node -e 'fetch(process.argv[1]).then(r=>process.exit(r.status<500?0:1),()=>process.exit(1))' "http://127.0.0.1:$port/healthz"; then
    break
  fi
  sleep 0.5
done

# 5. Drive it.
# Screenshots refresh the README's pictures in docs/ unless sent elsewhere.
shots="${LOGPROBE_SCREENSHOT_DIR:-$root/docs}"
mkdir -p "$shots"
status=0
CODE_URL="http://127.0.0.1:$port/?folder=$ws" SCREENSHOT_DIR="$shots" FAILURE_SHOT="$shots/vscode-e2e-failure.png" \
  node "$e2e/run.mjs" || status=$?
if [ "$status" != 0 ]; then
  echo "test-vscode-e2e: code-server log:" >&2
  tail -n 40 "$scratch/server.log" >&2
  for f in "$scratch"/data/logs/*/exthost*/output_logging_*/*logprobe*.log; do
    [ -f "$f" ] && { echo "test-vscode-e2e: $f:" >&2; tail -n 40 "$f" >&2; }
  done
fi
exit "$status"
