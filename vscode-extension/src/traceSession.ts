// Keeps one session's traced functions in step with the adapter.
//
// Each change to the TraceSet is followed by a `traceFunctions` request carrying
// the whole set; requests are sent one at a time so answers are applied in
// order, and a duplicate found in an answer triggers one more request so the
// adapter drops its probe too. The transport is injected: pure, unit-tested.

import { ApplyOutcome, TraceEntry, TraceFunctionsResponse, TraceSet } from './traceSet';

/** Sends a DAP request to the adapter and resolves with the response body. */
export type SendRequest = (command: string, args: unknown) => Promise<unknown>;

/** The request's arguments: the whole list under `functions` (docs/protocol.md). */
export function traceFunctionsArguments(entries: TraceEntry[]): { functions: TraceEntry[] } {
  return { functions: entries };
}

/** The per-entry results of a response body (`functions`); undefined if malformed. */
export function traceFunctionsResults(body: unknown): TraceFunctionsResponse | undefined {
  if (typeof body !== 'object' || body === null) {
    return undefined;
  }
  const { functions } = body as { functions?: unknown };
  return Array.isArray(functions) ? { entries: functions as TraceFunctionsResponse['entries'] } : undefined;
}

export class TraceSession {
  readonly traceSet = new TraceSet();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly send: SendRequest) {}

  /** Adds entries and syncs; resolves with what the adapter made of them. */
  add(...entries: TraceEntry[]): Promise<ApplyOutcome> {
    entries.forEach((e) => this.traceSet.add(e));
    return this.sync();
  }

  /** Removes an entry and syncs. */
  remove(entry: TraceEntry): Promise<ApplyOutcome> {
    this.traceSet.remove(entry);
    return this.sync();
  }

  /** Sends the current set (after any request already under way). */
  sync(): Promise<ApplyOutcome> {
    const run = async (): Promise<ApplyOutcome> => {
      const sent = this.traceSet.entries();
      const body = traceFunctionsResults(await this.send('traceFunctions', traceFunctionsArguments(sent)));
      if (!body) {
        throw new Error('traceFunctions answered without a list of results');
      }
      const outcome = this.traceSet.apply(sent, body);
      if (outcome.resend) {
        const again = this.traceSet.entries();
        const second = traceFunctionsResults(await this.send('traceFunctions', traceFunctionsArguments(again)));
        if (second) {
          this.traceSet.apply(again, second);
        }
      }
      return outcome;
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }
}
