"""Train a DCGAN, or sample from a trained one.

    python main.py --dataset mnist --input_height 28 --output_height 28 --train
    python main.py --dataset celebA --input_height 108 --train --crop
    python main.py --dataset mnist --input_height 28 --output_height 28      # test mode
    python main.py ... --train --worker_hosts h1:2222,h2:2222 --task_index 0  # several machines

Every flag of carpedm20/DCGAN-tensorflow keeps its name, default and meaning;
--seed is new.  Each training run writes into its own folder
<out_dir>/<out_name>/ (FLAGS.json, checkpoint/, samples/, logs/).  Pass
--out_name of an existing run to resume it.  Without --train, the newest run
of --dataset (or the run named by --out_name, or --checkpoint_dir) is loaded
and a sample grid written.
"""
import json
import os
import shlex
import sys

import numpy as np
from absl import app, flags

import hardware


def _import_tensorflow_quietly():
  """Import TensorFlow without its C++ start-up chatter.

  TensorFlow logs several lines from C++ while it loads (oneDNN notices, "Could
  not find cuda drivers", "failed call to cuInit" on machines without a GPU),
  some before any log level applies. Unless the user set TF_CPP_MIN_LOG_LEVEL
  (0 shows everything), they are hidden; Python errors still surface.
  oneDNN is decided first (hardware.configure).
  """
  hardware.configure()
  if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
    import tensorflow.compat.v1 as tf_v1
    return tf_v1
  os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 2)
    import tensorflow.compat.v1 as tf_v1
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)
  return tf_v1


tf = _import_tensorflow_quietly()
tf.get_logger().setLevel("ERROR")

import cluster as cluster_module  # noqa: E402
import experiments  # noqa: E402
import export  # noqa: E402
from checkpoints import checkpoint_counter, checkpoint_shapes  # noqa: E402
from dataset import labelled, open_dataset  # noqa: E402
from model import DCGAN, Z_DISTRIBUTIONS  # noqa: E402
from precision import precision_mode, session_config  # noqa: E402
from replicas import batches_per_epoch  # noqa: E402
from training import TrainingInterrupted  # noqa: E402
from utils import (UserError, count_parameters, expand_path, plural,  # noqa: E402
                   show_all_variables, timestamp, training_pictures, visualize, write_json_atomic,
                   written_summary)

_before = set(flags.FLAGS)
flags.DEFINE_integer("epoch", 25, "Epoch to train [25]")
flags.DEFINE_float("learning_rate", 0.0002, "Learning rate of for adam [0.0002]")
flags.DEFINE_float("beta1", 0.5, "Momentum term of adam [0.5]")
flags.DEFINE_float("train_size", np.inf, "The size of train images [np.inf]")
flags.DEFINE_integer("batch_size", 64, "The size of batch images [64]")
flags.DEFINE_integer("input_height", 108, "The size of image to use (will be center cropped). [108]")
flags.DEFINE_integer("input_width", None, "The size of image to use (will be center cropped). "
                     "If None, same value as input_height [None]")
flags.DEFINE_integer("output_height", 64, "The size of the output images to produce [64]")
flags.DEFINE_integer("output_width", None, "The size of the output images to produce. "
                     "If None, same value as output_height [None]")
flags.DEFINE_string("dataset", "celebA", "The name of dataset [celebA, mnist, lsun]")
flags.DEFINE_string("input_fname_pattern", "*.jpg", "Glob pattern of filename of input images [*]")
flags.DEFINE_string("data_dir", "./data", "path to datasets [e.g. $HOME/data]")
flags.DEFINE_string("out_dir", "./out", "Root directory for outputs [e.g. $HOME/out]")
flags.DEFINE_string("out_name", "", "Folder (under out_root_dir) for all outputs. "
                    "Generated automatically if left blank []")
flags.DEFINE_string("checkpoint_dir", "checkpoint", "Folder (under out_root_dir/out_name) to save "
                    "checkpoints [checkpoint]; in test mode may also be a path to a checkpoint folder")
flags.DEFINE_string("sample_dir", "samples", "Folder (under out_root_dir/out_name) to save samples [samples]")
flags.DEFINE_boolean("train", False, "True for training, False for testing [False]")
flags.DEFINE_boolean("crop", False, "True for training, False for testing [False]")
flags.DEFINE_boolean("visualize", False, "True for visualizing, False for nothing [False]")
flags.DEFINE_boolean("export", False, "True for exporting with new batch size")
flags.DEFINE_boolean("freeze", False, "True for exporting with new batch size")
flags.DEFINE_boolean("saved_model", False, "Test mode: write the generator as a SavedModel "
                     "(TF 2, TF Serving) in <run>/saved_model/<counter>/ [False]")
