// LSP framing (`Content-Length: N\r\n\r\n` + N bytes of UTF-8 JSON), as in docs/aid-protocol.md.
// Pure and free of vscode imports so the Node test runner can test it.

export const MAX_FRAME_BYTES = 8 * 1024 * 1024;
const MAX_HEADER_BYTES = 8 * 1024;

export class FrameError extends Error {}

export function encode(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message), "utf8");
  return Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`, "ascii"), body]);
}

/** Accumulates bytes from a stream and yields every complete message in order. */
export class Decoder {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly maxBytes: number = MAX_FRAME_BYTES) {}

  push(chunk: Buffer): unknown[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: unknown[] = [];
    for (;;) {
      const end = this.buf.indexOf("\r\n\r\n");
      if (end < 0) {
        if (this.buf.length > MAX_HEADER_BYTES) throw new FrameError("header too long");
        return out;
      }
      const length = parseHeader(this.buf.subarray(0, end).toString("ascii"), this.maxBytes);
      const start = end + 4;
      if (this.buf.length < start + length) return out;
      const body = this.buf.subarray(start, start + length).toString("utf8");
      this.buf = this.buf.subarray(start + length);
      try {
        out.push(JSON.parse(body));
      } catch {
        throw new FrameError("body is not JSON");
      }
    }
  }
}

function parseHeader(header: string, maxBytes: number): number {
  let length: number | undefined;
  for (const line of header.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) throw new FrameError(`malformed header line ${JSON.stringify(line)}`);
    if (line.slice(0, colon).trim().toLowerCase() === "content-length") {
      const value = line.slice(colon + 1).trim();
      if (!/^\d+$/.test(value)) throw new FrameError(`bad Content-Length ${JSON.stringify(value)}`);
      length = Number(value);
    }
  }
  if (length === undefined) throw new FrameError("missing Content-Length");
  if (length > maxBytes) throw new FrameError(`frame of ${length} bytes is over the ${maxBytes} cap`);
  return length;
}
