import numpy as np
import pytest
import torch

from lvpcnet_core.errors import LvpcError
from lvpcnet_core.predict import ScenePredictor, blocks, classify_scene
from lvpcnet_core.progress import SilentProgress
from lvpcnet_core.raster_io import ArrayStack
from lvpcnet_core.sampling import extract_windows

from .helpers import tiny_model


def _pad(a, r):
    return np.pad(a, ((0, 0), (r, r), (r, r)), constant_values=np.nan)


@pytest.mark.parametrize("chunk", [{}, {"chunk": 5}], ids=["default-chunk", "chunks-of-5"])   # many passes, the last partial
@pytest.mark.parametrize("extra", [{}, {"decoupling": False}, {"language": False}], ids=["lvpc", "vf", "v1"])
def test_block_prediction_equals_window_prediction_with_per_pixel_absence(extra, chunk):
    model = tiny_model(extra=extra)
    model.add_case(("hs",))
    model.add_case(("lidar",))
    rng = np.random.default_rng(1)
    h, w, r = 9, 12, model.cfg.patch_size // 2
    hs = rng.normal(size=(5, h, w)).astype(np.float32)
    lidar = rng.normal(size=(1, h, w)).astype(np.float32)
    hs[:, 2, 3] = np.nan          # hs missing at one centre -> lidar-only case
    lidar[0, 5, 7] = np.nan       # lidar missing at another -> hs-only case
    hs[:, 0, 0] = np.nan
    lidar[0, 0, 0] = np.nan       # nothing there -> nodata
    classes, confidence, counts = ScenePredictor(model, [10, 20, 30], **chunk).predict_block(
        {"hs": _pad(hs, r), "lidar": _pad(lidar, r)})
    assert counts == {("hs", "lidar"): h * w - 3, ("hs",): 1, ("lidar",): 1}
    rows, cols = (a.ravel() for a in np.indices((h, w)))
    zeros, ones = np.zeros(5, np.float32), np.ones(5, np.float32)
    win = {"hs": torch.from_numpy(extract_windows(hs, rows, cols, 7, zeros, ones)),
           "lidar": torch.from_numpy(extract_windows(lidar, rows, cols, 7, zeros[:1], ones[:1]))}
    with torch.no_grad():
        probs = model(win).softmax(1)
        for (rr, cc), case in (((2, 3), ("lidar",)), ((5, 7), ("hs",))):
            i = rr * w + cc
            probs[i] = model({m: win[m][i:i + 1] for m in case}, case).softmax(1)[0]
    expected_conf = probs.max(1).values.numpy().reshape(h, w)
    expected_cls = np.array([10, 20, 30])[probs.argmax(1).numpy()].reshape(h, w)
    assert classes[0, 0] == 0 and np.isnan(confidence[0, 0])
    valid = np.ones((h, w), bool)
    valid[0, 0] = False
    np.testing.assert_allclose(confidence[valid], expected_conf[valid], atol=1e-5)
    assert (classes[valid] == expected_cls[valid]).all()


def test_zero_fill_treats_absent_layer_as_zero_input():
    model = tiny_model()
    rng = np.random.default_rng(2)
    hs = rng.normal(size=(5, 4, 4)).astype(np.float32)
    r = model.cfg.patch_size // 2
    _, conf, counts = ScenePredictor(model, [1, 2, 3], fill="zeros").predict_block({"hs": _pad(hs, r)})
    assert counts == {("hs", "lidar"): 16}
    rows, cols = (a.ravel() for a in np.indices((4, 4)))
    win = torch.from_numpy(extract_windows(hs, rows, cols, 7, np.zeros(5, np.float32), np.ones(5, np.float32)))
    with torch.no_grad():
        expected = model({"hs": win}, ("hs",), fill="zeros").softmax(1).max(1).values.numpy()
    np.testing.assert_allclose(conf.ravel(), expected, atol=1e-5)


def test_bf16_classification_is_switchable_logged_and_close_to_fp32(monkeypatch):
    """LVPC_BF16=1 forces bf16 autocast (on any CPU), 0 keeps fp32; the run says which; a bad value is refused."""
    model = tiny_model()
    rng = np.random.default_rng(3)
    r = model.cfg.patch_size // 2
    arrays = {"hs": rng.normal(size=(5, 24, 24)).astype(np.float32),
              "lidar": rng.normal(size=(1, 24, 24)).astype(np.float32)}
    results = {}
    for flag in ("0", "1"):
        monkeypatch.setenv("LVPC_BF16", flag)
        predictor = ScenePredictor(model, [1, 2, 3])
        assert predictor.bf16 == (flag == "1")
        results[flag] = predictor.predict_block({m: _pad(a, r) for m, a in arrays.items()})
        progress = SilentProgress()
        classify_scene(predictor, ArrayStack(arrays), 24, 24, lambda _: None, progress)
        assert any(("bf16 autocast" if flag == "1" else "fp32") in m for m in progress.messages)
    (fp32, conf32, _), (bf16, conf16, _) = results["0"], results["1"]
    assert np.abs(conf16 - conf32).max() < 0.05
    assert (fp32 == bf16).mean() >= 0.9
    monkeypatch.setenv("LVPC_BF16", "yes")
    with pytest.raises(LvpcError, match="LVPC_BF16"):
        ScenePredictor(model, [1, 2, 3])


