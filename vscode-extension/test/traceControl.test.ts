import assert from 'node:assert/strict';
import { test } from 'node:test';
import { trace } from './figures';
import { hasHit, removalPlan, setTraceState, snapshotArguments } from '../src/traceControl';
import { TraceSet } from '../src/traceSet';

test('a trace this window sent is removed from its set; a launch regex through the adapter', () => {
  const set = new TraceSet();
  const entry = { regex: 'main\\.foo' };
  set.add(entry);
  set.apply([entry], { entries: [{ verified: true, id: 't4', functions: [] }] });
  assert.deepEqual(removalPlan(trace({ id: 't4', kind: 'trace' }), set), { kind: 'entry', entry });
  assert.deepEqual(removalPlan(trace({ id: 't1', kind: 'trace' }), set), { kind: 'request' });
});

test('a logpoint is removed as a breakpoint at its line', () => {
  const lp = trace({ id: 'b3', kind: 'logpoint', breakpointId: 3, source: { path: '/w/main.go' }, line: 6 });
  assert.deepEqual(removalPlan(lp, new TraceSet()), { kind: 'breakpoint', path: '/w/main.go', line: 6, breakpointId: 3 });
  assert.deepEqual(removalPlan(trace({ id: 'b4', kind: 'logpoint' }), new TraceSet()), { kind: 'request' });
});

test('setTraceState sends one entry and reads the state back, or the reason', async () => {
  const sent: unknown[] = [];
  const state = await setTraceState(
    (command, args) => {
      sent.push([command, args]);
      return Promise.resolve({ traces: [{ id: 't1', state: 'paused' }] });
    },
    't1',
    'paused',
  );
  assert.equal(state, 'paused');
  assert.deepEqual(sent, [['setTraceState', { traces: [{ id: 't1', state: 'paused' }] }]]);
  await assert.rejects(
    setTraceState(() => Promise.resolve({ traces: [{ id: 'x', message: "no trace 'x'" }] }), 'x', 'active'),
    /no trace 'x'/,
  );
});

test('a snapshot needs a hit; a regex trace may name its function', () => {
  const idle = trace({ id: 't1', kind: 'trace', functions: [{ name: 'f', hits: 0 }] });
  const hit = trace({ id: 't2', kind: 'trace', functions: [{ name: 'f', hits: 1, call: { values: [] } }] });
  assert.equal(hasHit(idle), false);
  assert.equal(hasHit(hit), true);
  assert.equal(hasHit(trace({ id: 'b1', kind: 'logpoint', latest: { values: [] } })), true);
  assert.deepEqual(snapshotArguments(hit), { id: 't2' });
  assert.deepEqual(snapshotArguments(hit, 'f'), { id: 't2', function: 'f' });
});
