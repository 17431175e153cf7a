"""Image input/output, sample grids and small helpers shared by the project.

Images are read and written with Pillow (the original used scipy.misc and
cv2, both gone or not wanted).  Pixel values inside the project are float32:
[-1, 1] for image folders (tanh generator), [0, 1] for MNIST (sigmoid).
"""
import collections
import contextlib
import datetime
import math
import os
import tempfile
import time

import numpy as np
from PIL import Image
from tqdm import tqdm


class UserError(Exception):
  """A problem the user can fix; main.py prints it as one sentence, no traceback."""


def expand_path(path):
  return os.path.expanduser(os.path.expandvars(path))


def timestamp(fmt="%Y%m%d.%H%M%S", ts=None):
  return datetime.datetime.fromtimestamp(ts if ts else time.time()).strftime(fmt)


class QuietWhenClosed(object):
  """sys.stdout or sys.stderr that goes quiet instead of raising once its reader is gone (a
  pipe whose reader died: BrokenPipeError; a closed terminal: EIO), so that nothing the
  program still has to do, such as saving a checkpoint after Ctrl-C, depends on printing."""

  def __init__(self, stream):
    self.stream = stream

  def write(self, text):
    try:
      return self.stream.write(text)
    except OSError:
      self._silence()
      return len(text)

  def flush(self):
    try:
      self.stream.flush()
    except OSError:
      self._silence()

  def _silence(self):
    """From now on this stream's descriptor writes to /dev/null (what is still buffered
    included, so the interpreter's last flush does not complain either)."""
    try:
      devnull = os.open(os.devnull, os.O_WRONLY)
      os.dup2(devnull, self.stream.fileno())
      os.close(devnull)
      self.stream.flush()
    except (OSError, ValueError):
      pass

  def __getattr__(self, name):  # isatty, fileno, encoding, ...: the stream's own
    return getattr(self.stream, name)


# ----------------------------------------------------------------------------
# reading


# What Pillow raises for a file that is not a readable image: unknown format
# (UnidentifiedImageError is an OSError), truncated data, broken chunks.
UNREADABLE_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def _open_converted(path, grayscale):
  with Image.open(path) as img:
    return img.convert("L" if grayscale else "RGB")


def imread(path, grayscale=False):
  """Read any Pillow-readable image as float32 HxW (grayscale) or HxWx3 (RGB).

  Palette, RGBA, 16-bit and other modes are converted; alpha is dropped.
  """
  return np.asarray(_open_converted(path, grayscale), dtype=np.float32)


def image_channels(path):
  """1 for a grayscale image file, 3 for anything with colour."""
  with Image.open(path) as img:
    return 1 if img.mode in ("1", "L", "LA", "I", "I;16", "F") else 3


def _crop_box(height, width, crop_h, crop_w):
  """The original's centre crop window (clamped to the image), as a Pillow box."""
  crop_h, crop_w = min(crop_h, height), min(crop_w, width)
  j = int(round((height - crop_h) / 2.0))
  i = int(round((width - crop_w) / 2.0))
  return (i, j, i + crop_w, j + crop_h)


def _resized(img, resize_h, resize_w):
  if img.size == (resize_w, resize_h):
    return img
  return img.resize((resize_w, resize_h), Image.BILINEAR)


def load_image(path, input_height, input_width, resize_height=64, resize_width=64, crop=True,
               grayscale=False):
  """Read, centre-crop (optional) and bilinearly resize an image: uint8 HxW or HxWx3.

  This is the whole per-image cost of an image-folder dataset; the result is
  what the on-disk cache stores, so cached and uncached batches are identical.
  """
  img = _open_converted(path, grayscale)
  if crop:
    img = img.crop(_crop_box(img.size[1], img.size[0], input_height, input_width or input_height))
  return np.asarray(_resized(img, resize_height, resize_width), dtype=np.uint8)


def center_crop(x, crop_h, crop_w=None, resize_h=64, resize_w=64):
  """Crop the central crop_h x crop_w window of an array in [0, 255], then resize bilinearly."""
  h, w = x.shape[:2]
  left, top, right, bottom = _crop_box(h, w, crop_h, crop_w or crop_h)
  return resize(x[top:bottom, left:right], resize_h, resize_w)


def resize(x, resize_h, resize_w):
  """Bilinear resize of a float HxW or HxWxC array in [0, 255] to resize_h x resize_w."""
  if x.shape[0] == resize_h and x.shape[1] == resize_w:
    return x.astype(np.float32)
  img = Image.fromarray(np.clip(np.round(x), 0, 255).astype(np.uint8))
  return np.asarray(_resized(img, resize_h, resize_w), dtype=np.float32)


