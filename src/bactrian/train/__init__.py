"""Training (home of the coming training part): SFT with TRL on the ``train`` split, then RL
(GRPO) on ``rl`` prompts with the CES verdict as the reward. Depends on :mod:`bactrian.models`,
:mod:`bactrian.dataset`, :mod:`bactrian.ces` and :mod:`bactrian.evaluate`."""
