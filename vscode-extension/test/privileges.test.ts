// Capability parsing and the privileges each backend needs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { grantHint, missingPrivileges, parseGetcap, requiredCapabilities } from '../src/privileges';

test('getcap output in the new and the old format', () => {
  assert.deepEqual([...parseGetcap('/usr/bin/logprobe cap_perfmon,cap_bpf,cap_sys_ptrace=ep\n')].sort(), ['cap_bpf', 'cap_perfmon', 'cap_sys_ptrace']);
  assert.deepEqual([...parseGetcap('/usr/bin/logprobe = cap_bpf,cap_perfmon+ep\n')].sort(), ['cap_bpf', 'cap_perfmon']);
  assert.deepEqual([...parseGetcap('')], []);
});

test('capabilities only in the inheritable set do not count', () => {
  assert.deepEqual([...parseGetcap('/x cap_bpf=i\n')], []);
});

test('each backend needs its capabilities', () => {
  assert.deepEqual(requiredCapabilities('ptrace', 'launch'), []);
  assert.deepEqual(requiredCapabilities('ptrace', 'attach'), ['cap_sys_ptrace']);
  assert.deepEqual(requiredCapabilities('ebpf', 'attach'), ['cap_bpf', 'cap_perfmon']);
  assert.deepEqual(requiredCapabilities(undefined, 'launch'), ['cap_bpf', 'cap_perfmon']);
});

test('root lacks nothing; unreadable capabilities are not guessed', () => {
  assert.deepEqual(missingPrivileges({ uid: 0, fileCaps: new Set(), backend: 'ebpf', request: 'launch' }), []);
  assert.deepEqual(missingPrivileges({ uid: 1000, fileCaps: undefined, backend: 'ebpf', request: 'launch' }), []);
});

test('a user without capabilities is told which are missing and how to grant them', () => {
  assert.deepEqual(missingPrivileges({ uid: 1000, fileCaps: new Set(['cap_bpf']), backend: 'auto', request: 'attach' }), ['cap_perfmon', 'cap_sys_ptrace']);
  assert.match(grantHint('/p/logprobe'), /setcap cap_bpf,cap_perfmon,cap_sys_ptrace\+ep \/p\/logprobe/);
});
