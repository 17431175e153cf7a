"""The data layer: every difference between datasets lives here.

A dataset object has
  c_dim          channels of its images (1 or 3)
  y_dim          size of its one-hot labels, or None for unlabelled data
  value_range    the pixel range it produces, (0, 1) or (-1, 1)
  len(data)      number of examples
  get(indices)   -> (images [n, H, W, c_dim] float32, labels [n, y_dim] or None)
  source, digest the folder its images come from and a digest of them, or None (a run records
                 both: recorded_source)

so the training loop never asks which dataset it is training on.

MNIST ('mnist') is read straight from the IDX files (raw or .gz) in
<data_dir>/mnist; when they are absent, the real 5,000-digit sample bundled
in this project (data/mnist5k) is used.  Any other dataset name is a folder
of images <data_dir>/<dataset>/<input_fname_pattern>.
"""
import collections
import concurrent.futures
import glob
import gzip
import hashlib
import json
import os
import shlex
import struct
import threading
import zlib

import numpy as np
from PIL import Image
from tqdm import tqdm

from utils import UNREADABLE_IMAGE_ERRORS, UserError, image_channels, load_image, plural, resize

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


# What a run's record (FLAGS.json, "data_source") says of MNIST read from the bundled sample,
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

  def report(self):
    return None

  def unmatched_note(self):
    return ""


# The image folders download.py makes ('python download.py <name>'): what it fetches, and a note.
DOWNLOADS = {"celebA": ("CelebA", ""),
             "lsun": ("LSUN's bedroom scenes", " (--lsun_category picks another scene)")}
DOWNLOAD_DATA_DIR = "./data"  # download.py's --data_dir, as main.py's


def download_hint(dataset, data_dir):
  """', or download CelebA with 'python download.py celebA'' for a folder download.py makes.

  '' for any other dataset name.  A --data_dir other than the default is
  passed on, so the command fills the folder that was looked for.
  """
  if dataset not in DOWNLOADS:
    return ""
  command = "python download.py %s" % dataset
  if os.path.normpath(data_dir) != os.path.normpath(DOWNLOAD_DATA_DIR):
    command += " --data_dir %s" % shlex.quote(data_dir)
  what, note = DOWNLOADS[dataset]
  return ", or download %s with '%s'%s" % (what, command, note)


def channels_name(channels):
  return "grayscale" if channels == 1 else "colour"


