"""The trained model in other forms (README, "Using the generator elsewhere"): the original's
--export (a re-saved checkpoint) and --freeze (a frozen sampler GraphDef, model.DCGAN.save); a
SavedModel in TF Serving's numbered-version layout; and that SavedModel converted for other
runtimes, a TFLite file and an ONNX file (convert.py, a process of its own).

The SavedModel is built in a graph of its own holding only the generator in inference mode
(model.DCGAN.generator with train=False: batch norm's moving statistics), from TensorFlow's plain
layers whatever the machine (ops.plain_options; batch norm a multiply and an add), so that what
it holds converts anywhere; its variables are set to the values the model restored from the
run's checkpoint, and its images come out as the PNGs are written (utils.to_uint8):

  serving_default  z float32 [None, z_dim] (and y, the digit labels, int64 [None])
                   -> images uint8 [None, H, W, C]      the portable entry, which converters take
  sample           seed int64 [], count int64 [] (and label int64 [count])
                   -> images, z drawn inside the graph from the run's --z_dist with that seed
                      (TensorFlow's stateless random ops: TensorFlow and TF Serving only)

and its assets/generator.json says how to draw z (generator_description).  Every file is
written under a temporary name renamed into place, so a reader never sees half of one, and an
existing one is never overwritten.
"""
import collections
import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow.compat.v1 as tf

from ops import plain_options
from step import Z_RANGES
from utils import UserError, atomic_output


def uint8_images(images, value_range, name):
  """Float images in value_range -> uint8 [0, 255], exactly as utils.to_uint8 rounds them; the
  op is `name` (what other runtimes call the output)."""
  lo, hi = value_range
  scaled = (images - lo) / (hi - lo)
  return tf.cast(tf.clip_by_value(tf.round(scaled * 255.0), 0.0, 255.0), tf.uint8, name=name)


def draw_z(z_dist, seed, count, z_dim):
  """[count, z_dim] latent vectors from --z_dist (step.Z_RANGES), drawn by a stateless
  generator: the same seed gives the same z on any machine."""
  shape = tf.stack([count, z_dim])
  seeds = tf.stack([seed, tf.constant(0, tf.int64)])
  if Z_RANGES[z_dist] is None:
    return tf.random.stateless_normal(shape, seeds)
  low, high = Z_RANGES[z_dist]
  return tf.random.stateless_uniform(shape, seeds, minval=low, maxval=high)


def label_inputs(dcgan, name):
  """The conditional model's int64 label input [None] and its one-hot rows (None, None without
  labels; an attribute model's multi-hot y, float32 [None, attributes], twice).  A label outside 0..y_dim-1 is refused by the model itself, in every runtime: the
  rows are gathered from an identity matrix, and each runtime's Gather refuses an index beyond
  it, TensorFlow's naming the label given and the rule (the op's name, LABEL_RULE).  ONNX's
  Gather reads a negative index from the end, so convert.py refuses negative labels beside this
  op in the ONNX file (refuse_negative_labels)."""
  if not dcgan.y_dim:
    return None, None
  if dcgan.multi_hot:  # attributes: y as it is fed to the generator, float32 [None, y_dim]
    attributes = tf.placeholder(tf.float32, [None, dcgan.y_dim], name=name)
    return attributes, attributes
  labels = tf.placeholder(tf.int64, [None], name=name)
  rule = LABEL_RULE % (name, dcgan.y_dim - 1)
  return labels, tf.gather(tf.constant(np.eye(dcgan.y_dim, dtype=np.float32)), labels, name=rule)


# The name of a label input's Gather (label_inputs); convert.py finds it by this form.
LABEL_RULE = "%s_must_be_0_to_%d"


def generator_values(dcgan):
  """{name: value} of the generator's variables in dcgan's Session (its restored checkpoint)."""
  variables = [v for v in dcgan.model_vars if v.op.name.startswith("generator/")]
  return dict(zip([v.op.name for v in variables], dcgan.sess.run(variables)))


