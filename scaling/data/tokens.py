"""Per-user token streams for the three sequential tasks (paper Table 1), and what each token predicts.

Every task turns a user's events into one chronological token stream:

* ``retrieval`` (classic next item): one token per item, Phi_0, Phi_1, ...; token i predicts the
  item of token i + 1.
* ``gr_retrieval`` (interleaved, Table 1 bottom): one token per (Phi_i, a_i) pair (item and action
  embeddings summed), contextual tokens merged in by time; token i predicts Phi_{i+1} only when
  a_{i+1} is positive (otherwise y_i is undefined).
* ``ranking`` (interleaved, Table 1 top): Phi_0, a_0, Phi_1, a_1, ... with contextual tokens merged
  in by time; the item token Phi_i predicts its own action a_i (target-aware: it sees Phi_i and
  everything before, never a_i).

A token carries up to three ids (item, action, context; 0 = absent) whose embeddings the model
sums. ``target_event[i]`` is the dataset event whose outcome token i is trained to predict
(-1 if none); training and evaluation choose which target events to supervise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaling.data.sequences import SequenceDataset
from core.errors import DataError
from core.results_schema import Task


@dataclass(frozen=True)
class TokenStream:
    """All users' token streams back to back (CSR); user u owns rows offsets[u]:offsets[u+1]."""

    item_ids: np.ndarray  # [N] int64, 0 = no item on this token
    action_ids: np.ndarray  # [N] int64, 0 = no action on this token
    context_ids: np.ndarray  # [N] int64, 0 = not a contextual token
    timestamps: np.ndarray  # [N] int64
    event_index: np.ndarray  # [N] int64 dataset event this token belongs to (-1 for contextual tokens)
    target_event: np.ndarray  # [N] int64 dataset event token i predicts (-1 for none)
    offsets: np.ndarray  # [U+1] int64

    @property
    def num_tokens(self) -> int:
        return len(self.item_ids)

    def query_timestamps(self) -> np.ndarray:
        """[N] when each token's prediction is requested: the next token's time in the user's stream.

        The last token of a stream keeps its own time. For a ranking item token this is its own
        action's time (the impression time); for a retrieval token, the next item's time.
        """
        following = np.empty_like(self.timestamps)
        following[:-1] = self.timestamps[1:]
        if len(following):
            following[-1] = self.timestamps[-1]
        last = self.offsets[1:] - 1
        last = last[self.offsets[1:] > self.offsets[:-1]]
        following[last] = self.timestamps[last]
        return following

    def supervising_token(self, num_events: int) -> np.ndarray:
        """[E] the token that predicts each event (-1 if no token does)."""
        token_of_event = np.full(num_events, -1, dtype=np.int64)
        supervised = np.flatnonzero(self.target_event >= 0)
        token_of_event[self.target_event[supervised]] = supervised
        return token_of_event


def positive_events(dataset: SequenceDataset, positive_task: str | None) -> np.ndarray:
    """[E] bool: events whose action counts as positive engagement (the task named, else the first)."""
    if not dataset.has_actions:
        return np.ones(dataset.num_interactions, dtype=bool)
    task = positive_task if positive_task is not None else dataset.task_names[0]
    if task not in dataset.task_names:
        raise DataError(f"positive task {task!r} is not one of the dataset's tasks: {', '.join(dataset.task_names)}")
    return dataset.labels[:, dataset.task_names.index(task)] > 0.5


def build_token_stream(dataset: SequenceDataset, task: Task, positive_task: str | None = None) -> TokenStream:
    """The token streams of ``task`` for every user of ``dataset``."""
    if task == "retrieval":
        return _item_stream(dataset)
    if not dataset.has_actions:
        raise DataError(
            f"data.task '{task}' needs actions (ratings or action events) but dataset "
            f"{dataset.fingerprint.get('dataset', '')!r} has none; use data.task 'retrieval'"
        )
    if task == "gr_retrieval":
        return _interleaved_stream(dataset, split_actions=False, positive=positive_events(dataset, positive_task))
    if task == "ranking":
        return _interleaved_stream(dataset, split_actions=True, positive=None)
    raise ValueError(f"unknown task {task!r}")


