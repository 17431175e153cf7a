"""Train a DCGAN, or sample from a trained one.

    python main.py --dataset mnist --input_height 28 --output_height 28 --train
    python main.py --dataset celebA --input_height 108 --train --crop
    python main.py --dataset mnist --input_height 28 --output_height 28      # test mode
    python main.py ... --train --worker_hosts h1:2222,h2:2222 --task_index 0  # several machines

Every flag of carpedm20/DCGAN-tensorflow keeps its name and default; the
others are this project's.  Each training run writes into its own folder
<out_dir>/<out_name>/ (FLAGS.json, checkpoint/, samples/, logs/).  Pass
--out_name of an existing run to resume it.  Without --train, the newest run
of --dataset (or the run named by --out_name, or --checkpoint_dir) is loaded
and a sample grid written.
"""
import os
import sys

import numpy as np
from absl import app, flags
from absl import logging as absl_logging

import hardware


tf = hardware.import_tensorflow()
tf.get_logger().setLevel("ERROR")

import cluster as cluster_module  # noqa: E402
import export  # noqa: E402
import looks  # noqa: E402
from checkpoints import (checkpoint_counter, checkpoint_shapes, generated_channels,  # noqa: E402
                         megabytes)
from dataset import described, label_count, open_run_data  # noqa: E402
from model import DCGAN  # noqa: E402
from step import Z_DISTRIBUTIONS  # noqa: E402
from precision import precision_mode, session_config  # noqa: E402
from runs import (check_run_name, check_same_classes, check_same_counting, find_run,  # noqa: E402
                  has_checkpoint, name_run, read_json, resume_command, run_folders,
                  write_run_folder)
from settings import MODEL_DEFAULTS as MODEL, Config, Folders, model_settings  # noqa: E402
from training import TRAIN_DEFAULTS, TrainingInterrupted, batches_per_epoch  # noqa: E402
from utils import (QuietWhenClosed, UserError, count_parameters, expand_path,  # noqa: E402
                   plural, show_all_variables, timestamp, training_pictures,
                   written_summary)

_before = set(flags.FLAGS)
# Help texts say what each flag does here; absl adds each default, "(default: ...)", so no
# text repeats one (tests/test_main.py holds the help to this).  Defaults are stated once: the
# loop's in training.TRAIN_DEFAULTS, the model's in settings.MODEL_DEFAULTS (where the original's
# flag and constructor agree), the cluster's in cluster.LAYOUT_DEFAULTS, the others here.
flags.DEFINE_integer("epoch", TRAIN_DEFAULTS["epoch"], "Training: epochs to train, counted from "
                     "the run's start (a resumed run trains up to this many)")
flags.DEFINE_float("learning_rate", MODEL.learning_rate, "Adam's learning rate, for D and G")
flags.DEFINE_float("beta1", MODEL.beta1, "Adam's beta1 (momentum term)")
flags.DEFINE_float("train_size", TRAIN_DEFAULTS["train_size"], "Use at most this many images of "
                   "the dataset (inf: all)")
flags.DEFINE_integer("batch_size", MODEL.batch_size, "Images per training step on each device; in "
                     "test mode, images per --export/--freeze batch")
flags.DEFINE_integer("input_height", MODEL.input_height, "Image folders: height of the center "
                     "crop with --crop (without --crop, images are resized whole)")
flags.DEFINE_integer("input_width", None, "Width of the --crop center crop (unset: "
                     "--input_height)")
flags.DEFINE_integer("output_height", MODEL.output_height, "Height of the generated images "
                     "(MNIST's own: 28)")
flags.DEFINE_integer("output_width", None, "Width of the generated images (unset: "
                     "--output_height)")
flags.DEFINE_string("dataset", "celebA", "mnist or fashion_mnist (conditional, labels fed to G "
                    "and D), or the name "
                    "of an image folder under --data_dir (celebA, lsun, any other)")
