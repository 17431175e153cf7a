"""Looking at a trained generator: single images, latent walks, z arithmetic (Radford et al. 2015).

Each function takes a loaded DCGAN (its session holds the restored weights)
and writes pictures into a folder; main.py calls them in test mode.
"""
import os
import re

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from step import gen_random
from utils import (UserError, atomic_output, image_manifold_size, imsave, make_gif, merge,
                   save_images, save_labelled_grid, to_uint8)


def one_hot(labels, y_dim):
  return np.eye(y_dim, dtype=np.float32)[np.asarray(labels)]


def sample_in_batches(dcgan, z, labels=None, batch_size=256):
  """The sampler over any number of z, in batches."""
  out = []
  for start in range(0, len(z), batch_size):
    y = None if labels is None else labels[start:start + batch_size]
    out.append(dcgan.sample(z[start:start + batch_size].astype(np.float32), y))
  return np.concatenate(out)


ALL_LABELS = ("", "-1")  # --label unset (or the original's -1): every class, evenly


def label_index(label, names):
  """The class --label asks for, by its name or its index, of a model whose classes are names
  (None: no labels); -1 for all of them.  A one-sentence UserError for a label that names no
  class of this model."""
  given = str(label).strip()
  if given in ALL_LABELS:
    return -1
  if not names:
    raise UserError("--label needs a conditional model (MNIST, or class folders trained with "
                    "--labels); this one has no labels.")
  if given in names:
    return names.index(given)
  if given.isdigit() and int(given) < len(names):
    return int(given)
  indices = "0-%d" % (len(names) - 1)
  shown = (indices if list(names) == [str(i) for i in range(len(names))] else
           "%s, or their indices %s" % (", ".join(names[:10]) + (", ..." if len(names) > 10
                                                                 else ""), indices))
  raise UserError("--label %s names no class of this model (its classes: %s)." % (given, shown))


def chosen_attributes(label, names):
  """{attribute index: 1 or 0} that --label asks of an attribute model: names joined by commas,
  each present, or absent with a leading '-' ('Smiling,-Male'); {} for none.  A one-sentence
  UserError for a name that is no attribute of this model."""
  chosen = {}
  for part in [p.strip() for p in str(label).split(",") if p.strip() not in ALL_LABELS]:
    name = part[1:].strip() if part.startswith("-") else part
    if name not in names:
      raise UserError("--label %s: this model has no attribute %s (its attributes: %s); name "
                      "them joined by commas, '-' before one asks for its absence." % (
                          label, name, ", ".join(names[:10]) + (", ..." if len(names) > 10
                                                                else "")))
    chosen[names.index(name)] = 0 if part.startswith("-") else 1
  return chosen


def attribute_labels(count, frequency, chosen, rng):
  """Multi-hot y [count, attributes]: the attributes chosen as asked, every other one present
  as often as in the training images (frequency), drawn for each image."""
  labels = (rng.random((count, len(frequency))) < np.asarray(frequency)).astype(np.float32)
  for index, value in chosen.items():
    labels[:, index] = value
  return labels


def generation_labels(dcgan, count, label, frequency, rng):
  """(y for count images or None, each image's file name): a class model's images all of class
  `label` or every class evenly, an attribute model's as `label` chooses (attribute_labels)."""
  names = ["%06d.png" % (i + 1) for i in range(count)]
  if not dcgan.y_dim:
    return None, names
  if dcgan.multi_hot:
    return attribute_labels(count, frequency, chosen_attributes(label, dcgan.label_names),
                            rng), names
  label = label_index(label, dcgan.label_names)
  classes = np.full(count, label) if label >= 0 else np.arange(count) % dcgan.y_dim
  return one_hot(classes, dcgan.y_dim), ["%06d_label%d.png" % (i + 1, c)
                                         for i, c in enumerate(classes)]


