import assert from 'node:assert/strict';
import { test } from 'node:test';
import { trace } from './figures';
import { inlineTexts, MAX_INLINE } from '../src/inlineText';

const foo = trace({
  id: 't1',
  kind: 'trace',
  hits: 1234,
  rate: 20,
  functions: [
    {
      name: 'main.foo',
      source: { path: '/w/main.go' },
      line: 5,
      hits: 1234,
      rate: 20,
      durations: { count: 1233, p50: 1210, p99: 8650, max: 20500 },
      call: { line: 5, values: [{ name: 'x', text: '99' }, { name: 'y', text: '9801' }] },
      return: { line: 8, values: [{ name: 'z', text: '9900' }] },
    },
    { name: 'other.go.fn', source: { path: '/w/other.go' }, line: 3, hits: 1, rate: 0 },
  ],
});

const logpoint = trace({
  id: 'b2',
  kind: 'logpoint',
  source: { path: '/w/main.go' },
  line: 7,
  hits: 1,
  rate: 0,
  latest: { line: 7, message: 'x=99 y=9801', values: [{ name: 'x', text: '99' }, { name: 'y', text: '9801' }] },
});

test('arguments at the declaration, results at the return, values at a logpoint', () => {
  const texts = inlineTexts([{ name: 'seed', traces: [foo, logpoint] }], '/w/main.go');
  assert.equal(texts.get(4), '(x=99, y=9801) · 1,234 calls, 20/s');
  assert.equal(texts.get(7), '=> (z=9900) · p50 1.21µs  p99 8.65µs  max 20.5µs');
  assert.equal(texts.get(6), 'x=99, y=9801 · 1 hit');
  assert.equal(texts.size, 3, 'nothing from other files');
});

test('a trace not called yet says so; a paused one too', () => {
  const idle = trace({
    id: 't3',
    kind: 'trace',
    state: 'paused',
    functions: [{ name: 'main.bar', source: { path: '/w/main.go' }, line: 12, hits: 0, rate: 0 }],
  });
  assert.equal(inlineTexts([{ name: 's', traces: [idle] }], '/w/main.go').get(11), '0 calls, paused');
});

test('two sessions on one line are told apart; long texts are cut', () => {
  const texts = inlineTexts(
    [
      { name: 'one', traces: [logpoint] },
      { name: 'two', traces: [logpoint] },
    ],
    '/w/main.go',
  );
  assert.equal(texts.get(6), '[one] x=99, y=9801 · 1 hit   [two] x=99, y=9801 · 1 hit');
  const long = trace({
    id: 'b9',
    kind: 'logpoint',
    source: { path: '/w/main.go' },
    line: 1,
    hits: 2,
    latest: { values: [{ name: 's', text: 'x'.repeat(500) }] },
  });
  const cut = inlineTexts([{ name: 's', traces: [long] }], '/w/main.go').get(0) ?? '';
  assert.equal(cut.length, MAX_INLINE);
  assert.ok(cut.endsWith('…'));
});