def transform(image, input_height, input_width, resize_height=64, resize_width=64, crop=True):
  """Pixels [0, 255] -> cropped (optional), resized, scaled to [-1, 1]."""
  if crop:
    out = center_crop(image, input_height, input_width, resize_height, resize_width)
  else:
    out = resize(image, resize_height, resize_width)
  return out / 127.5 - 1.0


def get_image(image_path, input_height, input_width, resize_height=64, resize_width=64,
              crop=True, grayscale=False):
  """An image file as float32 in [-1, 1], cropped and resized as training feeds it."""
  pixels = load_image(image_path, input_height, input_width, resize_height, resize_width, crop,
                      grayscale)
  return pixels.astype(np.float32) / 127.5 - 1.0


def inverse_transform(images):
  """[-1, 1] -> [0, 1]."""
  return (images + 1.0) / 2.0


# ----------------------------------------------------------------------------
# grids and writing


def image_manifold_size(num_images):
  """Rows and columns of the most nearly square grid holding num_images.

  Unlike the original, this works for any count (the last row may be short).
  """
  if num_images < 1:
    raise ValueError("a grid needs at least one image")
  rows = int(math.floor(math.sqrt(num_images)))
  cols = int(math.ceil(num_images / float(rows)))
  return rows, cols


def grid_layout(count, labels=None):
  """((rows, cols), cells) of a grid of count images: the most nearly square grid, images in
  order (cells None), or with their labels (one-hot) each class's images in rows of their own,
  classes in order (cells: each image's cell), as long as the classes shown are at most twice
  the square grid's rows (more keep the order given)."""
  rows, cols = image_manifold_size(count)
  if labels is None:
    return (rows, cols), None
  classes = np.argmax(np.asarray(labels)[:count], axis=1)
  present = np.unique(classes)
  if len(present) > 2 * rows:
    return (rows, cols), None
  cols = min(cols, max(int(np.sum(classes == c)) for c in present))
  cells, row = np.zeros(count, np.int64), 0
  for c in present:
    members = np.flatnonzero(classes == c)
    cells[members] = row * cols + np.arange(len(members))
    row += -(-len(members) // cols)
  return (row, cols), cells


def merge(images, size, cells=None):
  """Tile images [N, H, W, C] into one [rows*H, cols*W, C] array, image i in cell i (or cells[i],
  counted along the rows); empty cells are 0."""
  rows, cols = size
  n, h, w, c = images.shape
  cells = np.arange(n) if cells is None else cells
  if n and max(cells) >= rows * cols:
    raise ValueError("%d images do not fit a %dx%d grid" % (n, rows, cols))
  grid = np.zeros((h * rows, w * cols, c), dtype=images.dtype)
  for idx in range(n):
    r, q = divmod(int(cells[idx]), cols)
    grid[r * h:(r + 1) * h, q * w:(q + 1) * w, :] = images[idx]
  return grid


def to_uint8(images, value_range=(-1.0, 1.0)):
  """Float images in value_range -> uint8 [0, 255]."""
  lo, hi = value_range
  scaled = (np.asarray(images, dtype=np.float32) - lo) / (hi - lo)
  return np.clip(np.round(scaled * 255.0), 0, 255).astype(np.uint8)


@contextlib.contextmanager
def atomic_output(path):
  """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds.

  Whatever writes there (JSON, Pillow), a reader of `path` sees the old file or
  the complete new one, never half of one, whenever the process stops.  The
  file gets the permissions any new file gets here (0666 less the umask), not
  the private 0600 of a temporary file, so others can read it as they can the
  checkpoints.
  """
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
  try:
    os.fchmod(fd, 0o666 & ~current_umask())
  finally:
    os.close(fd)
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def current_umask():
  """The process's umask, read without changing it where Linux tells it (/proc/self/status)."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except (OSError, ValueError):
    pass
  mask = os.umask(0o022)  # elsewhere: set and restore (briefly process-wide)
  os.umask(mask)
  return mask


def strict_json(value):
  """value with every float that JSON cannot hold (inf, nan) as None: strict readers
  (JSON.parse, jq) refuse Python's Infinity and NaN.  Readers take None back as the flag's
  meaning (--train_size: all images)."""
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {key: strict_json(item) for key, item in value.items()}
  if isinstance(value, (list, tuple)):
    return [strict_json(item) for item in value]
  return value


def write_json_atomic(path, value):
  """Write strict JSON to path through a temporary file and a rename: never half-written."""
  import json
  with atomic_output(path) as tmp, open(tmp, "w") as f:
    json.dump(strict_json(value), f, indent=4, sort_keys=True, ensure_ascii=False,
              allow_nan=False)
  return path


def writable_folder(folder):
  """None if files can be written into folder (made if missing), else the operating system's
  reason ('Read-only file system').  It tries: as root, permission bits say nothing."""
  try:
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryFile(dir=folder):
      pass
  except OSError as err:
    return err.strerror or str(err)
  return None


def imsave(image, path):
  """Write an HxW, HxWx1 or HxWx3 uint8 array atomically (temp file + rename)."""
  if image.ndim == 3 and image.shape[2] == 1:
    image = image[:, :, 0]
  with atomic_output(path) as tmp:
    Image.fromarray(image).save(tmp, format=None if os.path.splitext(path)[1] else "PNG")
  return path


def save_images(images, size, image_path, value_range=(-1.0, 1.0), cells=None):
  """Save a batch [N, H, W, C] as one grid image (merge: cells places each image).

  value_range is the range the generator produces: (-1, 1) for tanh, (0, 1)
  for the conditional MNIST generator's sigmoid.  (The original mapped both
  with (x + 1) / 2, which greyed out every MNIST sample.)
  """
  return imsave(merge(to_uint8(images, value_range), size, cells), image_path)


def save_labelled_grid(images, labels, path, value_range):
  """Save images as one grid, a conditional model's in rows by class (grid_layout)."""
  size, cells = grid_layout(len(images), labels)
  return save_images(images, size, path, value_range, cells)


