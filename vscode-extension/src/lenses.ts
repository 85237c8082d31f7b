// Which CodeLens goes above which function: "Trace" above a function no
// session traces, "Stop tracing (N calls)" above one that is traced, with
// the calls counted over every session. A traced function the document's
// function list missed still gets its lens at its declaration line. Pure,
// unit-tested; codeLens.ts finds the functions and shows the lenses.

import { formatCount } from './format';
import type { FoundFunction } from './functionScan';
import type { TraceFigures } from './hits';
import type { TracedFunction } from './traceSet';

export interface SessionFunctions {
  traces: TraceFigures[];
  /** Functions the adapter said it traces (traceFunctions answers), counted or not yet. */
  answered: TracedFunction[];
}

export interface Lens {
  /** 0-based. */
  line: number;
  character: number;
  title: string;
  action: 'trace' | 'stop';
  name: string;
}

/** Calls per 0-based declaration line of the traced functions of `path`. */
export function tracedCalls(sessions: SessionFunctions[], path: string): Map<number, { name: string; calls: number }> {
  const lines = new Map<number, { name: string; calls: number }>();
  const add = (name: string, line: number | undefined, calls: number): void => {
    if (line === undefined || line < 1) {
      return;
    }
    const now = lines.get(line - 1);
    lines.set(line - 1, { name: now?.name ?? name, calls: (now?.calls ?? 0) + calls });
  };
  for (const s of sessions) {
    const counted = new Set<string>();
    for (const t of s.traces) {
      if (t.kind !== 'trace') {
        continue;
      }
      for (const f of t.functions) {
        if (f.source?.path === path) {
          add(f.name, f.line, f.hits);
          counted.add(`${f.name}:${f.line ?? 0}`);
        }
      }
    }
    for (const f of s.answered) {
      if (f.source.path === path && !counted.has(`${f.name}:${f.line}`)) {
        add(f.name, f.line, 0);
      }
    }
  }
  return lines;
}

/** The lenses of a document from its functions and what is traced in it. */
export function lensesFor(found: FoundFunction[], traced: Map<number, { name: string; calls: number }>): Lens[] {
  const lenses: Lens[] = [];
  const done = new Set<number>();
  for (const f of found) {
    if (done.has(f.line)) {
      continue;
    }
    done.add(f.line);
    const t = traced.get(f.line);
    lenses.push(
      t
        ? { line: f.line, character: f.character, title: stopTitle(t.calls), action: 'stop', name: f.name }
        : { line: f.line, character: f.character, title: 'Trace', action: 'trace', name: f.name },
    );
  }
  for (const [line, t] of traced) {
    if (!done.has(line)) {
      lenses.push({ line, character: 0, title: stopTitle(t.calls), action: 'stop', name: t.name });
    }
  }
  return lenses.sort((a, b) => a.line - b.line);
}

function stopTitle(calls: number): string {
  return `Stop tracing (${formatCount(calls)} ${calls === 1 ? 'call' : 'calls'})`;
}
