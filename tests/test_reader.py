"""read_data_sets: the classic TensorFlow reader's contract on the exported npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline.reader import DataSet, read_data_sets
from tests.support.data import TinyDataset


@pytest.fixture
def keras_npz(tmp_path: Path, tiny: TinyDataset) -> Path:
    path = tmp_path / "mnist.npz"
    (x_train, y_train), (x_test, y_test) = tiny.arrays["train"], tiny.arrays["test"]
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def test_splits_scaling_and_one_hot(keras_npz: Path, tiny: TinyDataset) -> None:
    data = read_data_sets(keras_npz, one_hot=True, validation_size=10)
    images, labels = tiny.arrays["train"]
    assert (data.train.num_examples, data.validation.num_examples, data.test.num_examples) == (50, 10, 20)
    assert data.train.images.dtype == np.float32 and data.train.images.shape == (50, 784)
    np.testing.assert_allclose(data.validation.images, images[:10].reshape(10, -1) / 255, rtol=1e-6)
    np.testing.assert_array_equal(data.train.labels.argmax(axis=1), labels[10:])


def test_next_batch_covers_each_epoch_once_and_reshuffles(keras_npz: Path) -> None:
    data = read_data_sets(keras_npz, validation_size=0, reshape=False, dtype=np.uint8, seed=1)
    epoch_one = np.concatenate([data.train.next_batch(20)[1] for _ in range(3)])
    epoch_two = np.concatenate([data.train.next_batch(20)[1] for _ in range(3)])
    assert sorted(epoch_one.tolist()) == sorted(data.train.labels.tolist()) == sorted(epoch_two.tolist())
    assert epoch_one.tolist() != epoch_two.tolist()
    assert data.train.epochs_completed == 1


def test_batches_repeat_for_the_same_seed_and_cross_epochs(keras_npz: Path) -> None:
    first = read_data_sets(keras_npz, validation_size=0, seed=5).train
    second = read_data_sets(keras_npz, validation_size=0, seed=5).train
    for _ in range(4):  # 4 x 25 = 100 > 60: crosses an epoch boundary
        a, b = first.next_batch(25), second.next_batch(25)
        np.testing.assert_array_equal(a[0], b[0])
        assert len(a[0]) == 25


def test_unshuffled_batches_follow_file_order() -> None:
    dataset = DataSet(np.arange(5), np.arange(5))
    assert dataset.next_batch(3, shuffle=False)[1].tolist() == [0, 1, 2]
    assert dataset.next_batch(3, shuffle=False)[1].tolist() == [3, 4, 0]


def test_uses_the_exported_validation_split(tmp_path: Path, tiny: TinyDataset) -> None:
    path = tmp_path / "split.npz"
    (x, y), (xt, yt) = tiny.arrays["train"], tiny.arrays["test"]
    np.savez(path, x_train=x[5:], y_train=y[5:], x_val=x[:5], y_val=y[:5], x_test=xt, y_test=yt)
    data = read_data_sets(path)
    assert (data.train.num_examples, data.validation.num_examples) == (55, 5)


def test_labels_follow_one_hot_whatever_the_npz_holds(tmp_path: Path, tiny: TinyDataset) -> None:
    """An npz exported with one_hot=true reads back as class numbers, and the class count is
    the file's: 26 for a letters-like npz, with no num_classes given."""
    (x, y), (xt, yt) = tiny.arrays["train"], tiny.arrays["test"]
    path = tmp_path / "one_hot.npz"
    np.savez(path, x_train=x, y_train=np.eye(10, dtype=np.float32)[y], x_test=xt, y_test=np.eye(10)[yt])
    data = read_data_sets(path, validation_size=0)
    assert data.train.labels.tolist() == y.tolist() and data.test.labels.tolist() == yt.tolist()
    letters = tmp_path / "letters.npz"
    np.savez(letters, x_train=x, y_train=(y * 2 + 5).astype(np.uint8), x_test=xt, y_test=yt)
    assert read_data_sets(letters, one_hot=True, validation_size=0).train.labels.shape == (len(y), 24)


def test_float_pixels_keep_their_scale_and_refuse_uint8(tmp_path: Path, tiny: TinyDataset) -> None:
    """An npz exported as floats (export.npz.scale=centered here) reads back with the export's
    values, in the dtype asked for; uint8, which it cannot give, is one clear error."""
    (x, y), (xt, yt) = tiny.arrays["train"], tiny.arrays["test"]
    path = tmp_path / "centered.npz"
    centered = (x / np.float32(255) - np.float32(0.5)).astype(np.float32)
    np.savez(path, x_train=centered, y_train=y, x_test=(xt / 255 - 0.5).astype(np.float32), y_test=yt)
    data = read_data_sets(path, validation_size=0, reshape=False, dtype=np.float64)
    assert data.train.images.dtype == np.float64
    np.testing.assert_array_equal(data.train.images, centered.astype(np.float64))
    with pytest.raises(ValueError, match=r"centered\.npz: dtype uint8: expected uint8 images .* found float32"):
        read_data_sets(path, dtype=np.uint8)


def test_a_file_without_train_and_test_is_one_error_naming_its_arrays(tmp_path: Path, tiny: TinyDataset) -> None:
    """qmnist_subsets' npz holds test10k and test50k: no pair for the classic interface."""
    (x, y), (xt, yt) = tiny.arrays["train"], tiny.arrays["test"]
    path = tmp_path / "qmnist_subsets.npz"
    np.savez(path, x_test10k=x, y_test10k=y, x_test50k=xt, y_test50k=yt)
    expected = (
        r"qmnist_subsets\.npz: expected x_train, y_train, x_test, y_test \(the classic reader's train and test "
        r"splits\), found x_test10k, x_test50k, y_test10k, y_test50k; read this file's splits with np\.load$"
    )
    with pytest.raises(ValueError, match=expected):
        read_data_sets(path)