def generate(dcgan, count, folder, label=-1, rng=None, frequency=None):
  """count single PNGs (a class model: all of class `label`, by its name or index, or all
  classes evenly; an attribute model: the attributes `label` names, the others at their
  frequency) and a grid; an attribute model's attribute walk beside it.  The files written."""
  rng = rng or np.random.default_rng()
  if count <= 0:
    raise UserError("--generate takes a positive number of images, not %d." % count)
  z = gen_random(rng, dcgan.z_dist, (count, dcgan.z_dim))
  labels, names = generation_labels(dcgan, count, label, frequency, rng)
  images = sample_in_batches(dcgan, z, labels)
  os.makedirs(folder, exist_ok=True)
  pixels = to_uint8(images, dcgan.value_range)
  for i in tqdm(range(count), desc="writing images", unit="img", leave=False, disable=None):
    imsave(pixels[i], os.path.join(folder, names[i]))
  grid_labels = None if labels is None or dcgan.multi_hot else labels[:256]
  written = [save_labelled_grid(images[:256], grid_labels, os.path.join(folder, "grid.png"),
                                dcgan.value_range)]
  if dcgan.multi_hot:
    written.append(attribute_walk(dcgan, frequency, os.path.join(folder, "attributes.png"), rng))
  return folder, written


def attribute_walk(dcgan, frequency, path, rng, columns=4):
  """A grid with a row per attribute: for each of `columns` z (the other attributes drawn at
  their frequency, the same in every row), the image without it and the image with it."""
  attributes = len(dcgan.label_names)
  z = gen_random(rng, dcgan.z_dist, (columns, dcgan.z_dim))
  base = attribute_labels(columns, frequency, {}, rng)
  labels = np.tile(np.repeat(base, 2, axis=0), (attributes, 1))
  for a in range(attributes):
    labels[a * 2 * columns:(a + 1) * 2 * columns, a] = np.tile([0.0, 1.0], columns)
  images = sample_in_batches(dcgan, np.tile(np.repeat(z, 2, axis=0), (attributes, 1)), labels)
  return save_images(images, (attributes, 2 * columns), path, dcgan.value_range)


