"""The apply stage has a time limit, and a line-ending mismatch is named as such."""

from __future__ import annotations

from pathlib import Path

from bactrian.ces.apply_stage import apply_diff
from bactrian.diffs import DiffLimits, apply_to_files
from bactrian.errors import DiffTimeoutError


def _many_hunks(n: int) -> tuple[str, str]:
    lines = [f"let f{i} x = x + {i}\n" for i in range(n * 6)]
    out = ["--- a/m.ml\n", "+++ b/m.ml\n"]
    for h in range(n):
        b = h * 6
        out += ["@@\n", "   " + lines[b + 1], "-" + lines[b + 3], "+" + lines[b + 3][::-1]]
    return "".join(lines), "".join(out)


def test_apply_past_its_time_limit_writes_nothing_and_says_so(tmp_path: Path) -> None:
    text, diff = _many_hunks(300)
    (tmp_path / "m.ml").write_text(text)
    applied = apply_diff(tmp_path, diff, lenient=True, timeout_s=1e-9)
    assert not applied.ok and applied.timed_out
    assert "took too long" in applied.message and "hunk" in applied.message
    assert (tmp_path / "m.ml").read_text() == text
    # without the limit the same diff applies
    applied = apply_diff(tmp_path, diff, lenient=True, timeout_s=None)
    assert applied.ok and not applied.timed_out, applied.message


def test_diff_limits_max_seconds_raises_a_timeout_error() -> None:
    text, diff = _many_hunks(50)
    try:
        apply_to_files({"m.ml": text}, diff, lenient=True, limits=DiffLimits(max_seconds=1e-9))
    except DiffTimeoutError as exc:
        assert "time limit" in str(exc)
    else:
        raise AssertionError("no DiffTimeoutError")


def test_lf_patch_on_a_crlf_file_names_the_line_endings() -> None:
    files = {"a.ml": "let a = 1\r\nlet b = 2\r\n"}
    diff = "--- a/a.ml\n+++ b/a.ml\n@@ -1,2 +1,2 @@\n let a = 1\n-let b = 2\n+let b = 3\n"
    _, res = apply_to_files(files, diff)
    assert not res.ok
    assert "line endings differ at line 1 (CRLF in file, LF in patch)" in res.summary()
    assert "expected 'let a = 1', found 'let a = 1'" not in res.summary()
    out, res = apply_to_files(files, diff, lenient=True)
    assert res.ok and out["a.ml"] == b"let a = 1\r\nlet b = 3\r\n"
