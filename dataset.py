"""The data layer: every difference between datasets lives here.

A dataset object has
  c_dim          channels of its images (1 or 3)
  y_dim          size of its one-hot labels, or None for unlabelled data
  value_range    the pixel range it produces, (0, 1) or (-1, 1)
  len(data)      number of examples
  get(indices)   -> (images [n, H, W, c_dim] float32, labels [n, y_dim] or None)

so the training loop never asks which dataset it is training on.

MNIST ('mnist') is read straight from the IDX files (raw or .gz) in
<data_dir>/mnist; when they are absent, the real 5,000-digit sample bundled
in this project (data/mnist5k) is used.  Any other dataset name is a folder
of images <data_dir>/<dataset>/<input_fname_pattern>.
"""
import glob
import gzip
import os
import struct

import numpy as np

from utils import UserError, get_image, image_channels, resize

PROJECT_DIR = os.path.dirname(os.path.abspath(__file__))
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
  except (OSError, EOFError) as err:
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
  """Paths of the four MNIST IDX files in folder (raw or .gz), or None if any is missing."""
  paths = {}
  for key, name in MNIST_FILES.items():
    for candidate in (name, name + ".gz"):
      if os.path.isfile(os.path.join(folder, candidate)):
        paths[key] = os.path.join(folder, candidate)
        break
    else:
      return None
  return paths


class MnistData(object):
  """MNIST train + test, shuffled once with the original's seed 547, pixels in [0, 1]."""

  c_dim = 1
  y_dim = 10
  value_range = (0.0, 1.0)

  def __init__(self, data_dir, output_height=28, output_width=28):
    folder = os.path.join(data_dir, "mnist")
    paths = find_mnist_files(folder)
    if paths is None:
      paths = find_mnist_files(BUNDLED_MNIST_DIR)
      if paths is None:
        raise UserError("No MNIST files in %s and the bundled sample %s is missing; run "
                        "'python download.py mnist'." % (folder, BUNDLED_MNIST_DIR))
      print(" [*] No MNIST in %s: using the bundled real sample in %s" % (folder, BUNDLED_MNIST_DIR))
    self.source = os.path.dirname(paths["train_images"])
    images = np.concatenate([read_idx(paths["train_images"], 3), read_idx(paths["test_images"], 3)])
    labels = np.concatenate([read_idx(paths["train_labels"], 1), read_idx(paths["test_labels"], 1)])
    if len(images) != len(labels):
      raise UserError("The MNIST files in %s disagree: %d images but %d labels."
                      % (self.source, len(images), len(labels)))
    if labels.size and labels.max() >= self.y_dim:
      raise UserError("The MNIST label files in %s hold a label %d; labels must be 0-9."
                      % (self.source, labels.max()))
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


class ImageFolderData(object):
  """Images matching <data_dir>/<dataset>/<pattern>, cropped/resized, pixels in [-1, 1].

  The channel count comes from the first image (grayscale -> 1, else 3); every
  image is converted to it.
  """

  y_dim = None
  value_range = (-1.0, 1.0)

  def __init__(self, data_dir, dataset, input_fname_pattern="*.jpg", input_height=108,
               input_width=None, output_height=64, output_width=None, crop=True):
    folder = os.path.join(data_dir, dataset)
    pattern = os.path.join(folder, input_fname_pattern)
    if not os.path.isdir(folder):
      raise UserError("The dataset folder %s does not exist; put images there or set "
                      "--data_dir and --dataset." % folder)
    self.files = sorted(glob.glob(pattern))
    if not self.files:
      raise UserError("No files match %s; check --input_fname_pattern (for example '*.png')."
                      % pattern)
    self.c_dim = image_channels(self.files[0])
    self.input_height = input_height
    self.input_width = input_width or input_height
    self.output_height = output_height
    self.output_width = output_width or output_height
    self.crop = crop

  def __len__(self):
    return len(self.files)

  def get(self, indices):
    images = [get_image(self.files[i], self.input_height, self.input_width,
                        self.output_height, self.output_width, crop=self.crop,
                        grayscale=self.c_dim == 1) for i in indices]
    images = np.stack(images).astype(np.float32)
    if self.c_dim == 1:
      images = images[..., None]
    return images, None


def open_dataset(dataset, data_dir, input_fname_pattern="*.jpg", input_height=108,
                 input_width=None, output_height=64, output_width=None, crop=True):
  if dataset == "mnist":
    return MnistData(data_dir, output_height, output_width or output_height)
  return ImageFolderData(data_dir, dataset, input_fname_pattern, input_height, input_width,
                         output_height, output_width, crop)


def labelled(dataset):
  """(y_dim, c_dim) known from the dataset's name alone, without touching its files.

  Test mode uses this so that a trained model samples with no dataset on disk;
  an image folder's channel count then comes from the checkpoint.
  """
  if dataset == "mnist":
    return MnistData.y_dim, MnistData.c_dim
  return None, None
