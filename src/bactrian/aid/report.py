"""``bactrian aid report``: derived from the metrics rows alone.

Per arm: requests, proposals that reached the user (``final``), and the rates of well-formed
output, diffs that apply, applied, CES-passed (when checked) and **acceptance** (feedback
``accepted`` or ``edited``, over final proposals), each with a 95 % Wilson interval; latency
percentiles (time to first token, total, the sidecar's own overhead). Per experiment with two
or more arms: the difference in acceptance of each arm against the first, with Newcombe's
interval and a two-proportion z-test; ``better`` names the winner when p < 0.05.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from itertools import combinations
from typing import Any

from bactrian.aid.experiments import diff_interval, percentile, two_proportion_test, wilson

ALPHA = 0.05
PCTS = (50, 90, 95, 99)


def _rate(k: int, n: int) -> dict[str, Any]:
    return {"count": k, "of": n, **wilson(k, n).to_dict()}


def _lat(values: Iterable[float | None]) -> dict[str, float | None]:
    xs = [v for v in values if v is not None]
    return {f"p{q}": percentile(xs, q) for q in PCTS}


def arm_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    finals = [r for r in rows if r["status"] == "final"]
    nf = len(finals)
    accepted = sum(1 for r in finals if r["outcome"] in ("accepted", "edited"))
    checked = [r for r in finals if r["verdict_passed"] is not None]
    dists = [r["edit_distance"] for r in finals if r["edit_distance"] is not None]
    return {
        "requests": len(rows),
        "final": nf,
        "errors": sum(1 for r in rows if r["status"] == "error"),
        "cancelled": sum(1 for r in rows if r["status"] == "cancelled"),
        "users": len({r["user"] for r in rows}),
        "models": sorted({r["model"] for r in rows}),
        "strategies": sorted({r["strategy"] for r in rows}),
        "well_formed": _rate(sum(1 for r in finals if r["well_formed"]), nf),
        "applies": _rate(sum(1 for r in finals if r["applies"]), nf),
        "applied": _rate(sum(1 for r in finals if r["applied"]), nf),
        "ces_passed": _rate(sum(1 for r in checked if r["verdict_passed"]), len(checked)),
        "acceptance": _rate(accepted, nf),
        "feedback": {
            o: sum(1 for r in finals if r["outcome"] == o)
            for o in ("accepted", "edited", "rejected")
        },
        "edit_distance_p50": percentile(dists, 50),
        "latency_ms": {
            "ttft": _lat(r["ttft_ms"] for r in finals),
            "total": _lat(r["total_ms"] for r in finals),
            "overhead": _lat(r["overhead_ms"] for r in finals),
        },
    }


def compare(
    exp: str | None, a: str, sa: dict[str, Any], b: str, sb: dict[str, Any]
) -> dict[str, Any]:
    ka, na = sa["acceptance"]["count"], sa["acceptance"]["of"]
    kb, nb = sb["acceptance"]["count"], sb["acceptance"]["of"]
    d = diff_interval(kb, nb, ka, na)
    z, p = two_proportion_test(kb, nb, ka, na)
    better = None
    if p < ALPHA:
        better = b if d.estimate > 0 else a
    return {
        "experiment": exp,
        "a": a,
        "b": b,
        "metric": "acceptance",
        "difference_b_minus_a": d.to_dict(),
        "z": z,
        "p_value": p,
        "better": better,
    }


def build_report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[tuple[str | None, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["experiment"], r["arm"]), []).append(r)
    arms = [
        {"experiment": e, "arm": a, **arm_stats(rs)}
        for (e, a), rs in sorted(groups.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))
    ]
    comparisons = []
    for exp in sorted({e for e, _ in groups}, key=lambda e: e or ""):
        mine = [x for x in arms if x["experiment"] == exp]
        for x, y in combinations(mine, 2):
            comparisons.append(compare(exp, x["arm"], x, y["arm"], y))
    return {"requests": len(rows), "arms": arms, "comparisons": comparisons, "confidence": 0.95}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def render_text(rep: dict[str, Any]) -> str:
    lines = [f"{rep['requests']} requests"]
    for a in rep["arms"]:
        acc = a["acceptance"]
        lat = a["latency_ms"]
        lines.append(
            f"{a['experiment'] or '-'}/{a['arm']}: {a['final']} final of {a['requests']} ({a['users']} users); "
            f"acceptance {_pct(acc['estimate'])} [{_pct(acc['low'])}, {_pct(acc['high'])}]; "
            f"applies {_pct(a['applies']['estimate'])}; well-formed {_pct(a['well_formed']['estimate'])}; "
            f"total p50/p95 {_ms(lat['total']['p50'])}/{_ms(lat['total']['p95'])} ms; "
            f"overhead p95 {_ms(lat['overhead']['p95'])} ms"
        )
    for c in rep["comparisons"]:
        d = c["difference_b_minus_a"]
        verdict = f"better: {c['better']}" if c["better"] else "no significant difference"
        lines.append(
            f"{c['experiment']}: {c['b']} - {c['a']} acceptance {100 * d['estimate']:+.1f} points "
            f"[{100 * d['low']:+.1f}, {100 * d['high']:+.1f}], z={c['z']:.2f}, p={c['p_value']:.3g} ({verdict})"
        )
    return "\n".join(lines)


def _bars(title: str, items: list[tuple[str, float, float, float]], unit: str, scale: float) -> str:
    """An SVG bar chart: (label, value, low, high) with whiskers."""
    w, row, left = 520, 34, 150
    h = 30 + row * len(items)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img"><title>{html.escape(title)}</title>',
        f'<text x="4" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
    ]
    span = w - left - 60
    for i, (label, v, lo, hi) in enumerate(items):
        y = 26 + i * row
        bw = 0 if scale <= 0 else span * v / scale
        out.append(f'<text x="4" y="{y + 16}" font-size="12">{html.escape(label)}</text>')
        out.append(f'<rect x="{left}" y="{y + 4}" width="{bw:.1f}" height="18" fill="#4a7ab5"/>')
        if hi > lo:
            x1, x2 = left + span * lo / scale, left + span * hi / scale
            out.append(
                f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{y + 13}" y2="{y + 13}" stroke="#222" stroke-width="2"/>'
            )
        out.append(
            f'<text x="{left + bw + 6:.1f}" y="{y + 17}" font-size="11">{v:.3g}{unit}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def render_html(rep: dict[str, Any]) -> str:
    arms = rep["arms"]
    label = [f"{a['experiment'] or '-'}/{a['arm']}" for a in arms]
    acc = [
        (
            label[i],
            100 * a["acceptance"]["estimate"],
            100 * a["acceptance"]["low"],
            100 * a["acceptance"]["high"],
        )
        for i, a in enumerate(arms)
    ]
    tot = [
        (
            label[i],
            a["latency_ms"]["total"]["p95"] or 0.0,
            a["latency_ms"]["total"]["p50"] or 0.0,
            a["latency_ms"]["total"]["p95"] or 0.0,
        )
        for i, a in enumerate(arms)
    ]
    scale = max([t[1] for t in tot] + [1.0])
    rows = "".join(
        f"<tr><td>{html.escape(label[i])}</td><td>{a['requests']}</td><td>{a['final']}</td><td>{a['users']}</td>"
        f"<td>{_pct(a['acceptance']['estimate'])} [{_pct(a['acceptance']['low'])}, {_pct(a['acceptance']['high'])}]</td>"
        f"<td>{_pct(a['applies']['estimate'])}</td><td>{_pct(a['well_formed']['estimate'])}</td>"
        f"<td>{_ms(a['latency_ms']['ttft']['p50'])}</td><td>{_ms(a['latency_ms']['total']['p50'])}</td>"
        f"<td>{_ms(a['latency_ms']['total']['p95'])}</td><td>{_ms(a['latency_ms']['overhead']['p95'])}</td></tr>"
        for i, a in enumerate(arms)
    )
    comps = "".join(
        f"<li>{html.escape(str(c['experiment']))}: {html.escape(c['b'])} − {html.escape(c['a'])} = "
        f"{100 * c['difference_b_minus_a']['estimate']:+.1f} points [{100 * c['difference_b_minus_a']['low']:+.1f}, "
        f"{100 * c['difference_b_minus_a']['high']:+.1f}], p = {c['p_value']:.3g}"
        f"{' — better: ' + html.escape(c['better']) if c['better'] else ''}</li>"
        for c in rep["comparisons"]
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>bactrian aid report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}</style>"
        f"</head><body><h1>AID report</h1><p>{rep['requests']} requests; 95 % Wilson intervals.</p>"
        "<table><tr><th>arm</th><th>requests</th><th>final</th><th>users</th><th>acceptance</th><th>applies</th>"
        f"<th>well-formed</th><th>TTFT p50 ms</th><th>total p50 ms</th><th>total p95 ms</th><th>overhead p95 ms</th></tr>{rows}</table>"
        f"<h2>Comparisons</h2><ul>{comps or '<li>one arm only</li>'}</ul>"
        f"<h2>Figures</h2>{_bars('Acceptance (%) with 95 % interval', acc, '%', 100.0)}"
        f"<br>{_bars('Total latency p95 (ms), whisker p50–p95', tot, ' ms', scale)}"
        "</body></html>"
    )
