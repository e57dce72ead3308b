// The proposal in VS Code: the per-file diff preview (VS Code's diff editor), apply to buffers
// (and files not open), accept / reject / edited with `feedback`. Diff checking and applying
// are the sidecar's (`apply` with target "buffers"); this only puts the texts it returns into
// VS Code and checks that they really changed something before calling it applied.

import * as vscode from "vscode";
import { AidClient } from "./client";
import { changesSomething, FileChange, Proposal } from "./proposal";

export const SCHEME = "bactrian-proposal";

/** Holds the proposed texts for the right-hand side of the diff editor. */
export class ProposedTexts implements vscode.TextDocumentContentProvider {
  private texts = new Map<string, string>();
  private changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  uri(proposalId: string, file: string): vscode.Uri {
    return vscode.Uri.from({ scheme: SCHEME, path: `/${proposalId}/${file}` });
  }
  set(uri: vscode.Uri, text: string): void {
    this.texts.set(uri.toString(), text);
    this.changed.fire(uri);
  }
  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? "";
  }
}

export class ProposalActions {
  constructor(
    private readonly client: AidClient,
    private readonly root: vscode.Uri,
    private readonly texts: ProposedTexts,
  ) {}

  /** A workspace file; a path that could leave the workspace is refused, whoever sent it. */
  fileUri(path: string): vscode.Uri {
    const parts = path.split("/");
    if (path.startsWith("/") || parts.some((p) => p === ".." || p === "" || p.includes("\\"))) {
      throw new Error(`The sidecar named a file outside the workspace (${JSON.stringify(path)}): not applied.`);
    }
    return vscode.Uri.joinPath(this.root, ...parts);
  }

  async preview(p: Proposal, path?: string): Promise<void> {
    for (const f of p.files.filter((f) => path === undefined || f.path === path)) {
      const right = this.texts.uri(p.id, f.path);
      this.texts.set(right, f.status === "deleted" ? "" : f.newText);
      const exists = await this.exists(this.fileUri(f.path));
      const left = exists ? this.fileUri(f.path) : this.texts.uri(p.id + "-empty", f.path);
      await vscode.commands.executeCommand("vscode.diff", left, right, `${f.path} ↔ bactrian proposal`, {
        preview: true,
        preserveFocus: true,
      });
      if (path === undefined) return; // the first file; the sidebar lists the others
    }
  }

  /** Applies through the sidecar into buffers; saves files that had no unsaved changes. */
  async apply(p: Proposal): Promise<string> {
    if (p.phase !== "final" || !p.applies) throw new Error(p.message || "Nothing to apply.");
    const buffers = [];
    for (const f of p.files) {
      const doc = this.openDoc(f.path);
      if (doc) buffers.push({ path: f.path, text: doc.getText() });
    }
    const res = await this.client.request<{ applied: boolean; files: FileChange[] }>("apply", {
      proposalId: p.id,
      target: "buffers",
      buffers,
    });
    if (!res.applied || !res.files?.length) throw new Error("The sidecar could not apply the proposal.");
    const edit = new vscode.WorkspaceEdit();
    const before = new Map<string, string | undefined>();
    const dirty = new Set<string>();
    for (const f of res.files) {
      const uri = this.fileUri(f.path);
      const exists = await this.exists(uri);
      const doc = exists ? await vscode.workspace.openTextDocument(uri) : undefined;
      before.set(f.path, doc?.getText());
      if (doc?.isDirty) dirty.add(f.path);
      if (f.status === "deleted") edit.deleteFile(uri, { ignoreIfNotExists: true });
      else if (!doc) {
        edit.createFile(uri, { ignoreIfExists: true });
        edit.insert(uri, new vscode.Position(0, 0), f.newText);
      } else edit.replace(uri, fullRange(doc), f.newText);
    }
    if (!changesSomething(before, res.files)) throw new Error("The proposal changes nothing in your files: not applied.");
    if (!(await vscode.workspace.applyEdit(edit))) throw new Error("VS Code refused the edit: not applied.");
    for (const f of res.files) {
      if (f.status === "deleted") continue;
      const doc = await vscode.workspace.openTextDocument(this.fileUri(f.path));
      if (doc.getText() !== f.newText) {
        await this.restore(before, new Set());
        throw new Error(`${f.path} did not take the proposed text: not applied.`);
      }
      if (!dirty.has(f.path) && (await doc.save())) p.saved.add(f.path);
    }
    p.phase = "applied";
    p.files = res.files;
    p.before = before;
    const rungs = res.files.flatMap((f) => (f.hunks ?? []).map((h) => h.rung)).filter((r) => r && r !== "exact");
    p.message = `Applied to ${res.files.length} file(s)${rungs.length ? ` (lenient: ${[...new Set(rungs)].join(", ")})` : ""}. Accept or reject.`;
    return p.message;
  }

  /** accepted, or edited (with the final texts) when the user changed the applied files. */
  async accept(p: Proposal): Promise<string> {
    if (p.phase === "final") await this.apply(p);
    if (p.phase !== "applied") throw new Error("Only an applied proposal can be accepted.");
    const finalText: Record<string, string> = {};
    let edited = false;
    for (const f of p.files) {
      if (f.status === "deleted") continue;
      const text = (await vscode.workspace.openTextDocument(this.fileUri(f.path))).getText();
      finalText[f.path] = text;
      if (text !== f.newText) edited = true;
    }
    const outcome = edited ? "edited" : "accepted";
    await this.client.request("feedback", { proposalId: p.id, outcome, ...(edited ? { finalText } : {}) });
    p.phase = "accepted";
    p.message = edited ? "Accepted with your edits." : "Accepted.";
    return p.message;
  }

  /** rejected; an applied proposal is undone first. */
  async reject(p: Proposal): Promise<string> {
    if (p.phase === "applied") await this.restore(p.before, p.saved);
    await this.client.request("feedback", { proposalId: p.id, outcome: "rejected" });
    p.phase = "rejected";
    p.message = "Rejected.";
    return p.message;
  }

  private async restore(before: Map<string, string | undefined>, saved: Set<string>): Promise<void> {
    const edit = new vscode.WorkspaceEdit();
    for (const [path, text] of before) {
      const uri = this.fileUri(path);
      if (text === undefined) edit.deleteFile(uri, { ignoreIfNotExists: true });
      else if (await this.exists(uri)) edit.replace(uri, fullRange(await vscode.workspace.openTextDocument(uri)), text);
      else {
        edit.createFile(uri, { ignoreIfExists: true });
        edit.insert(uri, new vscode.Position(0, 0), text);
      }
    }
    await vscode.workspace.applyEdit(edit);
    for (const path of saved) if (before.get(path) !== undefined) await (await vscode.workspace.openTextDocument(this.fileUri(path))).save();
    saved.clear();
  }

  private openDoc(path: string): vscode.TextDocument | undefined {
    const uri = this.fileUri(path).toString();
    return vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri);
  }

  private async exists(uri: vscode.Uri): Promise<boolean> {
    try {
      await vscode.workspace.fs.stat(uri);
      return true;
    } catch {
      return false;
    }
  }
}

function fullRange(doc: vscode.TextDocument): vscode.Range {
  return new vscode.Range(new vscode.Position(0, 0), doc.lineAt(Math.max(0, doc.lineCount - 1)).range.end);
}
