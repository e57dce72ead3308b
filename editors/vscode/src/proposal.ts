// One proposal as the user sees it, folded from its `aid/progress` stream. No vscode imports:
// the Node test runner checks it against a real sidecar's streams.

import { Progress } from "./client";

export interface FileChange {
  path: string;
  status: string; // modified | added | deleted | renamed
  newText: string;
  diff?: string;
  hunks?: { index: number; rung: string; error: string | null }[];
}

export type Phase = "streaming" | "final" | "failed" | "cancelled" | "applied" | "accepted" | "rejected";

export class Proposal {
  phase: Phase = "streaming";
  answer = "";
  context: { path: string; reason: string; tokens: number }[] = [];
  files: FileChange[] = [];
  applies = false;
  message = "";
  retryable = false;
  before = new Map<string, string | undefined>(); // path -> text before apply (undefined: absent)
  saved = new Set<string>(); // files apply saved (they had no unsaved changes)

  constructor(
    public id: string,
    readonly prompt: string,
    readonly params: unknown,
  ) {}

  get open(): boolean {
    return this.phase === "final" || this.phase === "applied";
  }

  /** Folds one `aid/progress` notification in; true when the stream ended. */
  onProgress(p: Progress): boolean {
    if (p.kind === "context") this.context = (p.files as Proposal["context"]) ?? [];
    else if (p.kind === "token") this.answer += String(p.text ?? "");
    else if (p.kind === "final") {
      this.phase = "final";
      this.files = ((p.files as FileChange[]) ?? []).filter((f) => typeof f.path === "string");
      this.applies = p.applies === true && this.files.length > 0;
      this.message = this.applies
        ? `${this.files.length} file(s) changed; preview, then apply.`
        : String(p.error ?? "The answer holds no diff that applies to your files.");
    } else if (p.kind === "error") {
      this.phase = "failed";
      this.retryable = p.retryable === true;
      if (this.retryable) this.answer = ""; // a cut stream's partial tokens are dropped
      this.message = String(p.message ?? "The request failed.");
    } else if (p.kind === "cancelled") {
      this.phase = "cancelled";
      this.message = "Cancelled.";
    }
    return this.phase !== "streaming";
  }
}

/** Whether putting `files` over the texts in `before` (undefined: no such file) changes anything. */
export function changesSomething(before: Map<string, string | undefined>, files: FileChange[]): boolean {
  return files.some((f) =>
    f.status === "deleted" ? before.get(f.path) !== undefined : before.get(f.path) !== f.newText,
  );
}