flags.DEFINE_string("input_fname_pattern", MODEL.input_fname_pattern, "Image folders: glob of the "
                    "image files")
flags.DEFINE_string("data_dir", MODEL.data_dir, "Folder holding the datasets' folders")
flags.DEFINE_string("out_dir", MODEL.out_dir, "Folder holding the runs' folders")
flags.DEFINE_string("out_name", "", "Name of the run's folder under --out_dir: a new run's, or "
                    "one to resume or load (unset: '<time> - <data> - <dataset> - <sizes>' for a "
                    "new run, the newest run of --dataset in test mode)")
flags.DEFINE_string("checkpoint_dir", "checkpoint", "Checkpoint folder inside the run's folder; "
                    "in test mode also a path to any checkpoint folder")
flags.DEFINE_string("sample_dir", MODEL.sample_dir, "Folder for sample grids and test mode's "
                    "pictures, inside the run's folder unless a path")
flags.DEFINE_boolean("train", False, "Train (or resume) a run; without it, test mode loads a "
                     "trained run")
flags.DEFINE_boolean("labels", False, "Image folders: read <data_dir>/<dataset>/<class>/<images> "
                     "as labelled classes (the subfolders, sorted by name) and train the "
                     "original's conditional model on them")
flags.DEFINE_string("attributes", "", "Image folders: condition on the attributes the folder's "
                    "list_attr_celeba.txt gives its images (y multi-hot): 'all', or names joined "
                    "by commas (Smiling,Eyeglasses,Male)")
flags.DEFINE_boolean("crop", False, "Image folders: center-crop --input_height x --input_width "
                     "before resizing (celebA: use it with --input_height 108)")
flags.DEFINE_boolean("visualize", False, "Test mode: the original's visualizations "
                     "(--visualize_option)")
flags.DEFINE_boolean("export", False, "Test mode: re-save the checkpoint for --batch_size in "
                     "<checkpoint_dir>/export_b<batch_size>")
flags.DEFINE_boolean("freeze", False, "Test mode: write the sampler as a frozen GraphDef (.pb) "
                     "for --batch_size in <checkpoint_dir>/frozen_b<batch_size>")
flags.DEFINE_boolean("saved_model", False, "Test mode: write the generator as a SavedModel "
                     "(TF 2, TF Serving) in <run>/saved_model/<counter>/")
flags.DEFINE_boolean("tflite", False, "Test mode: write the generator as a TFLite file, "
                     "<run>/tflite/model-<counter>.tflite")
flags.DEFINE_boolean("onnx", False, "Test mode: write the generator as an ONNX file, "
                     "<run>/onnx/model-<counter>.onnx (needs tf2onnx: README)")
flags.DEFINE_integer("max_to_keep", MODEL.max_to_keep, "Checkpoints kept in the run (each about "
                     "12 bytes a parameter, 130 MB for 28x28 MNIST: the summary before step 1 "
                     "says its size)")
flags.DEFINE_integer("sample_freq", TRAIN_DEFAULTS["sample_freq"], "Write a sample grid every "
                     "this many steps")
flags.DEFINE_integer("ckpt_freq", TRAIN_DEFAULTS["ckpt_freq"], "Save a checkpoint every this many "
                     "steps")
flags.DEFINE_integer("z_dim", MODEL.z_dim, "Dimensions of z")
flags.DEFINE_string("z_dist", MODEL.z_dist, "Distribution of z: uniform_signed (-1 to 1), "
                    "uniform_unsigned (0 to 1) or normal01")
flags.DEFINE_boolean("G_img_sum", MODEL.G_img_sum, "Also write the generator's images to "
                     "TensorBoard")
flags.DEFINE_integer("visualize_option", 1, "With --visualize: 0 grid, 1 per-dimension sweeps, 2 "
                     "random-dimension GIFs, 3 single-dimension GIFs, 4 as 3 plus a merged GIF")