def save_sample_grid(sess, sampler, feed, path, value_range, labels=None):
  """Run the sampler on feed (the grid's z and labels) and save its images as one grid, in rows
  by class when the model is conditional (labels: the feed's)."""
  return save_labelled_grid(sess.run(sampler, feed_dict=feed), labels, path, value_range)


# ----------------------------------------------------------------------------
# reporting


def plural(count, word):
  """'1 step', '5 steps'."""
  return "%d %s%s" % (count, word, "" if count == 1 else "s")


def written_summary(paths, most=5):
  """Lines saying what was written: each path while a folder has at most `most` of them, else one
  line for the folder ('wrote 100 images to samples/')."""
  folders = {}
  for path in paths:
    folders.setdefault(os.path.dirname(path), []).append(path)
  lines = []
  for folder, inside in folders.items():
    if len(inside) <= most:
      lines += ["wrote %s" % path for path in inside]
    else:
      images = all(p.lower().endswith((".png", ".gif", ".jpg")) for p in inside)
      lines.append("wrote %s to %s" % (plural(len(inside), "image" if images else "file"),
                                       os.path.join(folder, "")))
  return lines


def count_parameters(variables):
  return sum(int(np.prod(v.shape.as_list())) for v in variables)


def show_all_variables(variables):
  """Print name, shape and size of each variable, and the total parameter count."""
  total = 0
  width = max([len(v.op.name) for v in variables] + [8])
  print("%-*s  %-20s %12s" % (width, "variable", "shape", "parameters"))
  for v in variables:
    shape = v.shape.as_list()
    count = count_parameters([v])
    total += count
    print("%-*s  %-20s %12d" % (width, v.op.name, str(shape), count))
  print("total parameters: %d" % total)
  return total


# ----------------------------------------------------------------------------
# GIFs and training pictures


def gif_frame_ms(duration, frames):
  """Milliseconds per frame for `frames` frames over `duration` seconds; GIF counts in 1/100 s."""
  return max(2, int(round(100.0 * duration / frames))) * 10


def make_gif(images, fname, duration=2.0, value_range=(-1.0, 1.0)):
  """Write a batch of images [N, H, W, C] (or a list of HxWxC arrays) as a looping GIF.

  duration is the whole animation in seconds, as in the original's make_gif
  (which needed moviepy); frames are spread evenly over it.
  """
  frames = [to_uint8(frame, value_range) for frame in images]
  pictures = [Image.fromarray(f[:, :, 0] if f.ndim == 3 and f.shape[2] == 1 else f) for f in frames]
  with atomic_output(fname) as tmp:
    pictures[0].save(tmp, save_all=True, append_images=pictures[1:], loop=0,
                     duration=gif_frame_ms(duration, len(pictures)))
  return fname


