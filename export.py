"""The trained model in other forms (README, "Using the generator elsewhere"): the original's
--export (a re-saved checkpoint) and --freeze (a frozen sampler GraphDef, model.DCGAN.save), and
the formats the TensorFlow ecosystem reads: a SavedModel in TF Serving's numbered-version layout,
and a TFLite file made by TensorFlow's own converter.

Each is built in a graph of its own holding only the generator in inference mode
(model.DCGAN.generator with train=False: batch norm's moving statistics), its variables set to
the values the model restored from the run's checkpoint, and its images as the PNGs are written
(utils.to_uint8):

  serving_default  z float32 [None, z_dim] (and y, the digit labels, int32 [None])
                   -> images uint8 [None, H, W, C]
  sample           seed int64 [], count int32 [] (and label int32 [count])
                   -> images, z drawn inside the graph from the run's --z_dist with that seed

Both are written beside the run's other outputs, under a temporary name renamed into place, so
a reader never sees half of one and an existing version is never overwritten.
"""
import os
import shutil
import tempfile

import hardware

hardware.configure()  # oneDNN decided before TensorFlow loads

import tensorflow.compat.v1 as tf  # noqa: E402

from ops import plain_options  # noqa: E402
from utils import UserError, atomic_output  # noqa: E402

try:  # what the TFLite converter raises for a graph it cannot take (not among tf.lite's names)
  from tensorflow.lite.python.convert_phase import ConverterError  # noqa: E402
except ImportError:
  ConverterError = RuntimeError

def uint8_images(images, value_range):
  """Float images in value_range -> uint8 [0, 255], exactly as utils.to_uint8 rounds them."""
  lo, hi = value_range
  scaled = (images - lo) / (hi - lo)
  return tf.cast(tf.clip_by_value(tf.round(scaled * 255.0), 0.0, 255.0), tf.uint8)


def draw_z(z_dist, seed, count, z_dim):
  """[count, z_dim] latent vectors from --z_dist (step.gen_random's distributions), drawn by a
  stateless generator: the same seed gives the same z on any machine."""
  shape = tf.stack([count, z_dim])
  seeds = tf.stack([seed, tf.constant(0, tf.int64)])
  if z_dist == "normal01":
    return tf.random.stateless_normal(shape, seeds)
  low = -1.0 if z_dist == "uniform_signed" else 0.0
  return tf.random.stateless_uniform(shape, seeds, minval=low, maxval=1.0)


def _labels(dcgan, name, count=None):
  """The conditional model's int32 label input and its one-hot y (None, None without labels)."""
  if not dcgan.y_dim:
    return None, None
  labels = tf.placeholder(tf.int32, [count], name=name)
  return labels, tf.one_hot(labels, dcgan.y_dim)


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
  """{signature name: (inputs, outputs)} of the generator, built in the current graph (its
  variables resource variables, which TensorFlow 2 loads as objects of their own)."""
  with tf.variable_scope(tf.get_variable_scope(), use_resource=True):
    return _signatures(dcgan)


def _signatures(dcgan):
  z = tf.placeholder(tf.float32, [None, dcgan.z_dim], name="z")
  labels, y = _labels(dcgan, "y")
  serving_inputs = {"z": z}
  if labels is not None:
    serving_inputs["y"] = labels
  serving = uint8_images(dcgan.generator(z, y, train=False), dcgan.value_range)

  seed = tf.placeholder(tf.int64, [], name="seed")
  count = tf.placeholder(tf.int32, [], name="count")
  label, one_hot = _labels(dcgan, "label")
  sample_inputs = {"seed": seed, "count": count}
  checks = []
  if label is not None:
    sample_inputs["label"] = label
    checks.append(tf.assert_equal(tf.size(label), count,
                                  message="sample: give one label per image (count labels)"))
  with tf.control_dependencies(checks):
    sample_z = draw_z(dcgan.z_dist, seed, count, dcgan.z_dim)
  sampled = uint8_images(dcgan.generator(sample_z, one_hot, train=False), dcgan.value_range)
  return {"serving_default": (serving_inputs, {"images": serving}),
          "sample": (sample_inputs, {"images": sampled})}


def check_saved_model_target(run_dir, counter):
  """The version folder <run>/saved_model/<counter>; a UserError if it exists already."""
  path = os.path.join(run_dir, "saved_model", str(counter))
  if os.path.exists(path):
    raise UserError("%s exists already; a SavedModel version is never overwritten: remove it, "
                    "or train further for a new counter." % path)
  return path


