import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  describeDropped,
  describeFigures,
  formatCount,
  formatDuration,
  formatRate,
  formatValues,
  truncate,
} from '../src/format';
import { parseTrace } from '../src/hits';

test('counts, rates and durations read short', () => {
  assert.equal(formatCount(0), '0');
  assert.equal(formatCount(12345), '12,345');
  assert.equal(formatCount(1_234_567), '1.23M');
  assert.equal(formatRate(0), '0/s');
  assert.equal(formatRate(1.5), '1.5/s');
  assert.equal(formatRate(20.4), '20/s');
  assert.equal(formatRate(20011.5), '20k/s');
  assert.equal(formatRate(123456), '123k/s');
  assert.equal(formatDuration(850), '850ns');
  assert.equal(formatDuration(1210), '1.21µs');
  assert.equal(formatDuration(12_500_000), '12.5ms');
  assert.equal(formatDuration(3_000_000_000), '3s');
  assert.equal(truncate('abcdef', 4), 'abc…');
  assert.equal(truncate('abc', 4), 'abc');
});

test('a trace row shows count, rate, durations, its losses and pause; a session its total', () => {
  const t = parseTrace({
    id: 't1',
    kind: 'trace',
    state: 'paused',
    hits: 1234,
    rate: 20,
    functions: [{ name: 'main.foo', hits: 1234, rate: 20, durations: { count: 10, p50: 1210, p99: 8650, max: 20500 } }],
  });
  assert.ok(t);
  assert.equal(describeFigures(t), '1,234 calls · 20/s · p50 1.21µs  p99 8.65µs  max 20.5µs · paused');
  const lossy = parseTrace({ id: 't2', kind: 'trace', hits: 10, rate: 0, dropped: 3, limited: 1200 });
  assert.ok(lossy);
  assert.equal(describeFigures(lossy), '10 calls · 0/s · 3 lost · 1,200 over the rate limit');
  assert.equal(describeDropped(0), '');
  assert.equal(describeDropped(3), '3 hits dropped (the eBPF ring buffer was full)');
  const one = parseTrace({ id: 'b1', kind: 'logpoint', hits: 1, rate: 0 });
  assert.ok(one);
  assert.equal(describeFigures(one), '1 hit · 0/s');
});

test('values show their names, and a result without one alone', () => {
  const hit = (values: { name: string; text: string }[]) => ({ values: values.map((v) => ({ ...v, value: null })) });
  assert.equal(formatValues(hit([{ name: 'x', text: '99' }, { name: 'y', text: '9801' }])), 'x=99, y=9801');
  assert.equal(formatValues(hit([{ name: '', text: '216' }])), '216');
});
