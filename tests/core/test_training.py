import pytest
import torch

from lvpcnet_core.errors import Cancelled
from lvpcnet_core.network import absence_cases
from lvpcnet_core.progress import SilentProgress
from lvpcnet_core.training import TrainSettings, predict_logits, train_stage1, train_stage2

from .helpers import separable_samples, tiny_model

FAST = dict(epochs_stage1=12, epochs_stage2=6, batch_size=32, patience=0, learning_rate=3e-3)


def _accuracy(model, samples, case):
    windows = {m: torch.from_numpy(w) for m, w in samples.windows.items()}
    return float((predict_logits(model, windows, case).argmax(1).numpy() == samples.labels).mean())


def test_stage1_learns_and_stage2_leaves_stage1_bit_identical():
    torch.manual_seed(0)
    model = tiny_model()
    data = separable_samples(model.cfg)
    settings = TrainSettings(**FAST)
    fit = train_stage1(model, data, data, settings, SilentProgress())
    assert fit.best_accuracy > 0.9
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for case in absence_cases(model.cfg.modalities):
        train_stage2(model, case, data, data, settings, SilentProgress(), (60, 100))
    after = model.state_dict()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    new = [k for k in after if k not in before]
    assert new and all(k.startswith("compensators.") for k in new)
    assert set(model.compensators.keys()) == {"hs->lidar", "lidar->hs"}
    for case in (("hs",), ("lidar",)):
        assert _accuracy(model, data, case) > 0.6


def test_three_modalities_get_six_cases():
    assert len(absence_cases(["hs", "lidar", "sar"])) == 6
    assert len(absence_cases(["a", "b"])) == 2


def test_same_seed_same_weights():
    def run():
        torch.manual_seed(0)
        model = tiny_model(seed=3)
        data = separable_samples(model.cfg, n_per_class=10)
        train_stage1(model, data, data, TrainSettings(**{**FAST, "epochs_stage1": 3}), SilentProgress())
        return model.state_dict()
    a, b = run(), run()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cancel_stops_training():
    model = tiny_model()
    data = separable_samples(model.cfg, n_per_class=5)
    progress = SilentProgress()
    progress.cancel = True
    try:
        train_stage1(model, data, data, TrainSettings(**FAST), progress)
    except Cancelled:
        return
    raise AssertionError("training did not stop")


def test_ablations_build_and_train():
    from lvpcnet_core.prompts import Compensator, Reconstructor

    data = None
    sizes = {}
    for extra in ({"language": False}, {"compensation": "reconstruction"}):
        model = tiny_model(extra=extra)
        data = data or separable_samples(model.cfg, n_per_class=10)
        settings = TrainSettings(**{**FAST, "epochs_stage1": 2, "epochs_stage2": 1, "modality_dropout": 0.5})
        train_stage1(model, data, data, settings, SilentProgress())
        train_stage2(model, ("hs",), data, data, settings, SilentProgress(), (60, 100))
        sizes[type(model.compensators["hs->lidar"])] = model.compensators["hs->lidar"].n_parameters()
    prompts = tiny_model()
    prompts.add_case(("hs",))
    assert isinstance(prompts.compensators["hs->lidar"], Compensator)
    assert sizes[Reconstructor] > 20 * prompts.compensators["hs->lidar"].n_parameters()


def test_v1_has_no_text_feature_and_learns_its_own_class_targets():
    """v1 must measure 'no language': its model holds no text feature, so none can be read in either stage."""
    model = tiny_model(extra={"language": False})
    assert not [k for k in model.state_dict() if k.startswith("text_")]
    with pytest.raises(AttributeError):
        model.text_shared
    data = separable_samples(model.cfg)
    before = {k: v.clone() for k, v in model.prototypes.items()}
    fit = train_stage1(model, data, data, TrainSettings(**FAST), SilentProgress())
    assert fit.best_accuracy > 0.9
    assert all(not torch.equal(before[k], model.prototypes[k]) for k in before)   # shared prototypes trained too
    train_stage2(model, ("hs",), data, data, TrainSettings(**FAST), SilentProgress(), (60, 100))
    assert _accuracy(model, data, ("hs",)) > 0.6


def test_vf_has_one_encoder_per_modality_aligned_with_the_shared_priors():
    model = tiny_model(extra={"decoupling": False})
    assert model.shared is None
    assert [k for k in model.state_dict() if k.startswith("text_")] == ["text_shared"]
    assert all(torch.equal(model.text(m), model.text(None)) for m in model.cfg.modalities)
    data = separable_samples(model.cfg)
    assert train_stage1(model, data, data, TrainSettings(**FAST), SilentProgress()).best_accuracy > 0.9
    train_stage2(model, ("lidar",), data, data, TrainSettings(**FAST), SilentProgress(), (60, 100))
    assert _accuracy(model, data, ("lidar",)) > 0.6


def test_augmentation_gives_each_sample_its_own_view():
    from lvpcnet_core.training import dihedral

    windows = torch.arange(2 * 9, dtype=torch.float32).reshape(2, 1, 3, 3)
    views = torch.tensor([1, 4])
    out = dihedral(windows, views)
    assert torch.equal(out[0], torch.rot90(windows[0], 1, dims=(1, 2)))
    assert torch.equal(out[1], torch.flip(windows[1], dims=(2,)))
    assert dihedral(windows, None) is windows


def test_an_epoch_draws_at_most_samples_per_epoch_pixels_and_epochs_draw_afresh():
    from lvpcnet_core.training import Batches

    samples = separable_samples(tiny_model().cfg, n_per_class=40)   # 120 samples
    batches = Batches(samples, torch.device("cpu"), batch_size=16, augment=False, seed=0, per_epoch=40)
    epochs = [torch.cat([idx for idx, _, _ in batches]) for _ in range(3)]
    assert len(batches) == 3 and all(len(e) == 40 and len(set(e.tolist())) == 40 for e in epochs)
    assert len(set(torch.cat(epochs).tolist())) > 40    # another draw each epoch, not the same 40 pixels
    whole = Batches(samples, torch.device("cpu"), batch_size=16, augment=False, seed=0, per_epoch=1000)
    assert len(whole) == 8 and sorted(torch.cat([idx for idx, _, _ in whole]).tolist()) == list(range(120))
