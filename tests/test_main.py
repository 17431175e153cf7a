"""main.py end to end, as a user runs it: training, test mode, export, freeze, errors."""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator

from conftest import PROJECT_DIR, write_images

MAIN = os.path.join(PROJECT_DIR, "main.py")


def run_main(cwd, *args, check=True):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run([sys.executable, MAIN] + list(args), cwd=str(cwd), env=env,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
  if check:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc


def only_run_folder(cwd):
  runs = glob.glob(os.path.join(str(cwd), "out", "*"))
  assert len(runs) == 1, runs
  return runs[0]


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
  """The issue's command, on the bundled MNIST sample (no data/ in this folder)."""
  cwd = tmp_path_factory.mktemp("mnist")
  proc = run_main(cwd, "--dataset", "mnist", "--input_height", "28", "--output_height", "28",
                  "--train", "--epoch", "1", "--train_size", "320")
  return cwd, only_run_folder(cwd), proc


def test_mnist_training_writes_everything(mnist_run):
  cwd, run_dir, proc = mnist_run
  assert "bundled real sample" in proc.stdout
  assert os.path.basename(run_dir).endswith(" - data - mnist - x28.z100.uniform_signed.y28.b64")
  steps = [l for l in proc.stdout.splitlines() if l.startswith("[")]
  assert len(steps) == 5 and steps[-1].startswith("[       6 Epoch:[ 0/ 1] [   4/   5] time: ")
  assert "d_loss: " in steps[-1] and "g_loss: " in steps[-1]

  flags = json.load(open(os.path.join(run_dir, "FLAGS.json")))
  assert flags["dataset"] == "mnist" and flags["epoch"] == 1 and flags["train_size"] == 320
  assert flags["input_width"] == 28 and flags["output_width"] == 28 and isinstance(flags["seed"], int)

  ckpt = tf.train.get_checkpoint_state(os.path.join(run_dir, "checkpoint"))
  assert os.path.basename(ckpt.model_checkpoint_path) == "model.b64-6"

  grids = sorted(glob.glob(os.path.join(run_dir, "samples", "train_*.png")))
  assert [os.path.basename(g) for g in grids] == ["train_00000006.png"]
  grid = np.asarray(Image.open(grids[0]))
  assert grid.shape == (8 * 28, 8 * 28)

  events = glob.glob(os.path.join(run_dir, "logs", "events.out.tfevents.*"))
  assert len(events) == 1
  acc = event_accumulator.EventAccumulator(events[0], size_guidance={"scalars": 0, "histograms": 0})
  acc.Reload()
  tags = acc.Tags()
  assert {"d_loss", "g_loss", "d_loss_real", "d_loss_fake"} <= set(tags["scalars"])
  assert {"z", "d", "d_"} <= set(tags["histograms"])
  assert [e.step for e in acc.Scalars("g_loss")] == [1]  # the first step, then every --summary_freq 10
  d_loss = acc.Scalars("d_loss")[-1].value
  parts = acc.Scalars("d_loss_real")[-1].value + acc.Scalars("d_loss_fake")[-1].value
  assert abs(d_loss - parts) < 1e-5
  assert tags["graph"]


def test_test_mode_finds_the_run_and_samples_without_the_dataset(mnist_run):
  cwd, run_dir, _ = mnist_run
  proc = run_main(cwd, "--dataset", "mnist", "--data_dir", "/nonexistent")
  tests = glob.glob(os.path.join(run_dir, "samples", "test_*.png"))
  assert len(tests) == 1 and "Sample grid written" in proc.stdout
  assert np.asarray(Image.open(tests[0])).shape == (224, 224)


def test_export_and_freeze(mnist_run):
  cwd, run_dir, _ = mnist_run
  proc = run_main(cwd, "--dataset", "mnist", "--export", "--freeze", "--batch_size", "16")
  export = os.path.join(run_dir, "checkpoint", "export_b16")
  assert os.path.basename(tf.train.get_checkpoint_state(export).model_checkpoint_path) == "model.b16-6"
  frozen = glob.glob(os.path.join(run_dir, "checkpoint", "frozen_b16", "model.b16-000006_frz.pb"))
  assert len(frozen) == 1 and "output 'generator_1/Sigmoid:0'" in proc.stdout
  graph_def = tf.GraphDef()
  graph_def.ParseFromString(open(frozen[0], "rb").read())
  assert not [n for n in graph_def.node if n.op in ("VariableV2", "VarHandleOp")]
  with tf.Graph().as_default():
    tf.import_graph_def(graph_def, name="")
    with tf.Session() as sess:
      out = sess.run("generator_1/Sigmoid:0", {"z:0": np.zeros((3, 100), np.float32),
                                               "y:0": np.eye(10, dtype=np.float32)[:3]})
  assert out.shape == (3, 28, 28, 1)


def test_test_mode_without_checkpoint_is_one_sentence(tmp_path):
  proc = run_main(tmp_path, "--dataset", "mnist", check=False)
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr + proc.stdout
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and "No trained checkpoint for dataset 'mnist'" in errors[0]
  assert "--train" in errors[0]


@pytest.mark.parametrize("extra,size", [([], (64, 64)), (["--output_height", "128"], (128, 128)),
                                        (["--output_height", "48", "--output_width", "80"], (48, 80))])
def test_celeba_folder_trains(tmp_path, extra, size):
  write_images(str(tmp_path / "data" / "celebA"), 8, size=(178, 218))
  run_main(tmp_path, "--dataset", "celebA", "--input_height", "108", "--crop", "--train",
           "--batch_size", "4", "--epoch", "1", *extra)
  run_dir = only_run_folder(tmp_path)
  grids = glob.glob(os.path.join(run_dir, "samples", "train_*.png"))
  assert len(grids) == 1
  h, w = size
  assert np.asarray(Image.open(grids[0])).shape == (2 * h, 2 * w, 3)  # 4 samples, 2x2
  ckpt = tf.train.get_checkpoint_state(os.path.join(run_dir, "checkpoint"))
  reader = tf.train.load_checkpoint(ckpt.model_checkpoint_path)
  assert reader.get_variable_to_shape_map()["generator/g_h4/w"] == [5, 5, 3, 64]
  # test mode on that run: no dataset needed, channel count from the checkpoint
  proc = run_main(tmp_path, "--dataset", "celebA", "--data_dir", "/nonexistent")
  assert "Sample grid written" in proc.stdout


def test_resume_by_out_name(tmp_path):
  write_images(str(tmp_path / "data" / "faces"), 8, size=(40, 40))
  common = ["--dataset", "faces", "--input_height", "32", "--crop", "--output_height", "16",
            "--batch_size", "4", "--train", "--out_name", "run1"]
  run_main(tmp_path, *common, "--epoch", "1")
  flags_path = str(tmp_path / "out" / "run1" / "FLAGS.json")
  first_seed = json.load(open(flags_path))["seed"]
  proc = run_main(tmp_path, *common, "--epoch", "2")
  steps = [l for l in proc.stdout.splitlines() if l.startswith("[")]
  assert "resuming at counter 3" in proc.stdout
  assert [s[:30] for s in steps] == ["[       4 Epoch:[ 1/ 2] [   0/", "[       5 Epoch:[ 1/ 2] [   1/"]
  # the resumed run keeps its seed, so data order and z carry on
  assert json.load(open(flags_path))["seed"] == first_seed


@pytest.mark.parametrize("args,message", [
    (["--batch_size", "0"], "--batch_size must be a positive number"),
    (["--learning_rate", "-1"], "--learning_rate must be positive"),
    (["--z_dist", "gauss"], "--z_dist must be one of"),
    (["--dataset", "nosuchset"], "does not exist"),
    (["--batch_size", "abc"], "flag --batch_size=abc"),
    (["--bach_size", "3"], "Unknown command line flag 'bach_size'"),
])
def test_bad_flags_are_one_line(tmp_path, args, message):
  proc = run_main(tmp_path, "--train", *args, check=False)
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr + proc.stdout
  assert message in proc.stderr


def test_dataset_smaller_than_a_batch(tmp_path):
  write_images(str(tmp_path / "data" / "tiny"), 3, size=(20, 20))
  proc = run_main(tmp_path, "--dataset", "tiny", "--input_height", "16", "--output_height", "16",
                  "--train", check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert "fewer than one batch of 64" in proc.stderr
  assert not os.path.exists(str(tmp_path / "out"))  # no half-made run folder left behind


def test_checkpoint_dir_without_checkpoint(tmp_path):
  (tmp_path / "empty").mkdir()
  proc = run_main(tmp_path, "--dataset", "mnist", "--checkpoint_dir", str(tmp_path / "empty"), check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert "No checkpoint in %s" % (tmp_path / "empty") in proc.stderr