flags.DEFINE_boolean("tflite", False, "Test mode: write the generator as a TFLite file in "
                     "<run>/tflite/ for --batch_size images at a time [False]")
flags.DEFINE_integer("max_to_keep", 1, "maximum number of checkpoints to keep")
flags.DEFINE_integer("sample_freq", 200, "sample every this many iterations")
flags.DEFINE_integer("ckpt_freq", 200, "save checkpoint every this many iterations")
flags.DEFINE_integer("z_dim", 100, "dimensions of z")
flags.DEFINE_string("z_dist", "uniform_signed", "'normal01' or 'uniform_unsigned' or uniform_signed")
flags.DEFINE_boolean("G_img_sum", False, "Save generator image summaries in log")
flags.DEFINE_integer("visualize_option", 1, "With --visualize: 0 grid, 1 per-dimension sweeps, 2 random-"
                     "dimension GIFs, 3 single-dimension GIFs, 4 as 3 plus a merged GIF [1]")
flags.DEFINE_integer("generate", 0, "Test mode: write this many single generated images and a grid")
flags.DEFINE_integer("label", -1, "With --generate on mnist: only this digit [-1: all, evenly]")
flags.DEFINE_boolean("walk", False, "Test mode: latent walks between random z, linear and spherical "
                     "(grid and GIF each)")
flags.DEFINE_integer("walk_pairs", 8, "Walks in --walk [8]")
flags.DEFINE_integer("walk_steps", 10, "Steps along each walk [10]")
flags.DEFINE_string("arithmetic", "", "Test mode: z arithmetic on averaged exemplars, e.g. "
                    "'1,2,3 - 4,5,6 + 7,8,9' (indices in arithmetic_pool.png) or, for mnist, "
                    "'label:3 - label:3 + label:8'")
flags.DEFINE_integer("arithmetic_pool", 64, "Samples in the exemplar pool of --arithmetic [64]")
flags.DEFINE_boolean("evaluate", False, "Test mode, mnist: class-conditional accuracy and Frechet "
                     "distance of generated digits, beside the real test split's; writes evaluation.json")
flags.DEFINE_integer("evaluate_n", 100, "Generated digits per label for --evaluate [100]")
flags.DEFINE_string("classifier_dir", "checkpoint", "Where the --evaluate MNIST classifier is cached "
                    "[checkpoint]")
flags.DEFINE_integer("classifier_epochs", 4, "Epochs to train the --evaluate classifier [4]")
flags.DEFINE_boolean("features_experiment", False, "Test mode, mnist: linear classifier on D's "
                     "features vs raw pixels (the paper's experiment); writes d_features.json")
flags.DEFINE_integer("labels_per_class", 10, "Labelled digits per class for --features_experiment [10]")
flags.DEFINE_boolean("training_pictures", False, "Test mode: the run's training-progress GIF and "
                     "loss curves (training writes them at its end anyway)")
flags.DEFINE_integer("summary_freq", 10, "Write TensorBoard summaries every this many iterations "
                     "(and at the first) [10]; 1 writes every step as the original did")
flags.DEFINE_string("precision", "fp32", "fp32; fp16: float16 mixed precision with dynamic loss "
                    "scaling, on a GPU (DCGAN_FP16_ON_CPU=1 emulates it on the CPU); bf16: oneDNN "
                    "bfloat16 on CPUs with AVX512-BF16/AMX. Variables and Adam's state stay fp32")
flags.DEFINE_boolean("xla", False, "Compile the graph with XLA JIT (see docs/PERFORMANCE.md)")
flags.DEFINE_integer("intra_op_threads", 0, "Threads inside one op [0: TensorFlow's choice]")
flags.DEFINE_integer("inter_op_threads", 0, "Ops run in parallel [0: the kernel plan's for this "
                     "machine (1 on AVX2 CPUs), else TensorFlow's choice]")
flags.DEFINE_boolean("cache", False, "Keep decoded, cropped, resized images of an image-folder dataset "
                     "on disk (see --cache_dir), so epochs after the first decode nothing")
