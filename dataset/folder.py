"""A folder of images <data_dir>/<dataset>/<input_fname_pattern>: crop, resize, bad files
skipped and counted, the optional cache; pixels in [-1, 1]."""
import glob
import hashlib
import json
import os
import shlex
import threading

import numpy as np
from PIL import Image
from tqdm import tqdm

from utils import UNREADABLE_IMAGE_ERRORS, UserError, image_channels, load_image, plural

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
    if not os.path.isdir(folder):
      raise UserError("The dataset folder %s does not exist; put images there or set "
                      "--data_dir and --dataset%s." % (folder, download_hint(dataset, data_dir)))
    self.pattern = input_fname_pattern
    self.files = self._find_files(folder, download_hint(dataset, data_dir))
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

  def _find_files(self, folder, hint):
    """The image files of a flat folder, sorted (self.unmatched: the others beside them); a
    UserError naming what to change if there are none.  hint: how to download this dataset."""
    files = sorted(f for f in glob.glob(os.path.join(folder, self.pattern)) if os.path.isfile(f))
    matched = set(files)
    self.unmatched = sorted(f for f in os.listdir(folder) if not f.startswith(".")
                            and os.path.join(folder, f) not in matched
                            and os.path.isfile(os.path.join(folder, f)))
    if not files:
      empty = not [f for f in os.listdir(folder) if not f.startswith(".")]
      raise UserError("No files match %s%s; %s%s."
                      % (os.path.join(folder, self.pattern), self.unmatched_note(),
                         self._where_to_look(folder), hint if empty else ""))
    below = sorted({os.path.relpath(f, folder).split(os.sep)[0] for f in files
                    if os.path.dirname(f) != folder})
    if below:
      print(" [!] --input_fname_pattern '%s' reads the images of %s (%s) as one unlabelled set"
            % (self.pattern, plural(len(below), "subfolder"), ", ".join(below[:5])
               + (", ..." if len(below) > 5 else "")))
    return files

  def _where_to_look(self, folder):
    """What to check when the pattern matched nothing: the images in subfolders if the folder's
    subfolders hold files the pattern's name would match, else the pattern itself."""
    name = os.path.basename(self.pattern)
    inside = sorted(d for d in os.listdir(folder) if not d.startswith(".")
                    and os.path.isdir(os.path.join(folder, d))
                    and glob.glob(os.path.join(glob.escape(os.path.join(folder, d)), "**", name),
                                  recursive=True))
    if inside:
      return ("its images are in %s (%s), which --input_fname_pattern '%s' does not reach: move "
              "them into %s, or read them with --input_fname_pattern '*/%s'"
              % (plural(len(inside), "subfolder"), ", ".join(inside[:5])
                 + (", ..." if len(inside) > 5 else ""), self.pattern, folder, name))
    example = "*.jpg" if name == "*.png" else "*.png"
    return "check --input_fname_pattern (for example '%s')" % example

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
    return self.load_at(index)[1]

  def load_at(self, index):
    """(i, image i as uint8 [H, W, c_dim]): i is index, or the next readable one's if it cannot
    be read."""
    for step in range(len(self.files)):
      i = (index + step) % len(self.files)
      if i in self.bad:
        continue
      if self.cache is not None and self.cache.state[i] == ImageCache.FILLED:
        return i, self.cache.pixels[i]
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
      return i, pixels
    raise UserError("None of the %d files in %s could be read as an image."
                    % (len(self.files), os.path.dirname(self.files[0])))

  def get(self, indices):
    images = np.stack([self.load(i) for i in indices])
    return images.astype(np.float32) / 127.5 - 1.0, None

  @property
  def description(self):
    """What a run records of its data (dataset/__init__.py, DESCRIPTION_FIELDS)."""
    return {"kind": "images", "source": self.source, "digest": self.digest, "labels": None,
            "channels": self.c_dim}

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


class LabelledFolderData(ImageFolderData):
  """An image folder whose every file has its row of y (y_rows, float32 [files, y_dim]: a class
  folder's one-hot, an attribute file's multi-hot), named by label_names; pixels in [0, 1], as
  the conditional generator's sigmoid gives them.  A file that cannot be read is replaced by the
  next readable one, its row with it.  A subclass's _find_files sets label_names and y_rows."""

  value_range = (0.0, 1.0)

  @property
  def y_dim(self):
    return len(self.label_names)

  def get(self, indices):
    loaded = [self.load_at(i) for i in indices]
    images = np.stack([pixels for _, pixels in loaded]).astype(np.float32) / 255.0
    return images, self.y_rows[[i for i, _ in loaded]]


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
