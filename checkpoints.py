"""Checkpoints in one place: the Savers, the health check before each save, restoring the
original's and this project's formats, and the one-sentence errors for a checkpoint that does
not fit (docs/ARCHITECTURE.md).

Names are the original's: 'model.b<batch_size>-<counter>' in the run's checkpoint folder.
"""
import errno
import os
import re
import shutil

import numpy as np
import tensorflow.compat.v1 as tf

from utils import UserError


def named_checkpoint(checkpoint_dir):
  """The path in checkpoint_dir of the checkpoint the folder's 'checkpoint' file names, or None.

  Found by its file name in checkpoint_dir itself: the file keeps the paths it was written with
  (absolute ones, as the original's), so a run folder copied or moved elsewhere would otherwise
  name its old place."""
  state = tf.train.get_checkpoint_state(checkpoint_dir)
  if not (state and state.model_checkpoint_path):
    return None
  return os.path.join(checkpoint_dir, os.path.basename(state.model_checkpoint_path))


def last_checkpoint(checkpoint_dir):
  """The loadable checkpoint the folder's 'checkpoint' file names (named_checkpoint), or
  'none'."""
  try:
    path = named_checkpoint(checkpoint_dir)
  except (tf.errors.OpError, ValueError):
    return "none"
  if path and (os.path.exists(path + ".index") or os.path.isfile(path)):
    return path
  return "none"


# What a failed write says when the disk, a quota or a file-size limit is what stopped it.
SPACE_CAUSES = tuple(os.strerror(code) for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG))
CAUSES = SPACE_CAUSES + tuple(os.strerror(code) for code in (errno.EROFS, errno.EACCES,
                                                             errno.EIO))


def write_failure_cause(err):
  """The operating system's reason in a failed write's error ('No space left on device'),
  else its first line (TensorFlow's first line is often only 'Graph execution error:')."""
  text = str(getattr(err, "message", None) or getattr(err, "strerror", None) or err)
  for cause in CAUSES:
    if cause.lower() in text.lower():
      return cause
  return text.strip().splitlines()[0].strip() if text.strip() else type(err).__name__


def megabytes(size):
  return "%.0f MB" % max(1.0, size / 1e6)


# A checkpoint's files: '<name>.index', '<name>.data-00000-of-00001' and '<name>.meta'; while
# TensorFlow writes them, also '<name>_temp/' (a sharded save's parts) and files written aside
# before their rename ('.tempstate<N>', '.tmp<hex>'; the 'checkpoint' file's too).
CHECKPOINT_FILE = re.compile(r"(model\.b\d+-\d+|checkpoint)([._].+)")
TEMPORARY = re.compile(r"_temp|\.tempstate|\.tmp")


def remove_abandoned(checkpoint_dir):
  """Remove what saves that never finished left in checkpoint_dir: every file TensorFlow
  writes aside before renaming it, and the files of each checkpoint that the folder's
  'checkpoint' file does not name and that lacks its index, data or meta graph (a save stopped
  before it was recorded; a complete checkpoint copied in by hand stays).  Returns
  [(name, bytes)] of what was removed."""
  if not os.path.isdir(checkpoint_dir):
    return []
  try:
    state = tf.train.get_checkpoint_state(checkpoint_dir)
  except (tf.errors.OpError, ValueError):
    return []  # which checkpoints it records is unknown: nothing is removed
  kept = {os.path.basename(p) for p in (state.all_model_checkpoint_paths if state else [])}
  groups = {}
  for entry in os.listdir(checkpoint_dir):
    match = CHECKPOINT_FILE.fullmatch(entry)
    if match:
      groups.setdefault(match.group(1), []).append(match.group(2))
  removed = []
  for name, endings in sorted(groups.items()):
    complete = (".index" in endings and ".meta" in endings
                and any(e.startswith(".data-") and not TEMPORARY.search(e) for e in endings))
    if not (name == "checkpoint" or name in kept or complete):
      doomed = endings
    else:
      doomed = [e for e in endings if TEMPORARY.search(e)]
    if doomed:
      removed.append((name, sum(_remove(os.path.join(checkpoint_dir, name + e)) for e in doomed)))
  return removed


def _remove(path):
  """Remove a file or a folder; the bytes it held."""
  if os.path.isdir(path) and not os.path.islink(path):
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    shutil.rmtree(path, ignore_errors=True)
    return size
  size = os.path.getsize(path)
  os.remove(path)
  return size


