"""CIFAR-10's python batches in <data_dir>/cifar10 (as 'python download.py cifar10' extracts
them: data_batch_1 to data_batch_5, test_batch, batches.meta): 32x32 RGB, ten classes by name,
pixels in [0, 1], for the original's conditional model; and what a run records of them.

The batches are Python pickles, which can run code when read: they are read by an unpickler that
builds only dicts, lists, strings, numbers and NumPy arrays, and refuses any other object."""
import io
import os
import pickle

import numpy as np

from dataset.idx import MNIST_SHUFFLE_SEED, files_digest
from utils import UserError, resize

CIFAR10 = "cifar10"  # its --dataset name and its folder under --data_dir
TRAIN_BATCHES = ["data_batch_%d" % i for i in range(1, 6)]
TEST_BATCH, META = "test_batch", "batches.meta"
# What a batch's pickle may build: NumPy's arrays and dtypes, nothing else.
SAFE_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}


class _DataOnly(pickle.Unpickler):

  def find_class(self, module, name):
    if (module, name) in SAFE_GLOBALS:
      return super(_DataOnly, self).find_class(module, name)
    raise pickle.UnpicklingError("it asks for %s.%s, which a CIFAR-10 batch never holds"
                                 % (module, name))


def read_batch(path):
  """A batch's {key: value}, bytes keys decoded; a UserError for a file that is no batch."""
  try:
    with open(path, "rb") as f:
      batch = _DataOnly(io.BytesIO(f.read()), encoding="bytes").load()
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
    raise UserError("%s is not a CIFAR-10 python batch (%s); delete the folder and run "
                    "'python download.py cifar10' again." % (path, err))
  if not isinstance(batch, dict):
    raise UserError("%s is not a CIFAR-10 python batch; delete the folder and run 'python "
                    "download.py cifar10' again." % path)
  return {(k.decode() if isinstance(k, bytes) else k): v for k, v in batch.items()}


def cifar_paths(data_dir):
  """{name: path} of the batches in <data_dir>/cifar10; a UserError naming what is missing."""
  folder = os.path.join(data_dir, CIFAR10)
  paths = {name: os.path.join(folder, name) for name in TRAIN_BATCHES + [TEST_BATCH, META]}
  missing = [name for name, path in paths.items() if not os.path.isfile(path)]
  if len(missing) == len(paths):
    raise UserError("No CIFAR-10 batches in %s; run 'python download.py cifar10 --data_dir %s'."
                    % (folder, data_dir))
  if missing:
    raise UserError("CIFAR-10 in %s is incomplete (missing %s); run 'python download.py "
                    "cifar10'." % (folder, ", ".join(missing)))
  return paths


def _images_and_labels(path, classes):
  batch = read_batch(path)
  try:
    images = np.asarray(batch["data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = np.asarray(batch["labels"], np.int64)
  except (KeyError, ValueError) as err:
    raise UserError("%s is not a CIFAR-10 python batch (%s)." % (path, err))
  if len(images) != len(labels) or (labels.size and not 0 <= labels.min() <= labels.max() < classes):
    raise UserError("%s holds %d images and %d labels in 0-%d; labels must be 0-%d."
                    % (path, len(images), len(labels), labels.max(initial=0), classes - 1))
  return images, labels


def cifar_splits(data_dir):
  """(train_images, train_labels, test_images, test_labels, folder, class names): uint8
  [N, 32, 32, 3] images and int64 labels."""
  return read_splits(cifar_paths(data_dir))


def read_splits(paths):
  """cifar_splits of the batches {name: path}."""
  names = [n.decode() if isinstance(n, bytes) else str(n)
           for n in read_batch(paths[META]).get("label_names", [])]
  if len(names) < 2:
    raise UserError("%s names no classes (its label_names); delete the folder and run 'python "
                    "download.py cifar10' again." % paths[META])
  train = [_images_and_labels(paths[name], len(names)) for name in TRAIN_BATCHES]
  test_x, test_y = _images_and_labels(paths[TEST_BATCH], len(names))
  return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), test_x,
          test_y, os.path.dirname(paths[META]), names)


class CifarData(object):
  """CIFAR-10's training and test batches together (as MNIST's two splits), shuffled once with
  the original's seed, pixels in [0, 1], one-hot labels."""

  c_dim = 3
  value_range = (0.0, 1.0)
  native_size = (32, 32)

  def __init__(self, data_dir, output_height=32, output_width=32):
    paths = cifar_paths(data_dir)
    train_x, train_y, test_x, test_y, self.source, self.label_names = read_splits(paths)
    self.y_dim = len(self.label_names)
    self.digest = files_digest(paths)
    images, labels = np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])
    order = np.random.RandomState(MNIST_SHUFFLE_SEED).permutation(len(images))
    self.images, self.labels = images[order], labels[order]
    self.output_height, self.output_width = output_height, output_width

  def __len__(self):
    return len(self.images)

  def get(self, indices):
    raw = self.images[indices]
    if raw.shape[1:3] != (self.output_height, self.output_width):
      raw = np.stack([resize(img.astype(np.float32), self.output_height, self.output_width)
                      for img in raw])
    labels = np.eye(self.y_dim, dtype=np.float32)[self.labels[indices]]
    return raw.astype(np.float32) / 255.0, labels

  @property
  def description(self):
    """What a run records of its data (dataset/__init__.py, DESCRIPTION_FIELDS)."""
    return {"kind": CIFAR10, "source": self.source, "digest": self.digest,
            "labels": list(self.label_names), "channels": self.c_dim}

  def report(self):
    return None

  def unmatched_note(self):
    return ""