def _load(sess, values):
  """This graph's variables (the generator's, by the original's names) set to values, in one
  run (each run of another set of ops builds an executor of its own)."""
  variables = tf.global_variables()
  sess.run([v.initializer for v in variables],
           {v.initializer.inputs[1]: values[v.op.name] for v in variables})


def _build_signatures(dcgan):
  """{signature name: (inputs, outputs)} of the generator, built in the current graph from
  TensorFlow's plain layers (ops.plain_options: no CPU-specific form of the kernel plan), its
  variables resource variables, which TensorFlow 2 loads as objects of their own."""
  with tf.variable_scope(tf.get_variable_scope(), use_resource=True):
    return _signatures(dcgan, plain_options())


def _signatures(dcgan, options):
  z = tf.placeholder(tf.float32, [None, dcgan.z_dim], name="z")
  labels, y = label_inputs(dcgan, "y")
  serving_inputs = {"z": z}
  if labels is not None:
    serving_inputs["y"] = labels
  serving = uint8_images(dcgan.generator(z, y, train=False, options=options), dcgan.value_range,
                         "images")

  seed = tf.placeholder(tf.int64, [], name="seed")
  count = tf.placeholder(tf.int64, [], name="count")
  label, one_hot = label_inputs(dcgan, "label")
  sample_inputs = {"seed": seed, "count": count}
  checks = []
  if label is not None:
    sample_inputs["label"] = label
    checks.append(tf.assert_equal(tf.shape(label, out_type=tf.int64)[0], count,
                                  message="sample: give one label per image (count labels)"))
  with tf.control_dependencies(checks):
    sample_z = draw_z(dcgan.z_dist, seed, count, dcgan.z_dim)
  sampled = uint8_images(dcgan.generator(sample_z, one_hot, train=False, options=options),
                         dcgan.value_range, "sampled_images")
  return {"serving_default": (serving_inputs, {"images": serving}),
          "sample": (sample_inputs, {"images": sampled})}


DESCRIPTION = "generator.json"  # in the SavedModel's assets/
Y_DESCRIPTIONS = {  # generator.json's words for y: a class model's, an attribute model's
    False: "int64 [N], each in 0..labels-1: the index of its class in label_names",
    True: "float32 [N, labels], multi-hot: 1 for each attribute of label_names present, 0 for "
          "each absent"}


def generator_description(dcgan, counter):
  """What a user of the exported generator needs to draw its inputs, as the SavedModel's
  assets/generator.json (and the ONNX file's metadata) carry it."""
  return {
      "z_dim": dcgan.z_dim, "z_dist": dcgan.z_dist,
      "z_range": Z_RANGES[dcgan.z_dist] and list(Z_RANGES[dcgan.z_dist]),
      "z_dtype": "float32", "labels": dcgan.y_dim or 0, "label_names": dcgan.label_names,
      "multi_hot": dcgan.multi_hot,
      "image_shape": [dcgan.output_height, dcgan.output_width, dcgan.c_dim],
      "image_dtype": "uint8", "dataset": dcgan.dataset_name, "counter": counter,
      "inputs": dict({"z": "float32 [N, z_dim], drawn from z_dist (uniform in z_range, or a "
                           "standard normal for normal01)"},
                     **({"y": Y_DESCRIPTIONS[dcgan.multi_hot]} if dcgan.y_dim else {})),
      "outputs": {"images": "uint8 [N, height, width, channels]"}}


def never_overwritten(path, what):
  """path, or a UserError if it exists already: `what` (a SavedModel version, an export) is
  never overwritten."""
  if os.path.exists(path):
    raise UserError("%s exists already; %s is never overwritten: remove it, or train further "
                    "for a new counter." % (path, what))
  return path


def target(run_dir, flag, counter):
  """Where --saved_model (<run>/saved_model/<counter>) or a conversion of CONVERSIONS
  (<run>/<kind>/model-<counter>.<kind>) writes the model of checkpoint `counter`."""
  if flag == "saved_model":
    return os.path.join(run_dir, "saved_model", str(counter))
  return os.path.join(run_dir, flag, "model-%d.%s" % (counter, flag))