def describe_removed(removed):
  """'model.b64-66 (130 MB)' for remove_abandoned's answer."""
  return ", ".join("%s (%s)" % (name, megabytes(size) if size >= 1e6 else "under 1 MB")
                   for name, size in removed)


def checkpoint_shapes(checkpoint_dir):
  """(path, {variable: shape}) of the checkpoint checkpoint_dir's state names, or (None, None)."""
  if not os.path.isdir(checkpoint_dir):
    return None, None
  path = named_checkpoint(checkpoint_dir)
  if path is None:
    return None, None
  try:
    return path, tf.train.load_checkpoint(path).get_variable_to_shape_map()
  except (tf.errors.OpError, ValueError) as err:
    raise UserError("The checkpoint %s cannot be read (%s)." % (path, str(err).splitlines()[0]))


def generated_channels(shapes, default=3):
  """The image channels a checkpoint's generator makes ({variable: shape}, as checkpoint_shapes
  gives): its last transposed convolution's output channels (the original's weights are
  [5, 5, out, in]; g_h4 unconditional, g_h3 conditional).  Test mode reads an image folder's
  channels here when the folder is not on this machine."""
  layers = sorted((int(name.split("/")[1][3:]), shape) for name, shape in (shapes or {}).items()
                  if name.startswith("generator/g_h") and name.endswith("/w"))
  return layers[-1][1][2] if layers else default


def checkpoint_prefix(batch_size, filename="model"):
  """The name a checkpoint is saved under before its counter: 'model.b64' (checkpoint_batch
  reads the batch size back)."""
  return "%s.b%d" % (filename, batch_size)


def checkpoint_counter(path):
  """The counter a checkpoint path ends with: 'model.b64-1200' -> 1200."""
  try:
    return int(os.path.basename(path).rsplit("-", 1)[1])
  except (IndexError, ValueError):
    return 0


def checkpoint_batch(path):
  """The batch size a checkpoint's name carries: 'model.b64-1200' -> 64 (None for another name)."""
  match = re.fullmatch(r"model\.b(\d+)-\d+", os.path.basename(path))
  return int(match.group(1)) if match else None


def mismatch_hint(name, saved_shape, shape, y_dim):
  """Which flag to change when a model variable is missing (saved_shape None) or shaped
  differently.  Variables are checked in creation order (generator input layer first), so the
  first mismatch points at the flag that caused it."""
  if saved_shape is None:
    return ("check --dataset and --labels: mnist, and class folders with --labels, train the "
            "conditional model, other image folders the unconditional one")
  if name == "generator/g_h0_lin/Matrix" and saved_shape[0] != shape[0]:
    return "it was trained with --z_dim %d" % (saved_shape[0] - (y_dim or 0))
  last_layer = "generator/g_h3/w" if y_dim else "generator/g_h4/w"
  if name == last_layer and saved_shape[2] != shape[2]:
    return ("it was trained on images with %d channel(s), not %d (grayscale vs colour)"
            % (saved_shape[2], shape[2]))
  return ("set --output_height and --output_width (and --crop, --input_height) "
          "as when it was trained")


