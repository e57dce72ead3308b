"""Experiments: sticky assignment, pins, the metrics they record, and a report that finds the
better arm of a simulated population with intervals that cover at about the nominal rate."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bactrian.aid.config import Arm, Experiment, parse_experiments
from bactrian.aid.experiments import assign, diff_interval, percentile, two_proportion_test, wilson
from bactrian.aid.metrics import MetricsDB, RequestRecord
from bactrian.aid.report import build_report, render_html, render_text
from bactrian.errors import ConfigError
from tests.aid.conftest import SidecarProc

AB = Experiment("ab", (Arm("a", "m1"), Arm("b", "m2")))
TRUE = {"a": 0.30, "b": 0.42}


def test_assignment_is_sticky_weighted_and_pinnable() -> None:
    users = [f"user{i}" for i in range(2000)]
    first = [assign(u, AB).name for u in users]
    assert first == [assign(u, AB).name for u in users]  # sticky
    share = first.count("b") / len(first)
    assert 0.45 < share < 0.55
    heavy = Experiment("ab", (Arm("a", "m1", weight=3), Arm("b", "m2", weight=1)))
    assert 0.70 < [assign(u, heavy).name for u in users].count("a") / 2000 < 0.80
    # another experiment reshuffles users independently
    other = Experiment("cd", AB.arms)
    assert [assign(u, other).name for u in users] != first
    pinned = Experiment("ab", AB.arms, {"user0": "b", "user1": "a"})
    assert assign("user0", pinned).name == "b" and assign("user1", pinned).name == "a"


def test_bad_experiment_config_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="at least one arm"):
        parse_experiments({"e": {"arms": {}}}, "smollm2")
    with pytest.raises(ConfigError, match="pins 'ada' to arm 'z'"):
        parse_experiments({"e": {"arms": {"a": {}}, "pins": {"ada": "z"}}}, "smollm2")
    with pytest.raises(ConfigError, match="Unknown key"):
        parse_experiments({"e": {"arms": {"a": {"modle": "x"}}}}, "smollm2")


def test_statistics_match_known_values() -> None:
    w = wilson(81, 263)  # Newcombe (1998), example: 0.3080 [0.2553, 0.3662]
    assert (round(w.low, 4), round(w.high, 4)) == (0.2553, 0.3662)
    d = diff_interval(56, 70, 48, 80)  # Newcombe method 10: 0.2000 [0.0524, 0.3339]
    assert (round(d.estimate, 4), round(d.low, 4), round(d.high, 4)) == (0.2, 0.0524, 0.3339)
    z, p = two_proportion_test(56, 70, 48, 80)
    assert round(z, 2) == 2.65 and 0.0075 < p < 0.0086  # pooled se 0.0755
    assert percentile([5, 1, 3, 2, 4], 50) == 3 and percentile([], 95) is None


def _simulate(rng: random.Random, n_users: int = 50, per_user: int = 40) -> list[RequestRecord]:
    recs = []
    for u in range(n_users):
        user = f"dev{u}-{rng.random():.6f}"
        arm = assign(user, AB)
        for k in range(per_user):
            ok = rng.random() < TRUE[arm.name]
            recs.append(
                RequestRecord(
                    f"{user}-{k}",
                    1000.0 + k,
                    user,
                    "ab",
                    arm.name,
                    arm.model,
                    "unified-diff",
                    ttft_ms=rng.uniform(5, 50),
                    total_ms=rng.uniform(50, 500),
                    overhead_ms=rng.uniform(1, 5),
                    well_formed=True,
                    applies=True,
                    outcome="accepted" if ok else "rejected",
                )
            )
    return recs


def test_population_report_finds_the_better_arm(tmp_path: Path) -> None:
    db = MetricsDB(tmp_path / "m" / "metrics.sqlite")
    db.record_many(_simulate(random.Random(7)))
    rep = build_report(db.rows())
    db.close()
    assert rep["requests"] == 2000
    arms = {a["arm"]: a for a in rep["arms"]}
    assert sum(a["users"] for a in arms.values()) == 50
    for name, p in TRUE.items():
        acc = arms[name]["acceptance"]
        assert acc["low"] <= p <= acc["high"], (name, acc)
    [cmp] = rep["comparisons"]
    assert cmp["better"] == "b" and cmp["p_value"] < 0.05
    assert cmp["difference_b_minus_a"]["low"] > 0
    assert "better: b" in render_text(rep)
    page = render_html(rep)
    assert page.count("<svg") == 2 and "Acceptance" in page


def test_intervals_cover_the_true_rates_at_about_the_nominal_rate() -> None:
    """1,000 simulated populations: the report's Wilson intervals cover each arm's true rate,
    and Newcombe's interval the true difference, about 95 % of the time."""
    rng = random.Random(2026)
    reps, cover, cover_diff = 1000, {"a": 0, "b": 0}, 0
    arms_of = [assign(f"dev{u}", AB).name for u in range(50)]
    for _ in range(reps):
        k = {"a": 0, "b": 0}
        n = {"a": 0, "b": 0}
        for arm in arms_of:
            n[arm] += 40
            k[arm] += sum(rng.random() < TRUE[arm] for _ in range(40))
        for name, p in TRUE.items():
            cover[name] += wilson(k[name], n[name]).covers(p)
        cover_diff += diff_interval(k["b"], n["b"], k["a"], n["a"]).covers(TRUE["b"] - TRUE["a"])
    for name in TRUE:
        assert 0.93 <= cover[name] / reps <= 0.97, (name, cover[name] / reps)
    assert 0.93 <= cover_diff / reps <= 0.97, cover_diff / reps


