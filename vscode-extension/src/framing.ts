// Content-Length framing of Debug Adapter Protocol messages, both ways.
//
// The extension talks to the `logprobe dap` child process itself (see
// adapterProxy.ts) so it needs to cut the child's stdout into messages and to
// frame the messages it writes. Pure code, unit-tested.

const HEADER_END = Buffer.from('\r\n\r\n');

/** Frames one message for writing to the adapter. */
export function encodeMessage(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  return Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`, 'ascii'), body]);
}

/** Accumulates bytes and yields each complete message, in order. */
export class MessageReader {
  private buffer: Buffer = Buffer.alloc(0);

  /**
   * Adds bytes read from the adapter; returns the messages they complete.
   * Throws on a header without Content-Length or a body that is not JSON:
   * the stream cannot be resynchronised after that.
   */
  push(chunk: Buffer): unknown[] {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    const messages: unknown[] = [];
    for (;;) {
      const headerEnd = this.buffer.indexOf(HEADER_END);
      if (headerEnd < 0) {
        return messages;
      }
      const header = this.buffer.subarray(0, headerEnd).toString('ascii');
      const match = /(?:^|\r\n)Content-Length:\s*(\d+)/i.exec(header);
      if (!match || match[1] === undefined) {
        throw new Error(`DAP header without Content-Length: ${JSON.stringify(header)}`);
      }
      const length = Number(match[1]);
      const start = headerEnd + HEADER_END.length;
      if (this.buffer.length < start + length) {
        return messages;
      }
      const body = this.buffer.subarray(start, start + length).toString('utf8');
      this.buffer = this.buffer.subarray(start + length);
      messages.push(JSON.parse(body));
    }
  }
}