flags.DEFINE_string("cache_dir", None, "Folder of the --cache files [<data_dir>/.dcgan_cache]")
flags.DEFINE_integer("data_workers", 2, "Threads decoding image batches ahead of training; 0 decodes "
                     "in the training thread [2]")
flags.DEFINE_string("devices", "", "Devices of this machine to train on, one replica each, e.g. "
                    "gpu:0,gpu:1 [every local GPU, else the CPU]")
flags.DEFINE_string("worker_hosts", "", "Several machines: every worker's host:port, the chief "
                    "first, e.g. 10.0.0.1:2222,10.0.0.2:2222 (or set TF_CONFIG) []")
flags.DEFINE_integer("task_index", None, "With --worker_hosts: this worker's place in the list "
                     "(0 is the chief, which writes the run folder)")
flags.DEFINE_integer("join_timeout", 300, "Several workers: seconds to wait for every worker to "
                     "start and join before giving up")
flags.DEFINE_integer("step_timeout", 45, "Several workers: seconds one step may take before a "
                     "worker that stopped answering is named and training stops")
flags.DEFINE_integer("seed", None, "Seed for weights, data order and z; a run with the same seed "
                     "on the same machine repeats itself [random, saved in FLAGS.json]")
flags.DEFINE_boolean("verbose", False, "Before training, list every flag and every variable "
                     "(they are in the run's FLAGS.json anyway)")
FLAGS = flags.FLAGS
FLAG_NAMES = sorted(set(FLAGS) - _before)

# Flags that shape the model, and the run's seed (so test mode's grid uses the
# same fixed z as the training grids): test mode takes them from the run's
# FLAGS.json unless they are given on the command line.
MODEL_FLAGS = ("dataset", "input_height", "input_width", "output_height", "output_width", "crop",
               "z_dim", "z_dist", "batch_size", "input_fname_pattern", "seed")

# The ways of looking at a trained model (test mode; with --train, after training, as the
# original ran --visualize, --export and --freeze after dcgan.train).
LOOK_FLAGS = ("visualize", "generate", "walk", "arithmetic", "evaluate", "features_experiment",
              "training_pictures", "export", "freeze", "saved_model", "tflite")
# Of those, the ones that write the model in another form rather than look at it.
WRITE_FLAGS = ("export", "freeze", "saved_model", "tflite")


class Config(object):
  """The run's effective settings: the flags after defaults and paths are resolved."""

  def __init__(self, values):
    self.__dict__.update(values)

  def as_dict(self):
    return dict(self.__dict__)


def validate(config):
  if config.batch_size <= 0:
    raise UserError("--batch_size must be a positive number, not %d." % config.batch_size)
  if config.epoch < 0:
    raise UserError("--epoch must be 0 or more, not %d." % config.epoch)
  if not config.learning_rate > 0:
    raise UserError("--learning_rate must be positive, not %g." % config.learning_rate)
  if config.z_dim <= 0:
    raise UserError("--z_dim must be a positive number, not %d." % config.z_dim)
  if config.z_dist not in Z_DISTRIBUTIONS:
    raise UserError("--z_dist must be one of %s, not %r." % (", ".join(Z_DISTRIBUTIONS), config.z_dist))
  for name in ("input_height", "input_width", "output_height", "output_width"):
    if getattr(config, name) <= 0:
      raise UserError("--%s must be a positive number of pixels, not %d." % (name, getattr(config, name)))
  if config.data_workers < 0:
    raise UserError("--data_workers must be 0 or more, not %d." % config.data_workers)
  for name in ("sample_freq", "ckpt_freq", "max_to_keep", "summary_freq"):
    if getattr(config, name) <= 0:
      raise UserError("--%s must be a positive number, not %d." % (name, getattr(config, name)))


def validate_looks(config, y_dim):
  """Refuse test-mode flags that cannot apply to this model before anything loads."""
  if config.label != -1 and not config.generate:
    raise UserError("--label picks the digit of --generate's images; add --generate N (or drop "
                    "--label).")
  experiments.check_label(config.label, y_dim)
  for name in ("evaluate", "features_experiment"):
    if getattr(config, name) and y_dim != 10:
      raise UserError("--%s works on the conditional MNIST model (--dataset mnist) only, and this "
                      "run is --dataset %s." % (name, config.dataset))


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
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def has_checkpoint(folder):
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


def run_session_config(config, precision):
  return session_config(precision, config.xla, config.intra_op_threads, config.inter_op_threads)


