"""Image input/output, sample grids and small helpers shared by the project.

Images are read and written with Pillow (the original used scipy.misc and
cv2, both gone or not wanted).  Pixel values inside the project are float32:
[-1, 1] for image folders (tanh generator), [0, 1] for MNIST (sigmoid).
"""
import datetime
import math
import os
import tempfile
import time

import numpy as np
from PIL import Image


class UserError(Exception):
  """A problem the user can fix; main.py prints it as one sentence, no traceback."""


def expand_path(path):
  return os.path.expanduser(os.path.expandvars(path))


def timestamp(fmt="%Y%m%d.%H%M%S", ts=None):
  return datetime.datetime.fromtimestamp(ts if ts else time.time()).strftime(fmt)


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


def merge(images, size):
  """Tile images [N, H, W, C] into one [rows*H, cols*W, C] array; empty cells are 0."""
  rows, cols = size
  n, h, w, c = images.shape
  if n > rows * cols:
    raise ValueError("%d images do not fit a %dx%d grid" % (n, rows, cols))
  grid = np.zeros((h * rows, w * cols, c), dtype=images.dtype)
  for idx in range(n):
    r, q = divmod(idx, cols)
    grid[r * h:(r + 1) * h, q * w:(q + 1) * w, :] = images[idx]
  return grid


def to_uint8(images, value_range=(-1.0, 1.0)):
  """Float images in value_range -> uint8 [0, 255]."""
  lo, hi = value_range
  scaled = (np.asarray(images, dtype=np.float32) - lo) / (hi - lo)
  return np.clip(np.round(scaled * 255.0), 0, 255).astype(np.uint8)


def imsave(image, path):
  """Write an HxW, HxWx1 or HxWx3 uint8 array atomically (temp file + rename)."""
  if image.ndim == 3 and image.shape[2] == 1:
    image = image[:, :, 0]
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  suffix = os.path.splitext(path)[1] or ".png"
  fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
  os.close(fd)
  try:
    Image.fromarray(image).save(tmp)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path


def save_images(images, size, image_path, value_range=(-1.0, 1.0)):
  """Save a batch [N, H, W, C] as one grid image.

  value_range is the range the generator produces: (-1, 1) for tanh, (0, 1)
  for the conditional MNIST generator's sigmoid.  (The original mapped both
  with (x + 1) / 2, which greyed out every MNIST sample.)
  """
  return imsave(merge(to_uint8(images, value_range), size), image_path)


# ----------------------------------------------------------------------------
# reporting


def show_all_variables(variables):
  """Print name, shape and size of each variable, and the total parameter count."""
  total = 0
  width = max([len(v.op.name) for v in variables] + [8])
  print("%-*s  %-20s %12s" % (width, "variable", "shape", "parameters"))
  for v in variables:
    shape = v.shape.as_list()
    count = int(np.prod(shape)) if shape else 1
    total += count
    print("%-*s  %-20s %12d" % (width, v.op.name, str(shape), count))
  print("total parameters: %d" % total)
  return total
