"""The embedded mel-RVQ codec, the Mimi adapter and the flat token layout."""

import math

import pytest
import torch

from teachers.codec import FRAME_SIZE, MelRVQCodec, MelRVQConfig, MimiCodec, load_codec
from teachers.codec.layout import FlatLayout


def _speechy(seconds: float, seed: int) -> torch.Tensor:
    """Gliding harmonic tones with an amplitude envelope: enough structure for k-means."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * 24_000)) / 24_000
    f0 = 120 + 60 * torch.rand(1, generator=g) + 40 * torch.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / 24_000
    wav = sum(torch.sin(h * phase) / h for h in range(1, 6)) * (0.5 + 0.5 * torch.sin(2 * math.pi * 2 * t)) * 0.2
    return wav + 0.003 * torch.randn(t.shape, generator=g)


@pytest.fixture(scope="module")
def codec() -> MelRVQCodec:
    cfg = MelRVQConfig(num_codebooks=3, codebook_size=16, n_mels=32, griffin_lim_iters=8)
    return MelRVQCodec.fit([_speechy(2.0, s) for s in range(3)], cfg, iters=5, log=lambda *_: None)


def test_encode_decode_shapes_and_frame_rate(codec):
    wav = torch.stack([_speechy(1.0, 7), _speechy(1.0, 8)])[:, : 5 * FRAME_SIZE + 100]
    codes = codec.encode(wav)
    assert codec.frame_rate == 12.5 and codec.frame_size == 1920
    assert codes.shape == (2, 3, 6) and codes.dtype == torch.long  # ceil((5 * 1920 + 100) / 1920) frames
    assert 0 <= codes.min() and codes.max() < 16
    out = codec.decode(codes)
    assert out.shape == (2, 6 * FRAME_SIZE) and torch.isfinite(out).all()
    assert torch.equal(codec.encode(wav, num_quantizers=2), codes[:, :2])


def test_encode_is_causal(codec):
    # A frame's codes depend only on audio up to its end, so a prefix encodes to a prefix (streaming == full).
    wav = _speechy(1.2, 3)[None, : 7 * FRAME_SIZE]
    full = codec.encode(wav)
    for n in (1, 3, 6):
        assert torch.equal(codec.encode(wav[:, : n * FRAME_SIZE]), full[..., :n])


def test_more_codebooks_quantise_better(codec):
    feats = codec.features(_speechy(1.0, 11)[None])
    errs = [(codec.dequantize(codec.encode(_speechy(1.0, 11)[None], k)) - feats).pow(2).mean().item() for k in (1, 2, 3)]
    assert errs[0] > errs[1] > errs[2]


def test_griffin_lim_reconstructs_mel(codec):
    wav = _speechy(1.0, 5)[None, : 10 * FRAME_SIZE]
    rebuilt = codec.features_to_wav(codec.features(wav))
    a, b = codec.analysis.log_mel(wav), codec.analysis.log_mel(rebuilt)
    # Unquantised features through NNLS + 8 Griffin-Lim iterations: log-mel within 1.0 nat on average (silence-like
    # noise bins dominate the error); random audio is ~3 nats off.
    assert (a - b).abs().mean() < 1.0
    assert (a - codec.analysis.log_mel(torch.randn_like(wav) * 0.1)).abs().mean() > 2.0


def test_save_load_roundtrip(codec, tmp_path):
    codec.save(tmp_path)
    loaded = load_codec(tmp_path)
    wav = _speechy(0.5, 9)[None]
    # codebooks are stored in fp16: ties may flip, so compare reconstruction, not only codes
    assert (loaded.encode(wav) == codec.encode(wav)).float().mean() > 0.9
    assert isinstance(loaded, MelRVQCodec) and loaded.config == codec.config


def test_mimi_adapter_from_local_path(tmp_path):
    from transformers import MimiConfig, MimiModel

    cfg = MimiConfig(hidden_size=32, num_filters=4, num_residual_layers=1, upsampling_ratios=[8, 6, 5, 4], num_hidden_layers=1,
                     num_attention_heads=2, num_key_value_heads=2, head_dim=16, intermediate_size=64, codebook_size=16,
                     codebook_dim=16, vector_quantization_hidden_dimension=16, num_quantizers=4, num_semantic_quantizers=1,
                     upsample_groups=32, sliding_window=16)
    MimiModel(cfg).save_pretrained(tmp_path)
    mimi = load_codec(tmp_path)
    assert isinstance(mimi, MimiCodec) and mimi.frame_size == 1920 and mimi.frame_rate == 12.5
    codes = mimi.encode(torch.randn(2, 3 * FRAME_SIZE + 10))
    assert codes.shape == (2, 4, 4) and codes.max() < 16
    assert mimi.decode(codes).shape == (2, 4 * FRAME_SIZE)
    with pytest.raises(FileNotFoundError):
        MimiCodec.from_pretrained(tmp_path / "missing")


@pytest.mark.parametrize("ts,tt,delay", [(5, 9, 2), (12, 3, 2), (4, 4, 3), (1, 1, 0), (0, 2, 2)])
def test_layout_flatten_unflatten_inverse(ts, tt, delay):
    layout = FlatLayout(num_codebooks=3, codebook_size=10, delay=delay)
    src, tgt = torch.randint(0, 10, (3, ts)), torch.randint(0, 10, (3, tt))
    ids = layout.flatten(src, tgt)
    steps = layout.num_steps(ts, tt)
    assert ids.shape == (steps * 6,) and 0 <= ids.min() and ids.max() < layout.vocab_size
    grid = ids.reshape(steps, 6)
    assert (grid[:delay, 3:] == layout.special_tokens["tgt_wait"]).all()
    assert (grid[-1, 3:] == layout.special_tokens["tgt_end"]).all()  # every utterance signals the end of its target
    assert (ids != layout.special_tokens["pad"]).all()
    s2, t2 = layout.unflatten(ids)
    assert torch.equal(s2, src) and torch.equal(t2, tgt)
    assert FlatLayout.from_dict(layout.to_dict()) == layout


def test_layout_offsets_are_disjoint():
    layout = FlatLayout(num_codebooks=4, codebook_size=1024, delay=2)
    starts = sorted(o for s in ("source", "target") for o in layout.to_dict()["offsets"][s])
    assert starts[0] == layout.num_special
    assert all(b - a == 1024 for a, b in zip(starts, starts[1:], strict=False))
    assert starts[-1] + 1024 == layout.vocab_size
    assert layout.to_token_layout().codebook_offsets == starts  # agrees with the project-wide TokenLayout
    with pytest.raises(ValueError):
        layout.offset("text", 0)
