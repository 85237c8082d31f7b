// The live figures of one session's traces and logpoints, as the adapter's
// `logprobe/hits` event reports them (docs/protocol.md).
//
// Each event carries only the traces whose figures changed and the ids of
// those removed; this module folds the events into the whole picture and
// checks their shape on the way in, so that a malformed event costs the
// views nothing worse than a missing row. Pure, unit-tested.

export const HITS_EVENT = 'logprobe/hits';

export interface SourceRef {
  name?: string;
  path?: string;
}

/** One value of a hit: its name, its rendering, and the decoded tree. */
export interface HitValue {
  name: string;
  text: string;
  value?: unknown;
}

/** The most recent hit of a function's call or return, or of a logpoint. */
export interface HitRecord {
  time?: number;
  goroutine?: number;
  thread?: number;
  /** 1-based, like DAP lines. */
  line?: number;
  values: HitValue[];
  /** A return's duration in nanoseconds, when its call was seen. */
  duration?: number;
  /** A logpoint's rendered message. */
  message?: string;
}

export interface Durations {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export interface FunctionFigures {
  name: string;
  source?: SourceRef;
  line?: number;
  hits: number;
  rate: number;
  durations?: Durations;
  call?: HitRecord;
  return?: HitRecord;
}

export type TraceKind = 'trace' | 'logpoint';
export type TraceState = 'active' | 'paused';

export interface TraceFigures {
  id: string;
  kind: TraceKind;
  state: TraceState;
  label: string;
  breakpointId?: number;
  source?: SourceRef;
  line?: number;
  hits: number;
  rate: number;
  shown: number;
  /** Hits over a rate limit, not reported. */
  limited: number;
  /** Hits lost before the adapter could read them (a full eBPF ring buffer). */
  dropped: number;
  functions: FunctionFigures[];
  latest?: HitRecord;
}

export interface HitsBody {
  traces: TraceFigures[];
  removed: string[];
  dropped?: number;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function source(v: unknown): SourceRef | undefined {
  if (!isObject(v)) {
    return undefined;
  }
  const s: SourceRef = {};
  const name = str(v.name);
  const path = str(v.path);
  if (name !== undefined) {
    s.name = name;
  }
  if (path !== undefined) {
    s.path = path;
  }
  return s;
}

function hitRecord(v: unknown): HitRecord | undefined {
  if (!isObject(v)) {
    return undefined;
  }
  const values: HitValue[] = [];
  if (Array.isArray(v.values)) {
    for (const item of v.values) {
      if (isObject(item) && typeof item.name === 'string' && typeof item.text === 'string') {
        values.push({ name: item.name, text: item.text, value: item.value });
      }
    }
  }
  const hit: HitRecord = { values };
  const fields: [keyof HitRecord, number | undefined][] = [
    ['time', num(v.time)],
    ['goroutine', num(v.goroutine)],
    ['thread', num(v.thread)],
    ['line', num(v.line)],
    ['duration', num(v.duration)],
  ];
  for (const [key, value] of fields) {
    if (value !== undefined) {
      (hit as unknown as Json)[key] = value;
    }
  }
  const message = str(v.message);
  if (message !== undefined) {
    hit.message = message;
  }
  return hit;
}

function durations(v: unknown): Durations | undefined {
  if (!isObject(v)) {
    return undefined;
  }
  const count = num(v.count);
  const p50 = num(v.p50);
  const p99 = num(v.p99);
  const max = num(v.max);
  return count !== undefined && p50 !== undefined && p99 !== undefined && max !== undefined
    ? { count, p50, p99, max }
    : undefined;
}

function functionFigures(v: unknown): FunctionFigures | undefined {
  if (!isObject(v) || typeof v.name !== 'string') {
    return undefined;
  }
  const f: FunctionFigures = { name: v.name, hits: num(v.hits) ?? 0, rate: num(v.rate) ?? 0 };
  const src = source(v.source);
  if (src) {
    f.source = src;
  }
  const line = num(v.line);
  if (line !== undefined) {
    f.line = line;
  }
  const d = durations(v.durations);
  if (d) {
    f.durations = d;
  }
  const call = hitRecord(v.call);
  if (call) {
    f.call = call;
  }
  const ret = hitRecord(v.return);
  if (ret) {
    f.return = ret;
  }
  return f;
}

/** Checks one trace entry of the event; undefined when it lacks what identifies it. */
export function parseTrace(v: unknown): TraceFigures | undefined {
  if (!isObject(v) || typeof v.id !== 'string' || (v.kind !== 'trace' && v.kind !== 'logpoint')) {
    return undefined;
  }
  const t: TraceFigures = {
    id: v.id,
    kind: v.kind,
    state: v.state === 'paused' ? 'paused' : 'active',
    label: str(v.label) ?? v.id,
    hits: num(v.hits) ?? 0,
    rate: num(v.rate) ?? 0,
    shown: num(v.shown) ?? 0,
    limited: num(v.limited) ?? 0,
    dropped: num(v.dropped) ?? 0,
    functions: [],
  };
  const breakpointId = num(v.breakpointId);
  if (breakpointId !== undefined) {
    t.breakpointId = breakpointId;
  }
  const src = source(v.source);
  if (src) {
    t.source = src;
  }
  const line = num(v.line);
  if (line !== undefined) {
    t.line = line;
  }
  if (Array.isArray(v.functions)) {
    for (const f of v.functions) {
      const parsed = functionFigures(f);
      if (parsed) {
        t.functions.push(parsed);
      }
    }
  }
  const latest = hitRecord(v.latest);
  if (latest) {
    t.latest = latest;
  }
  return t;
}

/** The body of a `logprobe/hits` event, malformed entries left out; undefined if it is not an object. */
export function parseHitsBody(body: unknown): HitsBody | undefined {
  if (!isObject(body)) {
    return undefined;
  }
  const traces: TraceFigures[] = [];
  if (Array.isArray(body.traces)) {
    for (const t of body.traces) {
      const parsed = parseTrace(t);
      if (parsed) {
        traces.push(parsed);
      }
    }
  }
  const removed = Array.isArray(body.removed) ? body.removed.filter((r): r is string => typeof r === 'string') : [];
  const result: HitsBody = { traces, removed };
  const dropped = num(body.dropped);
  if (dropped !== undefined) {
    result.dropped = dropped;
  }
  return result;
}

/** One session's traces, as of the last event. */
export class HitsModel {
  private readonly byId = new Map<string, TraceFigures>();
  private droppedTotal = 0;

