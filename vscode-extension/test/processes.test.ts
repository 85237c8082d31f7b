// The attach picker's process list, read from the real /proc.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { listProcesses } from '../src/processes';

test('this test process is listed with its command line', () => {
  const me = listProcesses().find((p) => p.pid === process.pid);
  assert.ok(me, 'own pid missing');
  assert.match(me.command, /node/);
});
