"""PyTorch view of a LabelTable: ``FaceDataset[i] -> (x, y, i)``.

``x`` is a float32 tensor ``[channels, image_size, image_size]`` normalised with
mean = std = 0.5 (values in [-1, 1]); ``y`` the int64 label (-1 unlabeled); ``i`` the row
index in the table. Each image is loaded as uint8 ``[C, H, W]`` resized to ``image_size``,
then ``augment`` (uint8 -> uint8, optional) and ``transform`` (uint8 -> normalised float)
are applied. The dataset holds only lists, numpy arrays and tensors, so it pickles cheaply
into DataLoader workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2
from tqdm import tqdm

from curate.data.images import open_image

MEAN = STD = (0.5,)


def eval_transform(image_size: int) -> v2.Compose:
    """uint8 ``[C,H,W]`` -> float32 resized to ``image_size`` square, normalised to [-1, 1]."""
    return v2.Compose(
        [
            v2.Resize((image_size, image_size), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(MEAN, STD),
        ]
    )


def train_transform(image_size: int, *, erasing: float = 0.0) -> v2.Compose:
    """Like :func:`eval_transform` plus a small random crop/zoom (80-100 % area, i.e. a shift of
    a few pixels), a horizontal flip and, with ``erasing`` > 0, random erasing with that probability."""
    steps = [
        v2.RandomResizedCrop((image_size, image_size), scale=(0.8, 1.0), ratio=(0.9, 1.1), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(MEAN, STD),
    ]
    if erasing > 0:
        steps.append(v2.RandomErasing(p=erasing, value=0.0))
    return v2.Compose(steps)


class FaceDataset(Dataset):
    """Images and labels of a LabelTable, optionally preloaded into one uint8 tensor."""

    def __init__(
        self,
        table: pd.DataFrame,
        image_size: int = 48,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        channels: int = 3,
        *,
        preload: bool = False,
        workers: int = 4,
    ) -> None:
        """``preload=True`` decodes every image once (``workers`` threads, tqdm bar) into
        ``self.images`` ``[N, C, S, S]`` uint8; 28k 48x48 RGB faces take about 200 MB."""
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {channels}")
        self.filepaths: list[str] = table["filepath"].astype(str).tolist()
        self.labels: np.ndarray = table["label"].to_numpy(dtype=np.int64, copy=True)
        self.image_size = int(image_size)
        self.channels = channels
        self.transform = transform if transform is not None else eval_transform(self.image_size)
        self.augment = augment
        self.images: torch.Tensor | None = self._preload(workers) if preload else None

    def __len__(self) -> int:
        return len(self.filepaths)

    def load(self, index: int) -> torch.Tensor:
        """Image ``index`` as uint8 ``[C, S, S]`` (raises DataError naming a bad file)."""
        img = open_image(self.filepaths[index], mode="L" if self.channels == 1 else "RGB")
        if img.size != (self.image_size, self.image_size):
            img = img.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        array = torch.from_numpy(np.array(img, dtype=np.uint8))
        return array.unsqueeze(0) if self.channels == 1 else array.permute(2, 0, 1).contiguous()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        img = self.images[index] if self.images is not None else self.load(index)
        if self.augment is not None:
            img = self.augment(img)
        return self.transform(img), int(self.labels[index]), int(index)

    def _preload(self, workers: int) -> torch.Tensor:
        out = torch.empty((len(self), self.channels, self.image_size, self.image_size), dtype=torch.uint8)
        with ThreadPoolExecutor(max_workers=max(1, min(workers, os.cpu_count() or 1))) as pool:
            loaded = pool.map(self.load, range(len(self)))
            for i, img in enumerate(tqdm(loaded, total=len(self), desc="preload images", unit="img", disable=None)):
                out[i] = img
        return out