flags.DEFINE_integer("generate", 0, "Test mode: write this many single generated images and a grid")
flags.DEFINE_string("label", "", "With --generate on a conditional model: only this class, by "
                    "its name or its index (unset: every class, evenly)")
flags.DEFINE_boolean("walk", False, "Test mode: latent walks between random z, linear and "
                     "spherical (grid and GIF each)")
flags.DEFINE_integer("walk_pairs", 8, "Walks in --walk")
flags.DEFINE_integer("walk_steps", 10, "Steps along each walk of --walk (2 or more)")
flags.DEFINE_string("arithmetic", "", "Test mode: z arithmetic on averaged exemplars, e.g. "
                    "'1,2,3 - 4,5,6 + 7,8,9' (indices in arithmetic_pool.png) or, for mnist, "
                    "'label:3 - label:3 + label:8'")
flags.DEFINE_integer("arithmetic_pool", 64, "Samples in the exemplar pool of --arithmetic")
flags.DEFINE_boolean("evaluate", False, "Test mode, a conditional run: class-conditional accuracy "
                     "and Frechet distance of generated images by a classifier trained on the "
                     "run's own data, beside its real test split's; writes evaluation.json")
flags.DEFINE_integer("evaluate_n", 100, "Generated images per class for --evaluate")
flags.DEFINE_string("classifier_dir", "checkpoint", "Where --evaluate's classifiers are cached "
                    "(relative to the working folder)")
flags.DEFINE_integer("classifier_epochs", 4, "Epochs to train the --evaluate classifier")
flags.DEFINE_boolean("features_experiment", False, "Test mode, an IDX dataset (mnist, "
                     "fashion_mnist): linear classifier on D's "
                     "features vs raw pixels (the paper's experiment); writes d_features.json")
flags.DEFINE_integer("labels_per_class", 10, "Labelled digits per class for --features_experiment")
flags.DEFINE_boolean("training_pictures", False, "Test mode: the run's training-progress GIF and "
                     "loss curves (training writes them at its end anyway)")
flags.DEFINE_integer("summary_freq", TRAIN_DEFAULTS["summary_freq"], "Write TensorBoard summaries "
                     "every this many steps (and at the first); 1 writes every step as the "
                     "original did")
flags.DEFINE_string("precision", MODEL.precision, "fp32; fp16: float16 mixed precision with "
                    "dynamic loss scaling, on a GPU (--fp16_on_cpu emulates it on the CPU); bf16: "
                    "oneDNN bfloat16 on CPUs with AVX512-BF16/AMX. Variables and Adam's state "
                    "stay fp32")
flags.DEFINE_boolean("fp16_on_cpu", False, "With --precision fp16 on a machine without a GPU: "
                     "TensorFlow's CPU emulation of float16 (every lowered op rounds through "
                     "float16; slow; the tests use it)")
flags.DEFINE_boolean("xla", False, "Compile the graph with XLA JIT (see docs/PERFORMANCE.md)")
flags.DEFINE_integer("intra_op_threads", 0, "Threads inside one op (0: TensorFlow's choice)")
flags.DEFINE_integer("inter_op_threads", 0, "Ops run in parallel (0: the kernel plan's for this "
                     "machine, 1 on AVX2 CPUs, else TensorFlow's choice)")
flags.DEFINE_boolean("cache", False, "Keep decoded, cropped, resized images of an image-folder "
                     "dataset on disk (see --cache_dir), so epochs after the first decode nothing")
flags.DEFINE_string("cache_dir", None, "Folder of the --cache files (unset: "
                    "<data_dir>/.dcgan_cache)")
flags.DEFINE_integer("data_workers", TRAIN_DEFAULTS["data_workers"], "Threads decoding image "
                     "batches ahead of training; 0 decodes in the training thread")
flags.DEFINE_string("devices", "", "Devices of this machine to train on, one replica each, e.g. "
                    "gpu:0,gpu:1 (unset: every local GPU, else the CPU)")
