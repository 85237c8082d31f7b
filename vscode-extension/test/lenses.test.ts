import assert from 'node:assert/strict';
import { test } from 'node:test';
import { trace } from './figures';
import { lensesFor, tracedCalls } from '../src/lenses';

const foo = trace({
  id: 't1',
  kind: 'trace',
  functions: [{ name: 'main.foo', source: { path: '/w/main.go' }, line: 5, hits: 1234, rate: 0 }],
});

test('"Trace" above untraced functions, "Stop tracing (N calls)" above traced ones', () => {
  const traced = tracedCalls([{ traces: [foo], answered: [] }], '/w/main.go');
  const lenses = lensesFor(
    [
      { name: 'foo', line: 4, character: 5 },
      { name: 'main', line: 10, character: 5 },
    ],
    traced,
  );
  assert.deepEqual(
    lenses.map((l) => [l.line, l.title, l.action]),
    [
      [4, 'Stop tracing (1,234 calls)', 'stop'],
      [10, 'Trace', 'trace'],
    ],
  );
});

test('calls add up over sessions; an answered function without figures counts 0', () => {
  const traced = tracedCalls(
    [
      { traces: [foo], answered: [{ name: 'main.foo', source: { path: '/w/main.go' }, line: 5 }] },
      { traces: [foo], answered: [] },
      { traces: [], answered: [{ name: 'main.bar', source: { path: '/w/main.go' }, line: 20 }] },
    ],
    '/w/main.go',
  );
  assert.deepEqual([...traced], [
    [4, { name: 'main.foo', calls: 2468 }],
    [19, { name: 'main.bar', calls: 0 }],
  ]);
});

test('a traced function the scan missed still gets its lens', () => {
  const lenses = lensesFor([], new Map([[7, { name: 'main.hidden', calls: 1 }]]));
  assert.deepEqual(lenses, [{ line: 7, character: 0, title: 'Stop tracing (1 call)', action: 'stop', name: 'main.hidden' }]);
});