class Checkpoints(object):
  """The graph's Savers and what reads and writes through them.

  Built last, after the optimizers (docs/ARCHITECTURE.md): a Saver for checkpoints that hold
  the model only (the original built its Saver before its optimizers); one for checkpoints of
  another precision (everything but the loss-scale state in scale_scopes: fp32 runs and the
  original have none); then `saver`, for everything, keeping max_to_keep checkpoints.
  healthy: a boolean tensor, true while every variable and the model's outputs are finite.
  """

  def __init__(self, model_vars, max_to_keep, healthy, y_dim, scale_scopes):
    self.all_vars = tf.global_variables()
    self.model_vars = model_vars
    self.healthy = healthy
    self.y_dim = y_dim
    self.model_saver = tf.train.Saver(model_vars)
    self.scale_vars = [v for v in self.all_vars if v.op.name.split('/')[0] in scale_scopes]
    self.unscaled_saver = (tf.train.Saver([v for v in self.all_vars if v not in self.scale_vars])
                           if self.scale_vars else None)
    self.saver = tf.train.Saver(max_to_keep=max_to_keep)

  def size_bytes(self):
    """About what one checkpoint weighs: every variable it holds (Adam's two slots included)."""
    return sum(v.shape.num_elements() * v.dtype.base_dtype.size for v in self.all_vars)

  def check(self, checkpoint_dir):
    """(path, variable shapes) of checkpoint_dir's newest checkpoint, or (None, None) if it has
    none; a one-sentence UserError if that checkpoint does not fit this graph."""
    path, saved = checkpoint_shapes(checkpoint_dir)
    if path is not None:
      self.check_compatible(saved, path)
    return path, saved

  def check_compatible(self, saved, path):
    """Raise a one-sentence UserError if the checkpoint's model variables don't fit this graph."""
    missing = [v.op.name for v in self.model_vars if v.op.name not in saved]
    if missing:
      raise UserError("The checkpoint %s has no variable %s, so it holds another architecture; %s."
                      % (path, missing[0], mismatch_hint(missing[0], None, None, self.y_dim)))
    for var in self.model_vars:
      name, shape = var.op.name, var.shape.as_list()
      saved_shape = list(saved[name])
      if saved_shape != shape:
        raise UserError("The checkpoint %s does not fit these flags: %s is %s there but %s here; %s."
                        % (path, name, saved_shape, shape,
                           mismatch_hint(name, saved_shape, shape, self.y_dim)))

  def restore(self, sess, checkpoint_dir):
    """Restore the newest checkpoint in checkpoint_dir; returns (found, counter).

    Variables are checked against the checkpoint first, so a checkpoint made with other flags
    is reported in one sentence instead of a restore error.  A checkpoint holding the model
    only (no Adam state) restores the model and leaves the optimizers freshly initialised.
    """
    path, saved = self.check(checkpoint_dir)
    if path is None:
      return False, 0
    if all(v.op.name in saved for v in self.all_vars):
      self.saver.restore(sess, path)
    elif self.unscaled_saver and all(v.op.name in saved for v in self.all_vars
                                     if v not in self.scale_vars):
      self.unscaled_saver.restore(sess, path)
      print(" [*] %s holds no loss-scale state (not an fp16 run): the loss scales start afresh"
            % os.path.basename(path))
    else:
      self.model_saver.restore(sess, path)
      print(" [*] %s holds no optimizer state: Adam starts afresh" % os.path.basename(path))
    print(" [*] Success to read {} in {}".format(os.path.basename(path), checkpoint_dir))
    return True, checkpoint_counter(path)

  def keep_track(self, checkpoint_dir):
    """Resuming: the Saver takes over the checkpoints earlier processes kept in checkpoint_dir,
    so that --max_to_keep counts them too and deletes the oldest as it saves."""
    state = tf.train.get_checkpoint_state(checkpoint_dir)
    if state is None:
      return
    paths = [os.path.join(checkpoint_dir, os.path.basename(p))
             for p in state.all_model_checkpoint_paths]
    self.saver.recover_last_checkpoints(paths)

  def save(self, sess, checkpoint_dir, prefix, step):
    """Write checkpoint '<prefix>-<step>' in checkpoint_dir; returns its path."""
    os.makedirs(checkpoint_dir, exist_ok=True)
    return self.saver.save(sess, os.path.join(checkpoint_dir, prefix), global_step=step)

  def save_checked(self, sess, checkpoint_dir, prefix, step, check_feed):
    """save() if the model is still healthy (self.healthy, fed check_feed); a one-sentence
    UserError if not or if the write fails (the previous checkpoint stays as it was)."""
    if not sess.run(self.healthy, feed_dict=check_feed):
      raise UserError("The model diverged by step %d (weights or outputs are NaN or infinite), so "
                      "it was not saved; the last good checkpoint is %s. Lower --learning_rate to "
                      "train on." % (step, last_checkpoint(checkpoint_dir)))
    try:
      return self.save(sess, checkpoint_dir, prefix, step)
    except (tf.errors.OpError, OSError) as err:
      remove_abandoned(checkpoint_dir)
      cause = write_failure_cause(err)
      space = ""
      if cause in SPACE_CAUSES:
        space = "; it needs about %s free there, one checkpoint's size" % megabytes(
            sum(np.prod(v.shape.as_list(), dtype=np.int64) * v.dtype.size for v in self.all_vars))
      raise UserError("Could not write the checkpoint for step %d in %s (%s%s); what it had "
                      "written is removed and the previous checkpoint (%s) is untouched."
                      % (step, checkpoint_dir, cause, space, last_checkpoint(checkpoint_dir)))