def progress_gif(sample_dir, fname, duration_per_frame=0.3):
  """The train_*.png grids of a run, in order, as one GIF; None if there are none."""
  grids = sorted(f for f in os.listdir(sample_dir) if f.startswith("train_") and f.endswith(".png"))
  if not grids:
    return None
  frames = [np.asarray(Image.open(os.path.join(sample_dir, g)).convert("RGB")) for g in grids]
  height, width = frames[-1].shape[:2]
  frames = [f for f in frames if f.shape[:2] == (height, width)]
  return make_gif(np.stack(frames), fname, duration=duration_per_frame * len(frames),
                  value_range=(0.0, 255.0))


def read_scalars(log_dir, tags=("d_loss", "g_loss")):
  """{tag: [(step, value), ...]} from every event file of a run's logs folder."""
  import tensorflow.compat.v1 as tf
  series = {tag: {} for tag in tags}
  for name in sorted(os.listdir(log_dir)):
    if not name.startswith("events.out.tfevents"):
      continue
    for event in tf.train.summary_iterator(os.path.join(log_dir, name)):
      for value in event.summary.value:
        if value.tag in series:
          series[value.tag][event.step] = value.simple_value
  return {tag: sorted(points.items()) for tag, points in series.items()}


def plot_curves(series, fname, size=(800, 400), title="losses"):
  """Draw {label: [(x, y), ...]} as line plots with axes, in Pillow (no matplotlib)."""
  from PIL import ImageDraw
  colors = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]
  width, height = size
  left, right, top, bottom = 60, 20, 30, 40
  img = Image.new("RGB", size, "white")
  draw = ImageDraw.Draw(img)
  points = [p for values in series.values() for p in values]
  if not points:
    raise UserError("No loss values to plot in the run's logs.")
  xs, ys = [p[0] for p in points], [p[1] for p in points]
  x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
  y0, y1 = min(0.0, min(ys)), max(ys) * 1.05 if max(ys) > 0 else 1.0
  to_px = lambda x, y: (left + (x - x0) / (x1 - x0) * (width - left - right),
                        height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom))
  draw.rectangle([left, top, width - right, height - bottom], outline=(0, 0, 0))
  for i in range(5):
    y = y0 + (y1 - y0) * i / 4.0
    _, py = to_px(x0, y)
    draw.line([left - 4, py, left, py], fill=(0, 0, 0))
    draw.text((5, py - 6), "%.2f" % y, fill=(0, 0, 0))
    x = x0 + (x1 - x0) * i / 4.0
    px, _ = to_px(x, y0)
    draw.line([px, height - bottom, px, height - bottom + 4], fill=(0, 0, 0))
    draw.text((px - 15, height - bottom + 8), "%d" % x, fill=(0, 0, 0))
  draw.text((left, 8), title + " (x: step)", fill=(0, 0, 0))
  for k, (label, values) in enumerate(sorted(series.items())):
    color = colors[k % len(colors)]
    line = [to_px(x, y) for x, y in values]
    if len(line) > 1:
      draw.line(line, fill=color, width=2)
    elif line:
      draw.ellipse([line[0][0] - 2, line[0][1] - 2, line[0][0] + 2, line[0][1] + 2], fill=color)
    draw.text((width - right - 120, top + 8 + 14 * k), "-- " + label, fill=color)
  with atomic_output(fname) as tmp:
    img.save(tmp)
  return fname


def training_pictures(sample_dir, log_dir):
  """training_progress.gif from a run's sample grids and loss_curves.png from its events."""
  written = []
  gif = progress_gif(sample_dir, os.path.join(sample_dir, "training_progress.gif"))
  if gif:
    written.append(gif)
  if os.path.isdir(log_dir):
    series = read_scalars(log_dir)
    if any(series.values()):
      written.append(plot_curves(series, os.path.join(sample_dir, "loss_curves.png")))
  return written


# ----------------------------------------------------------------------------
# the original's visualize(), options 0-4


def visualize(sess, dcgan, config, option, sample_dir="samples", rng=None):
  """The original's utils.visualize, all five options, for MNIST too (labels fed).

  0: one grid of samples from z in [-0.5, 0.5]               test_<time>.png
  1: per z dimension, a grid sweeping it over [0, 1)           test_arange_<dim>.png
  2: random dimensions swept around a small random z           test_gif_<dim>.gif
  3: per dimension, a sweep from z = 0                         test_gif_<dim>.gif
  4: as 3, plus every dimension's sweep side by side           test_gif_merged.gif
  Returns the files written.
  """
  if option not in _VISUALIZATIONS:
    raise UserError("--visualize_option must be 0, 1, 2, 3 or 4, not %r." % (option,))
  sweeps = _Sweeps(dcgan, config.batch_size, rng or np.random.RandomState(), sample_dir)
  return sorted(set(_VISUALIZATIONS[option](sweeps, option)))