class ImageFolderData(object):
  """Images matching <data_dir>/<dataset>/<pattern>, cropped/resized, pixels in [-1, 1].

  The channel count comes from the first readable image (grayscale -> 1, else
  3), as in the original; every image is converted to it.  A grayscale first
  image is said when the data opens, the first image whose channels differ
  (one line, once), and report() counts the images of each channel count, as
  they are decoded, and those smaller than the crop (stretched to it).
  A file that cannot be read as an image
  is reported once (one warning line), remembered, and replaced in its batch
  by the next readable file, so an epoch never stops on a bad file.

  With cache_dir, decoded, cropped and resized images are kept in a
  memory-mapped file there, so epochs after the first do no image decoding.
  The cache holds exactly what decoding gives, so batches are the same with
  and without it.
  """

  y_dim = None
  value_range = (-1.0, 1.0)

  def __init__(self, data_dir, dataset, input_fname_pattern, input_height, input_width,
               output_height, output_width, crop, cache_dir=None):
    folder = os.path.join(data_dir, dataset)
    self.source, self.digest = folder, None  # (a digest of every image is not worth its time)
    pattern = os.path.join(folder, input_fname_pattern)
    if not os.path.isdir(folder):
      raise UserError("The dataset folder %s does not exist; put images there or set "
                      "--data_dir and --dataset%s." % (folder, download_hint(dataset, data_dir)))
    self.files = sorted(f for f in glob.glob(pattern) if os.path.isfile(f))
    self.pattern = input_fname_pattern
    matched = set(self.files)
    self.unmatched = sorted(f for f in os.listdir(folder) if not f.startswith(".")
                            and os.path.join(folder, f) not in matched
                            and os.path.isfile(os.path.join(folder, f)))
    if not self.files:
      empty = not [f for f in os.listdir(folder) if not f.startswith(".")]
      raise UserError("No files match %s%s; check --input_fname_pattern (for example '*.png')%s."
                      % (pattern, self.unmatched_note(),
                         download_hint(dataset, data_dir) if empty else ""))
    self.input_height = input_height
    self.input_width = input_width or input_height
    self.output_height = output_height
    self.output_width = output_width or output_height
    self.crop = crop
    self.bad = {}  # index -> reason
    self._lock = threading.Lock()
    self.cache = None
    self.channels_file = None  # the file whose channels decided c_dim (_first_channels)
    self.c_dim = self._first_channels()
    self._mixed_said = False
    if cache_dir:
      self.cache = ImageCache(cache_dir, self._cache_key(), len(self.files),
                              self.image_shape)
      for index in np.flatnonzero(self.cache.state == ImageCache.UNREADABLE):
        self.bad[int(index)] = "unreadable (remembered by the cache)"
    # What each file is, learnt as it is decoded, not by opening every file up front (0: not
    # yet): its channels, | SMALL when smaller than the crop.  The cache keeps it.
    self.kinds = (self.cache.kinds if self.cache is not None
                  else np.zeros(len(self.files), dtype=np.uint8))
    if self.c_dim == 1:
      print(" [*] " + self.channels_note())

  @property
  def image_shape(self):
    return (self.output_height, self.output_width, self.c_dim)

  SMALL = 0x80  # in kinds: the image is smaller than the crop
  CHANNELS = 0x7F

  def _first_channels(self):
    for index, path in enumerate(self.files):
      try:
        channels = image_channels(path)
      except UNREADABLE_IMAGE_ERRORS as err:
        self._mark_bad(index, err)
        continue
      self.channels_file = path
      return channels
    raise UserError("None of the %d files matching %s is a readable image."
                    % (len(self.files), os.path.dirname(self.files[0])))

  def _cache_key(self):
    """Changes whenever the files, their contents' dates/sizes or the preprocessing change."""
    digest = hashlib.sha1()
    digest.update(json.dumps([self.input_height, self.input_width, self.output_height,
                              self.output_width, self.crop, self.c_dim]).encode())
    for path in self.files:
      stat = os.stat(path)
      digest.update(("%s\0%d\0%d\n" % (path, stat.st_size, stat.st_mtime_ns)).encode())
    return digest.hexdigest()[:16]

  def _mark_bad(self, index, err):
    with self._lock:
      if index in self.bad:
        return
      reason = str(err).splitlines()[0] if str(err) else type(err).__name__
      self.bad[index] = reason
    tqdm.write("warning: skipping unreadable image %s (%s)" % (self.files[index], reason))
    if self.cache is not None:
      self.cache.state[index] = ImageCache.UNREADABLE

  def _decided_by(self):
    """'the first file, a.jpg' (or 'the first readable file, ...' after unreadable ones)."""
    first = "the first file" if self.channels_file == self.files[0] else "the first readable file"
    return "%s, %s" % (first, os.path.basename(self.channels_file))

  def channels_note(self):
    """The sentence saying which file decided c_dim (printed when the data opens if grayscale)."""
    if self.c_dim == 1:
      return ("Images read as grayscale (1 channel), as %s, is; any colour image among them is "
              "turned grey" % self._decided_by())
    return ("Images read as colour (3 channels), as %s, is; any grayscale image among them is "
            "turned to colour" % self._decided_by())

  def _kind(self, path):
    """What kinds records of a file: its channels, | SMALL if smaller than the crop."""
    value = image_channels(path)
    if self.crop:
      with Image.open(path) as img:
        width, height = img.size
      if height < self.input_height or width < self.input_width:
        value |= self.SMALL
    return value

  def _note_kind(self, index, value):
    """Record what file index was; the first one whose channels differ from c_dim is said once.

    Called from prefetch's worker threads: kinds[index] is only ever set to the file's one
    value, so a repeat is harmless; saying it once takes the lock, as _mark_bad does.
    """
    self.kinds[index] = value
    channels = value & self.CHANNELS
    if channels == self.c_dim:
      return
    with self._lock:
      if self._mixed_said:
        return
      self._mixed_said = True
    tqdm.write(" [!] %s is %s, but the images are read as %s, as %s, is; it and every other %s "
               "image are %s (counted at the end of training)" % (
                   os.path.basename(self.files[index]), channels_name(channels),
                   channels_name(self.c_dim), self._decided_by(), channels_name(channels),
                   "turned grey" if self.c_dim == 1 else "turned to colour"))

  def channel_counts(self):
    """{channels: images} over the images decoded so far (or kept by the cache)."""
    channels = self.kinds & self.CHANNELS
    return {c: int(np.count_nonzero(channels == c)) for c in (3, 1) if (channels == c).any()}

  def stretched(self):
    """How many of the images decoded so far were smaller than the crop (so stretched to it)."""
    return int(np.count_nonzero(self.kinds & self.SMALL)) if self.crop else 0

  def __len__(self):
    return len(self.files)

  def load(self, index):
    """Image index as uint8 [H, W, c_dim]; the next readable one if it cannot be read."""
    for step in range(len(self.files)):
      i = (index + step) % len(self.files)
      if i in self.bad:
        continue
      if self.cache is not None and self.cache.state[i] == ImageCache.FILLED:
        return self.cache.pixels[i]
      try:
        kind = None if self.kinds[i] else self._kind(self.files[i])
        pixels = load_image(self.files[i], self.input_height, self.input_width,
                            self.output_height, self.output_width, crop=self.crop,
                            grayscale=self.c_dim == 1)
      except UNREADABLE_IMAGE_ERRORS as err:
        self._mark_bad(i, err)
        continue
      pixels = pixels.reshape(self.image_shape)
      if kind is not None:
        self._note_kind(i, kind)  # before the cache's state, as its pixels are
      if self.cache is not None:
        self.cache.pixels[i] = pixels
        self.cache.state[i] = ImageCache.FILLED
      return pixels
    raise UserError("None of the %d files in %s could be read as an image."
                    % (len(self.files), os.path.dirname(self.files[0])))

  def get(self, indices):
    images = np.stack([self.load(i) for i in indices])
    return images.astype(np.float32) / 127.5 - 1.0, None

  def unmatched_note(self):
    """' (N other files ... do not match ...)' where the folder holds files the pattern left out."""
    if not self.unmatched:
      return ""
    return (" (%d other file(s) in the folder, such as %s, do not match --input_fname_pattern "
            "'%s')" % (len(self.unmatched), self.unmatched[0], self.pattern))

  def report(self):
    """One line on what was skipped, mixed channels and stretched images; None if nothing was."""
    clauses = []
    with self._lock:  # prefetch's worker threads may be adding to it
      bad = dict(self.bad)
    if bad:
      clauses.append("%d unreadable file(s) skipped: %s" % (
          len(bad), ", ".join(os.path.basename(self.files[i]) for i in sorted(bad)[:5])
          + (", ..." if len(bad) > 5 else "")))
    counts = self.channel_counts()
    if len(counts) > 1:
      decoded = sum(counts.values())
      clauses.append("images by channels%s: %s (%s, decided: %s)" % (
          "" if decoded >= len(self.files) - len(bad) else ", of the %d decoded" % decoded,
          ", ".join("%d %s" % (n, channels_name(c)) for c, n in counts.items()),
          self._decided_by(), channels_name(self.c_dim)))
    stretched = self.stretched()
    if stretched:
      clauses.append("%s smaller than the %dx%d crop%s %s stretched to it" % (
          plural(stretched, "image"), self.input_height, self.input_width,
          "" if self.input_height == self.input_width else " (height x width)",
          "was" if stretched == 1 else "were"))
    return "; ".join(clauses) or None


