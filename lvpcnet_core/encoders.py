"""Visual encoders of LVPCnet: one shared ViT for every modality and one specific ViT per modality.

Each pixel is seen through a w x w window: a convolutional stem of 3x3 'valid' convolutions (batch norm,
GELU) shrinks it to w' = w - 2 * stem, which a strided convolution (kernel k, stride s with k + (g - 1) s = w')
cuts into a g x g grid of tokens, so the centre pixel sits in the centre token. The stem gives the
transformer local spectral-spatial features to attend over, which a ViT cannot learn from a few hundred
labelled pixels alone (docs/benchmarks/README.md). Valid convolutions need no padding, so the same layers run
with stride 1 over a whole block give every pixel's tokens at once (`TokenEmbedding.dense`), which is how
whole scenes are classified without cutting and re-embedding overlapping windows.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ModelConfig:
    """Everything needed to rebuild the network; stored in the model file."""

    modalities: list[str]
    bands: dict[str, int]
    n_classes: int
    text_dim: int
    patch_size: int = 11
    token_grid: int = 3
    stem_depth: int = 1
    stem_width: int | None = None   # channels of the stem's convolutions; None = `width` (as before issue 15)
    # a modality of more bands first goes through a 1x1 convolution to this many (0 = never): the stem's 3x3
    # convolution over every band of every window was most of a training step on hyperspectral layers
    band_reduction: int = 32
    width: int = 64
    depth: int = 4   # 2 classifies twice as fast but lost 1.8 OA points on Brandenburg's development split
    heads: int = 4
    mlp_ratio: float = 2.0
    prompt_length: int = 4
    temperature: float = 0.07
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.patch_size < 1 or self.patch_size % 2 == 0:
            raise ValueError(f"patch size must be odd and positive, got {self.patch_size}")
        if not self.modalities:
            raise ValueError("a model needs at least one modality")
        if self.stem_width is None:
            self.stem_width = self.width

    @property
    def stem(self) -> int:
        """3x3 valid convolutions in front of the tokens (fewer on windows too small for them)."""
        return max(0, min(self.stem_depth, (self.patch_size - 1) // 2))

    @property
    def token_window(self) -> int:
        """Side of what the stem leaves of a window, which the tokens cover."""
        return self.patch_size - 2 * self.stem

    @property
    def grid(self) -> int:
        return min(self.token_grid, self.token_window)

    @property
    def token_stride(self) -> int:
        return max(1, self.token_window // self.grid) if self.grid > 1 else 1

    @property
    def token_kernel(self) -> int:
        return self.token_window - (self.grid - 1) * self.token_stride

    @property
    def decoupled(self) -> bool:
        """False = ablation vf: one encoder per modality, no shared/specific split."""
        return bool(self.extra.get("decoupling", True))

    def to_dict(self) -> dict:
        return asdict(self)


class TokenEmbedding(nn.Module):
    """Convolutional stem, then a strided convolution cutting the window into g x g tokens of `width` features."""

    def __init__(self, in_channels: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.stride = cfg.token_stride
        self.grid = cfg.grid
        layers: list[nn.Module] = []
        if 0 < cfg.band_reduction < in_channels:
            layers.append(nn.Conv2d(in_channels, cfg.band_reduction, 1, bias=False))
            in_channels = cfg.band_reduction
        for i in range(cfg.stem):
            layers += [nn.Conv2d(in_channels if i == 0 else cfg.stem_width, cfg.stem_width, 3, bias=False),
                       nn.BatchNorm2d(cfg.stem_width), nn.GELU()]
        self.stem = nn.Sequential(*layers)
        self.conv = nn.Conv2d(cfg.stem_width if cfg.stem else in_channels, cfg.width, cfg.token_kernel,
                              stride=cfg.token_stride)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, C, w, w) windows -> (B, g*g, width) tokens."""
        return self.conv(self.stem(channels_last(windows))).flatten(2).transpose(1, 2)

    def dense(self, block: torch.Tensor) -> torch.Tensor:
        """(1, C, h + w - 1, w' + w - 1) padded block -> (1, width, H', W') token map at stride 1."""
        return F.conv2d(self.stem(channels_last(block)), self.conv.weight, self.conv.bias)

    def gather(self, dense_map: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Tokens of the windows whose top-left corners are (rows, cols) in a `dense` map: (N, g*g, width)."""
        offsets = torch.arange(self.grid, device=dense_map.device) * self.stride
        r = (rows[:, None] + offsets[None, :])[:, :, None]
        c = (cols[:, None] + offsets[None, :])[:, None, :]
        flat = (r * dense_map.shape[-1] + c).reshape(len(rows), -1)
        # a channels-last map is (H*W, width) in memory: the tokens come out in the transformer's layout
        return dense_map[0].permute(1, 2, 0).reshape(-1, dense_map.shape[1])[flat]

    def every_window(self, dense_map: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """Tokens of every window of `dense` maps (N, width, rows + (g-1)s, cols + (g-1)s), pixel by pixel in row
        order: (N * rows * cols, g*g, width). The same tokens as `gather` of all pixels, as g*g shifted slices of
        the maps (no data-dependent indexing): what an ONNX graph of whole blocks computes (onnx_export.py)."""
        s = self.stride
        shifted = [dense_map[:, :, i * s:i * s + rows, j * s:j * s + cols] for i in range(self.grid)
                   for j in range(self.grid)]
        return torch.stack(shifted, 1).permute(0, 3, 4, 1, 2).reshape(-1, len(shifted), dense_map.shape[1])


def channels_last(images: torch.Tensor) -> torch.Tensor:
    """Pixel-interleaved layout for the convolutions: 1.1-1.2x faster on this CPU's oneDNN kernels
    (docs/performance.md), and a token map whose gathered tokens need no transpose."""
    return images.contiguous(memory_format=torch.channels_last)


class Block(nn.Module):
    """Pre-norm transformer block (multi-head self-attention + MLP)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, hidden = cfg.width, int(cfg.width * cfg.mlp_ratio)
        self.heads = cfg.heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))

    def forward(self, x: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        """(B, T, d) -> (B, T, d); with `cls_only`, (B, 1, d): only the CLS token's output, which is all the last
        block has to give (its keys and values still come from every token), at a tenth of its MLP and queries."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if cls_only:
            x, q = x[:, :1], q[:, :, :1]
        attended = attention(q, k, v).transpose(1, 2).reshape(b, x.shape[1], d)
        x = x + self.proj(attended)
        return x + self.mlp(self.norm2(x))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over (B, heads, T, d/heads).

    Sequences here are 10-18 tokens long. For inference on the CPU: two batched matmuls around a softmax written
    out in place, in fp32 also under bf16 autocast; torch's softmax over 10 values is 4x slower than that, and the
    fused kernel takes 1.7x the time of the whole (`python -m bench.kernels`). For training the fused kernel's
    backward is the faster one."""
    if torch.is_grad_enabled() or q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v)
    scores = (q @ k.transpose(-2, -1)).float()
    weights = scores.sub_(scores.amax(-1, keepdim=True)).mul_(q.shape[-1] ** -0.5).exp_()
    return weights.div_(weights.sum(-1, keepdim=True)).to(v.dtype) @ v