class _Sweeps(collections.namedtuple("_Sweeps", "dcgan batch rng sample_dir")):
  """What every --visualize option draws with: the model, its batch, the random state, where
  the files go."""

  def values(self):
    """The values a swept z dimension takes, one per image of the batch: [0, 1)."""
    return np.arange(0, 1, 1.0 / self.batch)[:self.batch]

  def labels(self, one_label=False):
    """Labels for the conditional model (None for the unconditional one): every class as evenly
    as the batch allows, in order (a grid's rows follow them), or one random label for a whole
    sweep."""
    y_dim = self.dcgan.y_dim
    if not y_dim:
      return None
    chosen = (np.full(self.batch, self.rng.randint(y_dim)) if one_label
              else np.arange(self.batch) * y_dim // self.batch)
    return np.eye(y_dim, dtype=np.float32)[chosen]

  def sample(self, z, one_label=False):
    """(images, labels) of the batch z."""
    labels = self.labels(one_label)
    return self.dcgan.sample(z.astype(np.float32), labels), labels

  def path(self, name):
    return os.path.join(self.sample_dir, name)


def _visualize_grid(sweeps, option):
  """Option 0: one grid of samples from z in [-0.5, 0.5]."""
  dcgan = sweeps.dcgan
  z = sweeps.rng.uniform(-0.5, 0.5, size=(sweeps.batch, dcgan.z_dim))
  path = sweeps.path("test_%s.png" % timestamp("%Y%m%d%H%M%S"))
  return [save_labelled_grid(*sweeps.sample(z), path, dcgan.value_range)]


def _visualize_arange(sweeps, option):
  """Option 1: per z dimension, a grid of random z with that dimension swept over [0, 1)."""
  dcgan, written = sweeps.dcgan, []
  for idx in tqdm(range(dcgan.z_dim), desc="option 1: z dimensions", leave=False, disable=None):
    z = sweeps.rng.uniform(-1, 1, size=(sweeps.batch, dcgan.z_dim))
    z[:, idx] = sweeps.values()
    written.append(save_labelled_grid(*sweeps.sample(z), sweeps.path("test_arange_%s.png" % idx),
                                      dcgan.value_range))
  return written


def _visualize_random_sweeps(sweeps, option):
  """Option 2: random dimensions, each swept around a small random z, one GIF each."""
  dcgan, rng, written = sweeps.dcgan, sweeps.rng, []
  for idx in tqdm([rng.randint(0, dcgan.z_dim) for _ in range(dcgan.z_dim)],
                  desc="option 2: random dimensions", leave=False, disable=None):
    z = np.tile(rng.uniform(-0.2, 0.2, size=dcgan.z_dim), (sweeps.batch, 1))
    z[:, idx] = sweeps.values()
    written.append(make_gif(sweeps.sample(z, one_label=True)[0],
                            sweeps.path("test_gif_%s.gif" % idx), value_range=dcgan.value_range))
  return written


def _visualize_sweeps_from_zero(sweeps, option):
  """Options 3 and 4: per dimension, a sweep from z = 0, one GIF each; 4 adds every sweep side
  by side in one GIF."""
  dcgan, batch, image_set, written = sweeps.dcgan, sweeps.batch, [], []
  for idx in tqdm(range(dcgan.z_dim), desc="option %d: z dimensions" % option, leave=False,
                  disable=None):
    z = np.zeros([batch, dcgan.z_dim])
    z[:, idx] = sweeps.values()
    image_set.append(sweeps.sample(z, one_label=True)[0])
    written.append(make_gif(image_set[-1], sweeps.path("test_gif_%s.gif" % idx),
                            value_range=dcgan.value_range))
  if option == 4:
    size = image_manifold_size(dcgan.z_dim)
    frames = [merge(np.array([images[i] for images in image_set]), size)
              for i in list(range(batch)) + list(range(batch - 1, -1, -1))]
    written.append(make_gif(frames, sweeps.path("test_gif_merged.gif"), duration=8,
                            value_range=dcgan.value_range))
  return written


_VISUALIZATIONS = {0: _visualize_grid, 1: _visualize_arange, 2: _visualize_random_sweeps,
                   3: _visualize_sweeps_from_zero, 4: _visualize_sweeps_from_zero}