def written_already(config, run_dir, counter):
  """{flag: path} of the exports asked for (--saved_model, CONVERSIONS) that this checkpoint
  has already: a command that trains and exports, run again once its run has trained, finds
  them there."""
  asked = {flag: target(run_dir, flag, counter) for flag in ("saved_model",) + tuple(CONVERSIONS)
           if getattr(config, flag)}
  return {flag: path for flag, path in asked.items() if os.path.exists(path)}


def check_saved_model_target(run_dir, counter):
  """The version folder <run>/saved_model/<counter>; a UserError if it exists already."""
  return never_overwritten(target(run_dir, "saved_model", counter), "a SavedModel version")


def write_saved_model(dcgan, path, counter):
  """Write the SavedModel version folder `path` (it must not exist), its description in
  assets/generator.json; returns the signatures' {name: (inputs, outputs)} of tensors."""
  parent = os.path.dirname(path)
  try:
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-%d-" % counter, dir=parent)
  except OSError as err:
    raise UserError("Cannot write the SavedModel into %s (%s); make the run folder writable."
                    % (parent, err.strerror or err))
  version = os.path.join(staging, "version")
  try:
    values = generator_values(dcgan)
    with tf.Graph().as_default(), tf.Session() as sess:
      signatures = _build_signatures(dcgan)
      _load(sess, values)
      signature_defs = {
          name: tf.saved_model.signature_def_utils.predict_signature_def(inputs, outputs)
          for name, (inputs, outputs) in signatures.items()}
      builder = tf.saved_model.Builder(version)
      builder.add_meta_graph_and_variables(sess, [tf.saved_model.tag_constants.SERVING],
                                           signature_def_map=signature_defs,
                                           strip_default_attrs=True)
      builder.save()
    os.makedirs(os.path.join(version, "assets"), exist_ok=True)
    with open(os.path.join(version, "assets", DESCRIPTION), "w") as f:
      json.dump(generator_description(dcgan, counter), f, indent=1)
    os.rename(version, path)
  except OSError as err:
    raise UserError("Could not write the SavedModel %s (%s); nothing was left there."
                    % (path, err.strerror or err))
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return signatures


def describe_signatures(signatures):
  """One line per signature: its inputs and outputs with dtypes and shapes."""
  def shown(tensors):
    return ", ".join("%s %s %s" % (name, t.dtype.name, t.shape.as_list() if t.shape.ndims
                                   is not None else "?") for name, t in sorted(tensors.items()))
  return ["%s(%s) -> %s" % (name, shown(inputs), shown(outputs))
          for name, (inputs, outputs) in signatures.items()]


# A conversion of the SavedModel (convert.py, run as a process of its own): its name in
# messages, the modules it needs beyond the runtime requirements, how to install them.
Conversion = collections.namedtuple("Conversion", ["name", "modules", "install"])
CONVERSIONS = collections.OrderedDict([  # by flag, in the order they run
    ("tflite", Conversion("TFLite", (), "")),
    ("onnx", Conversion("ONNX", ("tf2onnx", "onnx"),
                        "pip install tf2onnx onnx onnxruntime (tested: tf2onnx 1.17.0, onnx "
                        "1.23.2, onnxruntime 1.32.0; onnxruntime is optional: it checks the "
                        "file)")),
])
CONVERTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "convert.py")
CONVERT_TIMEOUT = 900  # seconds: both conversions take 15-60 s


def conversion_target(run_dir, kind, counter):
  """<run>/<kind>/model-<counter>.<kind>; a UserError if it exists already (the rule of
  SavedModel versions: an export is never overwritten) or its converter is not installed."""
  conversion = CONVERSIONS[kind]
  path = never_overwritten(target(run_dir, kind, counter), "an export")
  missing = [m for m in conversion.modules if importlib.util.find_spec(m) is None]
  if missing:
    raise UserError("--%s needs %s, which the runtime requirements leave out: %s."
                    % (kind, " and ".join(missing), conversion.install))
  return path


def check_targets(config, run_dir, counter):
  """Before anything loads: a UserError for an export asked for that cannot be written."""
  if config.saved_model:
    check_saved_model_target(run_dir, counter)
  for kind in CONVERSIONS:
    if getattr(config, kind):
      conversion_target(run_dir, kind, counter)


