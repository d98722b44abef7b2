"""Trains a tiny model for a fixed number of steps and writes its weights: run by test_distributed.py once as
`python ddp_step.py OUT` and once under `torchrun --nproc-per-node 2 ddp_step.py OUT`, whose weights must agree.

Both stages run (stage 1 with augmentation and modality dropout, whose draws must be shared by the ranks; stage 2 on
one case); 120 samples in batches of 24: equal shards of 12 per rank. Stage 1 validates after every epoch (on the
training samples: what matters is that the ranks agree) and keeps its best epoch; its history goes to OUT.json."""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import separable_samples, tiny_model  # noqa: E402

from lvpcnet_core import distributed  # noqa: E402
from lvpcnet_core.progress import SilentProgress  # noqa: E402
from lvpcnet_core.training import TrainSettings, train_stage1, train_stage2  # noqa: E402


def main(out: str) -> None:
    distributed.start("train", "cpu")
    try:
        torch.set_num_threads(1)
        model = tiny_model(seed=1)
        data = separable_samples(model.cfg, n_per_class=40)
        settings = TrainSettings(epochs_stage1=3, epochs_stage2=2, batch_size=24, learning_rate=3e-3, patience=0,
                                 warmup_epochs=1, modality_dropout=0.3, device="cpu")
        fit = train_stage1(model, data, data, settings, SilentProgress())
        train_stage2(model, ("hs",), data, None, settings, SilentProgress(), (60, 100))
        if distributed.is_main():
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out)
            Path(out + ".json").write_text(json.dumps({"best_epoch": fit.best_epoch, "history": fit.history}))
    finally:
        distributed.stop()


if __name__ == "__main__":
    main(sys.argv[1])
