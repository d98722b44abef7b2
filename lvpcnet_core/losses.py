"""Losses of LVPCnet: class-level symmetric multi-positive image-text contrast, and cross-entropy."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def text_contrastive(visual: torch.Tensor, labels: torch.Tensor, text: torch.Tensor, temperature: float,
                     gather: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Aligns unit-norm visual features (B, D) with their class's unit-norm text feature (K, D).

    Image-to-text: each sample against the K class texts, its own class the positive.
    Text-to-image: each class present in the batch against the B samples, ALL samples of that class
    positives (averaged, SupCon style), the rest negatives. The two terms are summed.
    The image-to-text term is a mean of per-sample terms, so a rank's shard may compute it alone; the text-to-image
    softmax runs over the whole batch, which `gather` (distributed.gather) assembles from the ranks' shards.
    """
    logits = visual @ text.t() / temperature                        # (B, K)
    image_to_text = F.cross_entropy(logits, labels)
    if gather is not None:
        logits, labels = gather(logits), gather(labels)
    present = torch.unique(labels)
    log_prob = F.log_softmax(logits[:, present].t(), dim=1)          # (K', B): each class over samples
    positives = (labels[None, :] == present[:, None]).to(log_prob.dtype)
    text_to_image = -((log_prob * positives).sum(1) / positives.sum(1)).mean()
    return image_to_text + text_to_image


def classification(logits: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy; label smoothing keeps a network fitted to a few hundred pixels from over-confidence."""
    return F.cross_entropy(logits, labels, label_smoothing=smoothing)
