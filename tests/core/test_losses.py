import math

import torch

from lvpcnet_core.losses import text_contrastive


def test_contrastive_matches_hand_computation():
    # two samples of class 0, one of class 1; 2-d unit features, 2 classes
    visual = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    tau = 0.5
    s = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]  # cosine of each sample with each class text

    def lse(values):
        return math.log(sum(math.exp(v / tau) for v in values))

    i2t = [lse(s[0]) - s[0][0] / tau, lse(s[1]) - s[1][0] / tau, lse(s[2]) - s[2][1] / tau]
    col0 = [row[0] for row in s]
    col1 = [row[1] for row in s]
    t2i_0 = ((lse(col0) - col0[0] / tau) + (lse(col0) - col0[1] / tau)) / 2
    t2i_1 = lse(col1) - col1[2] / tau
    expected = sum(i2t) / 3 + (t2i_0 + t2i_1) / 2
    assert math.isclose(float(text_contrastive(visual, labels, text, tau)), expected, rel_tol=1e-6)


def test_contrastive_lower_when_aligned():
    text = torch.eye(3)
    labels = torch.tensor([0, 1, 2, 0])
    aligned = text[labels]
    shuffled = text[torch.tensor([1, 2, 0, 2])]
    assert text_contrastive(aligned, labels, text, 0.1) < text_contrastive(shuffled, labels, text, 0.1)
