// How figures read in the editor: counts, rates, durations and a hit's
// values, short enough for a line end or a tree row. Pure, unit-tested.

import type { Durations, HitRecord, TraceFigures } from './hits';

/** 999 → "999", 12345 → "12,345", 1234567 → "1.23M". */
export function formatCount(n: number): string {
  if (n < 1_000_000) {
    return Math.round(n).toLocaleString('en-US');
  }
  if (n < 1_000_000_000) {
    return `${trim3(n / 1_000_000)}M`;
  }
  return `${trim3(n / 1_000_000_000)}G`;
}

/** Hits per second: "0/s", "20/s", "1.5/s", "12.3k/s". */
export function formatRate(perSecond: number): string {
  if (perSecond <= 0) {
    return '0/s';
  }
  if (perSecond < 10) {
    return `${trim3(perSecond)}/s`;
  }
  if (perSecond < 10_000) {
    return `${Math.round(perSecond)}/s`;
  }
  if (perSecond < 10_000_000) {
    return `${trim3(perSecond / 1000)}k/s`;
  }
  return `${trim3(perSecond / 1_000_000)}M/s`;
}

/** Nanoseconds as Go prints a time.Duration, to 3 significant digits: 850ns, 1.21µs, 12.5ms, 3.2s. */
export function formatDuration(ns: number): string {
  if (ns < 1000) {
    return `${Math.round(ns)}ns`;
  }
  if (ns < 1_000_000) {
    return `${trim3(ns / 1000)}µs`;
  }
  if (ns < 1_000_000_000) {
    return `${trim3(ns / 1_000_000)}ms`;
  }
  return `${trim3(ns / 1_000_000_000)}s`;
}

/** Three significant digits, trailing zeros dropped. */
function trim3(x: number): string {
  const digits = x >= 100 ? 0 : x >= 10 ? 1 : 2;
  return String(Number(x.toFixed(digits)));
}

/** Cuts text to `max` characters, ending it with "…" when cut. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

/**
 * "x=99, y=9801": a hit's values as the program's notation shows them. A value
 * without a name (a C or Rust function's result) is shown alone: "216".
 */
export function formatValues(hit: HitRecord): string {
  return hit.values.map((v) => (v.name ? `${v.name}=${v.text}` : v.text)).join(', ');
}

/** "p50 1.21µs  p99 8.65µs  max 20.5µs". */
export function formatDurations(d: Durations): string {
  return `p50 ${formatDuration(d.p50)}  p99 ${formatDuration(d.p99)}  max ${formatDuration(d.max)}`;
}

/** "3 hits dropped (the eBPF ring buffer was full)", or nothing when none were. */
export function describeDropped(dropped: number): string {
  return dropped > 0 ? `${formatCount(dropped)} ${dropped === 1 ? 'hit' : 'hits'} dropped (the eBPF ring buffer was full)` : '';
}

/** "call" / "calls" / "hit" / "hits". */
export function noun(kind: TraceFigures['kind'], n: number): string {
  const word = kind === 'trace' ? 'call' : 'hit';
  return n === 1 ? word : `${word}s`;
}

/**
 * The figures of a trace on one line, for the Traces view:
 * "1,234 calls · 20/s · p50 1.21µs  p99 8.65µs  max 20.5µs", then the hits
 * lost and those over a rate limit, when there are any.
 */
export function describeFigures(t: TraceFigures): string {
  const parts = [`${formatCount(t.hits)} ${noun(t.kind, t.hits)}`, formatRate(t.rate)];
  const timed = t.functions.length === 1 ? t.functions[0]?.durations : undefined;
  if (timed && timed.count > 0) {
    parts.push(formatDurations(timed));
  }
  if (t.dropped > 0) {
    parts.push(`${formatCount(t.dropped)} lost`);
  }
  if (t.limited > 0) {
    parts.push(`${formatCount(t.limited)} over the rate limit`);
  }
  if (t.state === 'paused') {
    parts.push('paused');
  }
  return parts.join(' · ');
}
