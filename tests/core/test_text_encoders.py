from __future__ import annotations

import json
import os

import numpy as np
import open_clip
import pytest
import torch
from safetensors.torch import save_file

from lvpcnet_core.errors import LvpcError
from lvpcnet_core.language import _DATA_FILE, build_descriptions
from lvpcnet_core.text_encoders import (CLIP_ARCH, CLIP_HUB_FILES, CLIP_HUB_REPO, MiniLMEncoder, encode_descriptions,
                                        load_text_encoder)

TEXTS = ["a", "dense forest canopy with tall trees and many lidar returns",
         "asphalt road", "A remote sensing image of water, open water of rivers, lakes, ponds and reservoirs."]


def reference_features(model: torch.nn.Module, arch: str, texts: list[str]) -> np.ndarray:
    """What open_clip itself computes, on full-length padded tokens."""
    with torch.no_grad():
        return model.encode_text(open_clip.get_tokenizer(arch)(texts), normalize=True).numpy()


@pytest.fixture(scope="module")
def minilm() -> MiniLMEncoder:
    return MiniLMEncoder()


@pytest.fixture(scope="module")
def vit_b32(tmp_path_factory):
    """A randomly initialised ViT-B-32 (QuickGELU) saved as safetensors, and the in-memory model."""
    torch.manual_seed(0)
    model = open_clip.create_model(CLIP_ARCH).eval()
    path = tmp_path_factory.mktemp("clip") / "vit_b32.safetensors"
    save_file(model.state_dict(), str(path))
    yield model, path
    path.unlink()


@pytest.fixture()
def empty_hf_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path / "hf"


def test_local_checkpoint_of_another_architecture_matches_open_clip(tmp_path):
    config = {"embed_dim": 24, "quick_gelu": False,
              "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}
    (tmp_path / "lvpc-tiny-clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "lvpc-tiny-clip.json")
    torch.manual_seed(1)
    model = open_clip.create_model("lvpc-tiny-clip").eval()
    checkpoint = tmp_path / "tiny.safetensors"
    save_file(model.state_dict(), str(checkpoint))
    messages = []
    encoder = load_text_encoder(f"clip:lvpc-tiny-clip:{checkpoint}", log=messages.append)
    assert encoder.dim == 24 and encoder.name == "clip:lvpc-tiny-clip"
    assert "lvpc-tiny-clip" in messages[0] and str(checkpoint) in messages[0]
    features = encoder.encode(TEXTS)
    assert features.dtype == np.float32 and features.shape == (len(TEXTS), 24)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(features, reference_features(model, "lvpc-tiny-clip", TEXTS), atol=1e-5)
    assert not any(p.requires_grad for p in encoder._model.parameters())


def test_clip_path_loads_a_vit_b32_checkpoint(vit_b32):
    model, path = vit_b32
    encoder = load_text_encoder(f"clip:{path}", log=lambda _: None)
    assert encoder.dim == 512
    np.testing.assert_allclose(encoder.encode(TEXTS), reference_features(model, CLIP_ARCH, TEXTS), atol=1e-5)


def test_auto_prefers_clip_weights_found_in_the_hugging_face_cache(vit_b32, empty_hf_home):
    model, path = vit_b32
    repo = empty_hf_home / "hub" / f"models--{CLIP_HUB_REPO.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    os.symlink(path, snapshot / CLIP_HUB_FILES[0])
    messages = []
    encoder = load_text_encoder("auto", log=messages.append)
    assert encoder.name == "clip" and "CLIP" in messages[0] and "cache" in messages[0]
    np.testing.assert_allclose(encoder.encode(TEXTS[:2]), reference_features(model, CLIP_ARCH, TEXTS[:2]), atol=1e-5)


def test_auto_falls_back_to_minilm_and_says_why(empty_hf_home):
    messages = []
    encoder = load_text_encoder("auto", log=messages.append)
    assert encoder.name == "minilm" and encoder.dim == 384
    assert "MiniLM" in messages[0] and "not in the Hugging Face cache" in messages[0]
    assert str(empty_hf_home) in messages[0]


def test_clip_without_cached_weights_and_no_download_is_an_error(empty_hf_home):
    with pytest.raises(LvpcError, match="TEXT_ENCODER 'clip'.*not in the Hugging Face cache"):
        load_text_encoder("clip", log=lambda _: None)


@pytest.mark.parametrize("spec", ["bert", "clip:NoSuchModel:/tmp/x.safetensors", "clip:/no/such/file.safetensors"])
def test_bad_specs_name_the_parameter_and_the_accepted_values(spec):
    with pytest.raises(LvpcError) as err:
        load_text_encoder(spec, log=lambda _: None)
    assert "TEXT_ENCODER" in str(err.value) and "'minilm'" in str(err.value) and "clip:MODEL_NAME" in str(err.value)


def test_unreadable_checkpoint_is_an_lvpc_error(tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(LvpcError, match="TEXT_ENCODER: cannot load"):
        load_text_encoder(f"clip:{bad}", log=lambda _: None)


def test_minilm_places_similar_sentences_closer(minilm):
    features = minilm.encode(["dense forest canopy", "tall trees", "asphalt road"])
    assert features.dtype == np.float32 and features.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    similarity = features @ features.T
    assert similarity[0, 1] > similarity[0, 2] + 0.2
    assert similarity[0, 1] > similarity[1, 2] + 0.2


def test_encode_descriptions_keeps_class_order_per_modality(minilm):
    table = build_descriptions(["trees", "road", "water"], ["hs", "sar"])
    shared, specific = encode_descriptions(table, minilm)
    assert shared.shape == (3, 384) and set(specific) == {"hs", "sar"}
    np.testing.assert_allclose(shared[1], minilm.encode([table.shared["road"]])[0], atol=1e-5)
    np.testing.assert_allclose(specific["sar"][2], minilm.encode([table.specific["sar"]["water"]])[0], atol=1e-5)
    assert not np.allclose(specific["hs"], specific["sar"])


def test_built_in_texts_fit_clip_context():
    names = [n for e in json.loads(_DATA_FILE.read_text())["entries"] for n in e["names"][:1]]
    table = build_descriptions(names, ["hs", "lidar", "sar"])
    tokenizer = open_clip.tokenizer.SimpleTokenizer()
    shared, specific = table.texts()
    longest = max(len(tokenizer.encode(t)) + 2 for t in shared + sum(specific.values(), []))
    assert longest <= 77
