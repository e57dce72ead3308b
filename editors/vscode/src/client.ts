// The AID JSON-RPC client: one Unix-socket connection, requests matched by id, proposal streams
// from `aid/progress`, and the protocol's reconnect rules (docs/aid-protocol.md, "Reconnect
// rules"): backoff 50 ms doubling to 1 s with ±20 % jitter, give up after 30 s; `initialize`
// again with the same params, then every unanswered request re-sent; a proposal whose stream
// was cut fails with a retryable error. No vscode imports: the Node test runner drives it.

import { EventEmitter } from "node:events";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { Decoder, encode, FrameError } from "./framing";

export const PROTOCOL_VERSION = "1.0";
export const RESTARTING = -32001;
export const NOT_RUNNING =
  "bactrian aid is not running: start it with `bactrian aid serve`";
export const CUT_BY_RESTART =
  "The bactrian sidecar restarted while answering; nothing was changed. Ask again to retry.";

export type ConnState = "disconnected" | "connecting" | "connected" | "reconnecting" | "failed";

export interface Backoff {
  firstMs: number;
  maxMs: number;
  giveUpMs: number;
}
export const DEFAULT_BACKOFF: Backoff = { firstMs: 50, maxMs: 1000, giveUpMs: 30000 };

export interface InitializeParams {
  protocolVersion: string;
  client: { name: string; version: string };
  workspaceRoot: string;
  user?: string;
}

export interface ServerInfo {
  protocolVersion: string;
  serverVersion: string;
  serverId: string;
  arm?: { experiment: string | null; arm: string; model: string; strategy: string };
  [key: string]: unknown;
}

export interface Progress {
  proposalId: string;
  kind: string;
  [key: string]: unknown;
}

export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data: Record<string, unknown> = {},
  ) {
    super(message);
  }
  get retryable(): boolean {
    return this.code === RESTARTING || this.data.retryable === true;
  }
}

interface Pending {
  method: string;
  params: unknown;
  resolve: (value: any) => void;
  reject: (err: RpcError) => void;
}

export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, "bactrian", "aid.sock");
  return path.join("/tmp", `bactrian-${os.userInfo().uid}`, "aid.sock");
}

export class AidClient extends EventEmitter {
  state: ConnState = "disconnected";
  info: ServerInfo | undefined;
  private socket: net.Socket | undefined;
  private ready = false; // `initialize` answered on the current connection
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private streams = new Map<string, (p: Progress) => void>();
  private early = new Map<string, Progress[]>(); // progress that beat the propose response
  private loop: Promise<void> | undefined;
  private retryAfterMs: number | undefined;
  private closed = false;

  constructor(
    readonly socketPath: string,
    private readonly initParams: InitializeParams,
    private readonly backoff: Backoff = DEFAULT_BACKOFF,
  ) {
    super();
  }

  /** One connection attempt and `initialize`; rejects with the socket error (ENOENT, ECONNREFUSED). */
  async connect(): Promise<ServerInfo> {
    this.closed = false;
    this.setState("connecting");
    try {
      return await this.open();
    } catch (err) {
      this.setState("disconnected");
      throw err;
    }
  }

  /** Connects, retrying with backoff (the server may still be starting). */
  async connectWithRetry(): Promise<ServerInfo | undefined> {
    this.closed = false;
    if (this.state === "connected" && this.info) return this.info;
    await this.reconnectLoop(false);
    return this.state === "connected" ? this.info : undefined;
  }

  close(): void {
    this.closed = true;
    this.socket?.destroy();
    this.failAll(new RpcError(-32000, "The bactrian client was closed."));
    this.setState("disconnected");
  }