flags.DEFINE_string("worker_hosts", "", "Several machines: every worker's host:port, the chief "
                    "first, e.g. 10.0.0.1:2222,10.0.0.2:2222 (or set TF_CONFIG)")
flags.DEFINE_integer("task_index", None, "With --worker_hosts: this worker's place in the list "
                     "(0 is the chief, which writes the run folder)")
flags.DEFINE_integer("join_timeout", cluster_module.LAYOUT_DEFAULTS["join_timeout"], "Several "
                     "workers: seconds to wait for every worker to start and join before giving "
                     "up")
flags.DEFINE_integer("step_timeout", cluster_module.LAYOUT_DEFAULTS["step_timeout"], "Several "
                     "workers: seconds one step may take before a worker that stopped answering "
                     "is named and training stops")
flags.DEFINE_boolean("gather_gradients", cluster_module.LAYOUT_DEFAULTS["gather_gradients"],
                     "Several workers: compute the large linear layers' weight gradients from "
                     "every replica's gathered factors (fewer bytes than all-reducing them); "
                     "--nogather_gradients all-reduces them, for workers whose machines could "
                     "round the same product differently")
flags.DEFINE_enum("kernels", MODEL.kernels, hardware.KERNEL_CHOICES, "Kernel plan: "
                  "which equivalent forms compute the layers (auto: the one measured fastest on "
                  "this machine's kind, docs/PERFORMANCE.md; plain: TensorFlow's own ops)")
flags.DEFINE_float("initial_loss_scale", MODEL.initial_loss_scale, "With --precision fp16: the "
                   "loss scale to start from (halved on overflow, doubled after 2000 good updates)")
flags.DEFINE_integer("seed", None, "Seed for weights, data order and z; a run with the same seed "
                     "on the same machine repeats itself (unset: random, saved in FLAGS.json)")
flags.DEFINE_boolean("verbose", False, "Before training, list every flag and every variable "
                     "(they are in the run's FLAGS.json anyway)")
FLAGS = flags.FLAGS
FLAG_NAMES = sorted(set(FLAGS) - _before)

# Flags that shape the model, the run's seed (so test mode's grid uses the same fixed z as the
# training grids) and where its data was (--evaluate and --features_experiment score against the
# run's own data): test mode takes them from the run's FLAGS.json unless they are given on the
# command line.
MODEL_FLAGS = ("dataset", "labels", "attributes", "input_height", "input_width", "output_height",
               "output_width", "crop", "z_dim", "z_dist", "batch_size", "input_fname_pattern",
               "seed", "data_dir")

# The smallest value of each count flag (--epoch: with --train; see validate).
LEAST = {"batch_size": 1, "z_dim": 1, "input_height": 1, "input_width": 1, "output_height": 1,
         "output_width": 1, "data_workers": 0, "sample_freq": 1, "ckpt_freq": 1, "max_to_keep": 1,
         "summary_freq": 1, "generate": 0, "walk_pairs": 1, "walk_steps": 2, "arithmetic_pool": 1,
         "evaluate_n": 1, "classifier_epochs": 1, "labels_per_class": 1, "intra_op_threads": 0,
         "inter_op_threads": 0}  # --join_timeout, --step_timeout: cluster.check_timeouts


def validate(config):
  """Every flag's valid range, together, before anything loads: one sentence for the first
  that is out of it."""
  least = dict(LEAST, epoch=1 if config.train else 0)
  for name in sorted(least):
    if getattr(config, name) < least[name]:
      raise UserError("--%s must be %s, not %d." % (
          name, "a positive number" if least[name] == 1 else "%d or more" % least[name],
          getattr(config, name)))
  if not config.learning_rate > 0:
    raise UserError("--learning_rate must be positive, not %g." % config.learning_rate)
  if not 0 <= config.beta1 < 1:
    raise UserError("--beta1 must be at least 0 and below 1, not %g." % config.beta1)
  if not config.train_size >= 1:
    raise UserError("--train_size must be 1 or more images, not %g." % config.train_size)
  if not 1 <= config.initial_loss_scale < np.inf:
    raise UserError("--initial_loss_scale must be 1 or more (and finite), not %g."
                    % config.initial_loss_scale)
  if config.z_dist not in Z_DISTRIBUTIONS:
    raise UserError("--z_dist must be one of %s, not %r." % (", ".join(Z_DISTRIBUTIONS), config.z_dist))
  if not 0 <= config.visualize_option <= 4:
    raise UserError("--visualize_option must be 0-4, not %d." % config.visualize_option)
  check_run_name(config.out_name)


