// Adapter binary resolution: setting, then bundled binary, then PATH.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bundledAdapterPath, resolveAdapterPath } from '../src/adapterPath';

const files = (...present: string[]) => (f: string): boolean => present.includes(f);
const base = { extensionPath: '/ext', platform: 'linux', arch: 'x64', pathEnv: '/usr/local/bin:/usr/bin', home: '/home/u' };

test('the setting wins over the bundled binary and PATH', () => {
  const r = resolveAdapterPath({ ...base, setting: '/opt/logprobe', isFile: files('/opt/logprobe', '/ext/bin/linux-x64/logprobe', '/usr/bin/logprobe') });
  assert.deepEqual(r, { ok: true, path: '/opt/logprobe', origin: 'setting' });
});

test('a setting naming a missing file is an error, not a fall-back', () => {
  const r = resolveAdapterPath({ ...base, setting: '/opt/nope', isFile: files('/usr/bin/logprobe') });
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.message, /\/opt\/nope.*no such file/);
});

test('a relative setting is refused and ~/ is expanded', () => {
  const rel = resolveAdapterPath({ ...base, setting: 'bin/logprobe', isFile: files() });
  assert.match(rel.ok ? '' : rel.message, /absolute path/);
  const home = resolveAdapterPath({ ...base, setting: '~/bin/logprobe', isFile: files('/home/u/bin/logprobe') });
  assert.deepEqual(home, { ok: true, path: '/home/u/bin/logprobe', origin: 'setting' });
});

test('a blank setting falls through to the bundled binary', () => {
  const r = resolveAdapterPath({ ...base, setting: '  ', isFile: files('/ext/bin/linux-x64/logprobe', '/usr/bin/logprobe') });
  assert.deepEqual(r, { ok: true, path: '/ext/bin/linux-x64/logprobe', origin: 'bundled' });
});

test('PATH is searched in order when nothing is bundled', () => {
  const r = resolveAdapterPath({ ...base, isFile: files('/usr/bin/logprobe', '/usr/local/bin/logprobe') });
  assert.deepEqual(r, { ok: true, path: '/usr/local/bin/logprobe', origin: 'path' });
});

test('no bundled binary is looked for on other platforms', () => {
  assert.equal(bundledAdapterPath('/ext', 'darwin', 'arm64'), undefined);
  const r = resolveAdapterPath({ ...base, platform: 'darwin', arch: 'arm64', pathEnv: '', isFile: files('/ext/bin/darwin-arm64/logprobe') });
  assert.equal(r.ok, false);
});

test('nothing found names both ways to fix it', () => {
  const r = resolveAdapterPath({ ...base, isFile: files() });
  assert.match(r.ok ? '' : r.message, /logprobe\.adapterPath.*PATH/);
});
