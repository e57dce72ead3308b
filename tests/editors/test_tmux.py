"""Each client as a person uses it: the real editor in a terminal (tmux), keys typed with
send-keys, the screen read with capture-pane. The answer streams into the conversation, the
diff applies to the buffer on screen, accept records feedback. The final screens are the
docs' screenshots (docs/img/emacs.png, docs/img/nvim.png)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.editors.conftest import Sidecar
from tests.editors.editor_run import EMACS_DIR, NVIM_DIR, editor_env, emacs, nvims, tmux
from tests.editors.screenshot import render

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
APPLIED = re.compile(r"^let double t = t \* 2(\s|$)", re.M)  # a buffer line, not a diff line


def _save(screen: str, name: str) -> None:
    (DOCS_IMG / f"{name}.txt").parent.mkdir(parents=True, exist_ok=True)
    (DOCS_IMG / f"{name}.txt").write_text(screen, encoding="utf-8")
    render(screen, DOCS_IMG / f"{name}.png")


@pytest.mark.slow
def test_emacs_in_a_terminal(sidecar: Sidecar) -> None:
    setup = (
        "(progn (require 'bactrian) (setq inhibit-startup-screen t)"
        f' (setq bactrian-socket "{sidecar.socket}" bactrian-workspace-root "{sidecar.workspace}"'
        " bactrian-start-server nil) (bactrian-global-mode 1))"
    )
    cmd = [emacs(), "-nw", "-q", "-L", str(EMACS_DIR), "--eval", setup, "lib/money.ml"]
    with tmux(sidecar.root, editor_env(sidecar)) as t:
        t.start(cmd, sidecar.workspace)
        t.wait_for(lambda s: "let neg t = -t" in s, "the file")
        t.keys("M-g", "g")
        t.type("8")
        t.keys("Enter", "C-c")
        t.type(",a")
        t.wait_for(lambda s: "Ask bactrian:" in s, "the prompt")
        t.type("add a double function, gradually")
        t.keys("Enter")
        # part of the answer on screen before its end: it streams
        t.wait_for(lambda s: "Add `double`" in s and "C-c , y apply" not in s, "the streaming")
        t.wait_for(lambda s: "C-c , y apply" in s, "the streamed answer and its diff")
        screen = t.screen()
        assert "## add a double function, gradually" in screen, screen
        assert "+let double t = t * 2" in screen, screen
        assert "_context: lib/money.ml (current), lib/money.mli (sibling)" in screen
        assert not APPLIED.search(screen)
        t.keys("C-c")
        t.type(",y")
        t.wait_for(lambda s: "_applied to lib/money.ml (exact)" in s, "the applied edit")
        assert APPLIED.search(t.screen()), t.screen()
        t.keys("C-c")
        t.type(",")
        t.keys("Enter")
        screen = t.wait_for(lambda s: "_feedback: accepted_" in s, "the feedback")
        _save(screen, "emacs")


@pytest.mark.slow
def test_nvim_in_a_terminal(sidecar: Sidecar) -> None:
    nvim = nvims()[0]  # Debian's 0.7.2, what a bookworm user has
    setup = (
        f"lua require('bactrian').setup({{socket='{sidecar.socket}', root='{sidecar.workspace}',"
        " start_server=false})"
    )
    cmd = [
        nvim, "-u", "NONE", "-i", "NONE", "--cmd", f"set rtp^={NVIM_DIR}",
        "--cmd", "runtime plugin/bactrian.lua", "-c", "set laststatus=2 noshowmode", "-c", setup,
        "lib/money.ml",
    ]  # fmt: skip
    env = editor_env(sidecar, XDG_STATE_HOME=str(sidecar.root / "nvim-state"))
    with tmux(sidecar.root, env) as t:
        t.start(cmd, sidecar.workspace)
        t.wait_for(lambda s: "let neg t = -t" in s, "the file")
        t.type("8G")
        t.type(":BactrianAsk add a double function, gradually")
        t.keys("Enter")
        t.wait_for(lambda s: "Add `double`" in s and ":BactrianApply" not in s, "the streaming")
        t.wait_for(lambda s: ":BactrianApply" in s, "the streamed answer and its diff")
        screen = t.screen()
        assert "## add a double function, gradually" in screen, screen
        assert "+let double t = t * 2" in screen, screen
        assert "_context: lib/money.ml (current), lib/money.mli (sibling)" in screen
        t.type(":BactrianApply")
        t.keys("Enter")
        t.wait_for(lambda s: "_applied to lib/money.ml (exact)" in s, "the applied edit")
        assert APPLIED.search(t.screen()), t.screen()
        t.type(":BactrianAccept")
        t.keys("Enter")
        screen = t.wait_for(lambda s: "_feedback: accepted_" in s, "the feedback")
        _save(screen, "nvim")
