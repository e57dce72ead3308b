"""Compiler output → structured :class:`bactrian.types.Diagnostic` records.

The OCaml parser reads what ``dune`` 2.9, ``ocamlc`` and ``ocamlopt`` print (with any
``--display`` mode) and what failing alcotest executables print under ``dune runtest``::

    File "lib/ledger.ml", lines 3-5, characters 19-6:     ← header (location)
    3 | let g : int list = (fun x ->                      ← source excerpt (skipped)
    Error: This expression should not be a function, …    ← severity + first message line
           int list                                       ← continuation lines

Conventions of the records:

* ``line``/``end_line`` are 1-based, ``col``/``end_col`` 0-based as OCaml prints them; a header
  without ``characters`` gives ``col = end_col = 0``. A message with no location at all (``Error:
  I cannot find the root…``) gets ``file = ""`` and ``line = 0``.
* ``file`` is relative to the dune root: a ``_build/<context>/`` prefix is stripped, and with
  ``root=`` absolute paths under it are made relative.
* Warnings turned into errors (``Error (warning 32 [unused-value-declaration]): …``) have
  severity ``error``, ``code = "32"`` and ``kind = "warning"``; alerts have the alert name as code.
* ``kind`` is ``syntax``, ``type``, ``unbound``, ``warning``, ``test`` or ``other`` (errors in
  ``dune`` files, errors without location).

Other languages plug in through :data:`PARSERS` (``parse_diagnostics(text, language)``).
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from collections.abc import Callable, Iterable

from bactrian.registry import Registry
from bactrian.types import Diagnostic, Severity

Parser = Callable[[str], list[Diagnostic]]

PARSERS: Registry[Parser] = Registry("diagnostics parser")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_HEADER = re.compile(
    r'^File "(?P<file>[^"]*)", '
    r"(?:line (?P<line>\d+)|lines (?P<l1>\d+)-(?P<l2>\d+))"
    r"(?:, characters (?P<c1>-?\d+)-(?P<c2>-?\d+))?:\s*$"
)
_SEVERITY = re.compile(
    r"^(?P<sev>Error|Warning|Alert)"
    r"(?:"
    r" \((?P<inner>warning|alert) (?P<icode>\d+|[\w-]+)(?: \[(?P<iname>[\w-]+)\])?\)"
    r"| (?P<wcode>\d+)(?: \[(?P<wname>[\w-]+)\])?"
    r"| (?P<aname>[\w-]+)"
    r")?:\s?(?P<rest>.*)$"
)
_EXCERPT = re.compile(r"^\s*\d+ \| |^\s*\^+\s*$|^\s*\.\.\.\s*$")
# dune --display short: the action name right-aligned in 12 columns, then its target.
_ACTIONS = [
    "ocamlc",
    "ocamlopt",
    "ocamldep",
    "ocamlmklib",
    "ocamllex",
    "ocamlyacc",
    "ocamlfind",
    "menhir",
    "ppx",
    "odoc",
    "cc",
    "gcc",
    "cp",
    "run",
    "bash",
    "sh",
    "echo",
    "diff",
    "cmp",
    "promote",
    "mv",
    "install",
    "ocamlmerlin",
]
# right-aligned exactly as dune prints it ("%12s %s"), so that an indented continuation line
# of a compiler message that happens to start with one of these words is not mistaken for one
# (no 5-letter names: they would sit at OCaml's own 7-column continuation indent)
_SHORT_ACTION = re.compile(
    "^(?:" + "|".join(" " * max(12 - len(a), 0) + a for a in _ACTIONS) + r") \S.*$"
)
_ALIAS_ACTION = re.compile(
    r"^\s*\S+ alias \S+(?: \(exit \d+\)| \(got signal \w+\))?\s*$"
    r"|^\s*\S+ .*\((?:exit \d+|got signal \w+)\)\s*$"  # any failed action
)
_DIFF_LINE = re.compile(r"^(?:diff |index |--- |\+\+\+ |@@ |[ +-]|\\ No newline)")
_HUNK = re.compile(r"^@@ -(\d+)")
_CD_COMMAND = re.compile(r"^\(cd (?P<dir>\S+) && (?P<cmd>.*)\)\s*$")
_BUILD_PREFIX = re.compile(r"^(?:\./)?_build/[^/]+/")
_WATCH_BANNER = re.compile(r"^\*+ NEW BUILD \*+$")

_SYNTAX = re.compile(  # parser and lexer errors (ocaml/parsing/syntaxerr.ml, lexer.mll)
    r"Syntax error|Illegal character|String literal not terminated|"
    r"Comment not terminated|unterminated (?:string|comment)|This comment contains an "
    r"unterminated|Invalid literal|Unknown modifier .* for literal|Illegal escape|"
    r"Illegal backslash escape|is a keyword, it cannot be used|Invalid encoding",
    re.IGNORECASE,
)
_UNBOUND = re.compile(
    r"^Unbound (?:value|module|type|constructor|record field|field|class|"
    r"module type|instance variable|label|method)\b"
)
_SOURCE_SUFFIXES = (".ml", ".mli", ".mll", ".mly", ".re", ".rei", ".eliom", ".eliomi")


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _rel(path: str, root: str | None) -> str:
    if root:
        r = root.rstrip("/") + "/"
        if path.startswith(r):
            path = path[len(r) :]
    return _BUILD_PREFIX.sub("", path)


def _kind(file: str, severity: Severity, inner: str | None, message: str) -> str:
    if severity is not Severity.ERROR or inner:
        return "warning"
    first = message.strip().splitlines()[0] if message.strip() else ""
    if _SYNTAX.search(first):
        return "syntax"
    if _UNBOUND.match(first):
        return "unbound"
    if file.endswith(_SOURCE_SUFFIXES):
        return "type"
    return "other"


def _is_terminator(line: str) -> bool:
    return bool(
        not line.strip()
        or _HEADER.match(line)
        or _SEVERITY.match(line)
        and not line.startswith("Hint")
        or _SHORT_ACTION.match(line)
        or _ALIAS_ACTION.match(line)
        or _CD_COMMAND.match(line)
        or _WATCH_BANNER.match(line)
        or line.startswith(("Testing `", "┌", "│", "└"))
    )


def _message(first: str, cont: list[str]) -> str:
    rest = textwrap.dedent("\n".join(line.rstrip() for line in cont)) if cont else ""
    msg = first.rstrip()
    if rest.strip():
        msg = f"{msg}\n{rest}" if msg else rest
    return msg.strip("\n")


def _severity_diag(
    m: re.Match[str], cont: list[str], loc: tuple[str, int, int, int, int]
) -> Diagnostic:
    sev = {"Error": Severity.ERROR, "Warning": Severity.WARNING, "Alert": Severity.ALERT}[m["sev"]]
    code = m["icode"] or m["wcode"] or m["aname"]
    message = _message(m["rest"], cont)
    file, line, col, end_line, end_col = loc
    return Diagnostic(
        file=file,
        line=line,
        col=col,
        end_line=end_line,
        end_col=end_col,
        severity=sev,
        message=message,
        kind=_kind(file, sev, m["inner"], message),
        code=code,
    )


def _header_loc(h: re.Match[str], root: str | None) -> tuple[str, int, int, int, int]:
    if h["line"]:
        line = end_line = int(h["line"])
    else:
        line, end_line = int(h["l1"]), int(h["l2"])
    col = int(h["c1"]) if h["c1"] else 0
    end_col = int(h["c2"]) if h["c2"] else 0
    return _rel(h["file"], root), line, max(col, 0), end_line, max(end_col, 0)


def parse_ocaml(text: str, *, root: str | None = None) -> list[Diagnostic]:
    """Parse dune/ocamlc/ocamlopt output (and failing alcotest runs) into diagnostics.

    Never raises on any input; unrecognised lines are ignored. ``root`` (the dune root as an
    absolute path) makes absolute file names relative to it.
    """
    lines = _strip_ansi(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[Diagnostic] = []
    loc: tuple[str, int, int, int, int] | None = None
    header = ""
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        h = _HEADER.match(line)
        if h:
            loc = _header_loc(h, root)
            header = line.rstrip().rstrip(":").replace(f'"{h["file"]}"', f'"{loc[0]}"', 1)
            i += 1
            while i < n and _EXCERPT.match(lines[i]):
                i += 1
            continue
        m = _SEVERITY.match(line)
        if m:
            j = i + 1
            cont: list[str] = []
            while j < n and not _is_terminator(lines[j]):
                cont.append(lines[j])
                j += 1
            out.append(_severity_diag(m, cont, loc or ("", 0, 0, 0, 0)))
            loc = None
            i = j
            continue
        if loc is not None and _ALIAS_ACTION.match(line):
            diff = _promotion_diff(lines, i + 1, loc)
            if diff is not None:
                out.append(diff[0])
                i = diff[1]
                loc = None
                continue
        cd = _CD_COMMAND.match(line)
        if cd:
            diags, i = _parse_test_run(lines, i + 1, cd["dir"], cd["cmd"], root)
            out.extend(diags)
            loc = None
            continue
        if loc is not None and out and line[:1].isspace() and not _is_terminator(line):
            # A secondary location of the previous error ("This '(' might be unmatched"):
            # keep it in that error's message, the way OCaml nests such notes.
            j = i + 1
            while j < n and not _is_terminator(lines[j]):
                j += 1
            note = _message(f"{header}: {line.strip()}", lines[i + 1 : j])
            out[-1] = dataclasses.replace(out[-1], message=f"{out[-1].message}\n{note}")
            loc = None
            i = j
            continue
        if not _EXCERPT.match(line):
            loc = None
        i += 1
    return out


def _promotion_diff(
    lines: list[str], i: int, loc: tuple[str, int, int, int, int]
) -> tuple[Diagnostic, int] | None:
    """A failed ``(diff a b)`` action or expect test: ``File "t/expected.txt", line 1…``, the
    failed action line, ``(cd _build/default && … diff … a b)`` and the diff. One ``test``
    diagnostic at the first hunk's line; the message is the diff's hunks."""
    if i >= len(lines):
        return None
    cd = _CD_COMMAND.match(lines[i])
    if not cd or "diff" not in cd["cmd"]:
        return None
    j = i + 1
    body: list[str] = []
    while j < len(lines) and lines[j] and _DIFF_LINE.match(lines[j]):
        if not lines[j].startswith(("diff ", "index ")):
            body.append(lines[j].rstrip())
        j += 1
    file, line, _, _, _ = loc
    first_hunk = next((int(m[1]) for b in body if (m := _HUNK.match(b))), None)
    if first_hunk:
        line = max(first_hunk, 1)
    shown = body[:60] + ([f"[… {len(body) - 60} more diff lines …]"] if len(body) > 60 else [])
    message = "\n".join(
        ["Output differs from the expected one (`dune promote` accepts it):", *shown]
    )
    diag = Diagnostic(file, line, 0, line, 0, Severity.ERROR, message, "test", None)
    return diag, j


# ---------------------------------------------------------------- alcotest (dune runtest)

_FAIL_ROW = re.compile(
    r"^(?:>\s*)?\s*\[(?:FAIL|ERROR)\]\s+(?P<suite>.+?)\s+(?P<num>\d+)\s+(?P<name>.*?)\.?\s*$"
)
_BOX_FAIL = re.compile(
    r"^│\s*\[(?:FAIL|ERROR)\]\s+(?P<suite>.+?)\s+(?P<num>\d+)\s+(?P<name>.*?)\.?\s*│\s*$"
)
_FRAME = re.compile(
    r"^(?:Raised at|Called from|Re-raised at|Raised by primitive operation at) .*?"
    r'file "(?P<file>[^"]+)", line (?P<line>\d+)(?:, characters (?P<c1>\d+)-(?P<c2>\d+))?'
)
_TEST_END = re.compile(r"^(?:\d+ failures?! in |Test Successful in |Full test results in )")


def _parse_test_run(
    lines: list[str], i: int, cd_dir: str, cmd: str, root: str | None
) -> tuple[list[Diagnostic], int]:
    """Lines after ``(cd _build/default/test && ./t.exe)``: one ``test`` diagnostic per failing
    alcotest case, located at the deepest frame in the test's directory (or the test file)."""
    test_dir = _rel(cd_dir.rstrip("/") + "/", root).rstrip("/")
    if cd_dir.rstrip("/") in ("_build/default", "_build"):
        test_dir = ""
    exe = cmd.split()[0] if cmd.split() else ""
    exe_name = exe.rsplit("/", 1)[-1]
    base = exe_name[:-4] if exe_name.endswith(".exe") else exe_name
    guess = f"{test_dir}/{base}.ml" if test_dir else f"{base}.ml"
    failed: list[tuple[str, str, str]] = []
    details: dict[tuple[str, str, str], list[str]] = {}
    current: tuple[str, str, str] | None = None
    n = len(lines)
    saw_alcotest = False
    while i < n:
        line = lines[i]
        if _HEADER.match(line) or _CD_COMMAND.match(line) or _ALIAS_ACTION.match(line):
            break
        if line.startswith("Testing `"):
            saw_alcotest = True
        box = _BOX_FAIL.match(line)
        row = None if box else _FAIL_ROW.match(line)
        if box:
            current = (box["suite"], box["num"], box["name"])
            details.setdefault(current, [])
        elif row:
            key = (row["suite"], row["num"], row["name"])
            if key not in failed:
                failed.append(key)
        elif _TEST_END.match(line):
            i += 1
            break
        elif current is not None and not line.startswith(("└", "┌")):
            if line.startswith("Logs saved to") or line.strip().startswith("──"):
                current = None
            else:
                details[current].append(line)
        i += 1
    if not saw_alcotest:
        return [], i
    diags = []
    for key in failed:
        body = details.get(key, [])
        file, line_no, col, end_col = guess, 1, 0, 0
        text_lines = []
        for b in body:
            f = _FRAME.match(b.strip())
            if f:
                ffile = _rel(f["file"], root)
                if file == guess and line_no == 1 and test_dir and ffile.startswith(test_dir + "/"):
                    file, line_no = ffile, int(f["line"])
                    col = int(f["c1"] or 0)
                    end_col = int(f["c2"] or 0)
                continue
            text_lines.append(b.rstrip())
        detail = textwrap.dedent("\n".join(text_lines)).strip("\n")
        detail = re.sub(r"\n{2,}", "\n", detail)
        suite, num, name = key
        msg = f"Test {suite} {num} {name} failed"
        msg = f"{msg}:\n{detail}" if detail else f"{msg} (see the test log)."
        diags.append(
            Diagnostic(
                file=file,
                line=line_no,
                col=col,
                end_line=line_no,
                end_col=end_col,
                severity=Severity.ERROR,
                message=msg,
                kind="test",
                code=None,
            )
        )
    return diags, i


