import pytest
import torch

from lvpcnet_core.encoders import Block, ModelConfig, SharedEncoder, TokenEmbedding, attention

from .helpers import tiny_config


@pytest.mark.parametrize("patch,stem,grid,kernel,stride", [
    (11, 0, 3, 5, 3), (9, 0, 3, 3, 3), (7, 0, 3, 3, 2), (3, 0, 3, 1, 1), (1, 0, 3, 1, 1),
    (11, 2, 3, 3, 2), (11, 1, 3, 3, 3), (7, 2, 3, 1, 1), (3, 2, 3, 1, 1), (1, 2, 3, 1, 1)])
def test_token_geometry_centres_the_pixel(patch, stem, grid, kernel, stride):
    cfg = tiny_config(patch_size=patch, token_grid=grid, stem_depth=stem)
    assert (cfg.token_kernel, cfg.token_stride) == (kernel, stride)
    assert cfg.token_kernel + (cfg.grid - 1) * cfg.token_stride + 2 * cfg.stem == patch


def test_even_patch_refused():
    with pytest.raises(ValueError):
        tiny_config(patch_size=10)


@pytest.mark.parametrize("stem,stem_width,reduction", [(0, None, 0), (2, None, 0), (1, 8, 0), (1, None, 2), (0, None, 3),
                                                        (1, None, 4)])
def test_dense_embedding_gathers_the_same_tokens_as_windows(stem, stem_width, reduction):
    torch.manual_seed(0)
    cfg = tiny_config(patch_size=11, stem_depth=stem, stem_width=stem_width, band_reduction=reduction)
    embed = TokenEmbedding(4, cfg)
    embed.train()
    embed(torch.randn(64, 4, 11, 11) * 3 + 1)   # batch-norm statistics away from the identity
    embed.eval()
    block = torch.randn(1, 4, 6 + 10, 5 + 10)  # 6 x 5 pixels plus halo of 5
    rows, cols = torch.meshgrid(torch.arange(6), torch.arange(5), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()
    windows = torch.stack([block[0, :, r:r + 11, c:c + 11] for r, c in zip(rows, cols)])
    dense = embed.gather(embed.dense(block), rows, cols)
    assert torch.allclose(dense, embed(windows), atol=1e-5)
    assert dense.shape[-1] == cfg.width
    convs = [m for m in embed.stem if isinstance(m, torch.nn.Conv2d)]
    reduced = 0 < reduction < 4   # 4 bands: a reduction to 4 or more leaves them as they are
    assert len(convs) == stem + reduced and (not convs or convs[0].in_channels == 4)
    if reduced:
        assert convs[0].kernel_size == (1, 1) and convs[0].out_channels == reduction
    if stem:
        assert convs[-1].out_channels == (stem_width or cfg.width)


@pytest.mark.parametrize("patch,stem", [(11, 1), (7, 0), (5, 1)])
def test_every_window_gives_the_gathered_tokens_of_every_pixel(patch, stem):
    """The ONNX graph's shifted slices and block prediction's gather: the same tokens, pixels in row order."""
    torch.manual_seed(0)
    cfg = tiny_config(patch_size=patch, stem_depth=stem)
    embed = TokenEmbedding(3, cfg).eval()
    h, w, r = 6, 5, patch // 2
    dense = embed.dense(torch.randn(2, 3, h + 2 * r, w + 2 * r))
    rows, cols = (a.flatten() for a in torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"))
    every = embed.every_window(dense, h, w).reshape(2, h * w, cfg.grid ** 2, cfg.width)
    for i in range(2):
        assert torch.equal(every[i], embed.gather(dense[i:i + 1], rows, cols))


def test_config_round_trip():
    cfg = tiny_config()
    assert ModelConfig(**cfg.to_dict()) == cfg


def test_last_block_gives_the_cls_token_of_the_full_block():
    """The last block computes only the CLS output; it must be what the full block gives for it."""
    torch.manual_seed(0)
    block = Block(tiny_config()).eval()
    x = torch.randn(7, 14, tiny_config().width)
    with torch.no_grad():
        assert torch.allclose(block(x, cls_only=True)[:, 0], block(x)[:, 0], atol=1e-5)


def test_inference_attention_equals_the_fused_kernel():
    torch.manual_seed(0)
    q, k, v = (torch.randn(5, 4, 10, 16) for _ in range(3))
    with torch.no_grad():
        fast = attention(q, k, v)
    assert torch.allclose(fast, torch.nn.functional.scaled_dot_product_attention(q, k, v), atol=1e-5)


def test_inference_attention_on_the_blocks_layout_and_in_bf16():
    """Views of one qkv tensor as `Block` passes them, with scores large enough to overflow exp unless the max is
    taken out; under bf16 autocast the output is bf16 and within bf16 rounding of fp32."""
    torch.manual_seed(0)
    qkv = torch.randn(6, 14, 3, 4, 16)
    with torch.no_grad():
        for scale in (1.0, 8.0):
            q, k, v = (qkv * scale).permute(2, 0, 3, 1, 4)
            expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            assert torch.allclose(attention(q, k, v), expected, atol=1e-4 * scale)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert low.dtype == torch.bfloat16
    assert torch.allclose(low.float(), torch.nn.functional.scaled_dot_product_attention(q, k, v), atol=0.05)


def test_shared_encoder_batches_modalities_without_mixing_them():
    """One pass over every modality's tokens gives each modality what its own pass gives."""
    torch.manual_seed(0)
    cfg = tiny_config()
    shared = SharedEncoder(cfg).eval()
    windows = {m: torch.randn(6, cfg.bands[m], cfg.patch_size, cfg.patch_size) for m in cfg.modalities}
    with torch.no_grad():
        together = shared(windows)
        alone = [shared({m: w})[0] for m, w in windows.items()]
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(together, alone))