def build_dcgan(sess, config, precision, c_dim, y_dim, data=None, cluster=None):
  return DCGAN(
      sess,
      input_width=config.input_width,
      input_height=config.input_height,
      output_width=config.output_width,
      output_height=config.output_height,
      batch_size=config.batch_size,
      sample_num=config.batch_size,
      y_dim=y_dim,
      z_dim=config.z_dim,
      c_dim=c_dim,
      dataset_name=config.dataset,
      input_fname_pattern=config.input_fname_pattern,
      crop=config.crop,
      checkpoint_dir=config.checkpoint_dir,
      sample_dir=config.sample_dir,
      data_dir=config.data_dir,
      out_dir=config.out_dir,
      max_to_keep=config.max_to_keep,
      learning_rate=config.learning_rate,
      beta1=config.beta1,
      z_dist=config.z_dist,
      seed=config.seed,
      G_img_sum=config.G_img_sum,
      data=data,
      precision=precision,
      cluster=cluster)


def print_config(config):
  width = max(len(k) for k in config.as_dict())
  for key in sorted(config.as_dict()):
    print("  %-*s %s" % (width, key, getattr(config, key)))


def describe_devices(cluster, batch_size):
  if cluster.num_replicas == 1:
    return "one device"
  if cluster.distributed:
    where = "%d workers x %s" % (cluster.num_workers, plural(cluster.local_replicas, "device"))
  else:
    where = ", ".join(name.split("device:")[-1].lower() for name in cluster.describe()["devices"])
  return "%d replicas (%s), %d images per step" % (cluster.num_replicas, where,
                                                  cluster.num_replicas * batch_size)


def print_summary(config, data, dcgan, cluster, resume):
  """The few lines before step 1; --verbose adds every flag and every variable."""
  used = int(min(len(data), config.train_size))
  images = ("%d images" % used if used == len(data) else
            "%d of its %d images (--train_size)" % (used, len(data)))
  if cluster.is_chief:
    print("Training %s on %s; run folder: %s" % (config.dataset, images, config.out_dir))
  else:
    print("Training %s on %s as worker %d of %d; the chief (worker 0) writes the run folder"
          % (config.dataset, images, cluster.task_index, cluster.num_workers))
  print("  model: %s DCGAN, %dx%dx%d images, z %d %s, %.1f M parameters, %s"
        % ("conditional" if dcgan.y_dim else "unconditional", config.output_height,
           config.output_width, dcgan.c_dim, config.z_dim, config.z_dist,
           count_parameters(dcgan.g_vars + dcgan.d_vars) / 1e6, config.precision))
  print("  batch %d on %s; %s; seed %d" % (config.batch_size,
                                           describe_devices(cluster, config.batch_size),
                                           plural(config.epoch, "epoch"), config.seed))
  if config.verbose:
    print_config(config)
    show_all_variables(dcgan.g_vars + dcgan.d_vars)
  else:
    print("  every flag is in %sFLAGS.json (--verbose lists them and the variables here)"
          % ("" if cluster.is_chief else "the chief's "))
  if resume:
    print("  to resume after a stop: %s" % resume)


def name_run(config):
  """The run folder and its checkpoint and sample folders (the original's default name)."""
  if not config.out_name:
    config.out_name = "{} - {} - {}".format(
        timestamp(), os.path.basename(os.path.normpath(config.data_dir)), config.dataset)
    config.out_name += " - x{}.z{}.{}.y{}.b{}".format(config.input_width, config.z_dim,
                                                      config.z_dist, config.output_width,
                                                      config.batch_size)
  config.out_dir = os.path.join(config.out_dir, config.out_name)
  config.checkpoint_dir = os.path.join(config.out_dir, config.checkpoint_dir)
  config.sample_dir = os.path.join(config.out_dir, config.sample_dir)


def write_run_folder(config):
  try:
    os.makedirs(config.checkpoint_dir, exist_ok=True)
    os.makedirs(config.sample_dir, exist_ok=True)
    write_json_atomic(os.path.join(config.out_dir, "FLAGS.json"), config.as_dict())
  except OSError as err:
    raise UserError("Cannot write the run folder %s (%s); choose another --out_dir."
                    % (config.out_dir, err.strerror or err))


