"""The generator in the ecosystem's formats (export.py, README "Using the generator elsewhere"):
a SavedModel read by plain TensorFlow 2 in a process that imports nothing of this project, the
same SavedModel through saved_model_cli, and a TFLite file through tf.lite.Interpreter."""
import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

import evaluate
from conftest import PROJECT_DIR
from model import DCGAN
from test_main import only_run_folder, run_main
from utils import to_uint8

# Every test here reads the one model the session fixture trains: `make test` runs a file's
# tests on one worker (--dist loadfile), which trains it once.

# Plain TensorFlow 2, eager, in a fresh process started in another folder (-I: neither the
# project's folder nor PYTHONPATH on sys.path): it reads a request and writes what it got.
FRESH_TF2 = r'''
import json, os, sys
import numpy as np
import tensorflow as tf
assert tf.executing_eagerly()
folder, work, project = sys.argv[1], sys.argv[2], sys.argv[3]
loaded = tf.saved_model.load(folder)
serve, sample = loaded.signatures["serving_default"], loaded.signatures["sample"]
request = np.load(os.path.join(work, "request.npz"))
out = {}
for n in (1, 100):
  out["served_%d" % n] = serve(z=tf.constant(request["z"][:n]),
                               y=tf.constant(request["labels"][:n]))["images"].numpy()
def drawn(seed, count, label):
  return sample(seed=tf.constant(seed, tf.int64), count=tf.constant(count, tf.int32),
                label=tf.constant([label] * count, tf.int32))["images"].numpy()
out["seed5"], out["seed5_again"], out["seed6"] = drawn(5, 100, 7), drawn(5, 100, 7), drawn(6, 100, 7)
out["seed5_one"] = drawn(5, 1, 7)
np.savez(os.path.join(work, "answer.npz"), **out)
mine = [m.__file__ for m in list(sys.modules.values())
        if os.path.dirname(os.path.abspath(getattr(m, "__file__", None) or "/")) == project]
print(json.dumps({"project_modules": mine, "dtype": str(out["served_1"].dtype),
                  "project_on_path": project in [os.path.abspath(p) for p in sys.path]}))
'''


@pytest.fixture(scope="session")  # once: xdist may run other modules between its tests
def exported(tmp_path_factory):
  """Conditional MNIST trained two epochs on 1,600 digits, then --saved_model --tflite."""
  cwd = tmp_path_factory.mktemp("export")
  run_main(cwd, "--dataset", "mnist", "--input_height", "28", "--output_height", "28", "--train",
           "--epoch", "2", "--train_size", "1600", "--batch_size", "32", "--seed", "3")
  proc = run_main(cwd, "--dataset", "mnist", "--saved_model", "--tflite")
  return cwd, only_run_folder(cwd), proc


def sampler_images(run_dir, z, labels):
  """The project's own sampler on the run's checkpoint, as uint8 (as its PNGs are written)."""
  with tf.Graph().as_default(), tf.Session() as sess:
    dcgan = DCGAN(sess, input_height=28, output_height=28, output_width=28, y_dim=10, c_dim=1,
                  batch_size=32, dataset_name="mnist", seed=0)
    sess.run(dcgan.init_op)
    assert dcgan.load(os.path.join(run_dir, "checkpoint"))[0]
    return to_uint8(dcgan.sample(z, np.eye(10, dtype=np.float32)[labels]), dcgan.value_range)


def test_test_mode_writes_a_versioned_saved_model_and_names_its_signatures(exported):
  _, run_dir, proc = exported
  (version,) = glob.glob(os.path.join(run_dir, "saved_model", "*"))
  assert os.path.basename(version) == "101"  # the counter after 2 epochs x 50 steps
  assert "Using experimental converter" not in proc.stdout + proc.stderr  # TensorFlow's INFO line
  assert os.path.exists(os.path.join(version, "saved_model.pb"))
  assert not glob.glob(os.path.join(run_dir, "saved_model", ".tmp*"))
  assert "SavedModel written to ./out/%s/saved_model/101, signatures:" % os.path.basename(
      run_dir) in proc.stdout
  assert ("serving_default(y int32 [None], z float32 [None, 100]) -> images uint8 "
          "[None, 28, 28, 1]") in proc.stdout
  assert ("sample(count int32 [], label int32 [None], seed int64 []) -> images uint8 "
          "[None, 28, 28, 1]") in proc.stdout


