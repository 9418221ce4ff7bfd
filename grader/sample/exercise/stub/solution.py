"""Sample exercise: a numerically stable softmax.

Replace this example with your exercise.  A stub teaches: say what to build and why, the paper or library
page it follows, and for every function its shapes, dtypes, formula and the errors it raises.
"""

from __future__ import annotations

import torch


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax of ``x`` along ``dim``: ``exp(x_i - max(x)) / sum_j exp(x_j - max(x))``.

    Subtract the maximum first, so large logits (1000, say) do not overflow to ``inf`` and ``nan``.

    :param x: a floating-point tensor of any shape; the result has its shape and dtype.
    :param dim: the dimension whose entries sum to 1.
    :raises ValueError: if ``x`` is not a floating-point tensor.
    """
    raise NotImplementedError("softmax: subtract the max along dim, exponentiate, divide by the sum")
