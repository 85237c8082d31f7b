// The hits model folds the adapter's change-only events into the whole
// picture and survives malformed input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HitsModel, latestFunction, parseHitsBody } from '../src/hits';

const foo = {
  id: 't1',
  kind: 'trace',
  state: 'active',
  label: 'main.foo',
  source: { name: 'main.go', path: '/w/main.go' },
  line: 5,
  hits: 3,
  rate: 1.5,
  shown: 3,
  functions: [
    {
      name: 'main.foo',
      source: { path: '/w/main.go' },
      line: 5,
      hits: 3,
      rate: 1.5,
      durations: { count: 3, p50: 1200, p99: 8000, max: 9000 },
      call: { time: 10, goroutine: 1, line: 5, values: [{ name: 'x', text: '99', value: { kind: 'int', value: 99 } }] },
      return: { time: 20, goroutine: 1, line: 8, duration: 10, values: [{ name: 'z', text: '9900' }] },
    },
  ],
};

test('an event adds traces, a later one replaces and removes them', () => {
  const model = new HitsModel();
  const first = parseHitsBody({ traces: [foo], dropped: 0 });
  assert.ok(first);
  assert.equal(model.apply(first), true);
  assert.equal(model.get('t1')?.functions[0]?.call?.values[0]?.text, '99');
  assert.equal(model.get('t1')?.functions[0]?.return?.duration, 10);

  const second = parseHitsBody({ traces: [{ ...foo, hits: 7, state: 'paused' }] });
  assert.ok(second);
  model.apply(second);
  assert.equal(model.get('t1')?.hits, 7);
  assert.equal(model.get('t1')?.state, 'paused');
  assert.equal(model.size, 1);

  const gone = parseHitsBody({ removed: ['t1'], dropped: 4 });
  assert.ok(gone);
  assert.equal(model.apply(gone), true);
  assert.equal(model.size, 0);
  assert.equal(model.dropped, 4);
  assert.equal(model.apply({ traces: [], removed: [] }), false, 'an empty event changes nothing');
});

test('malformed entries are left out, the rest is kept', () => {
  const body = parseHitsBody({
    traces: [
      { kind: 'trace' }, // no id
      { id: 'x', kind: 'mystery' },
      'nonsense',
      { id: 'b2', kind: 'logpoint', hits: 'many', latest: { values: [{ name: 'x' }, { name: 'y', text: '2' }] } },
    ],
    removed: ['t9', 3],
  });
  assert.ok(body);
  assert.deepEqual(
    body.traces.map((t) => t.id),
    ['b2'],
  );
  const b2 = body.traces[0];
  assert.equal(b2?.hits, 0, 'a count that is not a number reads as 0');
  assert.deepEqual(b2?.latest?.values, [{ name: 'y', text: '2', value: undefined }]);
  assert.deepEqual(body.removed, ['t9']);
  assert.equal(parseHitsBody('nope'), undefined);
  assert.equal(parseHitsBody(null), undefined);
});

test('the function hit last is the one with the newest call', () => {
  const t = parseHitsBody({
    traces: [
      {
        ...foo,
        functions: [
          { name: 'a', hits: 1, rate: 0, call: { time: 5, values: [] } },
          { name: 'b', hits: 1, rate: 0, call: { time: 9, values: [] } },
          { name: 'c', hits: 0, rate: 0 },
        ],
      },
    ],
  })?.traces[0];
  assert.ok(t);
  assert.equal(latestFunction(t)?.name, 'b');
});
