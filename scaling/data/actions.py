"""Actions from explicit ratings: the rating becomes the action token, and two ranking tasks.

For MovieLens (issue: "the rating becomes the action token and two tasks"), an event's action
a_i is its rating (in half stars, so ML-20M's 0.5 steps keep their own tokens), and the ranking
tasks are ``like`` (rating >= 4) and ``five_star`` (rating = 5).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from scaling.data.sequences import SequenceDataset

RATING_TASKS = ("like", "five_star")
MAX_RATING_TOKEN = 10  # 5 stars in half-star steps


def with_rating_actions(dataset: SequenceDataset) -> SequenceDataset:
    """``dataset`` with action tokens and task labels derived from its ratings (unchanged if it has none)."""
    if dataset.ratings is None or dataset.has_actions:
        return dataset
    ratings = dataset.ratings.astype(np.float64)
    tokens = np.clip(np.rint(ratings * 2), 1, MAX_RATING_TOKEN).astype(np.int64)
    labels = np.stack([ratings >= 4.0, ratings >= 5.0], axis=1).astype(np.float32)
    return replace(dataset, action_tokens=tokens, num_action_tokens=MAX_RATING_TOKEN, labels=labels, task_names=RATING_TASKS)