def run_session_config(config, precision):
  return session_config(precision, config.xla, config.intra_op_threads, config.inter_op_threads,
                        hardware.kernel_plan(config.kernels))


def build_dcgan(sess, config, folders, precision, c_dim, description, data=None, cluster=None):
  """The run's DCGAN in sess's graph, from its settings (settings.model_settings)."""
  return DCGAN(sess, settings=model_settings(config, folders, description, c_dim, precision),
               data=data, cluster=cluster)


def print_config(config):
  width = max(len(k) for k in config.as_dict())
  for key in sorted(config.as_dict()):
    print("  %-*s %s" % (width, key, getattr(config, key)))


def describe_labels(names, attributes=False):
  """'unconditional', 'conditional (10 classes: 0, 1, 2, ...)' or 'conditional (3 attributes:
  ...)'."""
  if not names:
    return "unconditional"
  return "conditional (%d %s: %s%s)" % (len(names), "attributes" if attributes else "classes",
                                        ", ".join(names[:5]), ", ..." if len(names) > 5 else "")


def describe_devices(cluster, batch_size):
  if cluster.num_replicas == 1:
    return "one device"
  if cluster.distributed:
    where = "%d workers x %s" % (cluster.num_workers, plural(cluster.local_replicas, "device"))
  else:
    where = ", ".join(name.split("device:")[-1].lower() for name in cluster.describe()["devices"])
  return "%d replicas (%s), %d images per step" % (cluster.num_replicas, where,
                                                  cluster.num_replicas * batch_size)


def print_summary(config, folders, data, dcgan, cluster, resume):
  """The few lines before step 1; --verbose adds every flag and every variable."""
  used = int(min(len(data), config.train_size))
  images = ("%d images" % used if used == len(data) else
            "%d of its %d images (--train_size)" % (used, len(data)))
  if cluster.is_chief:
    print("Training %s on %s; run folder: %s" % (config.dataset, images, folders.out_dir))
  else:
    print("Training %s on %s as worker %d of %d; the chief (worker 0) writes the run folder"
          % (config.dataset, images, cluster.task_index, cluster.num_workers))
  print("  model: %s DCGAN, %dx%dx%d images, z %d %s, %.1f M parameters, %s"
        % (describe_labels(dcgan.label_names, dcgan.multi_hot), config.output_height,
           config.output_width, dcgan.c_dim, config.z_dim, config.z_dist,
           count_parameters(dcgan.g_vars + dcgan.d_vars) / 1e6, config.precision))
  print("  batch %d on %s; %s; seed %d; %s a checkpoint, %d kept (--max_to_keep)"
        % (config.batch_size, describe_devices(cluster, config.batch_size),
           plural(config.epoch, "epoch"), config.seed,
           megabytes(dcgan.checkpoints.size_bytes()), config.max_to_keep))
  native = getattr(data, "native_size", None)
  if native and native != (config.output_height, config.output_width):
    print("  [!] %s's images are %dx%d: this run resizes them to %dx%d; --input_height %d "
          "--output_height %d trains at their own size" % ((config.dataset,) + native + (
              config.output_height, config.output_width) + native))
  if config.verbose:
    print_config(config)
    show_all_variables(dcgan.g_vars + dcgan.d_vars)
  else:
    print("  every flag is in %sFLAGS.json (--verbose lists them and the variables here)"
          % ("" if cluster.is_chief else "the chief's "))
  if resume:
    print("  to resume after a stop: %s" % resume)


