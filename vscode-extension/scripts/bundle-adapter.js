// Copies the release build of the adapter (../target/release/logprobe, or the
// file named by LOGPROBE_BUNDLE_SOURCE) into bin/linux-x64/ so `npm run package`
// bundles it into the .vsix. Run by `vscode:prepublish`; fails with one clear
// line when the build is missing.
'use strict';
const fs = require('fs');
const path = require('path');

const source = process.env.LOGPROBE_BUNDLE_SOURCE
  ? path.resolve(process.env.LOGPROBE_BUNDLE_SOURCE)
  : path.resolve(__dirname, '..', '..', 'target', 'release', 'logprobe');
const targetDir = path.resolve(__dirname, '..', 'bin', 'linux-x64');
if (!fs.existsSync(source)) {
  console.error(`bundle-adapter: ${source} not found: run \`cargo build --release\` first`);
  process.exit(1);
}
fs.mkdirSync(targetDir, { recursive: true });
const target = path.join(targetDir, 'logprobe');
fs.copyFileSync(source, target);
fs.chmodSync(target, 0o755);
console.log(`bundle-adapter: ${source} -> ${target}`);
