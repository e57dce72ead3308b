// How the extension folds a proposal's stream and decides whether an apply changed anything
// (the streams themselves are checked against a real sidecar in client.test.ts).

import assert from "node:assert/strict";
import { test } from "node:test";
import { CUT_BY_RESTART, RESTARTING } from "../src/client";
import { changesSomething, Proposal } from "../src/proposal";

const file = { path: "lib/a.ml", status: "modified", newText: "let x = 2\n" };

test("a stream folds into the answer, the context and the files", () => {
  const p = new Proposal("p-1", "make x 2", {});
  assert.equal(p.onProgress({ proposalId: "p-1", kind: "context", files: [{ path: "lib/a.ml", reason: "current", tokens: 4 }] }), false);
  p.onProgress({ proposalId: "p-1", kind: "token", text: "--- a/", index: 0 });
  p.onProgress({ proposalId: "p-1", kind: "token", text: "lib/a.ml", index: 1 });
  assert.equal(p.phase, "streaming");
  assert.equal(p.onProgress({ proposalId: "p-1", kind: "final", applies: true, files: [file], error: null }), true);
  assert.equal(p.answer, "--- a/lib/a.ml");
  assert.deepEqual(p.context.map((c) => c.reason), ["current"]);
  assert.equal(p.phase, "final");
  assert.ok(p.applies && p.open);
});

test("a final answer with no applicable diff says why and offers nothing to apply", () => {
  const p = new Proposal("p-2", "?", {});
  p.onProgress({ proposalId: "p-2", kind: "final", applies: false, files: [], error: "the answer has no diff" });
  assert.equal(p.applies, false);
  assert.equal(p.message, "the answer has no diff");
  const q = new Proposal("p-3", "?", {});
  q.onProgress({ proposalId: "p-3", kind: "final", applies: true, files: [], error: null });
  assert.equal(q.applies, false, "applies with no files is still nothing to apply");
});

test("a stream cut by a restart fails retryably and drops its partial tokens", () => {
  const p = new Proposal("p-4", "?", {});
  p.onProgress({ proposalId: "p-4", kind: "token", text: "Add", index: 0 });
  p.onProgress({ proposalId: "p-4", kind: "error", code: RESTARTING, message: CUT_BY_RESTART, retryable: true });
  assert.deepEqual([p.phase, p.retryable, p.answer, p.message], ["failed", true, "", CUT_BY_RESTART]);
  const m = new Proposal("p-5", "?", {});
  m.onProgress({ proposalId: "p-5", kind: "error", code: -32014, message: "the model failed", retryable: false });
  assert.deepEqual([m.phase, m.retryable, m.open], ["failed", false, false]);
});

test("an edit is applied only when some text really changes", () => {
  assert.equal(changesSomething(new Map([["lib/a.ml", "let x = 2\n"]]), [file]), false);
  assert.equal(changesSomething(new Map([["lib/a.ml", "let x = 1\n"]]), [file]), true);
  assert.equal(changesSomething(new Map([["lib/a.ml", undefined]]), [file]), true, "a new file");
  const gone = { ...file, status: "deleted", newText: "" };
  assert.equal(changesSomething(new Map([["lib/a.ml", undefined]]), [gone]), false, "deleting a missing file");
  assert.equal(changesSomething(new Map([["lib/a.ml", "x"]]), [gone]), true);
});
