"""MNIST's IDX files (raw or .gz) in <data_dir>/mnist, or the real 5,000-digit sample bundled
in this project (data/mnist5k): labelled, pixels in [0, 1]; and what a run records of them."""
import gzip
import hashlib
import os
import struct
import zlib

import numpy as np

from utils import UserError, resize

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_MNIST_DIR = os.path.join(PROJECT_DIR, "data", "mnist5k")
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_SHUFFLE_SEED = 547  # the original's fixed shuffle of train + test
IDX_UBYTE = 0x08


def read_idx(path, ndim):
  """Read an IDX file of unsigned bytes (gzip-compressed or raw) as a uint8 array.

  The element counts come from the file's header, so any number of examples
  works.  A wrong magic number, a wrong rank or a short file is a UserError.
  """
  with open(path, "rb") as f:
    compressed = f.read(2) == b"\x1f\x8b"
  opener = gzip.open if compressed else open
  try:
    with opener(path, "rb") as f:
      raw = f.read()
  except (OSError, EOFError, zlib.error) as err:
    raise UserError("Cannot read %s (%s); delete it and download it again." % (path, err))
  if len(raw) < 4:
    raise UserError("%s is too short to be an IDX file." % path)
  zero, dtype, rank = struct.unpack(">HBB", raw[:4])
  if zero != 0 or dtype != IDX_UBYTE or rank != ndim:
    raise UserError("%s is not an IDX file of %d-dimensional unsigned bytes (magic number "
                    "0x%08x, expected 0x%08x)." % (path, ndim, struct.unpack(">I", raw[:4])[0],
                                                    (IDX_UBYTE << 8) | ndim))
  header = 4 + 4 * rank
  if len(raw) < header:
    raise UserError("%s is truncated: its header is incomplete." % path)
  dims = struct.unpack(">" + "I" * rank, raw[4:header])
  count = int(np.prod(dims))
  if len(raw) - header < count:
    raise UserError("%s is truncated: its header promises %d bytes of data, it holds %d."
                    % (path, count, len(raw) - header))
  return np.frombuffer(raw, dtype=np.uint8, count=count, offset=header).reshape(dims)


def find_mnist_files(folder):
  """Paths of the four MNIST IDX files in folder (raw or .gz); None if there are none.

  A folder holding some of them but not all is an error, not a reason to fall
  back silently: it is what an interrupted download leaves.
  """
  paths = {}
  for key, name in MNIST_FILES.items():
    for candidate in (name, name + ".gz"):
      if os.path.isfile(os.path.join(folder, candidate)):
        paths[key] = os.path.join(folder, candidate)
        break
  if not paths:
    return None
  if len(paths) < len(MNIST_FILES):
    missing = sorted(MNIST_FILES[k] for k in MNIST_FILES if k not in paths)
    raise UserError("MNIST in %s is incomplete (missing %s); run 'python download.py mnist'."
                    % (folder, ", ".join(missing)))
  return paths


# What a run's record (FLAGS.json's "data": its "source") says of MNIST read from the bundled sample,
# wherever the project's folder is.
BUNDLED_SOURCE = "the bundled sample"


def mnist_files(data_dir, say=True):
  """The MNIST files data_dir gives: <data_dir>/mnist's, or the bundled real sample's when that
  holds no MNIST (said, if say)."""
  folder = os.path.join(data_dir, "mnist")
  paths = find_mnist_files(folder)
  if paths is None:
    paths = find_mnist_files(BUNDLED_MNIST_DIR)
    if paths is None:
      raise UserError("No MNIST files in %s and the bundled sample %s is missing; run "
                      "'python download.py mnist'." % (folder, BUNDLED_MNIST_DIR))
    if say:
      print(" [*] No MNIST in %s: using the bundled real sample in %s"
            % (folder, BUNDLED_MNIST_DIR))
  return paths


def recorded_source(folder):
  """How a run's record names the folder its data came from: BUNDLED_SOURCE for the bundled
  sample (the same data wherever the project is), else the folder."""
  if os.path.realpath(folder) == os.path.realpath(BUNDLED_MNIST_DIR):
    return BUNDLED_SOURCE
  return folder


def files_digest(paths):
  """A digest of the bytes of files {key: path}: the same data gives the same digest wherever it
  lies (a run records its data's, so that test mode scores against the same data)."""
  digest = hashlib.sha1()
  for key, path in sorted(paths.items()):
    with open(path, "rb") as f:
      digest.update(key.encode() + b"\0" + f.read())
  return digest.hexdigest()[:16]


def mnist_identity(data_dir):
  """(recorded_source, files_digest) of the MNIST files data_dir gives, unsaid."""
  paths = mnist_files(data_dir, say=False)
  return recorded_source(os.path.dirname(paths["train_images"])), files_digest(paths)


def mnist_splits(data_dir):
  """(train_images, train_labels, test_images, test_labels, folder) as uint8 arrays.

  From <data_dir>/mnist, or the bundled real sample when that holds no MNIST.
  """
  paths = mnist_files(data_dir)
  source = os.path.dirname(paths["train_images"])
  splits = [read_idx(paths[key], rank) for key, rank in (("train_images", 3), ("train_labels", 1),
                                                          ("test_images", 3), ("test_labels", 1))]
  for images, labels in ((splits[0], splits[1]), (splits[2], splits[3])):
    if len(images) != len(labels):
      raise UserError("The MNIST files in %s disagree: %d images but %d labels."
                      % (source, len(images), len(labels)))
    if labels.size and labels.max() >= 10:
      raise UserError("The MNIST label files in %s hold a label %d; labels must be 0-9."
                      % (source, labels.max()))
  return tuple(splits) + (source,)


class MnistData(object):
  """MNIST train + test, shuffled once with the original's seed 547, pixels in [0, 1]."""

  c_dim = 1
  y_dim = 10
  value_range = (0.0, 1.0)
  native_size = (28, 28)  # the digits' own size (other sizes are resized to)

  def __init__(self, data_dir, output_height=28, output_width=28):
    train_x, train_y, test_x, test_y, self.source = mnist_splits(data_dir)
    self.digest = mnist_identity(data_dir)[1]
    images = np.concatenate([train_x, test_x])
    labels = np.concatenate([train_y, test_y])
    order = np.random.RandomState(MNIST_SHUFFLE_SEED).permutation(len(images))
    self.images = images[order]
    self.labels = labels[order].astype(np.int64)
    self.output_height, self.output_width = output_height, output_width

  def __len__(self):
    return len(self.images)

  def get(self, indices):
    raw = self.images[indices]
    if raw.shape[1:] != (self.output_height, self.output_width):
      raw = np.stack([resize(img.astype(np.float32), self.output_height, self.output_width)
                      for img in raw])
    images = (raw.astype(np.float32) / 255.0)[..., None]
    labels = np.zeros((len(indices), self.y_dim), dtype=np.float32)
    labels[np.arange(len(indices)), self.labels[indices]] = 1.0
    return images, labels

  @property
  def description(self):
    """What a run records of its data (dataset/__init__.py, DESCRIPTION_FIELDS)."""
    return {"kind": "mnist", "source": recorded_source(self.source), "digest": self.digest,
            "labels": [str(label) for label in range(self.y_dim)], "channels": self.c_dim}

  def report(self):
    return None

  def unmatched_note(self):
    return ""
