"""Token layouts: flatten/unflatten and delay/undo are exact inverses; bad input is named."""

import pytest
import torch

from teachers.layout import TokenLayout


def llama_mimi(**kw) -> TokenLayout:
    # Llama-Mimi: 4 codebooks per frame after a text vocabulary (here 100 ids).
    return TokenLayout(kind="flat_frames", num_codebooks=4, codebook_size=16, offset=100, **kw)


def test_flatten_is_frame_major_with_codebook_offsets():
    layout = llama_mimi()
    codes = torch.tensor([[[1, 2], [3, 4], [5, 6], [7, 8]]])  # [B=1, C=4, F=2]
    ids = layout.flatten(codes)
    assert ids.tolist() == [[101, 119, 137, 155, 102, 120, 138, 156]]
    assert layout.codebook_offsets == [100, 116, 132, 148]
    assert layout.vocab_end == 164
    assert layout.tokens_per_second() == 50.0


@pytest.mark.parametrize("streams", [1, 2])
def test_flatten_unflatten_inverse(streams):
    layout = llama_mimi(num_streams=streams)
    codes = torch.randint(0, 16, (3, layout.channels, 7))
    ids = layout.flatten(codes)
    assert ids.shape == (3, 7 * layout.channels)
    assert int(ids.min()) >= 100 and int(ids.max()) < layout.vocab_end
    assert torch.equal(layout.unflatten(ids), codes)


def test_delay_undo_inverse():
    layout = TokenLayout(kind="multistream", num_codebooks=4, codebook_size=16, num_streams=2, delays=[0, 1, 1, 2])
    codes = torch.randint(0, 16, (2, 8, 5))
    delayed = layout.apply_delay(codes, pad_id=16)
    assert delayed.shape == (2, 8, 7)
    assert torch.equal(delayed[:, 5, :1], torch.full((2, 1), 16))  # stream 1, codebook 1 lags one frame
    assert torch.equal(delayed[:, 3, 2:], codes[:, 3])
    assert torch.equal(layout.undo_delay(delayed), codes)


def test_round_trip_dict():
    layout = llama_mimi(delays=[0, 1, 1, 1])
    assert TokenLayout.from_dict(layout.to_dict()) == layout


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="token_layout.kind"):
        TokenLayout(kind="interleaved", num_codebooks=4, codebook_size=16)
    with pytest.raises(ValueError, match="delays"):
        TokenLayout(kind="multistream", num_codebooks=4, codebook_size=16, delays=[0, 1])
    with pytest.raises(ValueError, match="unknown token_layout fields"):
        TokenLayout.from_dict({"kind": "flat_frames", "num_codebooks": 4, "codebook_size": 16, "codebooks": 4})
    layout = llama_mimi()
    with pytest.raises(ValueError, match="whole number of frames"):
        layout.unflatten(torch.zeros(1, 6, dtype=torch.long) + 100)
    with pytest.raises(ValueError, match="vocabulary slice"):
        layout.unflatten(torch.tensor([[116, 100, 132, 148]]))  # codebooks out of order
    with pytest.raises(ValueError, match="codebook_size"):
        layout.flatten(torch.full((1, 4, 2), 16))