class ImageCache(object):
  """Decoded images of a dataset in three memory-mapped .npy files under cache_dir.

  <key>.pixels.npy holds uint8 [N, H, W, C]; <key>.state.npy one byte per image:
  EMPTY, FILLED or UNREADABLE; <key>.kinds.npy one byte per image: what its
  file is (ImageFolderData.kinds; 0 in a cache made before it existed).  An
  image is written before its state, so a run stopped at any point leaves a
  cache whose FILLED entries are complete.
  """

  EMPTY, FILLED, UNREADABLE = 0, 1, 2

  def __init__(self, cache_dir, key, count, shape):
    try:
      os.makedirs(cache_dir, exist_ok=True)
      self.path = os.path.join(cache_dir, key)
      self.pixels = self._open(self.path + ".pixels.npy", (count,) + tuple(shape))
      self.state = self._open(self.path + ".state.npy", (count,))
      self.kinds = self._open(self.path + ".kinds.npy", (count,))
    except OSError as err:
      raise UserError("Cannot use the cache folder %s (%s); choose another --cache_dir."
                      % (cache_dir, err.strerror or err))

  @staticmethod
  def _open(path, shape):
    if os.path.exists(path):
      array = np.lib.format.open_memmap(path, mode="r+")
      if array.shape == shape and array.dtype == np.uint8:
        return array
    tmp = path + ".tmp"
    np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape).flush()
    os.replace(tmp, path)
    return np.lib.format.open_memmap(path, mode="r+")

  def filled(self):
    return int(np.count_nonzero(self.state == self.FILLED))

  def flush(self):
    self.pixels.flush()
    self.kinds.flush()
    self.state.flush()