# ---------------------------------------------------------------- other languages

_GCC = re.compile(
    r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?:(?P<col>\d+):)?\s*"
    r"(?P<sev>error|warning|note|fatal error)(?:\[(?P<code>[^\]]+)\])?:\s*(?P<msg>.*)$"
)


def parse_gcc_style(text: str) -> list[Diagnostic]:
    """``file:line[:col]: error|warning: message`` lines (gcc, clang, many linters)."""
    out = []
    for line in _strip_ansi(text).splitlines():
        m = _GCC.match(line)
        if not m:
            continue
        sev = {
            "error": Severity.ERROR,
            "fatal error": Severity.ERROR,
            "warning": Severity.WARNING,
            "note": Severity.INFO,
        }[m["sev"]]
        ln = int(m["line"])
        col = max(int(m["col"] or 1) - 1, 0)
        kind = "warning" if sev is not Severity.ERROR else "other"
        if sev is Severity.ERROR and re.search(r"syntax|expected", m["msg"], re.IGNORECASE):
            kind = "syntax"
        out.append(Diagnostic(m["file"], ln, col, ln, col, sev, m["msg"].rstrip(), kind, m["code"]))
    return out


def parse_dune_log(text: str) -> list[Diagnostic]:
    """Diagnostics from dune's own ``_build/log`` (every command as ``$ (cd … && …)``, its
    output as ``> ``-prefixed lines, then ``[exit code]``): the command outputs are unwrapped
    and parsed with :func:`parse_ocaml`. Useful when the terminal output was lost; note that
    the log alone does not say whether a build is finished (see :mod:`bactrian.buildstatus.watch`)."""
    out: list[str] = []
    for line in _strip_ansi(text).splitlines():
        if line.startswith("> ") or line == ">":
            out.append(line[2:])
        elif line.startswith("$ (cd "):
            out.extend(["", line[2:]])
        else:
            out.append("")
    return parse_ocaml("\n".join(out))


