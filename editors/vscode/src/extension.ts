// Activation: the connection to the sidecar, the status bar item, palette commands and the
// sidebar. Prompts, context and diffs are the sidecar's; this file only gathers what the editor
// knows (the prompt, the current file's unsaved text, cursor/selection, open buffers).

import * as child from "node:child_process";
import * as vscode from "vscode";
import { AidClient, defaultSocketPath, NOT_RUNNING, PROTOCOL_VERSION, RpcError } from "./client";
import { ProposalActions, ProposedTexts, SCHEME } from "./apply";
import { Proposal } from "./proposal";
import { Sidebar, UiMessage } from "./sidebar";

const VERSION = "0.1.0";
const MAX_BUFFERS = 20;
const MAX_BUFFER_CHARS = 512 * 1024;
type Scope = "selection" | "file" | "workspace";

let controller: Controller | undefined;

export function activate(context: vscode.ExtensionContext): void {
  controller = new Controller(context);
}

export function deactivate(): void {
  controller?.dispose();
}

class Controller {
  private client: AidClient | undefined;
  private actions: ProposalActions | undefined;
  private current: Proposal | undefined;
  private build = "";
  private arm = "";
  private readonly status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 50);
  private readonly sidebar: Sidebar;
  private readonly texts = new ProposedTexts();
  private timer: NodeJS.Timeout | undefined;

  constructor(context: vscode.ExtensionContext) {
    this.sidebar = new Sidebar(context.extensionUri, (m) => void this.onUi(m));
    this.status.command = "bactrian.status";
    this.status.show();
    const cmd = (name: string, fn: () => unknown) =>
      vscode.commands.registerCommand(`bactrian.${name}`, () => this.guard(async () => fn()));
    context.subscriptions.push(
      this.status,
      vscode.window.registerWebviewViewProvider(Sidebar.id, this.sidebar),
      vscode.workspace.registerTextDocumentContentProvider(SCHEME, this.texts),
      cmd("ask", () => this.askFromPalette("selection")),
      cmd("askWorkspace", () => this.askFromPalette("workspace")),
      cmd("cancel", () => this.cancel()),
      cmd("preview", () => this.current && this.actions?.preview(this.current)),
      cmd("apply", () => this.act("apply")),
      cmd("accept", () => this.act("accept")),
      cmd("reject", () => this.act("reject")),
      cmd("status", () => this.showStatus()),
      cmd("reconnect", () => this.start(true)),
    );
    void this.start(false);
  }

  dispose(): void {
    if (this.timer) clearInterval(this.timer);
    this.client?.close();
  }

  private async start(userAsked: boolean): Promise<void> {
    const folder = vscode.workspace.workspaceFolders?.[0];
    if (!folder) {
      this.setStatus("$(circle-slash) bactrian: open a folder", "bactrian needs a workspace folder.");
      return;
    }
    this.client?.close();
    const config = vscode.workspace.getConfiguration("bactrian");
    const socket = config.get<string>("socket") || defaultSocketPath();
    const client = new AidClient(socket, {
      protocolVersion: PROTOCOL_VERSION,
      client: { name: "bactrian-vscode", version: VERSION },
      workspaceRoot: folder.uri.fsPath,
    });
    this.client = client;
    this.actions = new ProposalActions(client, folder.uri, this.texts);
    client.on("state", () => this.refresh());
    client.on("reconnected", (info, changed: boolean) => {
      void vscode.window.showInformationMessage(
        changed
          ? `bactrian: the sidecar restarted (version ${info.serverVersion}); reconnected.`
          : "bactrian: reconnected to the sidecar.",
      );
      void this.pollStatus();
    });
    client.on("gaveUp", (message: string) => void vscode.window.showErrorMessage(`bactrian: ${message}`));
    try {
      await client.connect();
    } catch (err) {
      if (err instanceof RpcError) throw err;
      if (!(await this.maybeStartServer(socket, userAsked))) {
        this.setStatus("$(debug-disconnect) bactrian: not running", NOT_RUNNING);
        return;
      }
      if (!(await client.connectWithRetry())) return;
    }
    void this.pollStatus();
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => void this.pollStatus(), 30000);
  }

  private async maybeStartServer(socket: string, userAsked: boolean): Promise<boolean> {
    const config = vscode.workspace.getConfiguration("bactrian");
    const mode = config.get<string>("startServer", "ask");
    if (mode === "never" && !userAsked) return false;
    if (mode === "ask") {
      const pick = await vscode.window.showInformationMessage(`${NOT_RUNNING}. Start it now?`, "Start");
      if (pick !== "Start") return false;
    }
    const [cmd, ...args] = config.get<string[]>("serverCommand", ["bactrian", "aid", "serve"]);
    const proc = child.spawn(cmd, [...args, "--socket", socket], { detached: true, stdio: "ignore" });
    proc.on("error", (e) => void vscode.window.showErrorMessage(`bactrian: could not run ${cmd}: ${e.message}`));
    proc.unref();
    return true;
  }

  private async pollStatus(): Promise<void> {
    if (this.client?.state !== "connected") return;
    try {
      const s = await this.client.request<Record<string, any>>("status");
      this.build = s.build?.status ?? "unknown";
      this.arm = typeof s.arm === "string" ? s.arm : (s.arm?.arm ?? "");
    } catch {
      this.build = "unknown";
    }
    this.refresh();
  }

  private async showStatus(): Promise<void> {
    if (!this.client || this.client.state !== "connected") {
      const pick = await vscode.window.showWarningMessage(`bactrian: ${NOT_RUNNING}`, "Reconnect");
      if (pick) await this.start(true);
      return;
    }
    const s = await this.client.request<Record<string, any>>("status");
    const arm = this.client.info?.arm;
    const diags = s.build?.diagnostics?.length ?? 0;
    void vscode.window.showInformationMessage(
      `bactrian ${s.serverVersion}: build ${s.build?.status ?? "unknown"} (${diags} diagnostic(s)); ` +
        `model ${s.model}, strategy ${s.strategy}; arm ${arm?.arm ?? s.arm}` +
        (arm?.experiment ? ` of experiment ${arm.experiment}` : ""),
    );
  }

  private async askFromPalette(scope: Scope): Promise<void> {
    const prompt = await vscode.window.showInputBox({ prompt: "Ask bactrian", placeHolder: "fix that error" });
    if (prompt?.trim()) await this.ask(prompt.trim(), scope);
  }

  private async ask(prompt: string, scope: Scope): Promise<void> {
    const client = this.requireClient();
    if (this.current?.phase === "streaming") throw new Error("A request is running: cancel it first.");
    // the user moved on: an applied proposal they kept is accepted (or edited), another rejected
    if (this.current?.phase === "applied") await this.actions!.accept(this.current);
    else if (this.current?.phase === "final") await this.actions!.reject(this.current);
    const params = this.proposeParams(prompt, scope);
    const p = new Proposal("", prompt, params);
    this.current = p;
    this.refresh();
    try {
      p.id = await client.propose(params, (progress) => {
        if (this.current !== p) return; // an old stream the user already left
        p.id = progress.proposalId;
        const ended = p.onProgress(progress);
        this.refresh();
        if (ended && p.applies) void this.actions!.preview(p);
        if (ended) void this.pollStatus();
      });
    } catch (err) {
      p.phase = "failed";
      p.retryable = err instanceof RpcError && err.retryable;
      p.message = errorText(err);
      this.refresh();
    }
  }

  private proposeParams(prompt: string, scope: Scope): Record<string, unknown> {
    const editor = vscode.window.activeTextEditor;
    const inWorkspace = (d: vscode.TextDocument) =>
      d.uri.scheme === "file" && vscode.workspace.getWorkspaceFolder(d.uri) !== undefined;
    const rel = (d: vscode.TextDocument) => vscode.workspace.asRelativePath(d.uri, false);
    const params: Record<string, unknown> = { prompt };
    const doc = editor && inWorkspace(editor.document) ? editor.document : undefined;
    if (doc && scope !== "workspace") {
      params.file = { path: rel(doc), text: doc.getText() };
      const sel = editor!.selection;
      const pos = (p: vscode.Position) => ({ line: p.line, character: p.character });
      params.cursor = pos(sel.active);
      if (!sel.isEmpty && scope === "selection") params.selection = { start: pos(sel.start), end: pos(sel.end) };
    }
    params.buffers = vscode.workspace.textDocuments
      .filter((d) => inWorkspace(d) && d !== doc && d.getText().length <= MAX_BUFFER_CHARS)
      .slice(0, MAX_BUFFERS)
      .map((d) => ({ path: rel(d), text: d.getText() }));
    return params;
  }

  private async cancel(): Promise<void> {
    if (this.current?.phase !== "streaming" || !this.current.id) return;
    await this.requireClient().request("cancel", { proposalId: this.current.id });
  }

  private async act(what: "apply" | "accept" | "reject"): Promise<void> {
    const p = this.current;
    if (!p || !this.actions) throw new Error("No proposal: ask first.");
    try {
      const message = await this.actions[what](p);
      void vscode.window.setStatusBarMessage(`bactrian: ${message}`, 5000);
    } catch (err) {
      p.message = errorText(err);
      throw err;
    } finally {
      this.refresh();
    }
  }

  private async onUi(m: UiMessage): Promise<void> {
    await this.guard(async () => {
      if (m.type === "ask") await this.ask(m.prompt, m.scope);
      else if (m.type === "retry" && this.current) {
        const scope = (this.current.params as { file?: unknown }).file ? "selection" : "workspace";
        await this.ask(this.current.prompt, scope);
      } else if (m.type === "cancel") await this.cancel();
      else if (m.type === "diff" && this.current) await this.actions?.preview(this.current, m.path);
      else if (m.type === "status") await this.showStatus();
      else if (m.type === "apply" || m.type === "accept" || m.type === "reject") await this.act(m.type);
    });
  }

  private requireClient(): AidClient {
    if (!this.client || this.client.state === "failed" || this.client.state === "disconnected") {
      throw new Error(NOT_RUNNING);
    }
    return this.client;
  }

  private async guard(fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      void vscode.window.showErrorMessage(`bactrian: ${errorText(err)}`);
      this.refresh();
    }
  }

  private setStatus(text: string, tooltip: string): void {
    this.status.text = text;
    this.status.tooltip = tooltip;
    this.refresh(text);
  }

  private refresh(connection?: string): void {
    const state = this.client?.state ?? "disconnected";
    if (!connection) {
      const build = this.build ? ` · build ${this.build}` : "";
      const arm = this.arm ? ` · arm ${this.arm}` : "";
      connection =
        state === "connected"
          ? `$(pass) bactrian${build}${arm}`
          : state === "reconnecting" || state === "connecting"
            ? "$(sync~spin) bactrian: connecting…"
            : "$(debug-disconnect) bactrian: not running";
      this.status.text = connection;
      this.status.tooltip = `bactrian sidecar: ${state} (${this.client?.socketPath ?? "no socket"}). Click for status.`;
    }
    const p = this.current;
    this.sidebar.render({
      connection: connection.replace(/\$\([^)]*\)\s*/g, ""),
      busy: p?.phase === "streaming",
      prompt: p?.prompt ?? "",
      answer: p?.answer ?? "",
      context: p?.context ?? [],
      files: p?.files.map((f) => ({ path: f.path, status: f.status })) ?? [],
      phase: p?.phase ?? "",
      message: p?.message ?? "",
      retryable: p?.phase === "failed" && p.retryable,
    });
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