def train(config, layout, precision):
  """Train (or resume) the run; returns its folder name if this process wrote it (the chief)."""
  cluster = cluster_module.Cluster(layout)
  if config.cache and not config.cache_dir:
    config.cache_dir = os.path.join(config.data_dir, ".dcgan_cache")
  data = open_dataset(config.dataset, config.data_dir, config.input_fname_pattern,
                      config.input_height, config.input_width, config.output_height,
                      config.output_width, config.crop,
                      cache_dir=expand_path(config.cache_dir) if config.cache else None)
  # fail before any folder exists
  batches_per_epoch(len(data), config.train_size, config.batch_size, cluster.num_replicas,
                    data.unmatched_note())
  name_run(config)
  if config.seed is None:
    # Resuming a run keeps its seed, so its data order and z carry on.
    config.seed = read_json(os.path.join(config.out_dir, "FLAGS.json")).get("seed")
  # Not given: the DCGAN draws one (several workers: such a worker takes the chief's).
  config.cluster = cluster.describe()
  resume = resume_command(config.out_name) if cluster.is_chief else None
  session_conf = cluster.session_config(run_session_config(config, precision))
  target = cluster.start(session_conf)
  started = []
  with tf.Graph().as_default(), tf.Session(target, config=session_conf) as sess:
    dcgan = build_dcgan(sess, config, precision, data.c_dim, data.y_dim, data, cluster)
    if cluster.is_chief:
      # A run resumed with other flags fails here, before its FLAGS.json is touched.
      dcgan.check_checkpoint(config.checkpoint_dir)

    def prepare():
      """Before the first step (several workers: once they agreed): the run folder."""
      config.seed = dcgan.seed  # a worker not given --seed has the chief's now
      if cluster.is_chief:
        write_run_folder(config)
      print_summary(config, data, dcgan, cluster, resume)
      started.append(True)

    try:
      dcgan.train(config, prepare)
    except (UserError, TrainingInterrupted) as stop:
      if started and resume and has_checkpoint(config.checkpoint_dir):
        stop.resume = resume  # main() prints it
      raise
  if not cluster.is_chief:
    return None
  for line in written_summary(training_pictures(config.sample_dir,
                                                os.path.join(config.out_dir, "logs"))):
    print(" [*] " + line)
  print("To train this run further, raise --epoch: %s"
        % resume_command(config.out_name, epoch=2 * config.epoch))
  return config.out_name


def test(config, given, precision):
  if given["dataset"]:
    validate_looks(config, labelled(config.dataset)[0])  # before looking for its runs
  run_dir, ckpt_dir = find_run(config, given["checkpoint_dir"])
  saved = read_json(os.path.join(run_dir, "FLAGS.json"))
  for name in MODEL_FLAGS:
    if not given[name] and name in saved:
      setattr(config, name, saved[name])
  validate(config)
  y_dim, c_dim = labelled(config.dataset)
  validate_looks(config, y_dim)
  if not has_checkpoint(ckpt_dir):
    raise UserError("No checkpoint in %s; train first with --train, or point --checkpoint_dir at a "
                    "checkpoint folder." % ckpt_dir)
  if c_dim is None:
    c_dim = checkpoint_shapes(ckpt_dir)[1].get("generator/g_h4/w", [0, 0, 3])[2]
  if config.saved_model:  # an existing version is refused before anything loads
    export.check_saved_model_target(run_dir, checkpoint_counter(checkpoint_shapes(ckpt_dir)[0]))
  config.checkpoint_dir = ckpt_dir
  config.sample_dir = os.path.join(run_dir, config.sample_dir)
  config.out_dir = run_dir

  with tf.Graph().as_default(), tf.Session(config=run_session_config(config, precision)) as sess:
    dcgan = build_dcgan(sess, config, precision, c_dim, y_dim)
    sess.run(dcgan.init_op)
    load_success, load_counter = dcgan.load(ckpt_dir)
    if not load_success:
      raise UserError("Checkpoint not found in %s." % ckpt_dir)
    looked = run_experiments(dcgan, config, run_dir, load_counter)
    if not (looked or any(getattr(config, name) for name in WRITE_FLAGS)):
      z, labels = dcgan.sample_inputs()
      grid = dcgan.save_sample_grid(
          os.path.join(config.sample_dir, "test_%s.png" % timestamp("%Y%m%d%H%M%S")), z, labels)
      print(" [*] Sample grid written to %s" % grid)
    export.write_model(dcgan, config, run_dir, load_counter)


