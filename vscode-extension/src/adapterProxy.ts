// Runs `logprobe dap` as a child process and relays DAP messages between it and
// VS Code (a DebugAdapterInlineImplementation).
//
// Relaying ourselves, rather than letting VS Code spawn the executable, lets the
// extension (1) send `traceFunctions` right after the adapter's `initialized`
// event and before VS Code's `configurationDone`, so a function picked before the
// session started is traced from the program's first instruction; (2) make its
// own requests without going through VS Code; (3) see the adapter's stderr and
// its early exit, to explain failures such as missing privileges; (4) take the
// adapter's `logprobe/hits` events for the extension's views without VS Code
// handling them at all. No VS Code runtime API is used here.

import { ChildProcessWithoutNullStreams, spawn } from 'child_process';
import { encodeMessage, MessageReader } from './framing';

export interface DapMessage {
  type: string;
  seq: number;
  command?: string;
  event?: string;
  request_seq?: number;
  success?: boolean;
  message?: string;
  body?: unknown;
}

export interface ProxyHooks {
  /** Called with the adapter's `initialized` event before VS Code sees it; awaited no longer than the write. */
  beforeInitialized?: () => void;
  /** A line the adapter wrote to stderr. */
  log?: (line: string) => void;
  /** An event from the adapter; returning true keeps it from VS Code (the extension's own events). */
  event?: (message: DapMessage) => boolean;
  /** The adapter exited; `stderrTail` holds its last stderr lines. */
  exited?: (code: number | null, signal: string | null, stderrTail: string[]) => void;
}

type Listener = (message: DapMessage) => void;

/** Our requests use seq numbers far above VS Code's so responses are told apart. */
const OWN_SEQ_BASE = 1_000_000_000;
const STDERR_TAIL = 20;

export class AdapterProxy {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly reader = new MessageReader();
  private readonly listeners = new Set<Listener>();
  private readonly pending = new Map<number, { resolve: (body: unknown) => void; reject: (e: Error) => void }>();
  private readonly stderrTail: string[] = [];
  private nextSeq = OWN_SEQ_BASE;
  private stderrPartial = '';
  private terminatedSeen = false;
  private exited = false;

  constructor(command: string, args: string[], private readonly hooks: ProxyHooks = {}) {
    this.child = spawn(command, args, { stdio: 'pipe' });
    this.child.stdout.on('data', (chunk: Buffer) => this.onStdout(chunk));
    this.child.stderr.on('data', (chunk: Buffer) => this.onStderr(chunk));
    this.child.on('error', (err) => this.onExit(null, null, `cannot run ${command}: ${err.message}`));
    this.child.on('exit', (code, signal) => this.onExit(code, signal));
    this.child.stdin.on('error', () => undefined); // EPIPE after the adapter died; reported by onExit.
  }

  /** vscode.DebugAdapter: the event carrying messages to VS Code. */
  readonly onDidSendMessage = (listener: Listener): { dispose(): void } => {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  };

  /** vscode.DebugAdapter: a message from VS Code. */
  handleMessage(message: DapMessage): void {
    this.write(message);
  }

  /** Sends a request of our own; resolves with its body, rejects with the adapter's message. */
  request(command: string, args: unknown): Promise<unknown> {
    if (this.exited) {
      return Promise.reject(new Error('the logprobe adapter is no longer running'));
    }
    const seq = this.nextSeq++;
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      this.write({ type: 'request', seq, command, arguments: args } as DapMessage);
    });
  }

  dispose(): void {
    if (!this.exited) {
      this.child.kill();
    }
  }

  private write(message: DapMessage): void {
    if (!this.exited) {
      this.child.stdin.write(encodeMessage(message));
    }
  }

  private emit(message: DapMessage): void {
    this.listeners.forEach((l) => l(message));
  }

  private onStdout(chunk: Buffer): void {
    let messages: unknown[];
    try {
      messages = this.reader.push(chunk);
    } catch (e) {
      this.hooks.log?.(`logprobe: unreadable output from adapter: ${(e as Error).message}`);
      this.child.kill();
      return;
    }
    for (const raw of messages) {
      const message = raw as DapMessage;
      if (message.type === 'response' && message.request_seq !== undefined && this.pending.has(message.request_seq)) {
        const waiter = this.pending.get(message.request_seq);
        this.pending.delete(message.request_seq);
        if (message.success) {
          waiter?.resolve(message.body);
        } else {
          waiter?.reject(new Error(message.message ?? `${message.command ?? 'request'} failed`));
        }
        continue;
      }
      if (message.type === 'event' && message.event === 'initialized') {
        this.hooks.beforeInitialized?.();
      }
      if (message.type === 'event' && message.event === 'terminated') {
        this.terminatedSeen = true;
      }
      if (message.type === 'event' && this.hooks.event?.(message)) {
        continue;
      }
      this.emit(message);
    }
  }

  private onStderr(chunk: Buffer): void {
    const lines = (this.stderrPartial + chunk.toString('utf8')).split('\n');
    this.stderrPartial = lines.pop() ?? '';
    for (const line of lines) {
      this.stderrTail.push(line);
      if (this.stderrTail.length > STDERR_TAIL) {
        this.stderrTail.shift();
      }
      this.hooks.log?.(line);
    }
  }

  private onExit(code: number | null, signal: string | null, error?: string): void {
    if (this.exited) {
      return;
    }
    this.exited = true;
    if (this.stderrPartial !== '') {
      this.stderrTail.push(this.stderrPartial);
    }
    if (error) {
      this.stderrTail.push(error);
    }
    for (const waiter of this.pending.values()) {
      waiter.reject(new Error('the logprobe adapter exited'));
    }
    this.pending.clear();
    this.hooks.exited?.(code, signal, [...this.stderrTail]);
    if (!this.terminatedSeen) {
      // Without this VS Code would wait forever for a session whose adapter is gone.
      this.emit({ type: 'event', seq: 0, event: 'terminated' });
    }
  }
}
