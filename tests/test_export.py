"""The generator in other runtimes (export.py, convert.py; docs/REFERENCE.md, "Using the generator
elsewhere"): a SavedModel read by plain TensorFlow 2 in a process that imports nothing of this
project, by saved_model_cli, by ONNX Runtime through tf2onnx, by LiteRT in a process without
TensorFlow, by TensorFlow.js (make test-tfjs), and the reference's snippets run as written, for a
conditional MNIST model and an unconditional image-folder model."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

import convert
import evaluate
import export
from conftest import PROJECT_DIR, write_images
from http_server import FileServer
from model import DCGAN
from test_main import only_run_folder, run_main, run_main_here
from utils import UserError, to_uint8

# Every test here reads the models the session fixtures train: `make test` runs a file's tests
# on one worker (--dist loadfile), which trains each once.

# Plain TensorFlow 2, eager, in a fresh process started in another folder (-I: neither the
# project's folder nor PYTHONPATH on sys.path): it reads a request and writes what it got.
FRESH_TF2 = r"""
import json, os, sys
import numpy as np
import tensorflow as tf
assert tf.executing_eagerly()
folder, work, project = sys.argv[1], sys.argv[2], sys.argv[3]
loaded = tf.saved_model.load(folder)
serve, sample = loaded.signatures["serving_default"], loaded.signatures["sample"]
request = np.load(os.path.join(work, "request.npz"))
out, refused = {}, {}
for n in (1, 100):
  out["served_%d" % n] = serve(z=tf.constant(request["z"][:n]),
                               y=tf.constant(request["labels"][:n]))["images"].numpy()
def drawn(seed, count, label):
  return sample(seed=tf.constant(seed, tf.int64), count=tf.constant(count, tf.int64),
                label=tf.constant([label] * count, tf.int64))["images"].numpy()
out["seed5"], out["seed5_again"], out["seed6"] = drawn(5, 100, 7), drawn(5, 100, 7), drawn(6, 100, 7)
out["seed5_one"] = drawn(5, 1, 7)
for name, labels in (("int32", tf.constant([1, 2], tf.int32)),
                     ("twelve", tf.constant([1, 12], tf.int64)),
                     ("negative", tf.constant([1, -1], tf.int64))):
  try:
    serve(z=tf.constant(request["z"][:2]), y=labels)
  except (tf.errors.InvalidArgumentError, TypeError, ValueError) as err:
    refused[name] = str(err)
np.savez(os.path.join(work, "answer.npz"), **out)
mine = [m.__file__ for m in list(sys.modules.values())
        if os.path.dirname(os.path.abspath(getattr(m, "__file__", None) or "/")) == project]
print(json.dumps({"project_modules": mine, "dtype": str(out["served_1"].dtype),
                  "refused": refused,
                  "project_on_path": project in [os.path.abspath(p) for p in sys.path]}))