def test_arms_through_a_real_sidecar_and_the_report_cli(short_tmp: Path, workspace: Path) -> None:
    good = short_tmp / "good.json"
    from tests.aid.conftest import ANSWERS

    good.write_text(json.dumps({"answers": ANSWERS}))
    models = f'[models.other]\nbackend = "scripted"\npath = "{good}"\nstrategy = "search-replace"\n'
    aid = {
        "experiment": "ab",
        "experiments": {
            "ab": {
                "pins": {"pinned": "b"},
                "arms": {"a": {"model": "scripted"}, "b": {"model": "other", "weight": 1}},
            }
        },
    }
    sc = SidecarProc(short_tmp, workspace, aid=aid, models=models).start()
    try:
        seen = {}
        for user in ["pinned", "u1", "u2", "u3", "u4", "u5", "u6"]:
            with sc.client(user=user) as c:
                assert c.init_result is not None
                arm = c.init_result["arm"]
                assert arm["experiment"] == "ab"
                if user == "pinned":
                    assert arm["arm"] == "b" and arm["strategy"] == "search-replace"
                else:
                    assert (
                        arm["arm"]
                        == assign(
                            user, Experiment("ab", (Arm("a", "scripted"), Arm("b", "other")))
                        ).name
                    )
                final = c.propose_wait({"prompt": "to_string", "file": {"path": "lib/shape.ml"}})[
                    -1
                ]
                c.request(
                    "feedback",
                    {
                        "proposalId": final["proposalId"],
                        "outcome": "accepted" if user != "u1" else "rejected",
                    },
                )
                seen[user] = arm["arm"]
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bactrian.cli",
                "aid",
                "report",
                "--config",
                str(sc.config),
                "--json",
                "--html",
                str(short_tmp / "r.html"),
            ],
            env=sc.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        rep = json.loads(out.stdout)
        by_arm = {a["arm"]: a for a in rep["arms"]}
        assert sum(a["requests"] for a in by_arm.values()) == 7
        assert by_arm["b"]["models"] == ["other"] and by_arm["b"]["strategies"] == [
            "search-replace"
        ]
        assert by_arm[seen["u1"]]["feedback"]["rejected"] == 1
        assert "<svg" in (short_tmp / "r.html").read_text()
    finally:
        sc.stop()