class Transformer(nn.Module):
    """CLS token + position embedding + N blocks; optional VPT-deep prompts inserted after CLS at every layer."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos = nn.Parameter(torch.randn(1, cfg.grid**2 + 1, cfg.width) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, tokens: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, width) tokens [+ (depth, L, width) prompts] -> (B, width) CLS feature."""
        b = tokens.shape[0]
        x = torch.cat([self.cls.expand(b, -1, -1), tokens], dim=1) + self.pos
        n_prompt = 0
        for layer, block in enumerate(self.blocks):
            if prompts is not None:
                fresh = prompts[layer].unsqueeze(0).expand(b, -1, -1).to(x.dtype)
                x = torch.cat([x[:, :1], fresh, x[:, 1 + n_prompt:]], dim=1)
                n_prompt = prompts.shape[1]
            x = block(x, cls_only=layer == len(self.blocks) - 1)
        return self.norm(x[:, 0])


class Projection(nn.Sequential):
    """MLP head from the visual width into the text space; in fp32 under the CPU's bf16 autocast of classification:
    it runs once per pixel (the transformer once per token), so fp32 costs little there and keeps the classified
    features closer to fp32's (docs/performance.md). Same parameters as the nn.Sequential it was."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_autocast_enabled("cpu"):
            return super().forward(x)
        with torch.autocast("cpu", enabled=False):
            return super().forward(x.float())


def projection(cfg: ModelConfig) -> nn.Module:
    return Projection(nn.Linear(cfg.width, cfg.width), nn.GELU(), nn.Linear(cfg.width, cfg.text_dim))


class SpecificEncoder(nn.Module):
    """E_sp^k: a ViT of its own for one modality."""

    def __init__(self, in_channels: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed = TokenEmbedding(in_channels, cfg)
        self.transformer = Transformer(cfg)
        self.head = projection(cfg)

    def encode_tokens(self, tokens: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.transformer(tokens, prompts))

    def forward(self, windows: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode_tokens(self.embed(windows), prompts)


class SharedEncoder(nn.Module):
    """E_sh: one ViT for all modalities, each with its own token embedding (band counts differ)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed = nn.ModuleDict({m: TokenEmbedding(cfg.bands[m], cfg) for m in cfg.modalities})
        self.transformer = Transformer(cfg)
        self.head = projection(cfg)

    def encode_tokens(self, tokens: list[torch.Tensor]) -> list[torch.Tensor]:
        """Features of several modalities' tokens (one tensor each) in ONE pass of the shared weights."""
        features = self.head(self.transformer(torch.cat(tokens) if len(tokens) > 1 else tokens[0]))
        return list(features.split([t.shape[0] for t in tokens]))

    def forward(self, windows: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Shared features of every modality in `windows`, in its order."""
        return self.encode_tokens([self.embed[m](w) for m, w in windows.items()])


class Classifier(nn.Module):
    """Classifies the complete representation [mean_k c_k, s_1, ..., s_m] (unit-norm features; no c_k for vf)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        size = (len(cfg.modalities) + int(cfg.decoupled)) * cfg.text_dim
        self.net = nn.Sequential(nn.LayerNorm(size), nn.Linear(size, cfg.n_classes))

    def forward(self, shared: list[torch.Tensor], specific: list[torch.Tensor]) -> torch.Tensor:
        return self.net(torch.cat([torch.stack(shared).mean(0), *specific] if shared else specific, dim=1))
