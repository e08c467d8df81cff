import math

import torch

from latentreason.train.losses import IGNORE_LABEL, token_cross_entropy


def _stablemax_by_hand(row, label):
    s = [x + 1 if x >= 0 else 1 / (1 - x) for x in row]
    return -math.log(s[label] / sum(s))


def test_stablemax_matches_hand_formula():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5) * 3
    labels = torch.tensor([[0, 4, IGNORE_LABEL], [2, 2, 1]])
    loss = token_cross_entropy(logits, labels, "stablemax")
    for b in range(2):
        for t in range(3):
            expected = (
                0.0 if labels[b, t] == IGNORE_LABEL else _stablemax_by_hand(logits[b, t].tolist(), int(labels[b, t]))
            )
            assert abs(loss[b, t].item() - expected) < 1e-6


def test_softmax_matches_log_softmax():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 6)
    labels = torch.randint(0, 6, (2, 4))
    labels[0, 0] = IGNORE_LABEL
    loss = token_cross_entropy(logits, labels, "softmax")
    expected = -torch.log_softmax(logits, -1).gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    expected[0, 0] = 0
    assert torch.allclose(loss, expected, atol=1e-6)
