// The logprobe sessions this window runs, and the entries waiting for the next one.
//
// The adapter descriptor factory registers each session with its relaying proxy
// and its TraceSession; commands look sessions up here. Entries picked while no
// session runs are parked as "pending" and handed to the next session, which
// sends them right after the adapter's `initialized` event.

import type * as vscode from 'vscode';
import type { AdapterProxy } from './adapterProxy';
import { TraceSession } from './traceSession';
import type { TraceEntry } from './traceSet';

export interface LogprobeSession {
  session: vscode.DebugSession;
  proxy: AdapterProxy;
  traces: TraceSession;
}

export class SessionRegistry {
  private readonly sessions = new Map<string, LogprobeSession>();
  private pending: TraceEntry[] = [];

  add(entry: LogprobeSession): void {
    this.sessions.set(entry.session.id, entry);
  }

  delete(sessionId: string): void {
    this.sessions.delete(sessionId);
  }

  get(sessionId: string): LogprobeSession | undefined {
    return this.sessions.get(sessionId);
  }

  /** The active debug session if it is ours, else the most recently started one of ours. */
  current(active: vscode.DebugSession | undefined): LogprobeSession | undefined {
    if (active) {
      const found = this.sessions.get(active.id);
      if (found) {
        return found;
      }
    }
    return [...this.sessions.values()].pop();
  }

  all(): LogprobeSession[] {
    return [...this.sessions.values()];
  }

  /** Parks entries for the next session to start. */
  setPending(entries: TraceEntry[]): void {
    this.pending = entries;
  }

  /** Hands the parked entries to a starting session, once. */
  takePending(): TraceEntry[] {
    const entries = this.pending;
    this.pending = [];
    return entries;
  }
}
