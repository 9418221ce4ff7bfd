"""A sample student submission (graded by `grader demo`): right on ordinary inputs, with two mistakes.

It exponentiates the raw logits, so large ones overflow to inf and the result is nan, and it accepts an
integer tensor instead of raising ValueError. The report shows what the grader says about each.
"""

import torch


def softmax(x, dim=-1):
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)
