// What the editor shows at the end of a traced line: the latest values and
// the count. At a traced function's declaration line, the arguments of its
// latest call and how many calls there were; at the line of the return that
// ran last, its results and call durations; at a logpoint's line, the values
// it read (or its message) and how many times it ran. Pure, unit-tested;
// inlineValues.ts puts the texts in the editor.

import type { TraceFigures } from './hits';
import { formatCount, formatDurations, formatRate, formatValues, noun, truncate } from './format';

/** Longest inline text, in characters. */
export const MAX_INLINE = 120;

export interface SessionTraces {
  /** The session's name, shown when several sessions put text on one line. */
  name: string;
  traces: TraceFigures[];
}

function countText(t: TraceFigures, hits: number, rate: number): string {
  const paused = t.state === 'paused' ? ', paused' : '';
  const perSecond = rate > 0 ? `, ${formatRate(rate)}` : '';
  return `${formatCount(hits)} ${noun(t.kind, hits)}${perSecond}${paused}`;
}

/** Texts per 0-based line of the file at `path`, for one session. */
function sessionTexts(traces: TraceFigures[], path: string): Map<number, string[]> {
  const lines = new Map<number, string[]>();
  const put = (line: number | undefined, text: string): void => {
    if (line === undefined || line < 1) {
      return;
    }
    const list = lines.get(line - 1) ?? [];
    list.push(text);
    lines.set(line - 1, list);
  };
  for (const t of traces) {
    if (t.kind === 'logpoint') {
      if (t.source?.path !== path) {
        continue;
      }
      const latest = t.latest;
      const shown = latest ? (latest.values.length > 0 ? formatValues(latest) : (latest.message ?? '')) : '';
      put(t.line, shown === '' ? countText(t, t.hits, t.rate) : `${shown} · ${countText(t, t.hits, t.rate)}`);
      continue;
    }
    for (const f of t.functions) {
      if (f.source?.path !== path) {
        continue;
      }
      const args = f.call ? `(${formatValues(f.call)})` : '';
      put(f.line, args === '' ? countText(t, f.hits, f.rate) : `${args} · ${countText(t, f.hits, f.rate)}`);
      if (f.return) {
        const timing = f.durations && f.durations.count > 0 ? ` · ${formatDurations(f.durations)}` : '';
        put(f.return.line, `=> (${formatValues(f.return)})${timing}`);
      }
    }
  }
  return lines;
}

/**
 * Texts per 0-based line for a file, over every session: a line touched by
 * more than one session shows each one's text after its name.
 */
export function inlineTexts(sessions: SessionTraces[], path: string): Map<number, string> {
  const perSession = sessions.map((s) => ({ name: s.name, lines: sessionTexts(s.traces, path) }));
  const all = new Map<number, { name: string; texts: string[] }[]>();
  for (const { name, lines } of perSession) {
    for (const [line, texts] of lines) {
      const list = all.get(line) ?? [];
      list.push({ name, texts });
      all.set(line, list);
    }
  }
  const result = new Map<number, string>();
  for (const [line, entries] of all) {
    const text =
      entries.length === 1
        ? (entries[0]?.texts ?? []).join('  ')
        : entries.map((e) => `[${e.name}] ${e.texts.join('  ')}`).join('   ');
    result.set(line, truncate(text, MAX_INLINE));
  }
  return result;
}
