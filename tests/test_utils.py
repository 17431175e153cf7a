"""Image reading, cropping, grids and writing."""
import os
import stat

import numpy as np
import pytest
from PIL import Image

from conftest import write_images
from utils import (center_crop, get_image, grid_layout, image_channels, image_manifold_size,
                   imread, merge, save_images, save_labelled_grid, to_uint8, write_json_atomic)


@pytest.mark.parametrize("n,expected", [(1, (1, 1)), (7, (2, 4)), (10, (3, 4)), (64, (8, 8)),
                                        (65, (8, 9)), (100, (10, 10))])
def test_grid_size_for_any_batch(n, expected):
  assert image_manifold_size(n) == expected


def test_every_count_fits_a_near_square_grid():
  for n in range(1, 300):
    rows, cols = image_manifold_size(n)
    assert rows * cols >= n and (rows - 1) * cols < n and rows <= cols <= rows + 2


def test_save_images_writes_the_grid(tmp_path):
  images = np.zeros((10, 4, 6, 3), np.float32) - 1.0  # tanh range, all black
  images[3] = 1.0  # one white tile
  path = save_images(images, image_manifold_size(10), str(tmp_path / "grid.png"))
  grid = np.asarray(Image.open(path))
  assert grid.shape == (3 * 4, 4 * 6, 3)
  assert (grid[0:4, 18:24] == 255).all()  # tile 3: row 0, column 3
  assert grid.sum() == 255 * 4 * 6 * 3
  assert not [f for f in os.listdir(str(tmp_path)) if f.startswith(".tmp")]


def test_sigmoid_range_is_not_greyed_out(tmp_path):
  images = np.zeros((4, 3, 3, 1), np.float32)
  images[0] = 1.0
  path = save_images(images, (2, 2), str(tmp_path / "mnist.png"), value_range=(0.0, 1.0))
  grid = np.asarray(Image.open(path))
  assert grid.shape == (6, 6)
  assert grid[0, 0] == 255 and grid[5, 5] == 0
  assert to_uint8(np.array([-1.0, 0.0, 1.0])).tolist() == [0, 128, 255]


def rows_of_classes(count, labels):
  """The classes in each row of grid_layout's grid, [[class, ...], ...]."""
  (rows, cols), cells = grid_layout(count, labels)
  found = [[] for _ in range(rows)]
  for image, cell in enumerate(cells):
    found[cell // cols].append(int(np.argmax(labels[image])))
  return (rows, cols), found


@pytest.mark.parametrize("count,classes,expected_size", [
    (64, 10, (10, 7)),  # MNIST's sample grid: a row per digit, 6 or 7 of each
    (64, 2, (8, 8)),  # two classes: four full rows each
    (20, 3, (6, 5)),  # 7, 7, 6 images: two rows of five each, the second short
    (4, 4, (4, 1))])
def test_a_conditional_grid_has_its_classes_in_rows_of_their_own(count, classes, expected_size):
  order = np.arange(count) * classes // count  # as DCGAN.sample_inputs labels its grid
  labels = np.eye(classes)[np.random.RandomState(0).permutation(order)]  # in any order
  size, rows = rows_of_classes(count, labels)
  assert size == expected_size
  assert sum(len(row) for row in rows) == count
  assert all(row and len(set(row)) == 1 for row in rows), rows  # one class a row, none empty
  firsts = [row[0] for row in rows]
  assert firsts == sorted(firsts) and set(firsts) == set(range(classes))


def test_a_grid_without_labels_or_with_too_many_classes_keeps_the_order_given(tmp_path):
  assert grid_layout(64) == ((8, 8), None)
  assert grid_layout(16, np.eye(100)[:16]) == ((4, 4), None)  # 16 classes, 4 rows: in order
  images = np.zeros((5, 2, 3, 1), np.float32)
  images[4] = 1.0  # the one image of class 0
  labels = np.eye(2)[[1, 1, 1, 1, 0]]
  grid = np.asarray(Image.open(save_labelled_grid(images, labels, str(tmp_path / "g.png"),
                                                  (0.0, 1.0))))
  assert grid.shape == (3 * 2, 3 * 3)  # class 0's row (one image), then class 1's two rows
  assert (grid[0:2, 0:3] == 255).all() and grid[0:2, 3:].sum() == 0 and grid[2:].sum() == 0


def test_merge_rejects_too_small_grid():
  with pytest.raises(ValueError):
    merge(np.zeros((5, 2, 2, 1)), (2, 2))


@pytest.mark.parametrize("mode,channels", [("L", 1), ("RGB", 3), ("RGBA", 3), ("P", 3)])
def test_imread_converts_modes(tmp_path, mode, channels):
  folder = write_images(str(tmp_path), 1, size=(20, 10), mode=mode, ext="png")
  path = os.path.join(folder, "img_000.png")
  assert image_channels(path) == channels
  img = imread(path, grayscale=channels == 1)
  assert img.shape == ((10, 20) if channels == 1 else (10, 20, 3))
  assert img.dtype == np.float32 and 0 <= img.min() and img.max() <= 255


def test_celeba_style_crop_and_resize(tmp_path):
  folder = write_images(str(tmp_path), 1, size=(178, 218))
  image = get_image(os.path.join(folder, "img_000.jpg"), 108, 108, 64, 64, crop=True)
  assert image.shape == (64, 64, 3)
  assert -1.0 <= image.min() and image.max() <= 1.0
  whole = get_image(os.path.join(folder, "img_000.jpg"), 108, 108, 32, 48, crop=False)
  assert whole.shape == (32, 48, 3)


def test_center_crop_takes_the_center():
  x = np.zeros((10, 8), np.float32)
  x[3:7, 2:6] = 200.0
  np.testing.assert_array_equal(center_crop(x, 4, 4, 4, 4), np.full((4, 4), 200.0))


def test_original_transform_helpers_round_trip():
  from utils import inverse_transform, transform
  x = np.zeros((20, 10, 3), np.float32)
  x[:, :, 0] = 255.0
  out = transform(x, 10, 10, 4, 4, crop=True)
  assert out.shape == (4, 4, 3)
  np.testing.assert_allclose(out[..., 0], 1.0)
  np.testing.assert_allclose(out[..., 1], -1.0)
  np.testing.assert_allclose(inverse_transform(out)[..., 0], 1.0)
  assert transform(x, 10, 10, 5, 7, crop=False).shape == (5, 7, 3)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_get_the_umasks_permissions(tmp_path, umask):
  """FLAGS.json, grids, GIFs and plots are readable like any new file, not 0600 temporaries."""
  previous = os.umask(umask)
  try:
    paths = [write_json_atomic(str(tmp_path / "FLAGS.json"), {"a": 1})]
    save_images(np.zeros((4, 8, 8, 1), np.float32), (2, 2), str(tmp_path / "grid.png"), (-1, 1))
    paths.append(str(tmp_path / "grid.png"))
  finally:
    os.umask(previous)
  for path in paths:
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask, path
