import assert from "node:assert/strict";
import { test } from "node:test";
import { Decoder, encode, FrameError } from "../src/framing";

test("a message survives encoding and decoding, byte by byte", () => {
  const msg = { jsonrpc: "2.0", id: 1, method: "propose", params: { prompt: "ajoute « double » ✓" } };
  const bytes = encode(msg);
  const decoder = new Decoder();
  const out: unknown[] = [];
  for (let i = 0; i < bytes.length; i++) out.push(...decoder.push(bytes.subarray(i, i + 1)));
  assert.deepEqual(out, [msg]);
});

test("Content-Length counts UTF-8 bytes, not characters", () => {
  const text = encode({ t: "é" }).toString("utf8");
  assert.match(text, /^Content-Length: 10\r\n\r\n/);
});

test("several messages in one chunk come out in order, with extra headers", () => {
  const body = Buffer.from('{"id":2}');
  const withType = Buffer.concat([
    Buffer.from(`Content-Length: ${body.length}\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n`),
    body,
  ]);
  const decoder = new Decoder();
  assert.deepEqual(decoder.push(Buffer.concat([encode({ id: 1 }), withType, encode({ id: 3 }).subarray(0, 5)])), [
    { id: 1 },
    { id: 2 },
  ]);
  assert.deepEqual(decoder.push(encode({ id: 3 }).subarray(5)), [{ id: 3 }]);
});

test("bad frames are errors, not guesses", () => {
  assert.throws(() => new Decoder().push(Buffer.from("Content-Type: x\r\n\r\n{}")), FrameError);
  assert.throws(() => new Decoder().push(Buffer.from("Content-Length: -1\r\n\r\n")), FrameError);
  assert.throws(() => new Decoder().push(Buffer.from("Content-Length: 2\r\n\r\n{x")), /not JSON/);
  assert.throws(() => new Decoder(100).push(Buffer.from("Content-Length: 101\r\n\r\n")), /cap/);
  assert.throws(() => new Decoder().push(Buffer.alloc(9000, 65)), /header too long/);
});
