// The shared protocol transcript (editors/transcript.json) replayed with this client's own
// framing over a raw connection to a real sidecar, by the rules written in its "about".

import assert from "node:assert/strict";
import * as net from "node:net";
import { after, before, test } from "node:test";
import { Decoder, encode } from "../src/framing";
import { Sidecar, sidecarEnv, transcript } from "./sidecar";

const env = sidecarEnv();
const side = new Sidecar(env, "transcript");
type Json = any;

function subst(value: Json, vars: Record<string, Json>, texts: Record<string, string>): Json {
  if (Array.isArray(value)) return value.map((v) => subst(v, vars, texts));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, subst(v, vars, texts)]));
  }
  if (typeof value === "string" && value.startsWith("${") && value.endsWith("}")) {
    const name = value.slice(2, -1);
    if (name === "any" || name.startsWith("save:")) return value;
    if (name.startsWith("text:")) return texts[name.slice(5)];
    assert.ok(name in vars, `unknown transcript variable ${name}`);
    return vars[name];
  }
  return value;
}

function match(expected: Json, actual: Json, vars: Record<string, Json>, where: string): void {
  if (expected === "${any}") return;
  if (typeof expected === "string" && expected.startsWith("${save:")) {
    vars[expected.slice(7, -1)] = actual;
    return;
  }
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual) && actual.length === expected.length, `${where}: expected ${expected.length} elements, got ${JSON.stringify(actual)}`);
    expected.forEach((e, i) => match(e, actual[i], vars, `${where}[${i}]`));
    return;
  }
  if (expected && typeof expected === "object") {
    assert.ok(actual && typeof actual === "object", `${where}: expected an object, got ${JSON.stringify(actual)}`);
    for (const [k, v] of Object.entries(expected)) {
      assert.ok(k in actual || v === null, `${where}.${k}: missing in ${JSON.stringify(actual)}`);
      match(v, actual[k], vars, `${where}.${k}`);
    }
    return;
  }
  assert.deepEqual(actual, expected, where);
}

class Raw {
  private decoder = new Decoder();
  private queue: Json[] = [];
  private waiting: ((m: Json) => void) | undefined;
  private nextId = 0;
  constructor(private socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      for (const m of this.decoder.push(chunk)) this.queue.push(m);
      this.wake();
    });
  }
  private wake(): void {
    if (this.waiting && this.queue.length) {
      const w = this.waiting;
      this.waiting = undefined;
      w(this.queue.shift());
    }
  }
  next(): Promise<Json> {
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      setTimeout(() => reject(new Error("no message from the sidecar within 20 s")), 20000).unref();
      this.wake();
    });
  }
  async request(method: string, params: Json, notes: Json[]): Promise<Json> {
    const id = ++this.nextId;
    this.socket.write(encode({ jsonrpc: "2.0", id, method, params }));
    for (;;) {
      const m = await this.next();
      if (m.id === id && m.method === undefined) return m;
      notes.push(m);
    }
  }
}

before(async () => {
  await side.start();
});
after(async () => {
  await side.stop();
});

test("the shared transcript replays against the real sidecar", async () => {
  const data = transcript(env);
  const vars: Record<string, Json> = { root: env.workspace, client: "bactrian-vscode" };
  const socket = net.createConnection(side.socket);
  await new Promise((r) => socket.once("connect", r));
  const raw = new Raw(socket);
  const notes: Json[] = [];
  try {
    for (const [i, step] of (data.steps as Json[]).entries()) {
      const where = `step ${i} (${step.send})`;
      const msg = await raw.request(step.send, subst(step.params, vars, data.texts), notes);
      if ("error" in step) match(subst(step.error, vars, data.texts), msg.error, vars, `${where}.error`);
      else {
        assert.equal(msg.error, undefined, `${where}: ${JSON.stringify(msg.error)}`);
        match(subst(step.result, vars, data.texts), msg.result, vars, `${where}.result`);
      }
      if (!step.stream) continue;
      const spec = subst(step.stream, vars, data.texts);
      const stream: Json[] = [];
      for (;;) {
        const m = notes.length ? notes.shift() : await raw.next();
        if (m.method !== "aid/progress" || m.params?.proposalId !== spec.proposalId) continue;
        stream.push(m.params);
        if (["final", "error", "cancelled"].includes(m.params.kind)) break;
      }
      const kinds = stream.map((p) => p.kind);
      assert.equal(kinds[0], "context", `${where}: stream kinds ${kinds}`);
      assert.equal(kinds.at(-1), spec.last ?? "final", `${where}: stream kinds ${kinds}`);
      match(spec.context, stream[0], vars, `${where}.context`);
      const text = stream.slice(1, -1).filter((p) => p.kind === "token").map((p) => p.text).join("");
      if ("text" in spec) assert.equal(text, spec.text, `${where}: streamed text`);
      match(spec.final ?? {}, stream.at(-1), vars, `${where}.final`);
    }
  } finally {
    socket.destroy();
  }
});
