"""The evaluation report: one self-contained HTML page (inline SVG and a few lines of script;
no CDN, no network) with the gold validity, the stage funnel, the pass@k curve, per-kind and
per-error-class bars, the comparison with another run when given, and a per-example
drill-down (prompt, context, model output, extracted diff, verdict, compiler output)."""

from __future__ import annotations

import html
import json
from typing import Any

from bactrian.evaluate.metrics import FUNNEL

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
.kpi{display:inline-block;margin:0 1.5em 1em 0}.kpi b{font-size:1.6em;display:block}
table{border-collapse:collapse;width:100%;font-size:.9em}td,th{border-bottom:1px solid #eee;
padding:.3em .5em;text-align:left}tr.ex{cursor:pointer}tr.ex:hover{background:#f4f7ff}
pre{background:#f7f7f7;padding:.6em;overflow:auto;max-height:24em;font-size:.85em}
.pass{color:#18794e}.fail{color:#b42318}.muted{color:#888}#detail{border:1px solid #ccd;
padding:1em;margin-top:1em;display:none}figure{display:inline-block;margin:0 2em 1em 0}
"""

SCRIPT = """
document.querySelectorAll('tr.ex').forEach(function (row) {
  row.addEventListener('click', function () {
    var tpl = document.getElementById('tpl-' + row.dataset.key);
    var box = document.getElementById('detail');
    box.innerHTML = '';
    box.appendChild(tpl.content.cloneNode(true));
    box.style.display = 'block';
    box.scrollIntoView();
  });
});
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def bar_chart(title: str, items: list[tuple[str, float]], fig_id: str, width: int = 460) -> str:
    """Horizontal bars of rates in [0, 1]."""
    row_h, label_w = 22, 150
    h = row_h * len(items) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" role="img" '
        f'aria-label="{_e(title)}">'
    ]
    for i, (label, v) in enumerate(items):
        y = 5 + i * row_h
        w = max(0.0, min(1.0, v)) * (width - label_w - 60)
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{_e(label)}</text>')
        parts.append(
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" '
            f'fill="#4c78a8"><title>{_e(label)}: {100 * v:.1f}%</title></rect>'
        )
        parts.append(
            f'<text x="{label_w + w + 5:.1f}" y="{y + 15}" font-size="12">{100 * v:.0f}%</text>'
        )
    parts.append("</svg>")
    return f'<figure id="{fig_id}"><figcaption>{_e(title)}</figcaption>{"".join(parts)}</figure>'


def line_chart(title: str, points: list[tuple[int, float]], fig_id: str) -> str:
    """pass@k against k."""
    w, h, pad = 360, 200, 34
    if not points:
        points = [(1, 0.0)]
    ks = [k for k, _ in points]
    kmax = max(ks) if max(ks) > 1 else 2

    def x(k: int) -> float:
        return pad + (w - 2 * pad) * (k - 1) / (kmax - 1)

    def y(v: float) -> float:
        return h - pad - (h - 2 * pad) * v

    path = " ".join(
        f"{'M' if i == 0 else 'L'}{x(k):.1f},{y(v):.1f}" for i, (k, v) in enumerate(points)
    )
    dots = "".join(
        f'<circle class="point" cx="{x(k):.1f}" cy="{y(v):.1f}" r="4" fill="#e45756">'
        f"<title>pass@{k} = {100 * v:.1f}%</title></circle>"
        for k, v in points
    )
    ticks = "".join(
        f'<text x="{x(k):.1f}" y="{h - pad + 16}" font-size="11" text-anchor="middle">{k}</text>'
        for k in ks
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
        f'aria-label="{_e(title)}">'
        f'<line x1="{pad}" y1="{y(0)}" x2="{w - pad}" y2="{y(0)}" stroke="#999"/>'
        f'<line x1="{pad}" y1="{y(0)}" x2="{pad}" y2="{y(1)}" stroke="#999"/>'
        f'<text x="4" y="{y(1) + 4}" font-size="11">100%</text>'
        f'<text x="10" y="{y(0) + 4}" font-size="11">0%</text>'
        f'<path d="{path}" fill="none" stroke="#e45756" stroke-width="2"/>{dots}{ticks}'
        f'<text x="{w / 2}" y="{h - 4}" font-size="11" text-anchor="middle">k</text></svg>'
    )
    return f'<figure id="{fig_id}"><figcaption>{_e(title)}</figcaption>{svg}</figure>'


def _verdict_text(v: dict[str, Any] | None) -> str:
    if not v:
        return "(not judged)"
    lines = [f"ok={v.get('ok')} furthest={v.get('furthest')} reward={v.get('reward')}"]
    if v.get("error"):
        lines.append(f"infrastructure error: {v['error']}")
    if v.get("flags"):
        lines.append("flags: " + ", ".join(v["flags"]))
    for s in v.get("stages", []):
        lines.append(f"-- {s['name']}: {s['status']} ({s.get('duration_s', 0):.2f} s)")
        if s.get("output") and s["status"] != "passed":
            lines.append(s["output"][-4000:])
    return "\n".join(lines)


def render_report(
    meta: dict[str, Any],
    summary: dict[str, Any],
    rows: list[dict[str, Any]],
    gold_rows: list[dict[str, Any]],
    comparison: dict[str, Any] | None = None,
    prompts: dict[str, Any] | None = None,
) -> str:
    g = summary.get("gold", {})
    kpis = [
        (
            "mined-data validity",
            f"{100 * g.get('validity', 0):.0f}% ({g.get('valid', 0)}/{g.get('judged', 0)})",
        ),
        ("pass@1", f"{100 * summary.get('pass@1', 0):.1f}%"),
        ("examples", summary["examples"]),
        ("samples / example", summary["samples_per_example"]),
        ("not code changes", summary["not_code_changes"]),
        ("CES infra errors", summary["infra_errors"]),
        ("mean latency", f"{summary['latency_s']['mean']:.2f} s"),
    ]
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>bactrian eval: {_e(meta['model'])} on {_e(meta['split'])}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Evaluation of <code>{_e(meta['model'])}</code> ({_e(meta['strategy'])}) on "
        f"{_e(meta['split'])}</h1>",
        f"<p class='muted'>dataset {_e(meta['dataset'])}; temperature {meta['temperature']}; "
        f"max tokens {meta['max_tokens']}</p>",
        "<div id='kpis'>"
        + "".join(f"<span class='kpi'><b>{_e(v)}</b>{_e(k)}</span>" for k, v in kpis)
        + "</div>",
    ]
    if g.get("excluded"):
        out.append(
            "<p>Excluded (gold diff not green on its base): "
            + ", ".join(f"<code>{_e(x)}</code>" for x in g["excluded"])
            + "</p>"
        )
    out.append("<h2>Stage funnel and pass@k</h2>")
    out.append(
        bar_chart(
            "Share of samples reaching each stage",
            [(s, summary["funnel"][s]) for s in FUNNEL],
            "fig-funnel",
        )
    )
    out.append(
        line_chart("pass@k", [(int(k), v) for k, v in summary["pass_at_k"].items()], "fig-passk")
    )
    out.append("<h2>Breakdowns</h2>")
    kinds = [(k, v["pass_rate"]) for k, v in summary["by_kind"].items()]
    out.append(bar_chart("Pass rate by example kind", kinds or [("(none)", 0.0)], "fig-kind"))
    classes = [(k, v["pass_rate"]) for k, v in summary["by_error_class"].items()]
    out.append(
        bar_chart(
            "Pass rate of fixes by error class", classes or [("(no fixes)", 0.0)], "fig-errclass"
        )
    )
    if comparison:
        c = comparison
        out.append("<h2 id='comparison'>Comparison</h2>")
        out.append(
            f"<p>B = this run ({_e(c.get('model_b', ''))}) vs A = {_e(c.get('a', ''))} "
            f"({_e(c.get('model_a', ''))}), paired over {c['examples']} examples: pass rate "
            f"{100 * c['pass_rate_a']:.1f}% → {100 * c['pass_rate_b']:.1f}%, difference "
            f"{100 * c['difference']:+.1f} points (95% bootstrap CI {100 * c['ci95'][0]:+.1f} .. "
            f"{100 * c['ci95'][1]:+.1f}); first-sample discordant pairs A-only {c['a_only']}, "
            f"B-only {c['b_only']}, exact McNemar p = {c['mcnemar_p']:.3g}.</p>"
        )
        per = sorted(c["per_example"].items())
        out.append(
            bar_chart(
                "Per-example pass rate, B − A (shifted: 50% = no change)",
                [(k[:18], 0.5 + (v["b"] - v["a"]) / 2) for k, v in per],
                "fig-compare",
            )
        )
    out.append(
        "<h2>Examples</h2><p class='muted'>Click a row for the prompt, the output, the "
        "extracted diff and the verdict.</p>"
    )
    out.append(
        "<table id='examples'><tr><th>example</th><th>sample</th><th>kind</th><th>"
        "well-formed</th><th>furthest stage</th><th>result</th></tr>"
    )
    templates = []
    for n, r in enumerate(rows):
        key = f"r{n}"
        furthest = (r.get("verdict") or {}).get("furthest") or "-"
        res = "pass" if r["passed"] else ("infra error" if r["status"] == "infra-error" else "fail")
        cls = "pass" if r["passed"] else "fail"
        out.append(
            f"<tr class='ex' data-key='{key}'><td><code>{_e(r['example'])}</code></td>"
            f"<td>{r['sample']}</td><td>{_e(r['kind'])}</td><td>{'yes' if r['well_formed'] else 'no'}"
            f"</td><td>{_e(furthest)}</td><td class='{cls}'>{res}</td></tr>"
        )
        prompt = (prompts or {}).get(r["example"], "")
        templates.append(
            f"<template id='tpl-{key}'><h3>{_e(r['example'])} · sample {r['sample']}</h3>"
            + (f"<h4>Prompt</h4><pre class='prompt'>{_e(prompt)}</pre>" if prompt else "")
            + (f"<p>Cut to fit the budget: {_e('; '.join(r['cut']))}</p>" if r.get("cut") else "")
            + f"<h4>Model output</h4><pre class='output'>{_e(r.get('output', ''))}</pre>"
            + f"<h4>Extracted diff</h4><pre class='diff'>{_e(r.get('diff') or r.get('parse_error') or '')}</pre>"
            + f"<h4>Verdict</h4><pre class='verdict'>{_e(_verdict_text(r.get('verdict')))}</pre>"
            + f"<p class='muted'>{r.get('tokens_in', 0)} tokens in, {r.get('tokens_out', 0)} out, "
            f"{r.get('latency_s') or 0:.2f} s</p></template>"
        )
    out.append("</table><div id='detail'></div>")
    out.extend(templates)
    data = json.dumps(summary).replace("</", "<\\/")
    out.append(f"<script type='application/json' id='summary-data'>{data}</script>")
    out.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(out)
