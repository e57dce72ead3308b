"""Run one stage command with limits, optionally inside bubblewrap.

The ``bwrap`` sandbox, as run here (bubblewrap 0.8, often as root):

- ``setpriv`` drops to an unprivileged uid/gid first (one per worker), then ``prlimit`` sets
  RLIMIT_CPU, RLIMIT_AS, RLIMIT_NPROC and RLIMIT_FSIZE, then ``bwrap`` enters new user, pid,
  network, ipc, uts and cgroup namespaces (``--unshare-all``: no network at all).
  RLIMIT_NPROC is counted per *real* uid and never enforced for root, which is why the drop to a
  non-root uid comes first: a fork bomb then hits "Cannot fork" instead of the host.
- The file system is read-only ``/usr`` (+ ``/lib*``, ``/bin`` links), ``/etc``, a fresh
  ``/proc`` and ``/dev``, a private size-capped tmpfs ``/tmp``, and the worker tree bound
  read-write at its own path. Nothing else of the host is visible, so nothing else is writable.
- ``--die-with-parent`` and the pid namespace mean that killing the outer process (on timeout)
  takes every process of the stage with it; the outer process runs in its own process group,
  which is killed as a whole as well.
- Output is read in chunks and capped; past a hard cap the stage is killed.

The ``none`` sandbox applies the rlimits and the timeout but no isolation, and logs a loud
warning: only for trusted diffs or hosts without bubblewrap.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bactrian import proc
from bactrian.ces.config import CESConfig, Limits
from bactrian.errors import SandboxError
from bactrian.registry import Registry

log = logging.getLogger(__name__)

SANDBOX_TREE = "/ces/tree"  # where the worker tree appears inside the sandbox
HARD_OUTPUT_FACTOR = 256  # kill a stage that prints more than this × the kept output
KILL_GRACE_S = 1.0  # SIGTERM, then SIGKILL after this long (bactrian.proc.kill_group)


@dataclass
class RunResult:
    """What one sandboxed command did."""

    exit_code: int | None  # None when killed by us
    output: str  # stdout+stderr, capped (head and tail kept)
    duration_s: float
    timed_out: bool = False
    truncated: bool = False
    killed: bool = False  # killed by the sandbox (timeout, output flood, or a fatal signal)
    signal: int | None = None
    flags: list[str] = field(default_factory=list)


class Sandbox(Protocol):
    """Runs ``command`` (a shell command line) with ``cwd`` inside ``tree``."""

    name: str

    def run(
        self,
        command: str,
        *,
        tree: Path,
        cwd: Path | None = None,
        limits: Limits,
        env: Mapping[str, str] | None = None,
        uid: int | None = None,
    ) -> RunResult: ...

    def check(self, tree: Path, uid: int | None = None) -> None:
        """Raise :class:`SandboxError` when the sandbox cannot run commands in ``tree``."""
        ...


SandboxFactory = Callable[[CESConfig], Sandbox]
SANDBOXES: Registry[SandboxFactory] = Registry("sandbox")


def sandbox_uid(key: str) -> int:
    """A stable unprivileged uid for a worker (so RLIMIT_NPROC counts per worker)."""
    return 61000 + zlib.crc32(key.encode()) % 4000


BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TERM": "dumb",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "OCAMLRUNPARAM": "",
    "DUNE_CACHE": "disabled",
    "INSIDE_DUNE": "",
}


def _prlimit_args(limits: Limits) -> list[str]:
    mb = 1024 * 1024
    return [
        "prlimit",
        f"--cpu={limits.cpu_s}",
        f"--as={limits.memory_mb * mb}",
        f"--nproc={limits.max_procs}",
        f"--fsize={limits.max_file_mb * mb}",
        "--core=0",
        "--",
    ]


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in BASE_ENV.items() if v != ""}
    if extra:
        env.update(extra)
    return env


def _free_bytes(path: Path) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def _execute(
    argv: Sequence[str], *, cwd: Path, env: dict[str, str], limits: Limits, disk: Path | None = None
) -> RunResult:
    """Run argv in its own process group; cap output; kill the whole group on timeout, on an
    output flood, or when the tree's file system loses more than ``max_disk_mb`` (a watchdog
    on free space: RLIMIT_FSIZE bounds one file, this bounds many)."""
    disk_budget = limits.max_disk_mb * 1024 * 1024
    disk = disk or cwd
    free_at_start = _free_bytes(disk)

    def disk_watchdog() -> str | None:
        if free_at_start and free_at_start - _free_bytes(disk) > disk_budget:
            return "disk-limit"
        return None

    keep = max(1024, limits.output_bytes)
    hard = keep * HARD_OUTPUT_FACTOR
    res = proc.run(
        argv,
        cwd=cwd,
        env=env,
        timeout_s=limits.wall_s,
        keep_bytes=keep,
        hard_output_bytes=hard,
        watchdog=disk_watchdog,
        grace_s=KILL_GRACE_S,
        linger_s=0.5,
    )
    text = res.text(dropped="\n[... {n} bytes of output dropped ...]\n")
    flags: list[str] = []
    if res.truncated:
        flags.append("output-truncated")
    code = res.returncode
    sig = -code if code is not None and code < 0 else None
    if res.timed_out:
        flags.append("timeout")
        text += f"\n[bactrian: killed after the {limits.wall_s:g} s wall-clock limit]\n"
    if res.killed == "output":
        text += f"\n[bactrian: killed after printing more than {hard} bytes]\n"
    if res.killed == "disk-limit":
        flags.append("disk-limit")
        text += f"\n[bactrian: killed after writing more than {limits.max_disk_mb} MB]\n"
    if res.killed:
        flags.append("sandbox-kill")
    return RunResult(
        exit_code=None if res.killed else code,
        output=text,
        duration_s=res.duration_s,
        timed_out=res.timed_out,
        truncated=res.truncated,
        killed=res.killed is not None,
        signal=sig,
        flags=flags,
    )


class NoSandbox:
    """Rlimits and a timeout, no isolation. Logs a loud warning on first use."""

    name = "none"
    _warned = False

    def run(
        self,
        command: str,
        *,
        tree: Path,
        cwd: Path | None = None,
        limits: Limits,
        env: Mapping[str, str] | None = None,
        uid: int | None = None,
    ) -> RunResult:
        if not NoSandbox._warned:
            log.warning(
                "CES sandbox 'none': diffs and builds run WITHOUT isolation (network, whole "
                "file system, no process limit as root). Use sandbox = 'bwrap' for untrusted code."
            )
            NoSandbox._warned = True
        # without a uid drop RLIMIT_NPROC would only bite a non-root caller anyway
        argv = [a for a in _prlimit_args(limits) if not a.startswith("--nproc")]
        argv += ["sh", "-c", command]
        full_env = dict(os.environ)
        full_env.update(_env(env))
        full_env["PATH"] = os.environ.get("PATH", BASE_ENV["PATH"])
        full_env["HOME"] = os.environ.get("HOME", "/tmp")
        full_env["TMPDIR"] = os.environ.get("TMPDIR", "/tmp")
        log.debug("sandbox none: %s", shlex.join(argv))
        return _execute(argv, cwd=cwd or tree, env=full_env, limits=limits)

    def check(self, tree: Path, uid: int | None = None) -> None:
        """Nothing to set up: commands run on the host."""


class BwrapSandbox:
    """bubblewrap: no network, only the worker tree writable, rlimits, pid namespace."""

    name = "bwrap"
    tmp_size_mb = 256

    def __init__(self) -> None:
        missing = [t for t in ("bwrap", "prlimit", "setpriv") if shutil.which(t) is None]
        if missing:
            raise SandboxError(
                f"The bwrap sandbox needs {', '.join(missing)} on PATH. Install bubblewrap and "
                "util-linux (apt-get install bubblewrap util-linux), or set [ces] sandbox = "
                "'none' for trusted diffs only."
            )

    def argv(
        self, command: str, *, tree: Path, cwd: Path, limits: Limits, uid: int | None
    ) -> list[str]:
        """The full command line. As root: bwrap (privileged: no user namespace, so it may bind
        any path) keeps only CAP_SETUID/SETGID for ``setpriv``, which drops to ``uid`` with no
        capabilities and no-new-privs before ``prlimit`` and the command. As a normal user:
        bwrap in a user namespace, limits applied from outside."""
        rel = cwd.relative_to(tree)
        inside = Path(SANDBOX_TREE) / rel
        root = os.geteuid() == 0
        argv: list[str] = [] if root else _prlimit_args(limits)
        argv += ["bwrap", "--die-with-parent", "--new-session"]
        if root:
            argv += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
            argv += ["--unshare-cgroup-try", "--cap-add", "CAP_SETUID,CAP_SETGID"]
        else:
            argv += ["--unshare-all"]
        argv += ["--ro-bind", "/usr", "/usr"]
        for name in ("bin", "lib", "lib64", "lib32", "sbin"):
            p = Path("/") / name
            if p.is_symlink():
                argv += ["--symlink", os.readlink(p), str(p)]
            elif p.is_dir():
                argv += ["--ro-bind", str(p), str(p)]
        argv += ["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev"]
        argv += [
            "--perms",
            "1777",
            "--size",
            str(self.tmp_size_mb * 1024 * 1024),
            "--tmpfs",
            "/tmp",
        ]
        argv += ["--perms", "0755", "--dir", str(Path(SANDBOX_TREE).parent)]
        argv += ["--bind", str(tree), SANDBOX_TREE, "--chdir", str(inside), "--"]
        if root:
            uid = uid if uid is not None else sandbox_uid(str(tree))
            argv += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
            argv += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
            argv += _prlimit_args(limits)
        argv += ["sh", "-c", command]
        return argv

    _checked: set[str] = set()

    def check(self, tree: Path, uid: int | None = None) -> None:
        """Run ``true`` in the sandbox once per tree; a sandbox that cannot start at all
        (no namespaces in this container, a missing tool) is a :class:`SandboxError`, not a
        red base."""
        key = str(tree)
        if key in BwrapSandbox._checked:
            return
        r = self.run("true", tree=tree, limits=Limits(wall_s=30), uid=uid)
        if r.exit_code != 0:
            raise SandboxError(
                f"bubblewrap cannot run commands here (exit {r.exit_code}): "
                f"{r.output.strip()[:1000]}. It needs user or privileged namespaces; on a host "
                "without them set [ces] sandbox = 'none' (no isolation: trusted diffs only)."
            )
        BwrapSandbox._checked.add(key)

    def run(
        self,
        command: str,
        *,
        tree: Path,
        cwd: Path | None = None,
        limits: Limits,
        env: Mapping[str, str] | None = None,
        uid: int | None = None,
    ) -> RunResult:
        tree = tree.resolve()
        argv = self.argv(command, tree=tree, cwd=(cwd or tree).resolve(), limits=limits, uid=uid)
        log.debug("sandbox: %s", shlex.join(argv))
        # bwrap changes into the tree itself; "/" keeps a broken tree a sandbox failure
        return _execute(argv, cwd=Path("/"), env=_env(env), limits=limits, disk=tree)


def prepare_tree(path: Path, uid: int | None) -> None:
    """Give ``path`` (a file or a whole tree) to the sandbox uid when running as root."""
    if uid is None or os.geteuid() != 0:
        return
    os.lchown(path, uid, uid)
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirnames, filenames in os.walk(path):
            for n in dirnames + filenames:
                os.lchown(os.path.join(dirpath, n), uid, uid)


SANDBOXES.add("none", lambda config: NoSandbox())
SANDBOXES.add("bwrap", lambda config: BwrapSandbox())


def get_sandbox(name: str, config: CESConfig | None = None) -> Sandbox:
    """The sandbox ``name`` from :data:`SANDBOXES` (unknown names: ``UnknownNameError``)."""
    factory = SANDBOXES.get(name)
    return factory(config or CESConfig.load())
