"""IDX datasets, four IDX files (raw or .gz) in <data_dir>/<dataset>: MNIST (or, without its
files, the real 5,000-digit sample bundled in this project, data/mnist5k) and Fashion-MNIST;
labelled, pixels in [0, 1]; and what a run records of them."""
import collections
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

# An IDX dataset, by its --dataset name: its name in messages, its class names in label order,
# and the sample bundled with the project that stands in for its files (None: none).
IdxSet = collections.namedtuple("IdxSet", ["title", "names", "bundled"])
IDX_DATASETS = {
    "mnist": IdxSet("MNIST", [str(digit) for digit in range(10)], BUNDLED_MNIST_DIR),
    "fashion_mnist": IdxSet("Fashion-MNIST", ["T-shirt/top", "Trouser", "Pullover", "Dress",
                                              "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                                              "Ankle boot"], None),
}


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


def find_mnist_files(folder, dataset="mnist"):
  """Paths of the four IDX files of an IDX dataset in folder (raw or .gz); None if there are none.

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
    raise UserError("%s in %s is incomplete (missing %s); run 'python download.py %s'."
                    % (IDX_DATASETS[dataset].title, folder, ", ".join(missing), dataset))
  return paths


# What a run's record (FLAGS.json's "data": its "source") says of MNIST read from the bundled sample,
# wherever the project's folder is.
BUNDLED_SOURCE = "the bundled sample"


def mnist_files(data_dir, say=True, dataset="mnist"):
  """The files of an IDX dataset data_dir gives: <data_dir>/<dataset>'s, or its bundled sample's
  when that holds none (said, if say)."""
  idx = IDX_DATASETS[dataset]
  folder = os.path.join(data_dir, dataset)
  paths = find_mnist_files(folder, dataset)
  if paths is None and idx.bundled:
    paths = find_mnist_files(idx.bundled, dataset)
    if paths is None:
      raise UserError("No %s files in %s and the bundled sample %s is missing; run "
                      "'python download.py %s'." % (idx.title, folder, idx.bundled, dataset))
    if say:
      print(" [*] No %s in %s: using the bundled real sample in %s"
            % (idx.title, folder, idx.bundled))
  if paths is None:
    raise UserError("No %s files in %s; run 'python download.py %s --data_dir %s'."
                    % (idx.title, folder, dataset, data_dir))
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


def mnist_identity(data_dir, dataset="mnist"):
  """(recorded_source, files_digest) of the IDX dataset's files data_dir gives, unsaid."""
  paths = mnist_files(data_dir, say=False, dataset=dataset)
  return recorded_source(os.path.dirname(paths["train_images"])), files_digest(paths)


def mnist_splits(data_dir, dataset="mnist"):
  """(train_images, train_labels, test_images, test_labels, folder) as uint8 arrays.

  From <data_dir>/<dataset> (mnist_files: MNIST's bundled sample when that holds no MNIST).
  """
  return read_splits(mnist_files(data_dir, dataset=dataset), dataset)


def read_splits(paths, dataset):
  """mnist_splits of the IDX dataset's files {key: path}."""
  idx = IDX_DATASETS[dataset]
  source = os.path.dirname(paths["train_images"])
  splits = [read_idx(paths[key], rank) for key, rank in (("train_images", 3), ("train_labels", 1),
                                                          ("test_images", 3), ("test_labels", 1))]
  for images, labels in ((splits[0], splits[1]), (splits[2], splits[3])):
    if len(images) != len(labels):
      raise UserError("The %s files in %s disagree: %d images but %d labels."
                      % (idx.title, source, len(images), len(labels)))
    if labels.size and labels.max() >= len(idx.names):
      raise UserError("The %s label files in %s hold a label %d; labels must be 0-%d."
                      % (idx.title, source, labels.max(), len(idx.names) - 1))
  return tuple(splits) + (source,)


class MnistData(object):
  """An IDX dataset's train + test (MNIST unless dataset says), shuffled once with the original's
  seed 547, pixels in [0, 1]."""

  c_dim = 1
  value_range = (0.0, 1.0)
  native_size = (28, 28)  # the digits' own size (other sizes are resized to)

  def __init__(self, data_dir, output_height=28, output_width=28, dataset="mnist"):
    self.dataset, self.label_names = dataset, list(IDX_DATASETS[dataset].names)
    self.y_dim = len(self.label_names)
    paths = mnist_files(data_dir, dataset=dataset)
    train_x, train_y, test_x, test_y, self.source = read_splits(paths, dataset)
    self.digest = files_digest(paths)
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
    return {"kind": self.dataset, "source": recorded_source(self.source), "digest": self.digest,
            "labels": list(self.label_names), "channels": self.c_dim}

  def report(self):
    return None

  def unmatched_note(self):
    return ""
