// The traced-entry set: identity, lookup by cursor line, folding in answers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeEntry, exactNameRegex, TraceEntry, TraceSet } from '../src/traceSet';

const at = (line: number, character = 4): TraceEntry => ({
  position: { textDocument: { uri: 'file:///w/main.go' }, position: { line, character } },
});
const fn = (name: string, line: number) => ({ name, source: { path: '/w/main.go' }, line });

test('the same position or regex is not added twice; removal is by identity', () => {
  const set = new TraceSet();
  assert.equal(set.add(at(5)), true);
  assert.equal(set.add(at(5)), false);
  assert.equal(set.add(at(5, 0)), true);
  assert.equal(set.add({ regex: '^main\\.' }), true);
  assert.equal(set.add({ regex: '^main\\.' }), false);
  assert.equal(set.size, 3);
  assert.equal(set.remove({ regex: '^main\\.' }), true);
  assert.equal(set.remove({ regex: '^main\\.' }), false);
  assert.deepEqual(set.entries(), [at(5), at(5, 0)]);
});

test('answers are folded in: unverified entries leave, functions are recorded', () => {
  const set = new TraceSet();
  set.add(at(5));
  set.add({ regex: 'nothing' });
  const sent = set.entries();
  const outcome = set.apply(sent, {
    entries: [{ verified: true, functions: [fn('main.foo', 5)] }, { verified: false, message: 'no function matches' }],
  });
  assert.deepEqual(outcome.rejected, [{ entry: { regex: 'nothing' }, message: 'no function matches' }]);
  assert.deepEqual(outcome.added, [{ entry: at(5), functions: [fn('main.foo', 5)] }]);
  assert.equal(outcome.resend, false);
  assert.deepEqual(set.list(), [{ entry: at(5), functions: [fn('main.foo', 5)] }]);
});

test('a second position inside an already traced function is dropped and a resend asked for', () => {
  const set = new TraceSet();
  set.add(at(5));
  set.apply(set.entries(), { entries: [{ verified: true, functions: [fn('main.foo', 5)] }] });
  set.add(at(6));
  const outcome = set.apply(set.entries(), {
    entries: [{ verified: true, functions: [fn('main.foo', 5)] }, { verified: true, functions: [fn('main.foo', 5)] }],
  });
  assert.deepEqual(outcome.duplicates, [at(6)]);
  assert.equal(outcome.resend, true);
  assert.deepEqual(set.entries(), [at(5)]);
});

test('an entry removed while its request was under way is not resurrected', () => {
  const set = new TraceSet();
  set.add(at(5));
  const sent = set.entries();
  set.remove(at(5));
  const outcome = set.apply(sent, { entries: [{ verified: true, functions: [fn('main.foo', 5)] }] });
  assert.equal(set.size, 0);
  assert.deepEqual(outcome.added, []);
});

test('the entry around a line is the traced function declared last above it', () => {
  const set = new TraceSet();
  set.add(at(5));
  set.add(at(11));
  set.apply(set.entries(), {
    entries: [{ verified: true, functions: [fn('main.foo', 5)] }, { verified: true, functions: [fn('main.main', 11)] }],
  });
  assert.deepEqual(set.entryAt('/w/main.go', 6), at(5)); // 0-based line 6 = line 7, inside foo (declared on line 5)
  assert.deepEqual(set.entryAt('/w/main.go', 10), at(11)); // line 11 itself
  assert.equal(set.entryAt('/w/main.go', 2), undefined);
  assert.equal(set.entryAt('/w/other.go', 6), undefined);
});

test('names and labels', () => {
  assert.equal(exactNameRegex('main.(*T).String'), '^main\\.\\(\\*T\\)\\.String$');
  assert.equal(new RegExp(exactNameRegex('main.(*T).String')).test('main.(*T).String'), true);
  assert.equal(describeEntry({ regex: 'a.b' }), '/a.b/');
  assert.equal(describeEntry(at(5)), 'file:///w/main.go:6');
  assert.equal(describeEntry(at(5), [fn('a', 1), fn('b', 2), fn('c', 3), fn('d', 4)]), 'a, b, c and 1 more');
});
