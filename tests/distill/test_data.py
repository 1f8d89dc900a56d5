import pytest
import torch

from distill.data import TokenDataModule, window_rows, write_token_dataset


def test_windows_never_cross_utterances_and_pad_right(tmp_path):
    rows = {"train": [list(range(1, 21)), list(range(100, 105))], "validation": [list(range(50, 60))]}
    write_token_dataset(tmp_path / "ds", rows, {"kind": "flat"})
    dm = TokenDataModule(str(tmp_path / "ds"), window=8, batch_size=4, min_length=2)
    dm.setup()
    windows = [dm.datasets["train"][i] for i in range(len(dm.datasets["train"]))]
    for w in windows:
        ids, mask = w["input_ids"], w["mask"]
        real = ids[mask]
        # every window comes from exactly one utterance: contiguous ids of one row
        assert (real[1:] - real[:-1] == 1).all()
        # right padding only: the mask is a prefix
        n = int(mask.sum())
        assert mask[:n].all() and not mask[n:].any()
        assert (ids[n:] == 0).all()
    assert sum(int(w["mask"].sum()) for w in windows) == 25
    assert dm.layout == {"kind": "flat"}


def test_window_rows_stride_and_min_length():
    rows = [torch.arange(10)]
    assert [n for _, n in window_rows(rows, 4, 4, 1)] == [4, 4, 2]
    assert [n for _, n in window_rows(rows, 4, 4, 3)] == [4, 4]
    multistream = [torch.arange(20).view(2, 10)]
    pieces = window_rows(multistream, 4, 4, 1)
    assert pieces[0][0].shape == (2, 4)


def test_missing_dataset_and_column_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.path"):
        TokenDataModule(str(tmp_path / "nope")).setup()
    write_token_dataset(tmp_path / "ds", {"train": [[1, 2, 3]], "validation": [[1, 2, 3]]})
    with pytest.raises(ValueError, match="data.column"):
        TokenDataModule(str(tmp_path / "ds"), column="codes", min_length=2).setup()
    with pytest.raises(FileExistsError):
        write_token_dataset(tmp_path / "ds", {"train": [[1]]})


def test_windows_must_respect_the_layout_step(tmp_path):
    rows = {"train": [list(range(1, 33))], "validation": [list(range(1, 17))]}
    write_token_dataset(tmp_path / "ds", rows, {"tokens_per_step": 8})
    TokenDataModule(str(tmp_path / "ds"), window=16, min_length=2).setup()
    with pytest.raises(ValueError, match="tokens_per_step=8"):
        TokenDataModule(str(tmp_path / "ds"), window=12, min_length=2).setup()
    with pytest.raises(ValueError, match="data.stride"):
        TokenDataModule(str(tmp_path / "ds"), window=16, stride=4, min_length=2).setup()
