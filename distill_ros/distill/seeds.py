"""Which episodes each role draws: the seed ranges, kept apart so that no evaluation ever sees an
episode a policy was trained, collected or selected on.

    0 ...           teacher training (seed·1000 + env) and `distill-ros collect` (--seed, default 0)
    500_000 ...     DAgger collection, in process and over topics (the demo's round)
    900_000 ...     fine-tuning's validation episodes (they pick the best actor)
    1_000_000 ...   held-out evaluation: reports, summaries, the demo's deployment
    2_000_000 ...   fine-tuning rollouts
"""
from __future__ import annotations

DAGGER_SEED_BASE = 500_000
VALIDATION_SEED_BASE = 900_000
EVAL_SEED_BASE = 1_000_000
FINETUNE_SEED_BASE = 2_000_000


def dagger_seeds(train_seed: int, round_index: int, episodes: int) -> list[int]:
    """Seeds of DAgger round `round_index` (0-based) of a job with `train.seed` = `train_seed`."""
    first = DAGGER_SEED_BASE + 10_000 * train_seed + 1000 * round_index
    return list(range(first, first + episodes))


def validation_seeds(episodes: int) -> list[int]:
    """Fine-tuning's validation episodes (the same for every iteration, so scores compare)."""
    return list(range(VALIDATION_SEED_BASE, VALIDATION_SEED_BASE + episodes))


def finetune_seed(train_seed: int) -> int:
    """The first seed of the fine-tuning rollouts of a run with `train.seed` = `train_seed` (a resumed
    run continues at this + the env steps done)."""
    return FINETUNE_SEED_BASE + 100_000 * train_seed
