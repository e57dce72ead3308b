// The sidebar webview: a prompt box, the streamed answer, the context the sidecar chose, the
// per-file diff list and the buttons. It only renders a view model and posts the user's clicks.

import * as crypto from "node:crypto";
import * as vscode from "vscode";

export interface ViewModel {
  connection: string;
  busy: boolean;
  prompt: string;
  answer: string;
  context: { path: string; reason: string; tokens: number }[];
  files: { path: string; status: string }[];
  phase: string;
  message: string;
  retryable: boolean;
}

export type UiMessage =
  | { type: "ask"; prompt: string; scope: "selection" | "file" | "workspace" }
  | { type: "cancel" | "apply" | "accept" | "reject" | "retry" | "status" | "ready" }
  | { type: "diff"; path: string };

export class Sidebar implements vscode.WebviewViewProvider {
  static readonly id = "bactrian.sidebar";
  private view: vscode.WebviewView | undefined;
  private last: ViewModel | undefined;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly onMessage: (m: UiMessage) => void,
  ) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    const media = vscode.Uri.joinPath(this.extensionUri, "media");
    view.webview.options = { enableScripts: true, localResourceRoots: [media] };
    const nonce = crypto.randomBytes(16).toString("hex");
    const script = view.webview.asWebviewUri(vscode.Uri.joinPath(media, "sidebar.js"));
    const style = view.webview.asWebviewUri(vscode.Uri.joinPath(media, "sidebar.css"));
    const csp = `default-src 'none'; style-src ${view.webview.cspSource}; script-src 'nonce-${nonce}';`;
    view.webview.html = `<!DOCTYPE html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<link rel="stylesheet" href="${style}"></head><body>
<div id="connection" class="muted"></div>
<textarea id="prompt" rows="3" placeholder="Ask bactrian (Ctrl+Enter)"></textarea>
<div class="row"><select id="scope" title="What to ask about">
<option value="selection">selection / cursor</option><option value="file">this file</option>
<option value="workspace">workspace</option></select>
<button id="ask">Ask</button><button id="cancel" class="secondary">Cancel</button></div>
<div id="message"></div>
<details id="context-box" open><summary>Context</summary><ul id="context"></ul></details>
<pre id="answer"></pre>
<ul id="files"></ul>
<div class="row"><button id="apply">Apply</button><button id="accept">Accept</button>
<button id="reject" class="secondary">Reject</button><button id="retry" class="secondary">Retry</button></div>
<script nonce="${nonce}" src="${script}"></script></body></html>`;
    view.webview.onDidReceiveMessage((m: UiMessage) => {
      if (m.type === "ready" && this.last) void view.webview.postMessage(this.last);
      else this.onMessage(m);
    });
  }

  render(model: ViewModel): void {
    this.last = model;
    void this.view?.webview.postMessage(model);
  }
}
