"""The exported generator converted for runtimes other than TensorFlow (README, "Using the
generator elsewhere"), in a process of its own that export.py starts:

  python convert.py SAVED_MODEL KIND=OUTPUT [KIND=OUTPUT]      KIND: tflite or onnx

It runs TensorFlow 2 (the project's programs switch TensorFlow to TF1 graph behaviour at their
start, hardware.import_tensorflow, under which the TFLite converter no longer keeps a
signature) and imports nothing of the project.  It converts the SavedModel's `serving_default`, the portable entry (`sample` draws z
with TensorFlow's stateless random ops, which no other runtime has), and keeps each OUTPUT only
if the converted model gives the SavedModel's images at two batch sizes, at most MAX_LEVELS
apart per pixel.  Its last line on stdout is JSON, per KIND the runtime that checked it and the
largest difference; an error is one line "error: KIND: ..." on stderr and exit status 1.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import tensorflow as tf

try:  # what the TFLite converter raises for a graph it cannot take (not among tf.lite's names)
  from tensorflow.lite.python.convert_phase import ConverterError
except ImportError:
  ConverterError = RuntimeError

MAX_LEVELS = 1  # of 255: a converted model further from the SavedModel than this is refused
CHECK_BATCHES = (1, 5)  # two sizes: a batch fixed at conversion fails one of them
ONNX_OPSET = 17  # ONNX Runtime, onnxruntime-web and TensorRT 8.6+ all take it
TF2ONNX_TIMEOUT = 600  # seconds
SIGNATURE = "serving_default"
DESCRIPTION = os.path.join("assets", "generator.json")  # written by export.py


class ConversionError(Exception):
  """A conversion that failed or gave other images: its one-sentence reason."""


def probe_inputs(description, batch, seed=0):
  """serving_default's inputs for `batch` images: z from the run's z_dist, labels cycling."""
  rng = np.random.default_rng([seed, batch])
  shape = (batch, description["z_dim"])
  if description["z_range"] is None:
    z = rng.standard_normal(shape)
  else:
    z = rng.uniform(description["z_range"][0], description["z_range"][1], shape)
  inputs = {"z": z.astype(np.float32)}
  if description.get("multi_hot"):  # attributes: each present in every other image, in turn
    inputs["y"] = (np.arange(batch)[:, None] + np.arange(description["labels"])) % 2
    inputs["y"] = inputs["y"].astype(np.float32)
  elif description["labels"]:
    inputs["y"] = np.arange(batch, dtype=np.int64) % description["labels"]
  return inputs


def saved_model_runner(saved_model):
  """inputs -> uint8 images of the SavedModel's serving_default (with the loaded model, which
  the TFLite converter takes too)."""
  loaded = tf.saved_model.load(saved_model)
  serve = loaded.signatures[SIGNATURE]
  run = lambda inputs: serve(**{k: tf.constant(v) for k, v in inputs.items()})["images"].numpy()
  return run, loaded


def tflite_runner(path):
  """inputs -> images of the TFLite file's serving_default signature, in LiteRT's interpreter
  (ai-edge-litert) where it is installed, else TensorFlow's."""
  try:
    from ai_edge_litert.interpreter import Interpreter
  except ImportError:
    Interpreter = tf.lite.Interpreter
  interpreter = Interpreter(model_path=path)
  if SIGNATURE not in interpreter.get_signature_list():
    raise ConversionError("the TFLite file has no %s signature" % SIGNATURE)
  runner = interpreter.get_signature_runner(SIGNATURE)
  return (lambda inputs: runner(**inputs)["images"]), type(interpreter).__module__


def to_tflite(loaded, output):
  """TensorFlow's converter on the loaded SavedModel's serving_default (its variables frozen to
  constants: converting the SavedModel's folder instead leaves variable ops that give wrong
  images); returns the file's runner and the runtime it runs in."""
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [loaded.signatures[SIGNATURE]], loaded)
  try:
    flatbuffer = converter.convert()
  except (ConverterError, ValueError) as err:
    raise ConversionError("TensorFlow's TFLite converter refused the generator: %s"
                          % (str(err).strip().splitlines() or [type(err).__name__])[0])
  with open(output, "wb") as f:
    f.write(flatbuffer)
  return tflite_runner(output)


def tf2onnx_command(saved_model, output):
  return [sys.executable, "-m", "tf2onnx.convert", "--saved-model", saved_model,
          "--signature_def", SIGNATURE, "--tag", "serve", "--opset", str(ONNX_OPSET),
          "--output", output]


# A label input's Gather, as the exported SavedModel names it ('y_must_be_0_to_9': export.py's
# LABEL_RULE), and the last label it takes.
LABEL_RULE = re.compile(r"_must_be_0_to_(\d+)$")


