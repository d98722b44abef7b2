"""ONNX export of one absence case of a trained model: whole blocks in, class probabilities out.

The graph computes what `predict.ScenePredictor.predict_probabilities` computes for the pixels of a block whose
centre is valid in every available modality (the others come out NaN: nothing classified), so a tool that runs
ONNX models, ONNX Runtime or the QGIS plugin Deepness (PUT Vision), classifies as LVPC does:

- ONE input, `bands`, float32 (N, C, H, W): the raw (un-normalised) bands of the case's modalities stacked in the
  model's order (e.g. 144 HS bands, then the LiDAR band), NaN = nodata. Deepness feeds one raster layer with one
  input tensor, so a multi-sensor model takes one stacked raster (`gdal_merge.py -separate`); the graph splits it.
- Inside: the training scene's per-band normalisation (NaN becomes the band mean), padding by w//2 as LVPC pads a
  scene's edge (what lies outside the tile counts as missing), the model's own stride-1 token maps, every pixel's
  g x g tokens as g*g shifted slices of them (no data-dependent indexing), the transformers and the classifier
  over CHUNK pixels at a time (an ONNX Scan) and a softmax.
- ONE output, `probabilities`, float32 (N, K, H, W), in the model's class order: H' = H, as Deepness needs.

The file's metadata_props hold what Deepness reads (model_type, class_names, resolution, tile_size, tiles_overlap,
standardization_*, seg_*; JSON values) and LVPC's own (`lvpc_*`: modalities in input order, band counts and
names, class values, names and colours).

`RuntimeCases` is LVPC's own use of such graphs (LVPC_RUNTIME=onnx): exported with `halo`, they read a block with
the w//2 pixels around it, as block prediction does, instead of padding it.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import LvpcError
from .files import atomic_output
from .network import LVPCNet
from .predict import TokenMaps, logits_of_tokens

# What `export` needs, as pip spells it (kept equal to requirements.txt; onnxruntime only runs the file).
PACKAGES = ("onnx==1.23.1", "onnxscript==0.7.2", "onnxruntime==1.30.0")
# The lowest opset the torch exporter writes, in the IR version of ONNX 1.13 that introduced it: ONNX Runtime
# reads such a file from 1.14 on (Deepness installs onnxruntime <= 1.17, which reads IR versions up to 9).
OPSET = 18
IR_VERSION = 8
# Deepness's tile size when the graph's is not fixed, and the one to fix for it: memory grows with the tile's pixels
# (every pixel's tokens are in memory at once): 1.3 GB of ONNX Runtime at 256 x 256 with the default net, 0.4 at 128.
DEEPNESS_TILE = 256
FORMAT = "lvpc-onnx"
# Pixels per step of the graph's Scan: ONNX Runtime runs one operator at a time over a whole step, which is fastest
# when a step's activations stay in the core's cache (one thread, AVX2 EPYC, 128 x 128 block: 64-128 pixels
# 2,100-2,700 px/s, 1,024 about 2,000, the whole block at once 1,440 and 3 GB; docs/performance.md).
CHUNK = 128


class BlockGraph(nn.Module):
    """One absence case of `model` on whole blocks of raw bands; what `export` traces (see the module docstring)."""

    def __init__(self, model: LVPCNet, available: Sequence[str], halo: bool = False) -> None:
        """`halo`: the input carries w//2 pixels around the block (H' = H - w + 1), as block prediction reads it."""
        super().__init__()
        self.model = model.eval()
        self.available = model.ordered(available)
        self.slots = model.slots(self.available)   # refuses a case without prompts
        self.radius = model.cfg.patch_size // 2
        self.halo = halo
        self.eval()

    def forward(self, bands: torch.Tensor) -> torch.Tensor:
        from torch._higher_order_ops.scan import scan

        model, available, r = self.model, self.available, self.radius
        n, _, h, w = bands.shape
        parts = bands.split([model.cfg.bands[m] for m in available], dim=1)
        x = {m: model.normalize(m, part) for m, part in zip(available, parts)}
        if self.halo:
            h, w = h - 2 * r, w - 2 * r
            bands = bands[:, :, r:r + h, r:r + w]
        else:   # padded with 0 = the band mean: ScenePredictor's NaN halo outside the scene
            x = {m: F.pad(block, (r, r, r, r)) for m, block in x.items()}
        maps = TokenMaps(model, x)
        shared = [] if model.shared is None else [model.shared.embed[m].every_window(maps.shared(m), h, w)
                                                  for m in available]
        specific = [model.specific[m].embed.every_window(maps.slot(available, m, compensator), h, w)
                    for m, compensator in self.slots]

        def chunk(carry: torch.Tensor, tokens: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            logits = logits_of_tokens(model, available, tokens[:len(shared)], tokens[len(shared):])
            return carry.clone(), logits.softmax(1)

        # CHUNK pixels at a time (an ONNX Scan), as ScenePredictor does: the transformers' activations of a chunk in
        # memory, not of the block; the last chunk is filled up with zeros
        fill = (-(n * h * w)) % CHUNK
        chunks = [F.pad(t, (0, 0, 0, 0, 0, fill)).reshape(-1, CHUNK, *t.shape[1:]) for t in shared + specific]
        _, probabilities = scan(chunk, bands.new_zeros(1), chunks)
        k = model.cfg.n_classes
        probabilities = probabilities.reshape(-1, k)[:n * h * w].reshape(n, h, w, k).permute(0, 3, 1, 2)
        valid = torch.isfinite(bands).all(1, keepdim=True)   # the centre pixel has every band of the case
        return torch.where(valid, probabilities, torch.full_like(probabilities, math.nan))


def require_onnx(runtime: bool = False) -> None:
    """The ONNX packages are optional: without them, say what to install (`runtime`: onnxruntime too)."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
        if runtime:
            import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise LvpcError(f"{'LVPC_RUNTIME=onnx' if runtime else 'ONNX export'} needs the Python packages onnx, "
                        f"onnxscript{' and onnxruntime' if runtime else ''} ({exc.name} is not installed): run "
                        f"`python -m pip install {' '.join(PACKAGES)}` in LVPC's Python environment") from None


def export(model: LVPCNet, available: Sequence[str], path: str | os.PathLike, info=None,
           tile_size: int | None = None, halo: bool = False) -> dict:
    """Writes the ONNX graph of the case `available` (atomically) with its metadata (Deepness's and the classes'
    from `info`, a model_file.ModelInfo, when given); `tile_size` fixes H = W (Deepness needs a fixed tile), None
    leaves N, H and W dynamic; `halo`: see BlockGraph. Returns the metadata written."""
    require_onnx()
    import onnx

    graph = BlockGraph(model, available, halo)
    channels = sum(model.cfg.bands[m] for m in graph.available)
    # distinct sizes above 1: torch.export specialises dimensions of size 0 or 1 and ties dimensions of equal size
    margin = 2 * graph.radius if halo else 0
    example = torch.zeros(2, channels, 13 + margin, 17 + margin)
    dims = {0: torch.export.Dim("N", min=1), 2: torch.export.Dim("H", min=1 + margin),
            3: torch.export.Dim("W", min=1 + margin)}
    with torch.no_grad():   # the inference attention kernel, as ScenePredictor runs it
        program = torch.onnx.export(graph, (example,), dynamo=True, input_names=["bands"],
                                    output_names=["probabilities"], dynamic_shapes=(dims,), opset_version=OPSET,
                                    verbose=False)
    proto = program.model_proto
    proto.ir_version = IR_VERSION
    proto.producer_name, proto.doc_string = "LVPC", _description(model, graph.available)
    if tile_size:
        for value in (proto.graph.input[0], proto.graph.output[0]):
            for axis in (2, 3):
                value.type.tensor_type.shape.dim[axis].dim_value = tile_size
    meta = metadata(model, graph.available, info, tile_size or DEEPNESS_TILE, halo)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    with atomic_output(path, "OUTPUT") as tmp:
        onnx.save(proto, tmp)
    return meta


class RuntimeCases:
    """ONNX Runtime sessions of a model's absence cases, each exported on first use into a temporary folder of the
    run: the opt-in fast path of block prediction (LVPC_RUNTIME=onnx; 1.2-1.3x torch on an AVX2 CPU,
    docs/performance.md)."""

    def __init__(self, model: LVPCNet, log: Callable[[str], None] | None = None) -> None:
        require_onnx(runtime=True)
        self.model, self.log = model, log
        self.folder = tempfile.mkdtemp(prefix="lvpc-onnx-")
        weakref.finalize(self, shutil.rmtree, self.folder, True)   # removed with this object (or at exit)
        self.sessions: dict[tuple[str, ...], object] = {}

    def probabilities(self, available: tuple[str, ...], bands: np.ndarray) -> np.ndarray:
        """(C, h + w - 1, w' + w - 1) raw bands of the case with their halo -> (K, h, w') probabilities."""
        if available not in self.sessions:
            self.sessions[available] = self._session(available)
        return self.sessions[available].run(None, {"bands": bands[None].astype(np.float32, copy=False)})[0][0]

    def _session(self, available: tuple[str, ...]):
        import onnxruntime as ort

        started = time.perf_counter()
        path = os.path.join(self.folder, f"{'+'.join(available)}.onnx")
        export(self.model, available, path, halo=True)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        if self.log:
            self.log(f"ONNX Runtime: the case {'+'.join(available)} exported in {time.perf_counter() - started:.0f} s")
        return session


def metadata(model: LVPCNet, available: tuple[str, ...], info, tile: int, halo: bool) -> dict[str, str]:
    """metadata_props of the file, every value JSON: Deepness's keys and the classes (with `info`), then LVPC's."""
    channels = sum(model.cfg.bands[m] for m in available)
    radius = model.cfg.patch_size // 2
    meta = {}
    if info is not None:
        grid = info.grid or {}
        meta = {
            "model_type": "Segmentor",
            "class_names": {str(i): name for i, name in enumerate(info.class_names)},
            # Deepness scales its input to 0-1 (/ 255) and then standardises: mean 0 and std 1/255 give the graph the
            # raw values, which it normalises itself
            "standardization_mean": [0.0] * channels,
            "standardization_std": [1 / 255] * channels,
            "tile_size": tile,
            # Deepness keeps half the overlap of each tile: at least w//2 pixels there is what LVPC sees of a scene
            "tiles_overlap": math.ceil(100 * 2 * radius / tile),
            "seg_thresh": 0.0,          # every pixel gets its most probable class, as in LVPC's map
            "seg_small_segment": 0,     # no smoothing of the per-pixel map
            # Deepness resamples the layer to this resolution (cm per pixel): the training grid's, where it is metric
            **({"resolution": grid["pixel_size"][0] * 100} if grid.get("units") == "m" else {}),
            "lvpc_band_names": {m: info.layers[m]["band_names"] for m in available if m in info.layers},
            "lvpc_class_values": list(info.class_values),
            "lvpc_class_names": list(info.class_names),
            "lvpc_colors": [list(c) for c in info.colors],
            "lvpc_created": info.created,
        }
    meta.update({
        "lvpc_format": FORMAT,
        "lvpc_modalities": list(available),
        "lvpc_bands": {m: model.cfg.bands[m] for m in available},
        "lvpc_missing": [m for m in model.cfg.modalities if m not in available],
        "lvpc_patch_size": model.cfg.patch_size,
        "lvpc_halo": radius if halo else 0,   # pixels of the input around the output on each side
    })
    return {key: json.dumps(value) for key, value in meta.items()}


def _description(model: LVPCNet, available: tuple[str, ...]) -> str:
    missing = [m for m in model.cfg.modalities if m not in available]
    stacked = ", then ".join(f"{m} ({model.cfg.bands[m]} bands)" for m in available)
    return (f"LVPC land-cover classifier, {model.cfg.n_classes} classes, from {' + '.join(available)}"
            + (f" (learned prompts stand in for {', '.join(missing)})" if missing else "")
            + f". Input 'bands': raw values of {stacked}, NaN = nodata. Output 'probabilities': softmax per pixel "
              "in the classes' order (metadata lvpc_class_names), NaN where a band of the pixel is missing.")