def test_bf16_auto_is_taken_only_where_it_measures_faster(monkeypatch):
    """auto: no timing where the CPU lacks native bf16; where it has it, the model is timed in both precisions once
    (per shape and thread count) and bf16 is taken only at >= 1.1x fp32's speed; the run logs the measured figure."""
    from lvpcnet_core import predict

    model = tiny_model()
    monkeypatch.setenv("LVPC_BF16", "auto")
    monkeypatch.setattr(predict, "_BF16_SPEEDUP", {})
    monkeypatch.setattr(predict, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr("lvpcnet_core.training.cpu_has_bf16", lambda: False)
    predictor = ScenePredictor(model, [1, 2, 3])
    assert not predictor.bf16 and predictor.bf16_speedup is None and not predict._BF16_SPEEDUP

    monkeypatch.setattr(predict, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr("lvpcnet_core.training.cpu_has_bf16", lambda: True)
    predictor = ScenePredictor(model, [1, 2, 3])
    speedup = predictor.bf16_speedup
    assert speedup is not None and speedup > 0 and predictor.bf16 == (speedup >= predict.BF16_MIN_SPEEDUP)
    assert list(predict._BF16_SPEEDUP.values()) == [speedup]
    again = ScenePredictor(model, [1, 2, 3])   # remembered, not timed again
    assert again.bf16_speedup == speedup and len(predict._BF16_SPEEDUP) == 1
    progress = SilentProgress()
    arrays = {m: np.zeros((model.cfg.bands[m], 8, 8), np.float32) for m in model.cfg.modalities}
    classify_scene(again, ArrayStack(arrays), 8, 8, lambda _: None, progress)
    assert any(f"bf16 measured {speedup:.2f}x fp32's speed" in m for m in progress.messages), progress.messages


def test_blocks_cover_the_grid_once():
    seen = np.zeros((70, 45), int)
    for x, y, w, h in blocks(45, 70, 16):
        seen[y:y + h, x:x + w] += 1
    assert (seen == 1).all()


def test_onnx_runtime_path_classifies_as_torch_with_per_pixel_absence(monkeypatch):
    """LVPC_RUNTIME=onnx: each case that has pixels in the block runs its exported graph over the box around them;
    the probabilities are torch's, the run says which runtime classified; a bad value or a GPU is refused."""
    model = tiny_model()
    model.add_case(("lidar",))
    rng = np.random.default_rng(4)
    r = model.cfg.patch_size // 2
    arrays = {"hs": rng.normal(size=(5, 20, 26)).astype(np.float32),
              "lidar": rng.normal(size=(1, 20, 26)).astype(np.float32)}
    arrays["hs"][:, 12:15, 3:9] = np.nan      # a patch without HS: the lidar-only case
    arrays["lidar"][0, 0, 0] = arrays["hs"][0, 0, 0] = np.nan    # nothing there: nodata
    padded = {m: _pad(a, r) for m, a in arrays.items()}
    expected, expected_counts = ScenePredictor(model, [1, 2, 3]).predict_probabilities(padded)
    monkeypatch.setenv("LVPC_RUNTIME", "onnx")
    log = []
    predictor = ScenePredictor(model, [1, 2, 3], log=log.append)
    got, counts = predictor.predict_probabilities(padded)
    assert counts == expected_counts == {("hs", "lidar"): 20 * 26 - 19, ("lidar",): 18}
    assert np.isnan(got[:, 0, 0]).all() and np.isfinite(np.delete(got.reshape(3, -1), 0, axis=1)).all()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [m.split(" exported")[0] for m in log] == [f"ONNX Runtime: the case {c}" for c in ("lidar", "hs+lidar")]
    progress = SilentProgress()
    classify_scene(predictor, ArrayStack(arrays), 26, 20, lambda _: None, progress)
    assert any("CPU runtime: ONNX Runtime" in m for m in progress.messages)
    with pytest.raises(LvpcError, match="device cpu and the fill 'prompts'"):
        ScenePredictor(model, [1, 2, 3], fill="zeros")
    monkeypatch.setenv("LVPC_RUNTIME", "tensorrt")
    with pytest.raises(LvpcError, match="LVPC_RUNTIME='tensorrt': use torch"):
        ScenePredictor(model, [1, 2, 3])