def train(config, layout, precision):
  """Train (or resume) the run; returns its folder name if this process wrote it (the chief)."""
  cluster = cluster_module.Cluster(layout)
  data = open_run_data(config)
  # fail before any folder exists
  looks.validate(config, data.description)
  steps_per_epoch = batches_per_epoch(len(data), config.train_size, config.batch_size,
                                      cluster.num_replicas, data.unmatched_note())
  # in FLAGS.json: what test mode builds the model for and scores against (check_own_data)
  config = name_run(config.replace(data=data.description, cluster=cluster.describe()))
  folders = run_folders(config)
  record = read_json(os.path.join(folders.out_dir, "FLAGS.json"))
  check_same_classes(data.description, record)
  # Resuming a run keeps its seed, so its data order and z carry on.  Not given: the DCGAN
  # draws one (several workers: such a worker takes the chief's).
  config = config.replace(seed=record.get("seed") if config.seed is None else config.seed)
  resume = resume_command(config.out_name) if cluster.is_chief else None
  session_conf = cluster.session_config(run_session_config(config, precision))
  target = cluster.start(session_conf)
  started = []
  with tf.Graph().as_default(), tf.Session(target, config=session_conf) as sess:
    dcgan = build_dcgan(sess, config, folders, precision, data.c_dim, data.description, data,
                        cluster)
    trained = 0  # epochs the run's checkpoint has trained (the chief's; the others write nothing)
    if cluster.is_chief:
      # A run resumed with other flags fails here, before its FLAGS.json is touched.
      path, _ = dcgan.check_checkpoint(folders.checkpoint_dir)
      if path:
        check_same_counting(config, path, record)
        trained = (checkpoint_counter(path) - 1) // steps_per_epoch

    def prepare(seed):
      """Before the first step (several workers: once they agreed, a worker not given --seed
      taking the chief's): the run folder, unless nothing will train (a run's record stays as
      it was)."""
      agreed = config.replace(seed=seed)
      if cluster.is_chief and trained < config.epoch:
        write_run_folder(agreed, folders)
      print_summary(agreed, folders, data, dcgan, cluster, resume)
      started.append(True)

    try:
      dcgan.train(config, prepare)
    except (UserError, TrainingInterrupted) as stop:
      if started and resume and has_checkpoint(folders.checkpoint_dir):
        stop.resume = resume  # main() prints it
      raise
  if not cluster.is_chief:
    return None
  if trained < config.epoch:
    for line in written_summary(training_pictures(folders.sample_dir,
                                                  os.path.join(folders.out_dir, "logs"))):
      print(" [*] " + line)
  done = max(trained, config.epoch)
  print("To train this run further, raise --epoch above %d: %s"
        % (done, resume_command(config.out_name, epoch=2 * done)))
  return config.out_name


