"""The adversarial suite: hostile diffs get the right verdict, the worker stays healthy, the host
is unchanged (no stray processes, no files outside the worker) and the next job is unaffected."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bactrian.ces.contract import Verdict

from .conftest import Pool, needs_root, sandbox_processes
from .project import FILES, append, edit, new_file, udiff

GREEN = edit("lib/geom.ml", "let double x = 2 * x", "let double x = x + x")
WITH_UNIX = edit("lib/dune", "(library (name shapes))", "(library (name shapes) (libraries unix))")
ESCAPE_TMP = Path("/tmp/bactrian-ces-escape-check")

# A server on the host's loopback: a sandboxed test that reaches it has network access. (Only
# loopback is ever a target; inside the sandbox's own network namespace it is unreachable.)
HOST_SERVER = socket.create_server(("127.0.0.1", 0))
HOST_SERVER.setblocking(False)
HOST_PORT = HOST_SERVER.getsockname()[1]


def _no_connection_reached_the_host() -> None:
    try:
        conn, _ = HOST_SERVER.accept()
    except BlockingIOError:
        return
    conn.close()
    raise AssertionError("a sandboxed test connected to a server on the host")


def lib_code(code: str, unix: bool = False) -> str:
    """A diff adding top-level code to the library: it runs when the test executable starts."""
    return (WITH_UNIX if unix else "") + append("lib/geom.ml", code)


def statuses(v: Verdict) -> dict[str, str]:
    return {s.name: s.status for s in v.stages}


def stage_fails(stage: str, *allowed: str) -> Callable[[Verdict], None]:
    ok_status = allowed or ("failed",)

    def check(v: Verdict) -> None:
        assert not v.ok
        assert statuses(v).get(stage) in ok_status, v.to_dict()

    return check


def never_passes_tests(v: Verdict) -> None:
    assert not v.ok and statuses(v).get("test") != "passed", v.to_dict()


def apply_refused(v: Verdict) -> None:
    assert not v.ok and v.furthest is None and v.reward == 0.0
    assert statuses(v) == {"apply": "failed"}


def flagged(flag: str, then: Callable[[Verdict], None]) -> Callable[[Verdict], None]:
    def check(v: Verdict) -> None:
        assert flag in v.flags, v.to_dict()
        then(v)

    return check


def timed_out(v: Verdict) -> None:
    assert statuses(v)["test"] == "timeout"
    assert "sandbox-kill" in v.flags and "timeout" in v.flags
    assert v.furthest == "build" and not v.ok


def _escape_abs(project: Path) -> str:
    target = project.parent / "escaped-by-diff.ml"
    return (
        f"diff --git a{target} b{target}\nnew file mode 100644\n--- /dev/null\n+++ {target}\n"
        "@@ -0,0 +1 @@\n+let x = 1\n"
    )


DOTDOT = (
    "diff --git a/../escaped-dotdot.ml b/../escaped-dotdot.ml\nnew file mode 100644\n"
    "--- /dev/null\n+++ b/../escaped-dotdot.ml\n@@ -0,0 +1 @@\n+let x = 1\n"
)
SYMLINK = (
    "diff --git a/lib/out b/lib/out\nnew file mode 120000\n--- /dev/null\n+++ b/lib/out\n"
    "@@ -0,0 +1 @@\n+/tmp\n\\ No newline at end of file\n"
    + new_file("lib/out/bactrian-ces-escape-check", "pwned\n")
)
BINARY = (
    "diff --git a/lib/blob.bin b/lib/blob.bin\nnew file mode 100644\n"
    "index 0000000..e69de29\nGIT binary patch\nliteral 3\nKcmZ>Y%K-oa0RR91\n\nliteral 0\n"
    "HcmV?d00001\n\n"
)
NOT_APPLYING = udiff(
    "lib/geom.ml",
    "let square x = x * x + 7\nlet double x = 2 * x\n",
    "let square x = x * x + 8\nlet double x = 2 * x\n",
)

CASES: dict[str, tuple[Callable[[Path], str], Callable[[Verdict], None]]] = {
    "infinite-loop-in-test": (lambda p: lib_code("let () = while true do () done\n"), timed_out),
    "fork-bomb": (
        lambda p: lib_code("let () = while true do ignore (Unix.fork ()) done\n", unix=True),
        stage_fails("test", "failed", "timeout"),
    ),
    "allocate-10GB": (
        lambda p: lib_code(
            "let () = ignore (Sys.opaque_identity (Bytes.create (10 * 1024 * 1024 * 1024)))\n"
        ),
        stage_fails("test"),
    ),
    "write-10GB": (
        lambda p: lib_code(
            "let () = let oc = open_out_bin \"big.bin\" in let b = Bytes.make 1048576 'x' in\n"
            "  for _ = 1 to 10240 do output_bytes oc b done; close_out oc\n"
        ),
        stage_fails("test"),
    ),
    "print-1GB": (
        lambda p: lib_code(
            "let () = let b = String.make 1048576 'x' in\n"
            "  for _ = 1 to 1024 do print_string b done\n"
        ),
        stage_fails("test", "failed", "error", "timeout"),
    ),
    "network-connection": (
        lambda p: lib_code(
            "let () = let s = Unix.socket Unix.PF_INET Unix.SOCK_STREAM 0 in\n"
            '  Unix.connect s (Unix.ADDR_INET (Unix.inet_addr_of_string "127.0.0.1", '
            f"{HOST_PORT}))\n",
            unix=True,
        ),
        stage_fails("test"),
    ),
    "runtime-write-outside-tree": (
        lambda p: lib_code(
            f'let () = let oc = open_out "{p.parent / "escaped-at-runtime"}" in close_out oc\n'
        ),
        stage_fails("test"),
    ),
    "runtime-write-etc": (
        lambda p: lib_code('let () = close_out (open_out "/etc/bactrian-escape")\n'),
        stage_fails("test"),
    ),
    "diff-absolute-path": (_escape_abs, apply_refused),
    "diff-dotdot-path": (lambda p: DOTDOT, apply_refused),
    "diff-through-symlink": (lambda p: SYMLINK, apply_refused),
    "diff-into-build-dir": (
        lambda p: new_file("_build/default/lib/geom.ml", "let square _ = 0\n"),
        apply_refused,
    ),
    "delete-tests": (
        lambda p: udiff("test/test_shapes.ml", FILES["test/test_shapes.ml"], None),
        flagged("edits-tests", never_passes_tests),
    ),
    "edit-tests-to-pass": (
        lambda p: (
            edit("lib/shapes.ml", "| Rect (w, h) -> w * h", "| Rect (w, h) -> w + h")
            + edit("test/test_shapes.ml", '"rect" 6', '"rect" 5')
        ),
        flagged("edits-tests", stage_fails("test")),
    ),
    "runner-exits-0-early": (lambda p: lib_code("let () = exit 0\n"), stage_fails("test")),
    "diff-does-not-apply": (lambda p: NOT_APPLYING, apply_refused),
    "binary-diff": (lambda p: BINARY, apply_refused),
    "empty-diff": (lambda p: "", flagged("empty-diff", apply_refused)),
}

SLOW = {"infinite-loop-in-test"}


def _host_clean(project: Path) -> None:
    assert not ESCAPE_TMP.exists()
    assert not Path("/etc/bactrian-escape").exists()
    for name in ("escaped-by-diff.ml", "escaped-dotdot.ml", "escaped-at-runtime"):
        assert not (project.parent / name).exists(), name
    assert sorted(p.name for p in project.parent.iterdir()) == ["project", "work"]


def _no_stray_processes(uids: set[int]) -> None:
    assert uids
    for _ in range(50):
        left = sandbox_processes(uids)
        if not left:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes left behind: {left}")


@needs_root
@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c for c in CASES],
)
def test_adversarial(pool: Pool, case: str) -> None:
    make, check = CASES[case]
    verdicts = pool.judge(make(pool.project), GREEN)
    check(verdicts[0])
    # the next job on the same workers is unaffected
    assert verdicts[1].ok, verdicts[1].to_dict()
    _no_stray_processes(pool.uids())
    _host_clean(pool.project)
    _no_connection_reached_the_host()
    for pool_info in pool.backend._pools.values():
        for w in pool_info.workers:
            assert w.verify(), f"worker {w.id} not reset"
    assert pool.backend.status()["counters"]["rebuilds"] == 0