def run_experiments(dcgan, config, run_dir, counter):
  """The test-mode ways of looking at a model that were asked for; True if any was."""
  import evaluate
  seed = config.seed
  stamp = timestamp("%Y%m%d%H%M%S")
  written = []

  def report(paths):
    """Say what one look wrote (one line for a folder of many files), as it finishes."""
    for line in written_summary(paths):
      print(" [*] " + line)
    return list(paths)

  if config.visualize:
    written += report(visualize(dcgan.sess, dcgan, config, config.visualize_option,
                                config.sample_dir, rng=np.random.RandomState(seed)))
  if config.generate:
    folder, grid = experiments.generate(dcgan, config.generate, os.path.join(
        config.sample_dir, "generated_" + stamp), config.label, np.random.default_rng(seed))
    print(" [*] %d images in %s" % (config.generate, folder))
    written += report([grid])
  if config.walk:
    written += report(experiments.latent_walks(dcgan, config.sample_dir, config.walk_pairs,
                                               config.walk_steps, np.random.default_rng(seed)))
  if config.arithmetic:
    written += report(experiments.z_arithmetic(dcgan, config.sample_dir, config.arithmetic,
                                               config.arithmetic_pool,
                                               rng=np.random.default_rng(seed)))
  if config.evaluate:
    classifier = evaluate.MnistClassifier(expand_path(config.classifier_dir), config.data_dir,
                                          epochs=config.classifier_epochs)
    try:
      result = evaluate.evaluate_mnist(dcgan, classifier, config.evaluate_n, seed=seed or 0)
    finally:
      classifier.close()
    result.update(checkpoint=config.checkpoint_dir, counter=counter)
    evaluate.print_evaluation(result)
    written += report([write_json_atomic(os.path.join(run_dir, "evaluation.json"), result)])
  if config.features_experiment:
    result = evaluate.features_experiment(dcgan, config.data_dir, config.labels_per_class, seed or 0)
    print("linear classifier, %d labels per class: D features %.2f%% (%d dims), raw pixels %.2f%%"
          % (config.labels_per_class, 100 * result["discriminator_features"]["test_accuracy"],
             result["discriminator_features"]["dimensions"], 100 * result["raw_pixels"]["test_accuracy"]))
    written += report([write_json_atomic(os.path.join(run_dir, "d_features.json"), result)])
  if config.training_pictures:
    pictures = training_pictures(config.sample_dir, os.path.join(run_dir, "logs"))
    if not pictures:
      raise UserError("The run %s has no sample grids or logs to draw." % run_dir)
    written += report(pictures)
  return bool(written)


def run(argv_flags):
  config = Config({name: argv_flags[name].value for name in FLAG_NAMES})
  given = {name: argv_flags[name].present for name in FLAG_NAMES}
  config.data_dir = expand_path(config.data_dir)
  config.out_dir = expand_path(config.out_dir)
  config.out_name = expand_path(config.out_name)
  if config.input_width is None:
    config.input_width = config.input_height
  if config.output_width is None:
    config.output_width = config.output_height
  precision = precision_mode(config.precision)  # decided once, here (precision.py)
  if config.train:
    layout = cluster_module.parse_layout(config.devices, config.worker_hosts, config.task_index)
    validate(config)
    validate_looks(config, labelled(config.dataset)[0])
    cluster_module.configure_devices(layout)
    looks = Config(config.as_dict())
    looks.out_name = train(config, layout, precision)
    if looks.out_name and any(getattr(looks, name) for name in LOOK_FLAGS):
      test(looks, dict(given, checkpoint_dir=False), precision)
  else:
    test(config, given, precision)


def main(argv):
  if len(argv) > 1:
    print("error: unexpected arguments %s; flags are written --name value." % " ".join(argv[1:]),
          file=sys.stderr)
    sys.exit(2)
  try:
    run(FLAGS)
  except UserError as err:
    print("error: %s" % err, file=sys.stderr)
    if getattr(err, "resume", None):
      print("To resume from the last checkpoint: %s" % err.resume, file=sys.stderr)
    sys.exit(1)
  except TrainingInterrupted as stop:
    print("Stopped at counter %d; checkpoint %s." % (stop.counter, stop.path), file=sys.stderr)
    print("To resume: %s" % (getattr(stop, "resume", None) or "run the same commands on every "
                             "worker"), file=sys.stderr)
    sys.exit(128 + stop.signum)
  except KeyboardInterrupt:
    print("\ninterrupted.", file=sys.stderr)
    sys.exit(130)


if __name__ == "__main__":
  app.run(main)
