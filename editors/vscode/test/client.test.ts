// The extension's client logic against a real sidecar (scripted model): the ask → stream →
// apply → feedback path, the reconnect rules through a crash and a polite restart, and giving up.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { AidClient, CUT_BY_RESTART, NOT_RUNNING, Progress, PROTOCOL_VERSION, RESTARTING, RpcError } from "../src/client";
import { Proposal } from "../src/proposal";
import { Sidecar, sidecarEnv, transcript } from "./sidecar";

const env = sidecarEnv();
const data = transcript(env);
const money = data.texts.money as string;
const moneyDouble = data.texts.money_double as string;
const fast = { firstMs: 50, maxMs: 1000, giveUpMs: 30000 };
const side = new Sidecar(env, "client");

function newClient(socket = side.socket, backoff = fast): AidClient {
  return new AidClient(
    socket,
    { protocolVersion: PROTOCOL_VERSION, client: { name: "bactrian-vscode-test", version: "0.1.0" }, workspaceRoot: env.workspace },
    backoff,
  );
}

function ask(prompt: string) {
  return { prompt, file: { path: "lib/money.ml", text: money }, cursor: { line: 7, character: 0 }, buffers: [] };
}

/** Proposes and resolves with the whole stream once it ended; `onToken` sees each token. */
async function streamOf(client: AidClient, prompt: string, onToken?: () => void): Promise<Proposal> {
  let done!: (p: Proposal) => void;
  const ended = new Promise<Proposal>((r) => (done = r));
  const p = new Proposal("", prompt, ask(prompt));
  p.id = await client.propose(ask(prompt), (progress: Progress) => {
    if (progress.kind === "token") onToken?.();
    if (p.onProgress(progress)) done(p);
  });
  return ended;
}

function once<T = unknown>(client: AidClient, event: string): Promise<T[]> {
  return new Promise((resolve) => client.once(event, (...args: T[]) => resolve(args)));
}

before(async () => {
  fs.mkdirSync(env.socketDir, { recursive: true });
  await side.start();
});
after(async () => {
  await side.stop();
});

test("ask, watch the stream, apply to buffers, send feedback", async () => {
  const client = newClient();
  try {
    const info = await client.connect();
    assert.equal(info.protocolVersion, "1.0");
    assert.equal(info.arm?.model, "scripted");
    const p = await streamOf(client, "add a double function");
    assert.equal(p.phase, "final", p.message);
    assert.deepEqual(p.context.map((c) => [c.path, c.reason]).slice(0, 1), [["lib/money.ml", "current"]]);
    assert.equal(p.answer, data.script.answers[1].text);
    assert.ok(p.applies);
    assert.deepEqual(p.files.map((f) => [f.path, f.newText]), [["lib/money.ml", moneyDouble]]);
    const res = await client.request("apply", { proposalId: p.id, target: "buffers", buffers: [{ path: "lib/money.ml", text: money }] });
    assert.equal(res.applied, true);
    assert.equal(res.files[0].newText, moneyDouble);
    assert.deepEqual(res.written, []);
    assert.equal(fs.readFileSync(path.join(env.workspace, "lib/money.ml"), "utf8"), money, "buffers target writes nothing");
    assert.equal((await client.request("feedback", { proposalId: p.id, outcome: "accepted" })).recorded, true);
  } finally {
    client.close();
  }
});

test("an answer that changes nothing is never offered as applicable", async () => {
  const client = newClient();
  try {
    await client.connect();
    const p = await streamOf(client, "add zero if it is not already there");
    assert.equal(p.phase, "final");
    assert.equal(p.applies, false);
    assert.ok(p.message.length > 0, "the user is told why");
    assert.equal((await client.request("feedback", { proposalId: p.id, outcome: "rejected" })).recorded, true);
  } finally {
    client.close();
  }
});

test("errors from the sidecar reach the caller with their code", async () => {
  const client = newClient();
  try {
    await client.connect();
    await assert.rejects(client.request("cancel", { proposalId: "no-such-proposal" }), (e: RpcError) => e.code === -32011 && !e.retryable);
    await assert.rejects(client.request("no/such/method", {}), (e: RpcError) => e.code === -32601);
  } finally {
    client.close();
  }
});

for (const how of ["crash (SIGKILL)", "polite stop (SIGTERM)"]) {
  test(`a sidecar ${how} mid-answer: the stream fails retryably, state is re-sent, the next ask works`, async () => {
    const client = newClient();
    const reconnects: boolean[] = [];
    client.on("reconnected", (_info, changed: boolean) => reconnects.push(changed));
    try {
      const first = await client.connect();
      let cut!: () => void;
      const firstToken = new Promise<void>((r) => (cut = r));
      const slow = streamOf(client, "slow: add a double function", () => cut());
      await firstToken;
      const lost = once(client, "lost");
      await (how.startsWith("crash") ? side.kill() : side.stop());
      const p = await slow;
      assert.equal(p.phase, "failed");
      assert.equal(p.retryable, true);
      if (how.startsWith("crash")) assert.equal(p.message, CUT_BY_RESTART);
      await lost;
      assert.equal(client.state, "reconnecting");
      // a request made while the sidecar is away waits, then goes to the new one (re-send state)
      const status = client.request("status");
      await new Promise((r) => setTimeout(r, 300));
      await side.start();
      const s = await status;
      assert.notEqual(s.serverId, first.serverId);
      assert.equal(s.workspaceRoot, env.workspace, "initialize was re-sent before the request");
      assert.equal(client.state, "connected");
      const again = await streamOf(client, "add a double function");
      assert.equal(again.phase, "final", again.message);
      assert.equal(again.files[0].newText, moneyDouble);
      assert.deepEqual(reconnects, [true], "the user is told once");
    } finally {
      client.close();
    }
  });
}

test("deploy by restart (`bactrian aid restart`): the connected client follows without a reload", async () => {
  const client = newClient();
  const reconnects: boolean[] = [];
  client.on("reconnected", (_info, changed: boolean) => reconnects.push(changed));
  try {
    const first = await client.connect();
    side.redeploy(); // returns once the new server answers
    const p = await streamOf(client, "add a double function");
    assert.equal(p.phase, "final", p.message);
    assert.notEqual(client.info?.serverId, first.serverId);
    assert.deepEqual(reconnects, [true]);
  } finally {
    client.close();
  }
});

test("no sidecar: connect fails at once; the reconnect loop gives up saying how to start one", async () => {
  const missing = path.join(env.socketDir, "nobody-here.sock");
  const client = newClient(missing, { firstMs: 10, maxMs: 40, giveUpMs: 300 });
  await assert.rejects(client.connect(), (e: NodeJS.ErrnoException) => e.code === "ENOENT" || e.code === "ECONNREFUSED");
  const gaveUp = once<string>(client, "gaveUp");
  assert.equal(await client.connectWithRetry(), undefined);
  assert.deepEqual(await gaveUp, [NOT_RUNNING]);
  assert.equal(client.state, "failed");
  await assert.rejects(client.request("status"), (e: RpcError) => e.retryable && e.message === NOT_RUNNING);
  assert.equal(RESTARTING, -32001);
});
