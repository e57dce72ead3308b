"""A terminal screen (tmux capture-pane text) rendered to PNG for the docs, with Pillow and
Debian's DejaVu Sans Mono (fonts-dejavu-core)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")
BG, FG, EDGE = (30, 32, 36), (220, 223, 228), 12


def render(screen: str, out: Path, size: int = 15) -> Path:
    """Draw ``screen`` (lines of text) as a terminal would, into ``out``."""
    if not FONT.is_file():
        pytest.fail(f"{FONT} is missing: apt-get install fonts-dejavu-core", pytrace=False)
    font = ImageFont.truetype(str(FONT), size)
    lines = screen.rstrip("\n").split("\n")
    cols = max(len(line) for line in lines)
    left, top, right, bottom = font.getbbox("M")
    cell_w, cell_h = right - left + 0.5, int(size * 1.3)
    img = Image.new("RGB", (int(cols * cell_w) + 2 * EDGE, len(lines) * cell_h + 2 * EDGE), BG)
    draw = ImageDraw.Draw(img)
    for row, line in enumerate(lines):
        draw.text((EDGE, EDGE + row * cell_h), line, font=font, fill=FG)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, optimize=True)
    return out