def _item_stream(dataset: SequenceDataset) -> TokenStream:
    events = np.arange(dataset.num_interactions, dtype=np.int64)
    target = events + 1
    last_of_user = dataset.offsets[1:] - 1
    target[last_of_user[dataset.offsets[1:] > dataset.offsets[:-1]]] = -1
    zeros = np.zeros_like(events)
    return TokenStream(
        item_ids=dataset.item_ids.astype(np.int64),
        action_ids=zeros,
        context_ids=zeros.copy(),
        timestamps=dataset.timestamps.astype(np.int64),
        event_index=events,
        target_event=target,
        offsets=dataset.offsets.astype(np.int64),
    )


def _interleaved_stream(dataset: SequenceDataset, split_actions: bool, positive: np.ndarray | None) -> TokenStream:
    """Merge events (as one or two tokens each) with contextual tokens, per user, by time."""
    num_events = dataset.num_interactions
    event_user = np.repeat(np.arange(dataset.num_users), dataset.lengths())
    # Event tokens: item (kind 1) then action (kind 2) when split, or one merged token (kind 1).
    kinds = (1, 2) if split_actions else (1,)
    parts_user = [event_user] * len(kinds)
    parts_time = [dataset.timestamps] * len(kinds)
    parts_kind = [np.full(num_events, kind, dtype=np.int64) for kind in kinds]
    parts_event = [np.arange(num_events, dtype=np.int64)] * len(kinds)
    contexts = dataset.contexts
    if contexts is not None and len(contexts.tokens):
        context_user = np.repeat(np.arange(dataset.num_users), np.diff(contexts.offsets))
        parts_user.append(context_user)
        parts_time.append(contexts.timestamps)
        # Kind 0 sorts a context change before the event at the same time: it was in effect already.
        parts_kind.append(np.zeros(len(contexts.tokens), dtype=np.int64))
        parts_event.append(-1 - np.arange(len(contexts.tokens), dtype=np.int64))  # -1 - context row
    user = np.concatenate(parts_user)
    time = np.concatenate(parts_time).astype(np.int64)
    kind = np.concatenate(parts_kind)
    event = np.concatenate(parts_event)
    # Events keep dataset order (stable ties); contexts go before events at equal times.
    event_rank = np.where(event >= 0, event, -1)
    order = np.lexsort((kind, event_rank, time, user))
    user, time, kind, event = user[order], time[order], kind[order], event[order]

    is_event = event >= 0
    safe_event = np.where(is_event, event, 0)
    item_ids = np.where(is_event & (kind == 1), dataset.item_ids[safe_event], 0).astype(np.int64)
    action_on_token = (kind == 2) if split_actions else (kind == 1)
    action_ids = np.where(is_event & action_on_token, dataset.action_tokens[safe_event], 0).astype(np.int64)
    context_ids = np.zeros(len(event), dtype=np.int64)
    if contexts is not None and len(contexts.tokens):
        context_rows = np.where(~is_event, -1 - event, 0)
        context_ids = np.where(~is_event, contexts.tokens[context_rows], 0).astype(np.int64)
    offsets = np.zeros(dataset.num_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(user, minlength=dataset.num_users), out=offsets[1:])
    event_index = np.where(is_event, event, -1)
    if split_actions:
        target = np.where(is_event & (kind == 1), event, -1)  # Phi_i predicts a_i
    else:
        target = _next_positive_item_target(event_index, offsets, positive)
    return TokenStream(item_ids, action_ids, context_ids, time, event_index, target.astype(np.int64), offsets)


def _next_positive_item_target(event_index: np.ndarray, offsets: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Token i predicts the event on token i + 1 when that token is a positive item (Table 1, retrieval)."""
    target = np.full(len(event_index), -1, dtype=np.int64)
    if len(event_index) < 2:
        return target
    following = event_index[1:]
    valid = following >= 0
    valid &= positive[np.where(valid, following, 0)]
    target[:-1] = np.where(valid, following, -1)
    last = offsets[1:] - 1
    target[last[offsets[1:] > offsets[:-1]]] = -1  # never across users
    return target