def convert_saved_model(saved_model, paths):
  """Write each of paths {kind: path} from the SavedModel, by convert.py in one process, each
  atomically: if one fails, none is written.  Returns {kind: convert.py's report}."""
  with contextlib.ExitStack() as stack:
    temporary = {}
    for kind, path in paths.items():
      try:
        temporary[kind] = stack.enter_context(atomic_output(path))
      except OSError as err:
        raise UserError("Cannot write %s (%s); make the run folder writable."
                        % (path, err.strerror or err))
    return _run_converter(saved_model, temporary)


def _run_converter(saved_model, outputs):
  names = "/".join(CONVERSIONS[kind].name for kind in outputs)
  try:
    proc = subprocess.run([sys.executable, CONVERTER, saved_model]
                          + ["%s=%s" % item for item in outputs.items()],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=CONVERT_TIMEOUT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  except subprocess.TimeoutExpired:
    raise UserError("The %s conversion did not finish in %d s." % (names, CONVERT_TIMEOUT))
  if proc.returncode:
    lines = [l for l in proc.stderr.splitlines() if l.startswith("error: ")]
    message = lines[-1][len("error: "):] if lines else proc.stderr.strip()[-500:]
    kind, _, reason = message.partition(": ")
    if kind in outputs:
      names, message = CONVERSIONS[kind].name, reason
    raise UserError("The %s conversion failed, nothing was written: %s" % (names, message))
  return json.loads(proc.stdout.strip().splitlines()[-1])


def describe_check(report):
  """How a converted file was checked against the SavedModel, for its line in the output."""
  if report["checked_in"] is None:
    return "not run: install onnxruntime to check it against the SavedModel"
  return "%d of 255 levels from the SavedModel at batches %s in %s" % (
      report["max_levels"], " and ".join(str(b) for b in report["batches"]),
      report["checked_in"])


@contextlib.contextmanager
def saved_model_to_convert(dcgan, saved_model, counter):
  """The SavedModel version folder to convert: `saved_model` if it was written, else one
  written for the conversions into a temporary folder, removed after them."""
  if saved_model:
    yield saved_model
    return
  folder = tempfile.mkdtemp(prefix="dcgan-export-")
  try:
    path = os.path.join(folder, str(counter))
    write_saved_model(dcgan, path, counter)
    yield path
  finally:
    shutil.rmtree(folder, ignore_errors=True)


def write_model(dcgan, config, folders, counter):
  """--export, --freeze, --saved_model, --tflite, --onnx: the loaded model in the forms asked
  for, in the run's settings.Folders."""
  run_dir = folders.out_dir
  if config.export:
    export_dir = os.path.join(folders.checkpoint_dir, "export_b" + str(config.batch_size))
    print(" [*] Exported %s" % dcgan.save(export_dir, counter, ckpt=True, frozen=False)[0])
  if config.freeze:
    export_dir = os.path.join(folders.checkpoint_dir, "frozen_b" + str(config.batch_size))
    path = dcgan.save(export_dir, counter, ckpt=False, frozen=True)[0]
    print(" [*] Frozen sampler written to %s (input 'z:0'%s, output '%s')"
          % (path, ", 'y:0'" if dcgan.y_dim else "", dcgan.sampler.name))
  saved_model = None
  if config.saved_model:
    saved_model = check_saved_model_target(run_dir, counter)
    signatures = write_saved_model(dcgan, saved_model, counter)
    print(" [*] SavedModel written to %s, signatures:" % saved_model)
    for line in describe_signatures(signatures):
      print("       " + line)
  paths = collections.OrderedDict((kind, conversion_target(run_dir, kind, counter))
                                  for kind in CONVERSIONS if getattr(config, kind))
  if paths:
    with saved_model_to_convert(dcgan, saved_model, counter) as source:
      reports = convert_saved_model(source, paths)
    for kind, path in paths.items():
      print(" [*] %s model written to %s (serving_default; %s)"
            % (CONVERSIONS[kind].name, path, describe_check(reports[kind])))