"""

EXPORTS = ("--saved_model", "--tflite", "--onnx", "--kernels", "avx512")  # the CPU plan's forms
PORTABLE = "the exported SavedModel leaves the kernel plan's CPU forms out"

# The images of two runtimes, or of the project's sampler and the SavedModel, are within the
# tolerance docs/REFERENCE.md states ("Using the generator elsewhere"): at most 1 of 255 levels
# apart (convert.MAX_LEVELS), on at most 1 pixel in 1,000 of those compared.  Which pixels sit on
# a rounding boundary depends on the CPU's kernels: 0 on one kind, a few in 10^5 on another.
SHARE_EQUAL = 0.999


def assert_within_tolerance(pairs):
  """pairs: [(got, want)] of uint8 image batches, judged together."""
  got = np.concatenate([np.asarray(g, np.int64).ravel() for g, _ in pairs])
  want = np.concatenate([np.asarray(w, np.int64).ravel() for _, w in pairs])
  assert got.shape == want.shape
  largest, equal = int(np.max(np.abs(got - want))), float(np.mean(got == want))
  assert largest <= convert.MAX_LEVELS and equal >= SHARE_EQUAL, (
      "%d levels apart at most, %d of %d pixels differ" % (largest, np.sum(got != want), got.size))


@pytest.fixture(scope="session")  # once: xdist may run other modules between its tests
def exported(tmp_path_factory):
  """Conditional MNIST trained two epochs on 1,600 digits, then every export, built where the
  kernel plan has its CPU forms (--kernels avx512: the label term's tf.eye, depth_to_space)."""
  cwd = tmp_path_factory.mktemp("export")
  proc = run_main(cwd, "--dataset", "mnist", "--input_height", "28", "--output_height", "28",
                  "--train", "--epoch", "2", "--train_size", "1600", "--batch_size", "32",
                  "--seed", "3", *EXPORTS)  # the exports after training, as test mode's
  return cwd, only_run_folder(cwd), proc


@pytest.fixture(scope="session")
def folder_exported(tmp_path_factory):
  """An unconditional image-folder model (RGB, 16 px, z from a standard normal), every export.
  Seeded, as the MNIST one: the same model every run, so the runtimes' comparisons are too (a
  float sum in another order can move a pixel that sits on a rounding boundary by a level; an
  unseeded model in CI at 7db7f46 had one such pixel in 49,152)."""
  cwd = tmp_path_factory.mktemp("export_folder")
  write_images(str(cwd / "data" / "faces"), 8, size=(40, 40))
  proc = run_main(cwd, "--dataset", "faces", "--input_height", "32", "--crop", "--output_height",
                  "16", "--batch_size", "4", "--epoch", "1", "--z_dim", "6", "--z_dist",
                  "normal01", "--seed", "3", "--train", *EXPORTS)
  return cwd, only_run_folder(cwd), proc


@pytest.fixture(scope="session")  # once: xdist may run other modules between its tests
def classes_exported(tmp_path_factory):
  """A conditional model of RGB class folders (--labels: three classes, 16 px), every export:
  the label range its exports enforce is its own, not MNIST's."""
  from test_dataset import write_classes
  cwd = tmp_path_factory.mktemp("export_classes")
  write_classes(str(cwd / "data" / "pets"), ["cat", "dog", "fox"], count=4, size=(16, 16))
  proc = run_main(cwd, "--dataset", "pets", "--input_fname_pattern", "*.png", "--labels",
                  "--input_height", "16", "--output_height", "16", "--batch_size", "4",
                  "--epoch", "1", "--z_dim", "6", "--seed", "3", "--train", *EXPORTS)
  return cwd, only_run_folder(cwd), proc


MODELS = {"conditional": "exported", "unconditional": "folder_exported",
          "classes": "classes_exported"}


def model_of(request, kind):
  """(run folder, SavedModel version folder, description) of the conditional MNIST,
  unconditional image-folder or class-folders exported model."""
  _, run_dir, _ = request.getfixturevalue(MODELS[kind])
  (version,) = glob.glob(os.path.join(run_dir, "saved_model", "*"))
  with open(os.path.join(version, "assets", "generator.json")) as f:
    return run_dir, version, json.load(f)


def probe(description, batch):
  """serving_default's inputs for `batch` images, drawn as convert.py draws its own (another
  seed than its check's)."""
  return convert.probe_inputs(description, batch, seed=1)


def saved_model_images(version, inputs, signature="serving_default"):
  """The SavedModel's images for inputs, run in a graph of this process."""
  with tf.Graph().as_default(), tf.Session() as sess:
    meta = tf.saved_model.loader.load(sess, ["serve"], version)
    sig = meta.signature_def[signature]
    feed = {sig.inputs[name].name: np.asarray(value, tf.as_dtype(sig.inputs[name].dtype)
                                              .as_numpy_dtype) for name, value in inputs.items()}
    return sess.run(sig.outputs["images"].name, feed)


MNIST_MODEL = dict(input_height=28, output_height=28, output_width=28, y_dim=10, c_dim=1,
                   batch_size=32, dataset_name="mnist")  # the exported fixture's


def sampler_images(run_dir, z, y, **model):
  """The project's own sampler on the run's checkpoint, as uint8 (as its PNGs are written):
  a DCGAN of `model`'s arguments (MNIST_MODEL unless given) fed z and y as they are."""
  with tf.Graph().as_default(), tf.Session() as sess:
    dcgan = DCGAN(sess, seed=0, **(model or MNIST_MODEL))
    sess.run(dcgan.init_op)
    assert dcgan.load(os.path.join(run_dir, "checkpoint"))[0]
    return to_uint8(dcgan.sample(z, y), dcgan.value_range)


def test_test_mode_writes_every_export_and_says_how_each_was_checked(exported):
  _, run_dir, proc = exported
  run = "./out/%s" % os.path.basename(run_dir)
  (version,) = glob.glob(os.path.join(run_dir, "saved_model", "*"))
  assert os.path.basename(version) == "101"  # the counter after 2 epochs x 50 steps
  assert "Using experimental converter" not in proc.stdout + proc.stderr  # TensorFlow's INFO line
  assert os.path.exists(os.path.join(version, "saved_model.pb"))
  assert not glob.glob(os.path.join(run_dir, "*", ".tmp*"))
  assert "SavedModel written to %s/saved_model/101, signatures:" % run in proc.stdout
  assert ("serving_default(y int64 [None], z float32 [None, 100]) -> images uint8 "
          "[None, 28, 28, 1]") in proc.stdout
  assert ("sample(count int64 [], label int64 [None], seed int64 []) -> images uint8 "
          "[None, 28, 28, 1]") in proc.stdout
  # what each check measured, said as it was: within the documented tolerance, on any CPU kind
  for name, path, runtime in (("TFLite", "tflite/model-101.tflite", r"ai_edge_litert[.\w]*"),
                              ("ONNX", "onnx/model-101.onnx", "onnxruntime")):
    said = re.search(r"%s model written to %s/%s \(serving_default; (\d+) of 255 levels from "
                     r"the SavedModel at batches 1 and 5 in %s\)"
                     % (name, re.escape(run), re.escape(path), runtime), proc.stdout)
    assert said and int(said.group(1)) <= convert.MAX_LEVELS, proc.stdout


@pytest.mark.parametrize("kind", ["conditional", "unconditional"])
def test_the_saved_model_holds_portable_ops_and_describes_its_inputs(request, kind):
  from tensorflow.core.protobuf import saved_model_pb2
  run_dir, version, description = model_of(request, kind)
  saved = saved_model_pb2.SavedModel()
  with open(os.path.join(version, "saved_model.pb"), "rb") as f:
    saved.ParseFromString(f.read())
  ops = {node.op for node in saved.meta_graphs[0].graph_def.node}
  assert "Conv2DBackpropInput" in ops and "MatMul" in ops  # the generator is there
  assert not ops & {"MatrixDiagV3", "DepthToSpace", "_FusedBatchNormEx", "FusedBatchNormV3",
                    "Split"}, PORTABLE
  with open(os.path.join(run_dir, "FLAGS.json")) as f:
    flags = json.load(f)
  assert description["z_dim"] == flags["z_dim"] and description["z_dist"] == flags["z_dist"]
  assert description["counter"] == int(os.path.basename(version))
  assert (description["labels"], description["image_shape"]) == (
      (10, [28, 28, 1]) if kind == "conditional" else (0, [16, 16, 3]))
  assert description["z_range"] == ([-1.0, 1.0] if kind == "conditional" else None)
  # an unconditional model's description has no y; a conditional one's names its classes
  assert ("y" in description["inputs"]) == (kind == "conditional")
  assert description["label_names"] == ([str(digit) for digit in range(10)]
                                        if kind == "conditional" else None)


@pytest.fixture(scope="session")  # once: xdist may run other modules between its tests
def served(exported, tmp_path_factory):
  """(z, labels, report, answer) of FRESH_TF2 on the exported SavedModel."""
  _, run_dir, _ = exported
  (version,) = glob.glob(os.path.join(run_dir, "saved_model", "*"))
  work = tmp_path_factory.mktemp("fresh")
  rng = np.random.default_rng(0)
  z = rng.uniform(-1, 1, (100, 100)).astype(np.float32)
  labels = np.arange(100) % 10  # int64: numpy's integers
  np.savez(str(work / "request.npz"), z=z, labels=labels)
  proc = subprocess.run([sys.executable, "-I", "-c", FRESH_TF2, version, str(work),
                         PROJECT_DIR], cwd=str(work), stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True, timeout=300,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(proc.stdout.strip().splitlines()[-1])
  return z, labels, report, dict(np.load(str(work / "answer.npz")))


def test_plain_tensorflow_2_serves_the_samplers_images_and_samples_by_seed(exported, served):
  _, run_dir, _ = exported
  z, labels, report, answer = served
  refused = report.pop("refused")
  assert report == {"project_modules": [], "dtype": "uint8", "project_on_path": False}
  want = sampler_images(run_dir, z, np.eye(10, dtype=np.float32)[labels])
  assert answer["served_100"].shape == (100, 28, 28, 1)
  # the sampler may use the kernel plan's CPU forms, the SavedModel TensorFlow's plain ones
  assert_within_tolerance([(answer["served_100"], want)])
  np.testing.assert_array_equal(answer["served_1"], answer["served_100"][:1])
  np.testing.assert_array_equal(answer["seed5"], answer["seed5_again"])
  assert np.mean(answer["seed5"] != answer["seed6"]) > 0.1
  np.testing.assert_array_equal(answer["seed5_one"].shape, (1, 28, 28, 1))
  assert "expected to be a int64 tensor but is a int32 tensor" in refused["int32"]
  assert "indices[1] = 12 is not in [0, 10)" in refused["twelve"]
  assert "y_must_be_0_to_9" in refused["twelve"] and "y_must_be_0_to_9" in refused["negative"]
  assert "indices[1] = -1 is not in [0, 10)" in refused["negative"]  # the label given, named


def test_saved_model_cli_lists_both_signatures(exported):
  _, run_dir, _ = exported
  (version,) = glob.glob(os.path.join(run_dir, "saved_model", "*"))
  cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
  proc = subprocess.run([cli, "show", "--dir", version, "--all"], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True, timeout=300,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode == 0, proc.stderr[-2000:]
  text = proc.stdout
  for name in ("serving_default", "sample"):
    assert "signature_def['%s']" % name in text
  serving = text.split("signature_def['serving_default']")[1]
  sample = text.split("signature_def['sample']")[1].split("signature_def[")[0]
  for block, inputs in ((serving, [("z", "DT_FLOAT", "(-1, 100)"), ("y", "DT_INT64", "(-1)")]),
                        (sample, [("seed", "DT_INT64", "()"), ("count", "DT_INT64", "()"),
                                  ("label", "DT_INT64", "(-1)")])):
    for name, dtype, shape in inputs:
      line = block.split("inputs['%s'] tensor_info:" % name)[1]
      assert "dtype: %s" % dtype in line.split("name:")[0] and "shape: %s" % shape in line
    out = block.split("outputs['images'] tensor_info:")[1]
    assert "dtype: DT_UINT8" in out and "shape: (-1, 28, 28, 1)" in out


@pytest.mark.parametrize("kind", ["conditional", "unconditional", "classes"])
def test_onnx_runtime_gives_the_saved_models_images_at_any_batch(request, kind):
  import onnx
  import onnxruntime
  run_dir, version, description = model_of(request, kind)
  path = os.path.join(run_dir, "onnx", "model-%d.onnx" % description["counter"])
  model = onnx.load(path)
  onnx.checker.check_model(model, full_check=True)
  assert json.loads({p.key: p.value for p in model.metadata_props}["generator.json"]) == description
  session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
  inputs = {i.name: i for i in session.get_inputs()}
  assert sorted(inputs) == (["y", "z"] if description["labels"] else ["z"])
  assert isinstance(inputs["z"].shape[0], str)  # a dynamic batch
  pairs = []
  for batch in (1, 64):
    feed = probe(description, batch)
    pairs.append((session.run(["images"], feed)[0], saved_model_images(version, feed)))
    assert pairs[-1][0].dtype == np.uint8 and pairs[-1][0].shape == pairs[-1][1].shape
  assert_within_tolerance(pairs)
  classes = description["labels"]
  if classes:  # this model's own range: 0-9 for MNIST, 0-2 for three class folders
    for bad in ([0, classes], [0, -1]):  # each named as given, with the rule
      with pytest.raises(onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument,
                         match="y_must_be_0_to_%d.*idx=%d" % (classes - 1, bad[1])):
        session.run(["images"], {"z": feed["z"][:2], "y": np.array(bad)})


# LiteRT in a process of its own without TensorFlow: signature, two batch sizes, the labels' rules
LITERT = r"""
import json, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
path, request, answer = sys.argv[1:4]
interpreter = Interpreter(model_path=path)
runner = interpreter.get_signature_runner("serving_default")
feeds = dict(np.load(request))
out, refused = {}, {}
for batch in (1, 64):
  feed = {k[:-len("_%d" % batch)]: v for k, v in feeds.items() if k.endswith("_%d" % batch)}
  out["images_%d" % batch] = runner(**feed)["images"]
if "y_1" in feeds:
  for name, labels in (("twelve", np.array([3, 12])), ("negative", np.array([0, -1])),
                       ("int32", np.array([3, 4], np.int32))):
    try:
      runner(z=feeds["z_64"][:2], y=labels)
    except (RuntimeError, ValueError) as err:
      refused[name] = str(err)
np.savez(answer, **out)
print(json.dumps({"signatures": interpreter.get_signature_list(), "refused": refused,
                  "tensorflow": any(m.split(".")[0] == "tensorflow" for m in sys.modules)}))
"""


@pytest.mark.parametrize("kind", ["conditional", "unconditional", "classes"])
def test_litert_runs_the_tflite_signature_without_tensorflow(request, kind, tmp_path, capsys):
  run_dir, version, description = model_of(request, kind)
  path = os.path.join(run_dir, "tflite", "model-%d.tflite" % description["counter"])
  feeds = {"%s_%d" % (k, b): v for b in (1, 64) for k, v in probe(description, b).items()}
  np.savez(str(tmp_path / "request.npz"), **feeds)
  proc = subprocess.run([sys.executable, "-I", "-c", LITERT, path, str(tmp_path / "request.npz"),
                         str(tmp_path / "answer.npz")], cwd=str(tmp_path), stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(proc.stdout.strip().splitlines()[-1])
  assert report["tensorflow"] is False
  inputs = ["y", "z"] if description["labels"] else ["z"]
  assert report["signatures"] == {"serving_default": {"inputs": inputs, "outputs": ["images"]}}
  answer = np.load(str(tmp_path / "answer.npz"))
  pairs = [(answer["images_%d" % batch], saved_model_images(version, probe(description, batch)))
           for batch in (1, 64)]
  for got, want in pairs:
    assert got.dtype == np.uint8 and got.shape == want.shape
  assert_within_tolerance(pairs)
  if description["labels"]:
    assert "gather index out of bounds" in report["refused"]["twelve"]
    assert "gather index out of bounds" in report["refused"]["negative"]  # not the last class
    assert "expected type INT64" in report["refused"]["int32"]
  capsys.readouterr()
  tf.lite.experimental.Analyzer.analyze(model_path=path)  # prints the file's ops
  ops = capsys.readouterr().out
  assert "TRANSPOSE_CONV" in ops and "VAR_HANDLE" not in ops and "READ_VARIABLE" not in ops


def test_sampled_sevens_are_sevens_as_often_as_generated_ones(exported, served, monkeypatch,
                                                             capsys):
  cwd, run_dir, _ = exported
  sampled = served[3]["seed5"].astype(np.float32) / 255.0  # sample(5, count=100, label=[7]*100)
  run_main_here(cwd, monkeypatch, capsys, "--dataset", "mnist", "--generate", "100", "--label", "7",
                check=True)
  (folder,) = glob.glob(os.path.join(run_dir, "samples", "generated_*"))
  generated = np.stack([np.asarray(Image.open(p), np.float32) / 255.0 for p in
                        sorted(glob.glob(os.path.join(folder, "*_label7.png")))])[..., None]
  classifier = evaluate.Judge(str(cwd / "classifier"), evaluate.published_judge_splits("/nonexistent"),
                              epochs=2)
  try:
    rates = [float(np.mean(classifier.predict(images)[0] == 7)) for images in (sampled, generated)]
  finally:
    classifier.close()
  assert len(generated) == 100 and rates[1] > 0.3, rates  # the model draws sevens, mostly
  assert abs(rates[0] - rates[1]) <= 0.15, rates  # and the SavedModel's sample as often


def tree(folder):
  """{relative path: size} of every file under folder."""
  return {os.path.relpath(os.path.join(d, f), folder): os.path.getsize(os.path.join(d, f))
          for d, _, files in os.walk(folder) for f in files}


def test_bad_exports_are_one_sentence_and_leave_nothing_half_written(exported, tmp_path,
                                                                     monkeypatch, capsys):
  cwd, run_dir, _ = exported
  before = tree(str(cwd))
  # the version exists already: refused before anything loads (in this process), naming it
  for flag, name in (("--saved_model", os.path.join("saved_model", "101")),
                     ("--onnx", os.path.join("onnx", "model-101.onnx"))):
    code, _, err = run_main_here(cwd, monkeypatch, capsys, "--dataset", "mnist", flag)
    assert code == 1 and "Traceback" not in err
    (line,) = [l for l in err.splitlines() if l.startswith("error: ")]
    assert name in line and "exists already" in line
  assert tree(str(cwd)) == before
  # no checkpoint to export
  code, _, err = run_main_here(tmp_path, monkeypatch, capsys, "--dataset", "mnist",
                               "--saved_model", "--tflite")
  assert code == 1 and "Traceback" not in err and "checkpoint" in err
  assert not os.path.exists(str(tmp_path / "out"))
  # a run folder where they cannot be written (a file stands where each folder would go; root
  # writes into a read-only folder all the same)
  copy = tmp_path / "out" / "copy"
  os.makedirs(str(copy.parent))
  shutil.copytree(str(run_dir), str(copy),
                  ignore=shutil.ignore_patterns("saved_model", "tflite", "onnx"))
  for name, flag, message in (("saved_model", "--saved_model", "Cannot write the SavedModel"),
                              ("tflite", "--tflite", "Cannot write")):
    (copy / name).write_text("in the way")
    before = tree(str(tmp_path))
    code, _, err = run_main_here(tmp_path, monkeypatch, capsys, "--dataset", "mnist", flag)
    assert code == 1 and "Traceback" not in err, err[-2000:]
    (line,) = [l for l in err.splitlines() if l.startswith("error: ")]
    assert message in line, line
    assert tree(str(tmp_path)) == before  # nothing half-written beside it


def test_a_missing_converter_is_one_sentence_before_anything_loads(tmp_path, monkeypatch):
  monkeypatch.setitem(export.CONVERSIONS, "onnx",
                      export.CONVERSIONS["onnx"]._replace(modules=("no_such_converter",)))
  with pytest.raises(UserError, match="--onnx needs no_such_converter, which the runtime "
                                      "requirements leave out: pip install tf2onnx onnx"):
    export.conversion_target(str(tmp_path), "onnx", 7)
  assert export.conversion_target(str(tmp_path), "tflite", 7) == str(
      tmp_path / "tflite" / "model-7.tflite")


def test_a_conversion_that_would_drop_an_op_fails_loudly(tmp_path):
  """tf2onnx logs an error and exits 0 for an op it cannot convert (the stateless random ops of
  `sample`): convert.py refuses, and export.py writes nothing."""
  version = str(tmp_path / "saved_model" / "1")
  with tf.Graph().as_default(), tf.Session() as sess:
    z = tf.placeholder(tf.float32, [None, 2], name="z")
    noise = tf.random.stateless_uniform(tf.shape(z), tf.constant([1, 2], tf.int64))
    images = tf.cast(tf.round((z + noise) * 100.0), tf.uint8)
    builder = tf.saved_model.Builder(version)
    builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={
        "serving_default": tf.saved_model.signature_def_utils.predict_signature_def(
            {"z": z}, {"images": images})})
    builder.save()
  os.makedirs(os.path.join(version, "assets"))
  with open(os.path.join(version, "assets", "generator.json"), "w") as f:
    json.dump({"z_dim": 2, "z_range": [-1, 1], "labels": 0}, f)
  target = str(tmp_path / "onnx" / "model-1.onnx")
  with pytest.raises(UserError, match="The ONNX conversion failed, nothing was written: tf2onnx "
                                      "could not convert the generator: .*StatelessRandom"):
    export.convert_saved_model(version, {"onnx": target})
  assert os.listdir(str(tmp_path / "onnx")) == []


# --------------------------------------------------------------------------------------------
# docs/REFERENCE.md's snippets, run as written on the exported models ("out/RUN" and "1951"
# stand for the run's folder and counter)

REFERENCE = os.path.join(PROJECT_DIR, "docs", "REFERENCE.md")
SNIPPETS = [("tensorflow", "conditional"), ("rest", "conditional"), ("rest", "unconditional"),
            ("onnxruntime", "conditional"), ("onnxruntime", "unconditional"),
            ("litert", "conditional"), ("litert", "unconditional"), ("tfjs", "conditional"),
            ("keras", "conditional")]
ATTRIBUTE_SNIPPETS = [("onnxruntime", "attributes"), ("litert", "attributes")]  # their tests:
# tests/test_attributes.py, on its attribute model
# after a Python snippet: what it made, and whether TensorFlow was loaded
PYTHON_AFTER = """
import sys as _sys
import numpy as _np
_np.savez(_sys.argv[1], images=_np.asarray(images), z=_np.asarray(z))
print("tensorflow loaded" if "tensorflow" in _sys.modules else "no tensorflow")
"""
# after the TensorFlow.js snippet: what it made, and what labels of 12 and -1 do
JS_AFTER = """
generate(process.argv[2], 8).then(async ({z, images}) => {
  const refused = [];
  const model = await tf.loadGraphModel(process.argv[2]);
  for (const bad of [12, -1]) {
    try { model.execute({z: z.slice(0, 2), y: tf.tensor1d([3, bad], 'int32')}); }
    catch (err) { refused.push(String(err)); }
  }
  require('fs').writeFileSync(process.argv[3], JSON.stringify({
      z: await z.array(), images: await images.array(), dtype: images.dtype, refused: refused}));
}).catch(err => { console.error(err); process.exit(1); });
"""


def reference_snippets():
  """{(name, models): (language, code)} of the blocks marked `<!-- tested: NAME [MODELS] -->`;
  MODELS both counts as conditional and unconditional, every as those and attributes
  (tests/test_attributes.py runs those), none as conditional."""
  with open(REFERENCE) as f:
    text = f.read()
  found = {}
  for match in re.finditer(r"<!-- tested: (\w+)(?: (\w+))? -->\n```(\w+)\n(.*?)```", text, re.S):
    name, models, language, code = match.groups()
    for model in {"both": ["conditional", "unconditional"],
                  "every": ["conditional", "unconditional", "attributes"]}.get(
                      models, [models or "conditional"]):
      found[(name, model)] = (language, code)
  return found


def test_every_marked_snippet_of_the_reference_is_run_here():
  assert sorted(reference_snippets()) == sorted(SNIPPETS + ATTRIBUTE_SNIPPETS)


def snippet_inputs(description, z):
  """serving_default's inputs as the reference's snippets build them for z: a class model's y
  each image's class in turn, an attribute model's the first attribute alone."""
  inputs = {"z": z}
  if description.get("multi_hot"):
    inputs["y"] = np.zeros((len(z), description["labels"]), np.float32)
    inputs["y"][:, 0] = 1
  elif description["labels"]:
    inputs["y"] = np.arange(len(z)) % description["labels"]
  return inputs


def for_run(code, run_dir, counter):
  return code.replace("out/RUN", run_dir).replace("1951", str(counter))


def run_python_snippet(code, tmp_path):
  """(images, z, loaded TensorFlow?) of a Python snippet run in a fresh process (-I)."""
  script = tmp_path / "snippet.py"
  script.write_text(code + PYTHON_AFTER)
  proc = subprocess.run([sys.executable, "-I", str(script), str(tmp_path / "made.npz")],
                        cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  made = np.load(str(tmp_path / "made.npz"))
  return made["images"], made["z"], proc.stdout.strip().splitlines()[-1] == "tensorflow loaded"


def run_rest_snippet(code, version, description):
  """A curl request's body given to the signature it names, as TF Serving's columnar "inputs"
  format does (TF Serving itself is on no package registry)."""
  body = json.loads(re.search(r"-d '(.*)'", code).group(1))
  inputs = body["inputs"]
  images = saved_model_images(version, inputs, body["signature_name"])
  assert images.shape == (inputs["count"],) + tuple(description["image_shape"])
  return images


def run_tfjs_snippet(code, version, tmp_path, pytestconfig):
  converter = pytestconfig.getoption("--tfjs-converter")
  modules = pytestconfig.getoption("--tfjs-modules")
  if not (converter and modules):
    pytest.skip("TensorFlow.js: `make test-tfjs` runs it (its converter pins TensorFlow 2.19, "
                "so it gets a virtualenv of its own)")
  web = tmp_path / "web_model"
  # as the reference says: from the SavedModel's folder (the converter splits paths at spaces)
  proc = subprocess.run([os.path.abspath(converter), "--input_format", "tf_saved_model",
                         os.path.basename(version), str(web)], cwd=os.path.dirname(version),
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode == 0, proc.stdout[-3000:]  # its default settings: no op skipped
  (tmp_path / "snippet.js").write_text(code + JS_AFTER)
  files = {name: (web / name).read_bytes() for name in os.listdir(str(web))}
  with FileServer(files) as server:
    proc = subprocess.run(["node", str(tmp_path / "snippet.js"), server.url + "model.json",
                           str(tmp_path / "made.json")], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=300,
                          env=dict(os.environ, NODE_PATH=os.path.abspath(modules)))
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(str(tmp_path / "made.json")) as f:
    made = json.load(f)
  assert made["dtype"] == "int32" and "the index value 12 is not in [0, 9]" in made["refused"][0]
  assert "the index value -1 is not in [0, 9]" in made["refused"][1]  # as given, not the last
  return np.array(made["images"]), np.array(made["z"], np.float32), False


@pytest.mark.parametrize("name, kind", SNIPPETS)
def test_reference_snippet_runs_as_written(request, name, kind, tmp_path, pytestconfig):
  run_dir, version, description = model_of(request, kind)
  language, code = reference_snippets()[(name, kind)]
  code = for_run(code, run_dir, description["counter"])
  if name == "rest":
    run_rest_snippet(code, version, description)
    return
  if name == "tfjs":
    images, z, loaded = run_tfjs_snippet(code, version, tmp_path, pytestconfig)
  else:
    images, z, loaded = run_python_snippet(code, tmp_path)
  assert loaded == (name in ("tensorflow", "keras"))  # LiteRT and ONNX Runtime run without it
  want = saved_model_images(version, snippet_inputs(description, z))
  assert images.shape == want.shape == (8,) + tuple(description["image_shape"])
  assert_within_tolerance([(images, want)])
