"""A run's folder and its record (docs/ARCHITECTURE.md): its name under --out_dir, FLAGS.json,
finding it for test mode, the command line that resumes it, and the check that a resume counts
steps as the run did.

    <out_dir>/<out_name>/FLAGS.json, checkpoint/, samples/, logs/
"""
import dataclasses
import json
import os
import shlex
import sys

import numpy as np
import tensorflow.compat.v1 as tf

from checkpoints import checkpoint_batch
from dataset import multi_hot
from settings import Folders
from utils import UserError, expand_path, timestamp, write_json_atomic


def check_run_name(name):
  """--out_name names a folder in --out_dir: no path (another place is --out_dir's job)."""
  if name in (".", "..") or any(sep and sep in name for sep in ("/", os.sep, os.altsep)):
    raise UserError("--out_name is the name of a run's folder inside --out_dir, not a path, so "
                    "%r cannot be one; to keep runs elsewhere, set --out_dir." % name)


def with_flags(argv, values):
  """argv with each --name in values set to its value (replaced where given, else appended)."""
  out, skip = [], False
  for arg in argv:
    if skip:
      skip = False
      continue
    name = arg.lstrip("-").split("=", 1)[0]
    if arg.startswith("-") and name in values:
      skip = "=" not in arg
      continue
    out.append(arg)
  for name, value in values.items():
    out += ["--" + name, str(value)]
  return out


def resume_command(out_name, argv=None, **values):
  """The command line that resumes the run out_name, quoted to paste into a shell: this
  process's own command with --out_name set (and any other flag in values)."""
  argv = list(sys.argv if argv is None else argv)
  python = sys.executable or "python"
  inside = os.path.relpath(python) if python.startswith(os.getcwd() + os.sep) else None
  values = dict(values, out_name=out_name)
  words = [inside or python, argv[0]] + with_flags(argv[1:], values)
  return " ".join(shlex.quote(word) for word in words)


def read_json(path):
  """A JSON file's value; {} where it is missing or not JSON."""
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def has_checkpoint(folder):
  """Whether folder holds a 'checkpoint' state file."""
  return os.path.isdir(folder) and tf.train.get_checkpoint_state(folder) is not None


def run_dataset(run_dir):
  """The dataset a run folder trained on: its FLAGS.json's, else (a run without one) the third
  part of a default name '<time> - <data> - <dataset> - ...'."""
  dataset = read_json(os.path.join(run_dir, "FLAGS.json")).get("dataset")
  if dataset is None:
    parts = os.path.basename(run_dir).split(" - ")
    dataset = parts[2] if len(parts) >= 3 else None
  return dataset


def find_run(config, given_checkpoint_dir):
  """(run folder, checkpoint folder) for test mode, without guessing folder names.

  In order: --checkpoint_dir naming an existing checkpoint folder; --out_name;
  else the newest run of --dataset under --out_dir holding a checkpoint.
  """
  if given_checkpoint_dir:
    folder = expand_path(config.checkpoint_dir)
    if has_checkpoint(folder):
      return os.path.dirname(os.path.abspath(folder)), folder
  if config.out_name:
    run_dir = os.path.join(config.out_dir, config.out_name)
    return run_dir, os.path.join(run_dir, config.checkpoint_dir)
  if given_checkpoint_dir:
    raise UserError("No checkpoint in %s; point --checkpoint_dir at a folder holding a 'checkpoint' "
                    "file, or name the run with --out_name." % config.checkpoint_dir)
  candidates = []
  if os.path.isdir(config.out_dir):
    for name in os.listdir(config.out_dir):
      ckpt_dir = os.path.join(config.out_dir, name, config.checkpoint_dir)
      matches = run_dataset(os.path.join(config.out_dir, name)) == config.dataset
      if matches and has_checkpoint(ckpt_dir):
        mtime = os.path.getmtime(os.path.join(ckpt_dir, "checkpoint"))
        candidates.append((mtime, os.path.join(config.out_dir, name), ckpt_dir))
  if not candidates:
    raise UserError("No trained checkpoint for dataset '%s' under %s; train one with --train first, "
                    "or point --checkpoint_dir at a checkpoint folder." % (config.dataset, config.out_dir))
  _, run_dir, ckpt_dir = max(candidates)
  return run_dir, ckpt_dir


def name_run(config):
  """config with the run's name: --out_name, or the original's default name when it is not
  given."""
  if config.out_name:
    return config
  return config.replace(out_name="{} - {} - {} - x{}.z{}.{}.y{}.b{}".format(
      timestamp(), os.path.basename(os.path.normpath(config.data_dir)), config.dataset,
      config.input_width, config.z_dim, config.z_dist, config.output_width, config.batch_size))


def run_folders(config):
  """The named run's settings.Folders: <out_dir>/<out_name>/ and its checkpoint and sample
  folders inside it."""
  run_dir = os.path.join(config.out_dir, config.out_name)
  return Folders(os.path.join(run_dir, config.checkpoint_dir),
                 os.path.join(run_dir, config.sample_dir), run_dir)


def write_run_folder(config, folders):
  """The run folder, its checkpoint and sample folders, and its FLAGS.json (strict JSON): the
  flags, with the folders where this run's files are."""
  try:
    os.makedirs(folders.checkpoint_dir, exist_ok=True)
    os.makedirs(folders.sample_dir, exist_ok=True)
    write_json_atomic(os.path.join(folders.out_dir, "FLAGS.json"),
                      dict(config.as_dict(), **dataclasses.asdict(folders)))
  except OSError as err:
    raise UserError("Cannot write the run folder %s (%s); choose another --out_dir."
                    % (folders.out_dir, err.strerror or err))


def check_same_classes(description, record):
  """A resumed run's classes are the ones it was trained on (its FLAGS.json's data description):
  a one-sentence UserError if the data now holds others (y's width and meaning would change)."""
  recorded = record.get("data") or {}
  trained = recorded.get("labels")
  if trained and (description["labels"], multi_hot(description)) != (trained,
                                                                      multi_hot(recorded)):
    word, flag = (("attributes", "--attributes and the same attributes") if multi_hot(recorded)
                  else ("classes", "--labels and the same class folders"))
    now = ("the %s %s" % ("attributes" if multi_hot(description) else "classes",
                          ", ".join(description["labels"])) if description["labels"]
           else "unlabelled images")
    raise UserError("This run was trained on the %s %s (its FLAGS.json), and this command "
                    "reads %s as %s; resume it with %s, or start a new run with another "
                    "--out_name." % (word, ", ".join(trained), description["source"], now, flag))


def check_same_counting(config, path, record):
  """A resumed run's counter counts batches of its --batch_size out of its --train_size
  images: a one-sentence UserError if these flags would count otherwise."""
  saved_batch = checkpoint_batch(path)
  if saved_batch and saved_batch != config.batch_size:
    raise UserError("This run was trained with --batch_size %d (its checkpoint %s), and its "
                    "counter counts batches of that size; resume it with --batch_size %d, or "
                    "start a new run with another --out_name."
                    % (saved_batch, os.path.basename(path), saved_batch))
  saved_size = record.get("train_size", config.train_size)
  saved_size = np.inf if saved_size is None else saved_size  # null: all images
  if saved_size != config.train_size:
    raise UserError("This run was trained with --train_size %g (its FLAGS.json), and its "
                    "counter's epochs are of that many images; resume it with --train_size %g, "
                    "or start a new run with another --out_name." % (saved_size, saved_size))