  request<T = any>(method: string, params: unknown = {}): Promise<T> {
    if (this.closed || this.state === "failed" || this.state === "disconnected") {
      return Promise.reject(new RpcError(-32000, NOT_RUNNING, { retryable: true }));
    }
    return new Promise<T>((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { method, params, resolve, reject });
      if (this.ready) this.write({ jsonrpc: "2.0", id, method, params });
      // otherwise it is sent after the next `initialize` (re-send state)
    });
  }

  /** `propose`, then every `aid/progress` of the new proposal to `onProgress` until it ends. */
  async propose(params: unknown, onProgress: (p: Progress) => void): Promise<string> {
    const { proposalId } = await this.request<{ proposalId: string }>("propose", params);
    this.streams.set(proposalId, onProgress);
    for (const p of this.early.get(proposalId) ?? []) this.dispatchProgress(p);
    this.early.delete(proposalId);
    return proposalId;
  }

  private open(): Promise<ServerInfo> {
    return new Promise<ServerInfo>((resolve, reject) => {
      const socket = net.createConnection(this.socketPath);
      const decoder = new Decoder();
      let opened = false;
      socket.once("connect", () => {
        opened = true;
        this.socket = socket;
        this.ready = false;
        const id = this.nextId++;
        this.pending.set(id, {
          method: "initialize",
          params: this.initParams,
          resolve: (info: ServerInfo) => {
            const previous = this.info;
            this.info = info;
            this.ready = true;
            this.setState("connected");
            this.resendPending(id);
            resolve(info);
            if (previous) this.emit("reconnected", info, previous.serverId !== info.serverId);
          },
          reject: (err) => {
            socket.destroy();
            reject(err);
          },
        });
        this.write({ jsonrpc: "2.0", id, method: "initialize", params: this.initParams });
      });
      socket.on("data", (chunk: Buffer) => {
        let messages: unknown[];
        try {
          messages = decoder.push(chunk);
        } catch (err) {
          if (err instanceof FrameError) socket.destroy();
          return;
        }
        for (const m of messages) this.dispatch(m as Record<string, any>);
      });
      socket.on("error", (err) => {
        if (!opened) reject(err);
      });
      socket.on("close", () => {
        if (!opened || this.socket !== socket) return;
        if (this.ready) {
          this.lost();
          return;
        }
        this.socket = undefined; // closed before `initialize` was answered: a failed attempt
        for (const [id, p] of this.pending) if (p.method === "initialize") this.pending.delete(id);
        reject(new Error("connection closed during initialize"));
      });
    });
  }

  private write(message: unknown): void {
    this.socket?.write(encode(message));
  }

  private dispatch(m: Record<string, any>): void {
    if (typeof m.method === "string" && m.id === undefined) {
      if (m.method === "aid/progress" && m.params) this.dispatchProgress(m.params as Progress);
      else if (m.method === "aid/restarting") {
        this.retryAfterMs = Number(m.params?.retryAfterMs) || undefined;
        this.emit("restarting", m.params);
      }
      return;
    }
    const pending = typeof m.id === "number" ? this.pending.get(m.id) : undefined;
    if (!pending) return;
    if (m.error) {
      const err = new RpcError(m.error.code, m.error.message, m.error.data ?? {});
      if (err.code === RESTARTING && pending.method !== "initialize") {
        // rule 1: reconnect; the request stays pending and is re-sent (rule 3)
        this.retryAfterMs = Number(err.data.retryAfterMs) || undefined;
        this.socket?.destroy();
        return;
      }
      this.pending.delete(m.id);
      pending.reject(err);
    } else {
      this.pending.delete(m.id);
      pending.resolve(m.result);
    }
  }

  private dispatchProgress(p: Progress): void {
    const handler = this.streams.get(p.proposalId);
    if (!handler) {
      const queue = this.early.get(p.proposalId) ?? [];
      queue.push(p);
      this.early.set(p.proposalId, queue);
      return;
    }
    if (p.kind === "final" || p.kind === "error" || p.kind === "cancelled") {
      this.streams.delete(p.proposalId);
    }
    handler(p);
  }

  private resendPending(initId: number): void {
    for (const [id, p] of this.pending) {
      if (id !== initId && p.method !== "initialize") {
        this.write({ jsonrpc: "2.0", id, method: p.method, params: p.params });
      }
    }
  }

  /** The connection went: cut the streams, keep the requests, reconnect once. */
  private lost(): void {
    this.socket = undefined;
    this.ready = false;
    this.early.clear();
    for (const [id, handler] of this.streams) {
      handler({ proposalId: id, kind: "error", code: RESTARTING, message: CUT_BY_RESTART, retryable: true });
    }
    this.streams.clear();
    for (const [id, p] of this.pending) {
      if (p.method === "initialize") this.pending.delete(id);
    }
    if (this.closed) return;
    this.emit("lost");
    void this.reconnectLoop(true);
  }

  private reconnectLoop(isReconnect: boolean): Promise<void> {
    if (this.loop) return this.loop; // at most one reconnect loop (rule 5)
    this.loop = (async () => {
      this.setState(isReconnect ? "reconnecting" : "connecting");
      const started = Date.now();
      let delay = this.retryAfterMs ?? this.backoff.firstMs;
      this.retryAfterMs = undefined;
      let first = true;
      for (;;) {
        if (this.closed) return;
        if (!first || isReconnect) await sleep(jitter(delay));
        first = false;
        try {
          await this.open();
          return;
        } catch (err) {
          if (err instanceof RpcError && !err.retryable) {
            this.giveUp(err.message, err);
            return;
          }
        }
        if (Date.now() - started >= this.backoff.giveUpMs) {
          this.giveUp(NOT_RUNNING);
          return;
        }
        delay = Math.min(delay * 2, this.backoff.maxMs);
      }
    })().finally(() => {
      this.loop = undefined;
    });
    return this.loop;
  }

  private giveUp(message: string, err?: RpcError): void {
    this.setState("failed");
    this.failAll(err ?? new RpcError(-32000, message, { retryable: true }));
    this.emit("gaveUp", message);
  }

  private failAll(err: RpcError): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(err);
  }

  private setState(state: ConnState): void {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", state);
  }
}

function jitter(ms: number): number {
  return ms * (0.8 + Math.random() * 0.4);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