  /** Folds an event in; true if anything changed. */
  apply(body: HitsBody): boolean {
    let changed = false;
    for (const id of body.removed) {
      changed = this.byId.delete(id) || changed;
    }
    for (const t of body.traces) {
      this.byId.set(t.id, t);
      changed = true;
    }
    if (body.dropped !== undefined && body.dropped !== this.droppedTotal) {
      this.droppedTotal = body.dropped;
      changed = true;
    }
    return changed;
  }

  /** Traces in the order the adapter first reported them. */
  traces(): TraceFigures[] {
    return [...this.byId.values()];
  }

  get(id: string): TraceFigures | undefined {
    return this.byId.get(id);
  }

  /** Hits lost before the adapter could read them, all traces together. */
  get dropped(): number {
    return this.droppedTotal;
  }

  get size(): number {
    return this.byId.size;
  }

  clear(): void {
    this.byId.clear();
    this.droppedTotal = 0;
  }

  /** A state change the adapter confirmed, shown before its next event. */
  setState(id: string, state: TraceState): void {
    const t = this.byId.get(id);
    if (t) {
      t.state = state;
    }
  }
}

/** The function of a trace declared at a 1-based line of a file, if it traces one there. */
export function functionAt(trace: TraceFigures, path: string, line: number): FunctionFigures | undefined {
  return trace.functions.find((f) => f.source?.path === path && f.line === line);
}

/** The function hit most recently (by its call's time), else the first. */
export function latestFunction(trace: TraceFigures): FunctionFigures | undefined {
  let best: FunctionFigures | undefined;
  for (const f of trace.functions) {
    const time = f.call?.time ?? f.return?.time;
    const bestTime = best?.call?.time ?? best?.return?.time;
    if (!best || (time !== undefined && (bestTime === undefined || time > bestTime))) {
      best = f;
    }
  }
  return best;
}