def write_saved_model(dcgan, run_dir, counter):
  """Write <run>/saved_model/<counter>/ (TF Serving's numbered versions); returns its path and
  the signatures' {name: (inputs, outputs)} of tensors."""
  path = check_saved_model_target(run_dir, counter)
  parent = os.path.dirname(path)
  try:
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-%d-" % counter, dir=parent)
  except OSError as err:
    raise UserError("Cannot write the SavedModel into %s (%s); make the run folder writable."
                    % (parent, err.strerror or err))
  try:
    values = generator_values(dcgan)
    with tf.Graph().as_default(), tf.Session() as sess:  # the model's own kernel plan
      signatures = _build_signatures(dcgan)
      _load(sess, values)
      signature_defs = {
          name: tf.saved_model.signature_def_utils.predict_signature_def(inputs, outputs)
          for name, (inputs, outputs) in signatures.items()}
      builder = tf.saved_model.Builder(os.path.join(staging, "version"))
      builder.add_meta_graph_and_variables(sess, [tf.saved_model.tag_constants.SERVING],
                                           signature_def_map=signature_defs,
                                           strip_default_attrs=True)
      builder.save()
    os.rename(os.path.join(staging, "version"), path)
  except OSError as err:
    raise UserError("Could not write the SavedModel %s (%s); nothing was left there."
                    % (path, err.strerror or err))
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return path, signatures


def describe_signatures(signatures):
  """One line per signature: its inputs and outputs with dtypes and shapes."""
  def shown(tensors):
    return ", ".join("%s %s %s" % (name, t.dtype.name, t.shape.as_list() if t.shape.ndims
                                   is not None else "?") for name, t in sorted(tensors.items()))
  return ["%s(%s) -> %s" % (name, shown(inputs), shown(outputs))
          for name, (inputs, outputs) in signatures.items()]


def check_tflite_target(run_dir, counter, batch_size):
  """The file <run>/tflite/model.b<batch>-<counter>.tflite; a UserError if it exists already
  (the rule of SavedModel versions: an export is never overwritten)."""
  path = os.path.join(run_dir, "tflite", "model.b%d-%d.tflite" % (batch_size, counter))
  if os.path.exists(path):
    raise UserError("%s exists already; a TFLite export is never overwritten: remove it, or "
                    "train further for a new counter." % path)
  return path


def write_tflite(dcgan, run_dir, counter, batch_size):
  """Write <run>/tflite/model.b<batch>-<counter>.tflite: serving_default's computation for a
  batch of batch_size, float32, by TensorFlow's converter; returns its path."""
  path = check_tflite_target(run_dir, counter, batch_size)
  values = generator_values(dcgan)
  # TensorFlow's plain layers: the converter's builtins (TRANSPOSE_CONV, ...) take them as is
  with tf.Graph().as_default(), tf.Session() as sess:
    z = tf.placeholder(tf.float32, [batch_size, dcgan.z_dim], name="z")
    labels, y = _labels(dcgan, "y", batch_size)
    images = uint8_images(dcgan.generator(z, y, train=False, options=plain_options()),
                          dcgan.value_range)
    _load(sess, values)
    inputs = [z] + ([labels] if labels is not None else [])
    converter = tf.lite.TFLiteConverter.from_session(sess, inputs, [images])
    try:
      flatbuffer = converter.convert()
    except (ConverterError, ValueError) as err:
      raise UserError("TensorFlow's TFLite converter refused the generator: %s"
                      % str(err).strip().splitlines()[0])
  try:
    with atomic_output(path) as tmp:
      with open(tmp, "wb") as f:
        f.write(flatbuffer)
  except OSError as err:
    raise UserError("Cannot write %s (%s); make the run folder writable."
                    % (path, err.strerror or err))
  return path


def write_model(dcgan, config, run_dir, counter):
  """--export, --freeze, --saved_model, --tflite: the loaded model in the forms asked for."""
  if config.export:
    export_dir = os.path.join(config.checkpoint_dir, "export_b" + str(config.batch_size))
    print(" [*] Exported %s" % dcgan.save(export_dir, counter, ckpt=True, frozen=False)[0])
  if config.freeze:
    export_dir = os.path.join(config.checkpoint_dir, "frozen_b" + str(config.batch_size))
    path = dcgan.save(export_dir, counter, ckpt=False, frozen=True)[0]
    print(" [*] Frozen sampler written to %s (input 'z:0'%s, output '%s')"
          % (path, ", 'y:0'" if dcgan.y_dim else "", dcgan.sampler.name))
  if config.saved_model:
    path, signatures = write_saved_model(dcgan, run_dir, counter)
    print(" [*] SavedModel written to %s, signatures:" % path)
    for line in describe_signatures(signatures):
      print("       " + line)
  if config.tflite:
    print(" [*] TFLite model written to %s"
          % write_tflite(dcgan, run_dir, counter, config.batch_size))