@pytest.fixture(scope="session")  # once: xdist may run other modules between its tests
def served(exported, tmp_path_factory):
  """(z, labels, report, answer) of FRESH_TF2 on the exported SavedModel."""
  _, run_dir, _ = exported
  (version,) = glob.glob(os.path.join(run_dir, "saved_model", "*"))
  work = tmp_path_factory.mktemp("fresh")
  rng = np.random.default_rng(0)
  z = rng.uniform(-1, 1, (100, 100)).astype(np.float32)
  labels = (np.arange(100) % 10).astype(np.int32)
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
  assert report == {"project_modules": [], "dtype": "uint8", "project_on_path": False}
  want = sampler_images(run_dir, z, labels)
  assert answer["served_100"].shape == (100, 28, 28, 1)
  np.testing.assert_array_equal(answer["served_100"], want)  # exactly the sampler's pixels
  np.testing.assert_array_equal(answer["served_1"], want[:1])
  np.testing.assert_array_equal(answer["seed5"], answer["seed5_again"])
  assert np.mean(answer["seed5"] != answer["seed6"]) > 0.1
  np.testing.assert_array_equal(answer["seed5_one"].shape, (1, 28, 28, 1))


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
  for block, inputs in ((serving, [("z", "DT_FLOAT", "(-1, 100)"), ("y", "DT_INT32", "(-1)")]),
                        (sample, [("seed", "DT_INT64", "()"), ("count", "DT_INT32", "()"),
                                  ("label", "DT_INT32", "(-1)")])):
    for name, dtype, shape in inputs:
      line = block.split("inputs['%s'] tensor_info:" % name)[1]
      assert "dtype: %s" % dtype in line.split("name:")[0] and "shape: %s" % shape in line
    out = block.split("outputs['images'] tensor_info:")[1]
    assert "dtype: DT_UINT8" in out and "shape: (-1, 28, 28, 1)" in out


def test_tflite_file_runs_in_the_interpreter_within_two_levels_of_the_sampler(exported):
  _, run_dir, proc = exported
  (path,) = glob.glob(os.path.join(run_dir, "tflite", "*.tflite"))
  assert os.path.basename(path) == "model.b32-101.tflite"
  assert "TFLite model written to ./out/%s/tflite/model.b32-101.tflite" % os.path.basename(
      run_dir) in proc.stdout
  interpreter = tf.lite.Interpreter(model_path=path)
  interpreter.allocate_tensors()
  inputs = {d["name"]: d for d in interpreter.get_input_details()}
  assert sorted(inputs) == ["y", "z"]
  rng = np.random.default_rng(1)
  z = rng.uniform(-1, 1, (32, 100)).astype(np.float32)
  labels = (np.arange(32) % 10).astype(np.int32)
  interpreter.set_tensor(inputs["z"]["index"], z)
  interpreter.set_tensor(inputs["y"]["index"], labels)
  interpreter.invoke()
  got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
  want = sampler_images(run_dir, z, labels)
  assert got.dtype == np.uint8 and got.shape == want.shape
  assert np.max(np.abs(got.astype(int) - want.astype(int))) <= 2


def test_sampled_sevens_are_sevens_as_often_as_generated_ones(exported, served):
  cwd, run_dir, _ = exported
  sampled = served[3]["seed5"].astype(np.float32) / 255.0  # sample(5, count=100, label=[7]*100)
  run_main(cwd, "--dataset", "mnist", "--generate", "100", "--label", "7")
  (folder,) = glob.glob(os.path.join(run_dir, "samples", "generated_*"))
  generated = np.stack([np.asarray(Image.open(p), np.float32) / 255.0 for p in
                        sorted(glob.glob(os.path.join(folder, "*_label7.png")))])[..., None]
  classifier = evaluate.MnistClassifier(str(cwd / "classifier"), "/nonexistent", epochs=2)
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


def test_bad_exports_are_one_sentence_and_leave_nothing_half_written(exported, tmp_path):
  cwd, run_dir, _ = exported
  before = tree(str(cwd))
  # the version exists already: refused before anything loads, naming it
  proc = run_main(cwd, "--dataset", "mnist", "--saved_model", check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  (line,) = [l for l in proc.stderr.splitlines() if l.startswith("error: ")]
  assert os.path.join("saved_model", "101") in line and "exists already" in line
  assert tree(str(cwd)) == before
  # no checkpoint to export
  proc = run_main(tmp_path, "--dataset", "mnist", "--saved_model", "--tflite", check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr and "checkpoint" in proc.stderr
  assert not os.path.exists(str(tmp_path / "out"))
  # a run folder where they cannot be written (a file stands where each folder would go; root
  # writes into a read-only folder all the same)
  copy = tmp_path / "out" / "copy"
  os.makedirs(str(copy.parent))
  shutil.copytree(str(run_dir), str(copy), ignore=shutil.ignore_patterns("saved_model", "tflite"))
  for name, flag, message in (("saved_model", "--saved_model", "Cannot write the SavedModel"),
                              ("tflite", "--tflite", "Cannot write")):
    (copy / name).write_text("in the way")
    before = tree(str(tmp_path))
    proc = run_main(tmp_path, "--dataset", "mnist", flag, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    (line,) = [l for l in proc.stderr.splitlines() if l.startswith("error: ")]
    assert message in line, line
    assert tree(str(tmp_path)) == before  # nothing half-written beside it
