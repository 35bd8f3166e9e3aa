"""Dropout, written from first principles.

Inverted dropout: during training each unit is kept with probability ``1 - p`` and the kept
units are divided by ``1 - p``, so the expected value of every unit is unchanged::

    mask ~ Bernoulli(1 - p)            (one draw per element)
    y    = x * mask / (1 - p)          E[y] = x

In evaluation mode dropout is the identity: no rescaling is needed at test time, which is why
the division happens during training ("inverted").
"""

from __future__ import annotations

import torch
from torch import nn

from .checks import ParameterError, check_number


class Dropout(nn.Module):
    """Inverted dropout. Input and output have the same shape, any shape.

    Args:
        p: probability of dropping a unit, in [0, 1).
        generator: optional ``torch.Generator`` for the masks; by default PyTorch's global
            generator, so ``torch.manual_seed`` makes runs reproducible.
    """

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.p = check_number(p, "dropout p", low=0, high=1, high_open=True,
                              hint="it is the probability of dropping a unit (p=1 would drop "
                                   "everything), e.g. p=0.5")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ParameterError(f"generator must be a torch.Generator or None, got "
                                 f"{type(generator).__name__}")
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = 1.0 - self.p
        mask = torch.rand(x.shape, generator=self.generator, device=x.device) < keep
        return x * mask / keep  # the same mask scales the gradient: dropped units get none

    def extra_repr(self) -> str:
        return f"p={self.p}"
