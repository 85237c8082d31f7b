// Pausing, resuming, removing a trace and taking a snapshot of its latest
// hit: the requests (docs/protocol.md: `setTraceState`, `snapshot`) and the
// rule for removing. A trace the extension sent with `traceFunctions` is
// removed from its TraceSet (the adapter's list is replaced by the next
// request, so asking the adapter alone would not last); a logpoint is removed
// as a VS Code breakpoint, for the same reason; only a regex of the launch
// configuration's `trace` list is removed by `setTraceState`. Pure, the
// transport injected; unit-tested.

import type { TraceFigures, TraceState } from './hits';
import type { TraceEntry, TraceSet } from './traceSet';

export type SendRequest = (command: string, args: unknown) => Promise<unknown>;

export type RemovalPlan =
  | { kind: 'entry'; entry: TraceEntry }
  | { kind: 'breakpoint'; path: string; line: number; breakpointId?: number }
  | { kind: 'request' };

/** How to remove `trace` so that it stays removed. */
export function removalPlan(trace: TraceFigures, traceSet: TraceSet): RemovalPlan {
  if (trace.kind === 'trace') {
    const entry = traceSet.entryById(trace.id);
    return entry ? { kind: 'entry', entry } : { kind: 'request' };
  }
  if (trace.source?.path !== undefined && trace.line !== undefined) {
    const plan: RemovalPlan = { kind: 'breakpoint', path: trace.source.path, line: trace.line };
    if (trace.breakpointId !== undefined) {
      plan.breakpointId = trace.breakpointId;
    }
    return plan;
  }
  return { kind: 'request' };
}

/** Asks the adapter to put one trace in `state`; resolves with the state it reports, rejects with its reason. */
export async function setTraceState(
  send: SendRequest,
  id: string,
  state: TraceState | 'removed',
): Promise<TraceState | 'removed'> {
  const body = await send('setTraceState', { traces: [{ id, state }] });
  const first = (body as { traces?: { state?: unknown; message?: unknown }[] } | undefined)?.traces?.[0];
  if (first?.state === 'active' || first?.state === 'paused' || first?.state === 'removed') {
    return first.state;
  }
  throw new Error(typeof first?.message === 'string' ? first.message : `the adapter did not change ${id}`);
}

/** The `snapshot` request's arguments: the trace, and for a regex trace the function wanted. */
export function snapshotArguments(trace: TraceFigures, functionName?: string): { id: string; function?: string } {
  return functionName === undefined ? { id: trace.id } : { id: trace.id, function: functionName };
}

/** True when the trace has a hit a snapshot can show. */
export function hasHit(trace: TraceFigures): boolean {
  return trace.kind === 'logpoint' ? trace.latest !== undefined : trace.functions.some((f) => f.call !== undefined);
}