def test(config, given, precision, after_training=False):
  """Test mode: load the run's checkpoint and write the looks asked for (the sample grid if
  none).  after_training: the looks of a command that trained, where an export this checkpoint
  has already is said and skipped rather than refused (such a command, run again, exits 0)."""
  if given["dataset"] and label_count(described(config.dataset)):
    looks.validate(config, described(config.dataset))  # before looking for its runs
  run_dir, ckpt_dir = find_run(config, given["checkpoint_dir"])
  saved = read_json(os.path.join(run_dir, "FLAGS.json"))
  config = config.replace(**{name: saved[name] for name in MODEL_FLAGS
                             if not given[name] and name in saved})
  validate(config)
  description = saved.get("data") or described(config.dataset)  # (recorded since 2026-12)
  looks.validate(config, description)
  if config.evaluate or config.features_experiment:
    looks.check_own_data(config, description, given["data_dir"])
  if not has_checkpoint(ckpt_dir):
    raise UserError("No checkpoint in %s; train first with --train, or point --checkpoint_dir at a "
                    "checkpoint folder." % ckpt_dir)
  path, shapes = checkpoint_shapes(ckpt_dir)
  c_dim = description["channels"] or generated_channels(shapes)
  counter = checkpoint_counter(path)
  if after_training:
    config = without_written(config, run_dir, counter)
    if not any(getattr(config, name) for name in looks.LOOK_FLAGS):
      return
  export.check_targets(config, run_dir, counter)  # an existing one refused before anything loads
  folders = Folders(ckpt_dir, os.path.join(run_dir, config.sample_dir), run_dir)
  looks.check_writable(config, folders)

  with tf.Graph().as_default(), tf.Session(config=run_session_config(config, precision)) as sess:
    dcgan = build_dcgan(sess, config, folders, precision, c_dim, description)
    sess.run(dcgan.init_op)
    load_success, load_counter = dcgan.load(ckpt_dir)
    if not load_success:
      raise UserError("Checkpoint not found in %s." % ckpt_dir)
    looked = looks.run(dcgan, config, folders, load_counter, description)
    if not (looked or any(getattr(config, name) for name in looks.WRITE_FLAGS)):
      z, labels = dcgan.sample_inputs()
      grid = dcgan.save_sample_grid(
          os.path.join(folders.sample_dir, "test_%s.png" % timestamp("%Y%m%d%H%M%S")), z, labels)
      print(" [*] Sample grid written to %s" % grid)
    export.write_model(dcgan, config, folders, load_counter)


def without_written(config, run_dir, counter):
  """config without the exports checkpoint `counter` has already, each said in one line."""
  written = export.written_already(config, run_dir, counter)
  for flag, path in sorted(written.items()):
    print(" [*] --%s: %s is there already (this checkpoint's), so it is not written again"
          % (flag, path))
  return config.replace(**{flag: False for flag in written})


def config_from(argv_flags):
  """The run's Config: the flags' values, their paths expanded and the defaults that follow
  other flags filled in (widths from heights, the cache folder from --data_dir)."""
  values = {name: argv_flags[name].value for name in FLAG_NAMES}
  data_dir = expand_path(values["data_dir"])
  return Config(dict(
      values, data_dir=data_dir, out_dir=expand_path(values["out_dir"]),
      cache_dir=values["cache_dir"] or (os.path.join(data_dir, ".dcgan_cache")
                                        if values["cache"] else None),
      input_width=(values["input_height"] if values["input_width"] is None
                   else values["input_width"]),
      output_width=(values["output_height"] if values["output_width"] is None
                    else values["output_width"])))


def run(argv_flags):
  config = config_from(argv_flags)
  given = {name: argv_flags[name].present for name in FLAG_NAMES}
  validate(config)
  precision = precision_mode(config.precision, fp16_on_cpu=config.fp16_on_cpu)  # once, here
  if config.train:
    layout = cluster_module.parse_layout(config.devices, config.worker_hosts, config.task_index,
                                         join_timeout=config.join_timeout,
                                         step_timeout=config.step_timeout,
                                         gather_gradients=config.gather_gradients)
    cluster_module.configure_devices(layout)
    out_name = train(config, layout, precision)
    if out_name and any(getattr(config, name) for name in looks.LOOK_FLAGS):
      test(config.replace(out_name=out_name), dict(given, checkpoint_dir=False), precision,
           after_training=True)
  else:
    test(config, given, precision)


def main(argv):
  if not FLAGS["verbosity"].present:  # no TensorFlow INFO lines (the TFLite converter's)
    absl_logging.set_verbosity(absl_logging.WARNING)
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
  # Nothing (a checkpoint after Ctrl-C above all) may depend on printing: a pipe's reader or
  # the terminal can be gone by then.
  sys.stdout, sys.stderr = QuietWhenClosed(sys.stdout), QuietWhenClosed(sys.stderr)
  app.run(main)
