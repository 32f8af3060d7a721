from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from curate.data.errors import DataError
from curate.data.readers.imagefolder import read_imagefolder
from curate.data.table import make_table
from curate.data.torch_dataset import FaceDataset, eval_transform, train_transform


@pytest.fixture
def table(tmp_path, make_image):
    make_image(tmp_path / "happy" / "a.png", mode="L", size=(48, 48), color=255)
    make_image(tmp_path / "happy" / "b.jpg", mode="RGB", size=(64, 60), color=(0, 0, 0))
    make_image(tmp_path / "sad" / "c.png", mode="RGBA", size=(48, 48), color=(255, 0, 0, 255))
    return read_imagefolder(tmp_path)


def test_items_are_normalised_tensors(table):
    ds = FaceDataset(table)
    assert len(ds) == 3
    x, y, idx = ds[2]
    assert x.shape == (3, 48, 48) and x.dtype == torch.float32
    assert (y, idx) == (1, 2)
    assert x[:, 0, 0].tolist() == [1.0, -1.0, -1.0]  # red -> (1, -1, -1) with mean = std = 0.5
    assert ds[0][0].min().item() == 1.0 and ds[1][0].max().item() == -1.0
    assert ds[1][0].shape == (3, 48, 48)  # 64x60 resized


def test_channels_and_image_size(table):
    ds = FaceDataset(table, image_size=32, channels=1)
    x, _, _ = ds[0]
    assert x.shape == (1, 32, 32)
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        FaceDataset(table, channels=2)


def test_preload_matches_lazy_loading(table):
    lazy, eager = FaceDataset(table), FaceDataset(table, preload=True, workers=2)
    assert eager.images is not None and eager.images.shape == (3, 3, 48, 48) and eager.images.dtype == torch.uint8
    for i in range(3):
        assert torch.equal(lazy[i][0], eager[i][0])


def test_augment_runs_on_uint8_before_transform(tmp_path):
    half = np.zeros((48, 48), dtype=np.uint8)
    half[:, 24:] = 255
    Image.fromarray(half).save(tmp_path / "half.png")
    table = make_table(["half"], [str(tmp_path / "half.png")], [0], ["x"])
    seen = []

    def mirror(img: torch.Tensor) -> torch.Tensor:
        seen.append(img.dtype)
        return img.flip(-1)

    x, _, _ = FaceDataset(table, augment=mirror)[0]
    assert seen == [torch.uint8]
    assert x[0, 0, 0].item() == 1.0 and x[0, 0, 47].item() == -1.0  # mirrored, then normalised


def test_train_transform_and_pickling(table):
    ds = FaceDataset(table, transform=train_transform(40, erasing=1.0))
    x, _, _ = ds[0]  # an all-white image: only random erasing (value 0) makes zeros
    assert x.shape == (3, 40, 40) and (x == 0).any() and (x == 1).any()
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.filepaths == ds.filepaths and np.array_equal(clone.labels, ds.labels)
    batch = next(iter(DataLoader(FaceDataset(table), batch_size=3, num_workers=1)))
    assert batch[0].shape == (3, 3, 48, 48) and batch[1].dtype == torch.int64 and batch[2].tolist() == [0, 1, 2]


def test_eval_transform_is_deterministic():
    img = torch.randint(0, 256, (3, 48, 48), dtype=torch.uint8)
    out = eval_transform(48)(img)
    assert torch.equal(out, eval_transform(48)(img))
    assert torch.allclose(out, img.float() / 127.5 - 1.0, atol=1e-6)


def test_bad_image_names_the_file(table):
    open(table["filepath"][0], "wb").close()
    with pytest.raises(DataError, match=r"happy/a.png: image file is empty \(0 bytes\)"):
        FaceDataset(table)[0]