def slerp(a, b, t):
  """Spherical interpolation between latent vectors a and b (linear when they are parallel)."""
  a_n, b_n = a / np.linalg.norm(a), b / np.linalg.norm(b)
  omega = np.arccos(np.clip(np.dot(a_n, b_n), -1.0, 1.0))
  if omega < 1e-6:
    return (1.0 - t) * a + t * b
  return (np.sin((1.0 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def latent_walks(dcgan, folder, pairs=8, steps=10, rng=None):
  """Walks between random pairs of z, linear and spherical: a grid (a row per pair) and a GIF each.

  For MNIST each walk keeps one label, so only the style changes along it.
  """
  rng = rng or np.random.default_rng()
  if pairs < 1 or steps < 2:
    raise UserError("A latent walk needs at least 1 pair and 2 steps.")
  ends = gen_random(rng, dcgan.z_dist, (pairs, 2, dcgan.z_dim))
  labels = None
  if dcgan.y_dim:
    labels = np.repeat(one_hot(rng.integers(0, dcgan.y_dim, pairs), dcgan.y_dim), steps, axis=0)
  ts = np.linspace(0.0, 1.0, steps)
  written = []
  for mode, mix in (("linear", lambda a, b, t: (1.0 - t) * a + t * b), ("spherical", slerp)):
    z = np.stack([mix(a, b, t) for a, b in ends for t in ts])
    images = sample_in_batches(dcgan, z, labels)
    written.append(save_images(images, (pairs, steps), os.path.join(folder, "walk_%s.png" % mode),
                               dcgan.value_range))
    by_step = images.reshape((pairs, steps) + images.shape[1:])
    size = image_manifold_size(pairs)
    frames = [merge(by_step[:, s], size) for s in list(range(steps)) + list(range(steps - 2, 0, -1))]
    written.append(make_gif(frames, os.path.join(folder, "walk_%s.gif" % mode), duration=0.15 * len(frames),
                            value_range=dcgan.value_range))
  return written


def parse_arithmetic(expression, pool_labels=None, exemplars=3):
  """'1,2,3 - 4,5,6 + 7,8,9' (pool indices) or 'label:3 - label:5 + label:7' (MNIST).

  Returns [(sign, [pool indices]), ...].
  """
  tokens = re.split(r"\s*([+-])\s*", " + " + expression.strip())
  terms = []
  for sign, term in zip(tokens[1::2], tokens[2::2]):
    term = term.strip()
    if term.startswith("label:"):
      if pool_labels is None:
        raise UserError("'%s' needs a conditional model (MNIST, or class folders trained with "
                        "--labels); give pool indices instead." % term)
      label = int(term[len("label:"):])
      indices = [int(i) for i in np.flatnonzero(pool_labels == label)[:exemplars]]
      if not indices:
        raise UserError("No exemplar of label %d in the pool." % label)
    else:
      try:
        indices = [int(i) for i in term.split(",") if i.strip()]
      except ValueError:
        indices = []
      if not indices:
        raise UserError("Cannot read the term %r of --arithmetic; write pool indices like '1,2,3' or "
                        "'label:7', joined by + and -." % term)
    terms.append((1.0 if sign == "+" else -1.0, indices))
  if len(terms) < 2:
    raise UserError("--arithmetic needs at least two terms, such as 'A - B + C'.")
  return terms


def annotated_grid(images, value_range, path, columns):
  """A grid with each cell's index written in its corner (to pick exemplars by index)."""
  rows = -(-len(images) // columns)
  grid = merge(to_uint8(images, value_range), (rows, columns))
  picture = Image.fromarray(grid[:, :, 0] if grid.shape[2] == 1 else grid).convert("RGB")
  scale = max(1, 96 // images.shape[1])
  picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
  draw = ImageDraw.Draw(picture)
  h, w = images.shape[1] * scale, images.shape[2] * scale
  for i in range(len(images)):
    r, c = divmod(i, columns)
    draw.text((c * w + 2, r * h + 1), str(i), fill=(255, 64, 64))
  with atomic_output(path) as tmp:
    picture.save(tmp)
  return path


def z_arithmetic(dcgan, folder, expression, pool_size=64, variations=8, rng=None, pool_seed=0):
  """Vector arithmetic on averaged exemplar z (and, for MNIST, on the label input too).

  The pool is pool_size samples from a fixed seed, written with their indices
  as arithmetic_pool.png; exemplars are picked from it.  arithmetic.png shows a
  row per term (its exemplars and their mean), then the result and `variations`
  of it with uniform noise in [-0.25, 0.25] added to z, as in the paper.
  """
  rng = rng or np.random.default_rng()
  pool_z = gen_random(np.random.default_rng(pool_seed), dcgan.z_dist, (pool_size, dcgan.z_dim))
  pool_classes = np.arange(pool_size) % dcgan.y_dim if dcgan.y_dim else None
  pool_y = one_hot(pool_classes, dcgan.y_dim) if dcgan.y_dim else None
  pool_images = sample_in_batches(dcgan, pool_z, pool_y)
  columns = image_manifold_size(pool_size)[1]
  written = [annotated_grid(pool_images, dcgan.value_range, os.path.join(folder, "arithmetic_pool.png"),
                            columns)]
  terms = parse_arithmetic(expression, pool_classes)
  for _, indices in terms:
    bad = [i for i in indices if not 0 <= i < pool_size]
    if bad:
      raise UserError("Pool index %d is outside the pool of %d samples (--arithmetic_pool)." % (bad[0], pool_size))
  z = sum(sign * pool_z[idx].mean(0) for sign, idx in terms)
  y = sum(sign * pool_y[idx].mean(0) for sign, idx in terms) if dcgan.y_dim else None
  results_z = np.concatenate([z[None], z + rng.uniform(-0.25, 0.25, (variations, dcgan.z_dim))])
  results_y = np.repeat(y[None], len(results_z), 0) if y is not None else None
  results = sample_in_batches(dcgan, results_z, results_y)
  width = max(max(len(idx) for _, idx in terms) + 1, len(results))
  blank = np.full(pool_images.shape[1:], dcgan.value_range[0], np.float32)
  rows = []
  for _, idx in terms:
    mean_y = pool_y[idx].mean(0, keepdims=True) if dcgan.y_dim else None
    row = list(pool_images[idx]) + list(sample_in_batches(dcgan, pool_z[idx].mean(0, keepdims=True), mean_y))
    rows.append(row + [blank] * (width - len(row)))
  rows.append(list(results) + [blank] * (width - len(results)))
  table = np.stack([cell for row in rows for cell in row])
  written.append(save_images(table, (len(rows), width), os.path.join(folder, "arithmetic.png"),
                             dcgan.value_range))
  return written