def prefetch(data, batches, workers=2, depth=4):
  """Yield data.get(indices) for each index list in batches, in order, decoded ahead.

  Up to `depth` batches are being decoded by `workers` threads while the caller
  (the Session) works on the current one; Pillow and NumPy release the GIL
  while they decode and resize.  workers=0 decodes in the calling thread.
  """
  batches = iter(batches)
  if workers <= 0:
    for indices in batches:
      yield data.get(indices)
    return
  with concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                             thread_name_prefix="dcgan-loader") as pool:
    pending = collections.deque()
    try:
      for indices in batches:
        pending.append(pool.submit(data.get, indices))
        if len(pending) >= depth:
          yield pending.popleft().result()
      while pending:
        yield pending.popleft().result()
    finally:
      for future in pending:
        future.cancel()


def open_dataset(dataset, data_dir, input_fname_pattern, input_height, input_width,
                 output_height, output_width, crop, cache_dir=None):
  """The dataset object for --dataset: MNIST, or a folder of images (optionally cached).

  The sizes and crop are the run's (main.py's flags, or a DCGAN's own arguments): the data
  layer states no default of its own."""
  if dataset == "mnist":
    return MnistData(data_dir, output_height, output_width or output_height)
  return ImageFolderData(data_dir, dataset, input_fname_pattern, input_height, input_width,
                         output_height, output_width, crop, cache_dir)


def data_channels(dataset, data_dir, input_fname_pattern="*.jpg"):
  """Image channels as the original DCGAN read them from the data, or None if there is none.

  mnist: 1.  A folder of images: the first readable image's channels
  (grayscale 1, colour 3).  None when the folder has no readable image.
  """
  c_dim = labelled(dataset)[1]
  if c_dim is not None:
    return c_dim
  for path in sorted(glob.glob(os.path.join(data_dir, dataset, input_fname_pattern))):
    try:
      return image_channels(path)
    except UNREADABLE_IMAGE_ERRORS:
      continue
  return None


def labelled(dataset):
  """(y_dim, c_dim) known from the dataset's name alone, without touching its files.

  Test mode uses this so that a trained model samples with no dataset on disk;
  an image folder's channel count then comes from the checkpoint.
  """
  if dataset == "mnist":
    return MnistData.y_dim, MnistData.c_dim
  return None, None
