"""Token data: HF ``datasets`` shards on disk, windowed per utterance, right-padded and masked.

A token dataset is a ``DatasetDict`` saved with ``save_to_disk`` (splits ``train``, ``validation``
and optionally ``test``) whose rows hold one utterance each: a ``input_ids`` column of ``[T]``
(flat streams) or ``[S][T]`` (multistream) token ids. ``layout.json`` beside it describes the
token layout. Windows never cross an utterance boundary; the last window of an utterance is
right-padded and its padding masked — a recurrent model must never be left-padded, since
padding would leak into its state.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

SPLITS = ("train", "validation", "test")
LAYOUT = "layout.json"


def write_token_dataset(path: str | Path, splits: dict[str, list], layout: dict | None = None, overwrite: bool = False) -> Path:
    """Write ``{split: [token rows]}`` as a DatasetDict at ``path`` atomically (temp dir + rename)."""
    from datasets import Dataset as HFDataset
    from datasets import DatasetDict

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"token dataset {path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        dd = DatasetDict({name: HFDataset.from_dict({"input_ids": rows}) for name, rows in splits.items()})
        dd.save_to_disk(str(tmp / "data"))
        for item in (tmp / "data").iterdir():
            item.rename(tmp / item.name)
        (tmp / "data").rmdir()
        (tmp / LAYOUT).write_text(json.dumps(layout or {}, indent=1))
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def window_rows(rows: list[Tensor], window: int, stride: int, min_length: int) -> list[tuple[Tensor, int]]:
    """Cut each row ``[..., T]`` into windows of ``window`` steps (start every ``stride``).

    Returns (window tensor ``[..., L]`` with L ≤ window, L) pairs; windows shorter than
    ``min_length`` are dropped. No window spans two rows.
    """
    out = []
    for row in rows:
        T = row.shape[-1]
        for start in range(0, max(T - 1, 1), stride):
            piece = row[..., start : start + window]
            if piece.shape[-1] >= min_length:
                out.append((piece, piece.shape[-1]))
            if start + window >= T:
                break
    return out


class WindowDataset(Dataset):
    """Fixed-length right-padded windows with a validity mask."""

    def __init__(self, windows: list[tuple[Tensor, int]], window: int, pad_id: int):
        self.windows, self.window, self.pad_id = windows, window, pad_id

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        piece, n = self.windows[i]
        ids = torch.full((*piece.shape[:-1], self.window), self.pad_id, dtype=torch.long)
        ids[..., :n] = piece
        mask = torch.zeros(self.window, dtype=torch.bool)
        mask[:n] = True
        return {"input_ids": ids, "mask": mask}


class TokenDataModule(L.LightningDataModule):
    """Windows over a token dataset on disk.

    Args:
        path: directory written by :func:`write_token_dataset` (or the corpus scripts).
        window: tokens per training window.
        batch_size: windows per batch.
        stride: step between window starts (default: ``window``, no overlap).
        column: the token column to read.
        pad_id: id written into padded positions (masked out of every loss and metric).
        min_length: drop windows shorter than this.
        eval_batch_size: batch size for validation/test (default: ``batch_size``).
        num_workers: DataLoader workers.
        shuffle: shuffle training windows (off for exact run-to-run comparisons, e.g. DDP vs 1 process).
        seed: shuffling seed.
    """

    def __init__(
        self,
        path: str,
        window: int = 256,
        batch_size: int = 8,
        stride: int | None = None,
        column: str = "input_ids",
        pad_id: int = 0,
        min_length: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        shuffle: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        if window < 2:
            raise ValueError(f"data.window must be ≥ 2, got {window}")
        self.path = Path(path)
        self.window, self.batch_size = window, batch_size
        self.stride = stride or window
        self.column, self.pad_id, self.min_length = column, pad_id, min_length
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers, self.shuffle, self.seed = num_workers, shuffle, seed
        self.datasets: dict[str, WindowDataset] = {}
        self.layout: dict = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        from datasets import load_from_disk

        if not (self.path / "dataset_dict.json").is_file():
            raise FileNotFoundError(
                f"data.path={str(self.path)!r} is not a token dataset (no dataset_dict.json); "
                "build one with the corpus scripts or set data.path"
            )
        dd = load_from_disk(str(self.path))
        if "train" not in dd or "validation" not in dd:
            raise ValueError(f"token dataset {self.path} needs 'train' and 'validation' splits, has {list(dd)}")
        layout_file = self.path / LAYOUT
        self.layout = json.loads(layout_file.read_text()) if layout_file.is_file() else {}
        per_step = int(self.layout.get("tokens_per_step", 1))
        # Flattened frames: a window must start and end on a step boundary, or the student would
        # see codebook slots shifted from the teacher's positions at the window start.
        for name, value in (("window", self.window), ("stride", self.stride)):
            if value % per_step:
                raise ValueError(
                    f"data.{name}={value} is not a multiple of the layout's tokens_per_step={per_step} ({layout_file}); "
                    f"use e.g. {max(per_step, value - value % per_step)}"
                )
        for split in SPLITS:
            if split not in dd:
                continue
            if self.column not in dd[split].column_names:
                raise ValueError(f"data.column={self.column!r} not in split {split!r}; columns: {dd[split].column_names}")
            rows = [torch.as_tensor(r, dtype=torch.long) for r in dd[split].with_format(None)[self.column]]
            self.datasets[split] = WindowDataset(window_rows(rows, self.window, self.stride, self.min_length), self.window, self.pad_id)
            if len(self.datasets[split]) == 0:
                raise ValueError(f"split {split!r} of {self.path} yields no window ≥ data.min_length={self.min_length}")

    def _loader(self, split: str, shuffle: bool, batch_size: int) -> DataLoader:
        if split not in self.datasets:
            raise ValueError(f"token dataset {self.path} has no {split!r} split")
        dataset = self.datasets[split]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # Our own sampler (the trainer configs set use_distributed_sampler: false): rank r takes
            # windows r, r + world, ... so an unshuffled global batch equals the one-process batch.
            sampler = DistributedSampler(dataset, shuffle=shuffle, seed=self.seed, drop_last=False)
            return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=self.num_workers)
        g = torch.Generator().manual_seed(self.seed)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=g, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.shuffle, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False, self.eval_batch_size)


def build_teacher_samples(
    teacher, path: str | Path, num_train: int, num_validation: int, length: int, seed: int = 0, temperature: float = 1.0
) -> Path:
    """Make a small token dataset by sampling the teacher (reused if ``path`` already holds one)."""
    path = Path(path)
    if (path / "dataset_dict.json").is_file():
        return path
    rows = teacher.sample_sequences(num_train + num_validation, length, seed=seed, temperature=temperature)
    layout = {**teacher.token_layout, "source": f"samples of teacher {teacher.source}", "temperature": temperature, "seed": seed}
    try:
        return write_token_dataset(path, {"train": rows[:num_train], "validation": rows[num_train:]}, layout)
    except OSError:
        # Another rank (same seed, same samples) published it first.
        if (path / "dataset_dict.json").is_file():
            return path
        raise
