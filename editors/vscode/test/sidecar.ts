// A real `bactrian aid serve` for the Node tests, restartable on the same socket. The Python
// side (tests/editors/test_vscode.py) prepares the workspace and the scripted config and passes
// them in the environment; run the tests through it (`pytest tests/editors/test_vscode.py`).

import { ChildProcess, execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";

export interface SidecarEnv {
  python: string;
  config: string;
  workspace: string;
  socketDir: string;
  transcript: string;
}

export function sidecarEnv(): SidecarEnv {
  const get = (name: string): string => {
    const value = process.env[name];
    if (!value) {
      throw new Error(
        `${name} is not set: run these tests through pytest tests/editors/test_vscode.py, which starts a real sidecar`,
      );
    }
    return value;
  };
  return {
    python: get("BACTRIAN_AID_PYTHON"),
    config: get("BACTRIAN_AID_CONFIG"),
    workspace: get("BACTRIAN_AID_WORKSPACE"),
    socketDir: get("BACTRIAN_AID_SOCKET_DIR"),
    transcript: get("BACTRIAN_TRANSCRIPT"),
  };
}

export class Sidecar {
  readonly socket: string;
  private proc: ChildProcess | undefined;
  private starts = 0;

  constructor(
    readonly env: SidecarEnv,
    name: string,
  ) {
    this.socket = path.join(env.socketDir, `${name}.sock`);
  }

  async start(timeoutMs = 20000): Promise<void> {
    const log = fs.openSync(path.join(this.env.socketDir, `${path.basename(this.socket)}-${this.starts++}.log`), "w");
    const proc = spawn(
      this.env.python,
      ["-m", "bactrian.cli", "aid", "serve", "--socket", this.socket, "--config", this.env.config, "--no-warm"],
      { cwd: this.env.socketDir, stdio: ["ignore", log, log], detached: true, env: { ...process.env, BACTRIAN_CONFIG: this.env.config } },
    );
    fs.closeSync(log);
    this.proc = proc;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`the sidecar exited early with ${proc.exitCode}:\n${this.log()}`);
      if (await answers(this.socket)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`the sidecar did not listen within ${timeoutMs} ms:\n${this.log()}`);
  }

  /** SIGKILL to the whole process group: a crash, as far as clients can tell. */
  kill(): Promise<void> {
    return this.signal("SIGKILL");
  }

  /** SIGTERM: the sidecar tells its clients it is restarting, fails what is in flight, exits. */
  async stop(): Promise<void> {
    const pid = this.servingPid();
    if (pid !== undefined && pid !== this.proc?.pid) {
      try {
        process.kill(pid, "SIGTERM");
        while (await answers(this.socket)) await new Promise((r) => setTimeout(r, 50));
      } catch {
        // already gone
      }
    }
    return this.signal("SIGTERM");
  }

  /** `bactrian aid restart`: a new server takes the socket over (deploy by restart). */
  redeploy(): void {
    execFileSync(
      this.env.python,
      ["-m", "bactrian.cli", "aid", "restart", "--socket", this.socket, "--config", this.env.config],
      { cwd: this.env.socketDir, env: { ...process.env, BACTRIAN_CONFIG: this.env.config }, stdio: "pipe", timeout: 60000 },
    );
  }

  /** The pid the serving process wrote (after `redeploy` it is not our child). */
  servingPid(): number | undefined {
    const file = path.join(path.dirname(this.socket), `.${path.basename(this.socket)}.d`, "server.json");
    try {
      return Number(JSON.parse(fs.readFileSync(file, "utf8")).pid) || undefined;
    } catch {
      return undefined;
    }
  }

  log(): string {
    return fs
      .readdirSync(this.env.socketDir)
      .filter((f) => f.startsWith(path.basename(this.socket)) && f.endsWith(".log"))
      .map((f) => `--- ${f}\n${fs.readFileSync(path.join(this.env.socketDir, f), "utf8")}`)
      .join("\n");
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once("exit", r));
    process.kill(-proc.pid!, sig);
    const timer = setTimeout(() => process.kill(-proc.pid!, "SIGKILL"), 10000);
    await exited;
    clearTimeout(timer);
  }
}

function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(socket);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export function transcript(env: SidecarEnv): any {
  return JSON.parse(fs.readFileSync(env.transcript, "utf8"));
}
