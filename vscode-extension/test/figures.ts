// Builds checked trace figures for tests from loose objects, through the same
// parser the adapter's events go through.
import assert from 'node:assert/strict';
import { parseTrace, TraceFigures } from '../src/hits';

export function trace(v: unknown): TraceFigures {
  const t = parseTrace(v);
  assert.ok(t, 'the test figures parse');
  return t;
}
