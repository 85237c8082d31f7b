// The set of functions traced in one logprobe session.
//
// `traceFunctions` replaces everything the adapter traces with the entries it is
// given, like setFunctionBreakpoints, so the extension keeps the whole set and
// sends all of it on every change. This module owns that set: adding an entry
// (the cursor position or a regex), removing the one whose function surrounds a
// line, and folding the adapter's answer back in (dropping entries it could not
// resolve and entries that name a function already traced). Pure, unit-tested.

/** LSP TextDocumentPositionParams: a 0-based line and character in a document. */
export interface PositionParams {
  textDocument: { uri: string };
  position: { line: number; character: number };
}

/** One entry of the `traceFunctions` request. */
export interface TraceEntry {
  regex?: string;
  position?: PositionParams;
  condition?: string;
  hitCondition?: string;
  logMessage?: string;
}

/** A function the adapter matched: DAP lines are 1-based. */
export interface TracedFunction {
  name: string;
  source: { path?: string };
  line: number;
}

export interface EntryResult {
  verified: boolean;
  message?: string;
  functions?: TracedFunction[];
  /** The trace's id in `logprobe/hits` and `setTraceState` (docs/protocol.md). */
  id?: string;
}

export interface TraceFunctionsResponse {
  entries: EntryResult[];
}

/** What applying a response changed, for the user. */
export interface ApplyOutcome {
  /** Entries the adapter could not resolve; removed from the set. */
  rejected: { entry: TraceEntry; message: string }[];
  /** Entries naming only functions that an earlier entry already traces; removed. */
  duplicates: TraceEntry[];
  /** Entries newly verified, with the functions they trace. */
  added: { entry: TraceEntry; functions: TracedFunction[] }[];
  /** True when the set changed so the adapter must be sent it again. */
  resend: boolean;
}

interface Slot {
  entry: TraceEntry;
  /** Functions the adapter matched, once it answered. */
  functions?: TracedFunction[];
  /** The adapter's id for it, once it answered. */
  id?: string;
}

/** Identity of an entry: the same regex or the same cursor position is not added twice. */
export function entryKey(entry: TraceEntry): string {
  if (entry.regex !== undefined) {
    return `regex:${entry.regex}`;
  }
  const p = entry.position;
  return p ? `position:${p.textDocument.uri}:${p.position.line}:${p.position.character}` : 'empty';
}

/** A regex that matches exactly one function name. */
export function exactNameRegex(name: string): string {
  return `^${name.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}$`;
}

/** Short label for messages and pickers. */
export function describeEntry(entry: TraceEntry, functions?: TracedFunction[]): string {
  if (functions && functions.length > 0) {
    const names = functions.map((f) => f.name);
    return names.length <= 3 ? names.join(', ') : `${names.slice(0, 3).join(', ')} and ${names.length - 3} more`;
  }
  if (entry.regex !== undefined) {
    return `/${entry.regex}/`;
  }
  const p = entry.position;
  return p ? `${p.textDocument.uri}:${p.position.line + 1}` : '(empty entry)';
}

export class TraceSet {
  private slots: Slot[] = [];

  get size(): number {
    return this.slots.length;
  }

  /** The entries to send, in order; the adapter answers in the same order. */
  entries(): TraceEntry[] {
    return this.slots.map((s) => s.entry);
  }

  /** Entries with the functions they resolved to (undefined until answered). */
  list(): { entry: TraceEntry; functions?: TracedFunction[] }[] {
    return this.slots.map((s) => ({ entry: s.entry, functions: s.functions }));
  }

  /** The entry the adapter knows by `id`. */
  entryById(id: string): TraceEntry | undefined {
    return this.slots.find((s) => s.id === id)?.entry;
  }

  /** Adds an entry; false if the same entry is already there. */
  add(entry: TraceEntry): boolean {
    const key = entryKey(entry);
    if (this.slots.some((s) => entryKey(s.entry) === key)) {
      return false;
    }
    this.slots.push({ entry });
    return true;
  }

  /** Removes an entry by identity; false if it was not there. */
  remove(entry: TraceEntry): boolean {
    const key = entryKey(entry);
    const before = this.slots.length;
    this.slots = this.slots.filter((s) => entryKey(s.entry) !== key);
    return this.slots.length !== before;
  }

  /**
   * The entry tracing the function that contains a 0-based `line` of `file`:
   * among entries whose functions are declared in that file at or above the line,
   * the one declared last. Function ends are not known, so a line after a traced
   * function's end still picks it; the command is only offered inside a function.
   */
  entryAt(file: string, line: number): TraceEntry | undefined {
    let best: { entry: TraceEntry; line: number } | undefined;
    for (const slot of this.slots) {
      for (const f of slot.functions ?? []) {
        const declared = f.line - 1;
        if (f.source.path === file && declared <= line && (!best || declared > best.line)) {
          best = { entry: slot.entry, line: declared };
        }
      }
    }
    return best?.entry;
  }

  /** The entries tracing a function declared exactly at a 0-based `line` of `file`. */
  entriesDeclaredAt(file: string, line: number): TraceEntry[] {
    return this.slots
      .filter((slot) => (slot.functions ?? []).some((f) => f.source.path === file && f.line - 1 === line))
      .map((slot) => slot.entry);
  }

  /**
   * Folds in the adapter's answer to a request made with `sent` (the value of
   * entries() at the time). Entries changed since then are left alone.
   */
  apply(sent: TraceEntry[], response: TraceFunctionsResponse): ApplyOutcome {
    const outcome: ApplyOutcome = { rejected: [], duplicates: [], added: [], resend: false };
    const covered = new Set<string>();
    const functionKey = (f: TracedFunction): string => `${f.name}@${f.source.path ?? ''}`;
    sent.forEach((entry, i) => {
      const slot = this.slots.find((s) => entryKey(s.entry) === entryKey(entry));
      if (!slot) {
        return;
      }
      const result = response.entries[i];
      if (!result || !result.verified) {
        this.remove(entry);
        outcome.rejected.push({ entry, message: result?.message ?? 'the adapter did not answer for this entry' });
        return;
      }
      const functions = result.functions ?? [];
      const wasNew = slot.functions === undefined;
      if (wasNew && functions.length > 0 && functions.every((f) => covered.has(functionKey(f)))) {
        this.remove(entry);
        outcome.duplicates.push(entry);
        outcome.resend = true;
        return;
      }
      slot.functions = functions;
      if (result.id !== undefined) {
        slot.id = result.id;
      }
      functions.forEach((f) => covered.add(functionKey(f)));
      if (wasNew) {
        outcome.added.push({ entry, functions });
      }
    });
    return outcome;
  }
}
