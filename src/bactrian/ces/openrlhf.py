"""OpenRLHF's remote reward endpoint, served by ``bactrian ces serve --openrlhf-dataset DIR``.

OpenRLHF (``--reward.remote_url http://HOST:8765/openrlhf/reward``) POSTs a batch::

    {"query": [prompt + response, ...], "prompts": [prompt, ...], "labels": [label, ...]}

and reads ``{"rewards": [...], "scores": [...], "extra_logs": {...}}``. The label of each
sample is its example id (``bactrian dataset export --format openrlhf`` writes it under the
``label`` key); the response is the query after its prompt. Each response is judged by
:class:`bactrian.ces.rlreward.ExampleJudge` against its example's base — the same reward as
the TRL and verl adapters. OpenRLHF needs a number for every sample: an infrastructure
``error`` verdict pays 0.0 and is counted in ``extra_logs["ces_infra_error"]`` (per sample,
1.0 where the CES failed), so it can be told apart from a wrong diff. The route needs the
service's token like every route but ``/healthz``; labels can only name examples of the
dataset the operator named, never paths.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from bactrian.ces.rlreward import ExampleJudge, stage_pass_rates

ROUTE = "/openrlhf/reward"
MAX_BATCH = 4096


class OpenRLHFIn(BaseModel):
    query: list[str] = Field(description="Each sample's prompt followed by its response.")
    prompts: list[str] = Field(default_factory=list, description="Each sample's prompt.")
    labels: list[str] = Field(description="Each sample's example id (the dataset's label key).")


def responses(body: OpenRLHFIn) -> list[str]:
    """Each query's response: the text after its prompt (a query that does not start with
    its prompt is refused, since the prompt's own code blocks would be read as the answer)."""
    n = len(body.query)
    if n > MAX_BATCH:
        raise HTTPException(413, f"{n} samples in one request; send at most {MAX_BATCH}.")
    if len(body.labels) != n or (body.prompts and len(body.prompts) != n):
        raise HTTPException(
            422,
            f"query ({n}), prompts ({len(body.prompts)}) and labels ({len(body.labels)}) must "
            "be aligned lists of one length (prompts may be left out).",
        )
    out = []
    for i, q in enumerate(body.query):
        prompt = body.prompts[i] if body.prompts else ""
        if prompt and not q.startswith(prompt):
            raise HTTPException(
                422, f"query[{i}] does not start with prompts[{i}]: send the prompt as is."
            )
        out.append(q[len(prompt) :])
    return out


def reward_batch(judge: ExampleJudge, body: OpenRLHFIn) -> dict[str, Any]:
    """The endpoint's answer for ``body`` (judged in one CES call)."""
    texts = responses(body)
    for label in body.labels:
        if label not in judge.examples:
            raise HTTPException(
                422,
                f"label {label[:80]!r} is not an example of the dataset this endpoint serves "
                f"({judge.dataset}); export it with `bactrian dataset export --format openrlhf`.",
            )
    judged = judge.judge(list(zip(body.labels, texts, strict=True)))
    rewards = [j.reward if j.reward is not None else 0.0 for j in judged]
    rates = stage_pass_rates(judged)
    return {
        "rewards": rewards,
        "scores": rewards,
        "extra_logs": {
            "ces_reward": [j.ces_reward if j.ces_reward is not None else 0.0 for j in judged],
            "ces_format_reward": [j.format_reward for j in judged],
            "ces_infra_error": [1.0 if j.infra_error else 0.0 for j in judged],
            "ces_ok": [1.0 if j.verdict is not None and j.verdict.ok else 0.0 for j in judged],
            **{f"ces_{s}_pass": [r] * len(judged) for s, r in rates.items()},
        },
    }


def mount(app: FastAPI, judge: ExampleJudge, auth: Any) -> None:
    """Add the OpenRLHF route to the CES service ``app`` (``auth``: its token dependency)."""

    @app.post(ROUTE, dependencies=[auth])
    async def openrlhf_reward(body: OpenRLHFIn) -> dict[str, Any]:
        return await asyncio.to_thread(reward_batch, judge, body)