PARSERS.add("ocaml", parse_ocaml)
PARSERS.add("dune-log", parse_dune_log)
PARSERS.add("gcc", parse_gcc_style)
PARSERS.add("none", lambda text: [])


def parse_diagnostics(text: str, language: str = "ocaml") -> list[Diagnostic]:
    """Parse ``text`` with the parser registered for ``language`` (see :data:`PARSERS`)."""
    return PARSERS.get(language)(text)


def classify(diags: Iterable[Diagnostic]) -> str:
    """The worst class of a set of diagnostics, for "how far did it get" questions:

    ``"syntax"`` if any syntax error, else ``"type"`` if any other compile error (type errors,
    unbound names, warnings-as-errors, dune file errors), else ``"test"`` if the only errors are
    failing tests, else ``"ok"`` (warnings and alerts alone are ``"ok"``).
    """
    errors = [d for d in diags if d.severity is Severity.ERROR]
    if any(d.kind == "syntax" for d in errors):
        return "syntax"
    if any(d.kind != "test" for d in errors):
        return "type"
    if errors:
        return "test"
    return "ok"


def render_ocaml(d: Diagnostic) -> str:
    """Render a diagnostic the way OCaml prints it (no source excerpt). Used by tests and by
    tools that want to show records in the compiler's own format."""
    if d.line == 0 and not d.file:
        head = ""
    elif d.end_line != d.line:
        head = f'File "{d.file}", lines {d.line}-{d.end_line}, characters {d.col}-{d.end_col}:\n'
    else:
        head = f'File "{d.file}", line {d.line}, characters {d.col}-{d.end_col}:\n'
    label = {Severity.ERROR: "Error", Severity.WARNING: "Warning", Severity.ALERT: "Alert"}.get(
        d.severity, "Error"
    )
    if d.severity is Severity.ERROR and d.kind == "warning" and d.code:
        label = f"Error (warning {d.code})" if d.code.isdigit() else f"Error (alert {d.code})"
    elif d.severity in (Severity.WARNING, Severity.ALERT) and d.code:
        label = f"{label} {d.code}"
    first, *rest = d.message.split("\n")
    body = "".join(f"\n       {r}" if r else "\n" for r in rest)
    return f"{head}{label}: {first}{body}\n"
