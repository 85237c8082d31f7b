// The logprobe sessions this window runs, and the entries waiting for the next one.
//
// The adapter descriptor factory registers each session with its relaying proxy,
// its TraceSession and the live figures of its traces (HitsModel); commands and
// views look sessions up here and listen for changes. Entries picked while no
// session runs are parked as "pending" and handed to the next session, which
// sends them right after the adapter's `initialized` event.

import type * as vscode from 'vscode';
import type { AdapterProxy } from './adapterProxy';
import { HitsModel } from './hits';
import { TraceSession } from './traceSession';
import type { TraceEntry } from './traceSet';

export interface LogprobeSession {
  session: vscode.DebugSession;
  proxy: AdapterProxy;
  traces: TraceSession;
  hits: HitsModel;
}

export class SessionRegistry {
  private readonly sessions = new Map<string, LogprobeSession>();
  private pending: TraceEntry[] = [];
  private readonly listeners = new Set<() => void>();

  add(entry: LogprobeSession): void {
    this.sessions.set(entry.session.id, entry);
    this.changed();
  }

  delete(sessionId: string): void {
    if (this.sessions.delete(sessionId)) {
      this.changed();
    }
  }

  /** Called after a session came or went, or its figures changed. */
  onDidChange(listener: () => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  /** Tells the listeners; views throttle their own updates. */
  changed(): void {
    this.listeners.forEach((l) => l());
  }

  get size(): number {
    return this.sessions.size;
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
