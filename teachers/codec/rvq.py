"""Residual vector quantisation fitted by k-means (plain torch)."""

from __future__ import annotations

import torch
from torch import Tensor


def nearest(x: Tensor, codebook: Tensor, chunk: int = 16384) -> Tensor:
    """Index of the nearest codeword (L2) for each row of ``x [N, D]`` given ``codebook [C, D]`` → ``[N]`` int64."""
    c2 = (codebook * codebook).sum(-1)
    out = []
    for i in range(0, x.shape[0], chunk):
        xi = x[i : i + chunk]
        out.append((c2[None] - 2 * xi @ codebook.T).argmin(-1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def kmeans(x: Tensor, k: int, iters: int = 20, seed: int = 0) -> Tensor:
    """Lloyd's k-means on ``x [N, D]``; empty clusters are re-seeded from the worst-fitted points. → ``[k, D]``."""
    gen = torch.Generator().manual_seed(seed)
    if x.shape[0] < k:
        raise ValueError(f"k-means needs at least k={k} points, got {x.shape[0]}")
    centers = x[torch.randperm(x.shape[0], generator=gen)[:k]].clone()
    for _ in range(iters):
        idx = nearest(x, centers)
        sums = torch.zeros_like(centers).index_add_(0, idx, x)
        counts = torch.bincount(idx, minlength=k).to(x.dtype)
        empty = counts == 0
        centers = torch.where(empty[:, None], centers, sums / counts.clamp(min=1)[:, None])
        if empty.any():
            err = ((x - centers[idx]) ** 2).sum(-1)
            centers[empty] = x[err.topk(int(empty.sum())).indices]
    return centers


def fit_rvq(x: Tensor, num_codebooks: int, codebook_size: int, iters: int = 20, seed: int = 0, log=None) -> Tensor:
    """Fit ``num_codebooks`` stages, each k-means on the previous residual. → ``[K, C, D]``."""
    residual = x.clone()
    books = []
    for k in range(num_codebooks):
        book = kmeans(residual, codebook_size, iters, seed + k)
        residual = residual - book[nearest(residual, book)]
        books.append(book)
        if log is not None:
            log(f"rvq stage {k}: residual mse {residual.pow(2).mean().item():.4f}")
    return torch.stack(books)


def rvq_encode(x: Tensor, books: Tensor) -> Tensor:
    """``x [N, D]`` → codes ``[K, N]`` (greedy residual assignment)."""
    residual = x
    codes = []
    for book in books:
        idx = nearest(residual, book)
        residual = residual - book[idx]
        codes.append(idx)
    return torch.stack(codes)


def rvq_decode(codes: Tensor, books: Tensor) -> Tensor:
    """codes ``[K, N]`` (K may be fewer than the stages fitted) → ``[N, D]``."""
    return sum(books[k][codes[k]] for k in range(codes.shape[0]))