def refuse_negative_labels(graph):
  """ONNX's Gather reads a negative index from the end (-1: the last class), where TensorFlow's
  refuses it.  Beside each label rule's Gather, the negative labels (Compress) are gathered from
  an empty table, which refuses any index, so ONNX Runtime names the label as given (idx=-1)
  and the rule (the node's name, the rule's with '_negative'); with none, that Gather's empty
  rows are joined to the one-hot rows (Concat), which keeps it in the graph and changes
  nothing."""
  from onnx import helper, numpy_helper
  for gather in [n for n in graph.node if n.op_type == "Gather" and LABEL_RULE.search(n.name)]:
    classes = int(LABEL_RULE.search(gather.name).group(1)) + 1
    zero, empty, negative, given, refused, rows = (
        gather.name + "/" + part for part in ("zero", "empty", "negative", "given", "refused",
                                              "rows"))
    graph.initializer.extend([numpy_helper.from_array(np.array(0, np.int64), zero),
                              numpy_helper.from_array(np.zeros((0, classes), np.float32), empty)])
    label, one_hot = gather.input[1], gather.output[0]
    gather.output[0] = rows
    at = list(graph.node).index(gather) + 1
    graph.node.insert(at, helper.make_node("Concat", [rows, refused], [one_hot], axis=0,
                                           name=one_hot + "/checked"))
    graph.node.insert(at, helper.make_node("Gather", [empty, given], [refused], axis=0,
                                           name=gather.name + "_negative"))
    graph.node.insert(at, helper.make_node("Compress", [label, negative], [given], axis=0,
                                           name=given))
    graph.node.insert(at, helper.make_node("Less", [label, zero], [negative], name=negative))


def to_onnx(saved_model, output, description):
  """tf2onnx on serving_default, refused if it logged an error (it exits 0 after dropping an
  op it cannot convert), checked by onnx.checker, the description written into the file's
  metadata; returns the file's runner and its runtime (ONNX Runtime; None, None where it is not
  installed)."""
  try:
    proc = subprocess.run(tf2onnx_command(saved_model, output), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=TF2ONNX_TIMEOUT)
  except subprocess.TimeoutExpired:
    raise ConversionError("tf2onnx did not finish in %d s" % TF2ONNX_TIMEOUT)
  errors = [line for line in proc.stdout.splitlines() if " - ERROR - " in line]
  if proc.returncode or errors or not os.path.exists(output):
    raise ConversionError("tf2onnx could not convert the generator: %s" % (
        (errors or proc.stdout.strip().splitlines() or ["exit status %d" % proc.returncode])[0]))
  import onnx
  model = onnx.load(output)
  refuse_negative_labels(model.graph)
  entry = model.metadata_props.add()
  entry.key, entry.value = "generator.json", json.dumps(description)
  try:
    onnx.checker.check_model(model, full_check=True)
  except onnx.checker.ValidationError as err:
    raise ConversionError("the ONNX file tf2onnx wrote is not valid: %s"
                          % str(err).strip().splitlines()[0])
  onnx.save(model, output)
  try:
    import onnxruntime
  except ImportError:
    return None, None
  session = onnxruntime.InferenceSession(output, providers=["CPUExecutionProvider"])
  return (lambda inputs: session.run(["images"], inputs)[0]), "onnxruntime"


def largest_difference(reference, run, description):
  """The largest per-pixel difference between the converted model and the SavedModel over
  CHECK_BATCHES; a ConversionError beyond MAX_LEVELS or for another shape or dtype."""
  largest = 0
  for batch in CHECK_BATCHES:
    inputs = probe_inputs(description, batch)
    want, got = reference(inputs), np.asarray(run(inputs))
    if got.shape != want.shape or got.dtype != want.dtype:
      raise ConversionError("the converted model gave %s %s for a batch of %d, not %s %s"
                            % (got.dtype, list(got.shape), batch, want.dtype, list(want.shape)))
    largest = max(largest, int(np.max(np.abs(got.astype(int) - want.astype(int)))))
  if largest > MAX_LEVELS:
    raise ConversionError("the converted model's images differ from the SavedModel's by up to "
                          "%d of 255 levels" % largest)
  return largest


KINDS = ("tflite", "onnx")


def convert(saved_model, outputs):
  """Write each of outputs {kind: path}; returns {kind: report}, the JSON printed last."""
  with open(os.path.join(saved_model, DESCRIPTION)) as f:
    description = json.load(f)
  reference, loaded = saved_model_runner(saved_model)
  reports = {}
  for kind, output in outputs.items():
    try:
      if kind == "tflite":
        run, runtime = to_tflite(loaded, output)
      else:
        run, runtime = to_onnx(saved_model, output, description)
      reports[kind] = {"checked_in": runtime, "batches": list(CHECK_BATCHES),
                       "max_levels": run and largest_difference(reference, run, description)}
    except ConversionError as err:
      raise ConversionError("%s: %s" % (kind, err))
  return reports


def main(argv):
  outputs = dict(arg.partition("=")[::2] for arg in argv[2:])
  if len(argv) < 3 or not set(outputs) <= set(KINDS) or not all(outputs.values()):
    sys.stderr.write("usage: python convert.py SAVED_MODEL KIND=OUTPUT [KIND=OUTPUT]; KIND: "
                     "%s\n" % " or ".join(KINDS))
    return 2
  tf.get_logger().setLevel("ERROR")
  try:
    reports = convert(argv[1], outputs)
  except ConversionError as err:
    sys.stderr.write("error: %s.\n" % err)
    return 1
  print(json.dumps(reports))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
