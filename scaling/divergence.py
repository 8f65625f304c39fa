"""Divergence beyond NaN: when a run's loss or validation NE leaves any range a learning model stays in.

A NaN or infinite loss is the obvious case, but a too-large learning rate more often leaves the
numbers finite and absurd (a DLRM at lr 1e3 finished with test NE 6e18), and bounded losses
never reach NaN at all. :class:`DivergenceWatch` calls a run diverged when

* a training step's loss is NaN or infinite;
* a step's loss exceeds ``LOSS_GROWTH`` x the best step loss so far and also ``UNTRAINED_MARGIN``
  x the first step's (the untrained model's): orders of magnitude worse than the run has been
  and than knowing nothing, which noise on a small batch never is;
* a validation NE (normalised entropy: 1 is the base rate's, predicting every label's mean)
  exceeds ``NE_LIMIT``: several times worse than the constant base-rate predictor.

:class:`TrainingDiverged` carries the reason; a sweep records it as status "diverged".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import UserError

LOSS_GROWTH = 1e3  # three orders of magnitude over the best step loss ...
UNTRAINED_MARGIN = 10.0  # ... and ten times the untrained model's loss
NE_LIMIT = 5.0  # validation NE above five times the base rate's (NE = 1)


class RunFailed(UserError):
    """A run that could not finish; the message says why in one line."""


class TrainingDiverged(RunFailed):
    """The training loss or a validation metric left the range a learning model stays in."""


@dataclass
class DivergenceWatch:
    """The losses a run has seen so far, to tell a bad step from a run that has left the rails."""

    first_loss: float | None = None
    best_loss: float = math.inf

    def check_step(self, loss: float, step: int) -> None:
        """Raise :class:`TrainingDiverged` if step ``step``'s ``loss`` says the run diverged."""
        if not math.isfinite(loss):
            raise TrainingDiverged(f"training diverged: loss became {loss} at step {step}")
        if self.first_loss is None:
            self.first_loss = loss
        if loss > LOSS_GROWTH * self.best_loss and loss > UNTRAINED_MARGIN * abs(self.first_loss):
            raise TrainingDiverged(f"training diverged: loss {loss:.4g} at step {step} is over {LOSS_GROWTH:g} x its "
                                   f"best ({self.best_loss:.4g}) and {UNTRAINED_MARGIN:g} x the first step's "
                                   f"({self.first_loss:.4g})")
        self.best_loss = min(self.best_loss, loss)

    def check_validation(self, metrics: dict[str, float], step: int) -> None:
        """Raise :class:`TrainingDiverged` if a validation NE is beyond ``NE_LIMIT`` or infinite (a NaN NE, a task
        without positives, passes)."""
        for name, value in metrics.items():
            if name != "ne" and not name.startswith("ne/"):
                continue
            if math.isinf(value) or value > NE_LIMIT:
                raise TrainingDiverged(f"training diverged: validation {name} {value:.4g} at step {step} is above "
                                       f"{NE_LIMIT:g} x the base rate's (NE 1)")
