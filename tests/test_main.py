"""main.py end to end, as a user runs it: training, test mode, export, freeze, errors."""
import glob
import json
import os
import re
import shlex
import shutil
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
  """main.py in a child process, as a user who set TF_CPP_MIN_LOG_LEVEL=3 to hide TensorFlow's
  lines runs it: none of its C++ start-up lines shows either (check)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run([sys.executable, MAIN] + list(args), cwd=str(cwd), env=env,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
  if check:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "absl::InitializeLog" not in proc.stderr and ".cc:" not in proc.stderr, proc.stderr
  return proc


def run_main_here(cwd, monkeypatch, capsys, *args, check=False):
  """main.py's main() in this process: no child process, so no second TensorFlow import (each
  costs the suite about 5 s).  For refusals, and for runs whose files and messages are what a
  test checks; child processes (run_main) for what a user's process does.
  Returns (exit code, stdout, stderr); check: assert it exited 0 without a traceback."""
  import main
  monkeypatch.chdir(cwd)
  capsys.readouterr()
  main.FLAGS.unparse_flags()
  main.FLAGS(["main.py"] + list(args))
  code = 0
  try:
    main.main(["main.py"])
  except SystemExit as exit_info:
    code = exit_info.code
  finally:
    main.FLAGS.unparse_flags()
  out, err = capsys.readouterr()
  if check:
    assert code == 0 and "Traceback" not in err, out[-3000:] + err[-3000:]
  return code, out, err


def only_run_folder(cwd):
  runs = glob.glob(os.path.join(str(cwd), "out", "*"))
  assert len(runs) == 1, runs
  return runs[0]


@pytest.fixture(scope="session")  # once: xdist may run other modules between its tests
def mnist_run(tmp_path_factory):
  """The issue's command, on the bundled MNIST sample (no data/ in this folder)."""
  cwd = tmp_path_factory.mktemp("mnist")
  proc = run_main(cwd, "--dataset", "mnist", "--input_height", "28", "--output_height", "28",
                  "--train", "--epoch", "1", "--train_size", "320")
  return cwd, only_run_folder(cwd), proc


def before_first_step(stdout):
  return stdout.split("\n[")[0].splitlines()


def events_with_graph(log_dir):
  """For each events file of log_dir, oldest first: whether it holds a graph."""
  found = []
  for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
    found.append(any(event.graph_def for event in tf.train.summary_iterator(path)))
  return found


def test_mnist_training_writes_everything(mnist_run):
  cwd, run_dir, proc = mnist_run
  assert "bundled real sample" in proc.stdout
  # a short summary before step 1, not every flag and variable; one line for a fresh start
  head = before_first_step(proc.stdout)
  assert "Training mnist on 320 of its 5000 images (--train_size)" in head[1], head
  assert len(head) <= 8 and not [l for l in head if "g_h0_lin" in l or "classifier_epochs" in l]
  assert [l for l in head if "training from scratch" in l] == head[-1:]
  assert "Failed to find" not in proc.stdout
  assert not [l for l in head if "[!]" in l]  # 28x28: the digits' own size
  # what a checkpoint weighs, said before the first one is written
  (said,) = [l for l in head if "a checkpoint, 1 kept (--max_to_keep)" in l]
  megabytes = int(said.split(" MB a checkpoint")[0].rsplit(" ", 1)[1])
  ckpt_files = glob.glob(os.path.join(run_dir, "checkpoint", "model.b64-6.*"))
  assert abs(sum(os.path.getsize(f) for f in ckpt_files) / 1e6 - megabytes) < 0.05 * megabytes
  assert os.path.basename(run_dir).endswith(" - data - mnist - x28.z100.uniform_signed.y28.b64")
  steps = [l for l in proc.stdout.splitlines() if l.startswith("[")]
  assert len(steps) == 5 and steps[-1].startswith("[       6 Epoch:[ 0/ 1] [   4/   5] time: ")
  assert "d_loss: " in steps[-1] and "g_loss: " in steps[-1]

  flags = json.load(open(os.path.join(run_dir, "FLAGS.json")))
  assert flags["dataset"] == "mnist" and flags["epoch"] == 1 and flags["train_size"] == 320
  assert flags["input_width"] == 28 and flags["output_width"] == 28 and isinstance(flags["seed"], int)
  # the record names the run's own folders, as it always has
  assert os.path.basename(flags["out_dir"]) == os.path.basename(run_dir)
  assert flags["checkpoint_dir"] == os.path.join(flags["out_dir"], "checkpoint")

  ckpt = tf.train.get_checkpoint_state(os.path.join(run_dir, "checkpoint"))
  assert os.path.basename(ckpt.model_checkpoint_path) == "model.b64-6"

  grids = sorted(glob.glob(os.path.join(run_dir, "samples", "train_*.png")))
  assert [os.path.basename(g) for g in grids] == ["train_00000006.png"]
  grid = np.asarray(Image.open(grids[0]))
  assert grid.shape == (10 * 28, 7 * 28)  # 64 digits, a row per class (6 or 7 of each)

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


def test_verbose_lists_every_flag_and_variable(tmp_path, monkeypatch, capsys):
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, "--dataset", "mnist",
                            "--output_height", "16", "--train", "--epoch", "1", "--train_size",
                            "8", "--batch_size", "8", "--verbose", check=True)
  head = before_first_step(out)
  # sizes other than the digits' own are said, with the flags for theirs
  assert ("  [!] mnist's images are 28x28: this run resizes them to 16x16; --input_height 28 "
          "--output_height 28 trains at their own size") in head
  assert [l for l in head if l.split()[:2] == ["classifier_epochs", "4"]]
  assert [l for l in head if l.startswith("generator/g_h0_lin/Matrix") and "[110, 1024]" in l]


def test_test_mode_finds_the_run_and_samples_without_the_dataset(mnist_run):
  cwd, run_dir, _ = mnist_run
  proc = run_main(cwd, "--dataset", "mnist", "--data_dir", "/nonexistent")
  tests = glob.glob(os.path.join(run_dir, "samples", "test_*.png"))
  assert len(tests) == 1 and "Sample grid written" in proc.stdout
  assert np.asarray(Image.open(tests[0])).shape == (10 * 28, 7 * 28)  # as training's grids


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


READ_ONLY_LOOKS = r"""
import contextlib, io, json, sys
sys.argv = ["main.py"]
sys.path.insert(0, %r)
import main
answers = []
for args in json.loads(sys.stdin.read()):
  main.FLAGS.unparse_flags()
  main.FLAGS(["main.py", "--dataset", "mnist"] + args)
  out, err = io.StringIO(), io.StringIO()
  code = 0
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
      main.main(["main.py"])
    except SystemExit as exit_info:
      code = exit_info.code
  answers.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(answers))
"""


def test_looks_on_a_read_only_run_say_so_before_any_work(mnist_run, tmp_path):
  """The run folder on a read-only bind mount (a mount namespace of its own): each look is
  refused in one sentence before the model loads, or writes where --sample_dir says."""
  cwd, run_dir, _ = mnist_run
  if shutil.which("unshare") is None:
    pytest.skip("needs unshare(1) for a mount namespace")
  looks = [[], ["--generate", "3"], ["--visualize", "--visualize_option", "0"], ["--freeze"],
           ["--export"], ["--evaluate"], ["--features_experiment"], ["--walk"],
           ["--arithmetic", "1 - 2 + 3"], ["--training_pictures"], ["--saved_model"], ["--tflite"],
           ["--generate", "2", "--sample_dir", str(tmp_path / "elsewhere")]]
  script = ("mount --bind -o ro \"$1\" \"$1\" && cd \"$2\" && exec \"$3\" -c \"$4\"")
  proc = subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c", script, "sh", run_dir,
                         str(cwd), sys.executable, READ_ONLY_LOOKS % PROJECT_DIR],
                        input=json.dumps(looks), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  if proc.returncode != 0 and "mount" in proc.stderr:
    pytest.skip("no read-only bind mount here: " + proc.stderr.strip()[-200:])
  assert proc.returncode == 0, proc.stderr[-3000:]
  answers = json.loads(proc.stdout.strip().splitlines()[-1])
  for args, (code, out, err) in zip(looks[:-1], answers):
    assert code == 1 and "Traceback" not in out + err, (args, out, err)
    (error,) = [l for l in err.splitlines() if l.startswith("error: ")]
    assert "(Read-only file system), where " in error and ("--sample_dir" in error or
                                                          "--out_dir" in error), error
    assert "Success to read" not in out, (args, out)  # refused before the model loads
  code, out, err = answers[-1]
  assert code == 0 and len(glob.glob(str(tmp_path / "elsewhere" / "generated_*" / "*.png"))) == 3


def test_help_says_what_each_flag_does_here(tmp_path):
  """--helpshort: every flag with its real default as absl shows it, and no default written by
  hand into a help text (where it goes stale), nor the original's texts that no longer say
  what the flag does."""
  import main
  proc = run_main(tmp_path, "--helpshort", check=False)
  blocks = {}
  for block in re.split(r"\n  --", proc.stdout)[1:]:
    name = block.split(":", 1)[0].replace("[no]", "")
    blocks[name] = " ".join(block.split())
  assert sorted(blocks) == sorted(main.FLAG_NAMES)
  for name in main.FLAG_NAMES:
    flag = main.FLAGS[name]
    assert flag.help and "[" not in flag.help, (name, flag.help)  # no "[25]" by hand
    default = flag.default
    if default is None:
      assert "(default:" not in blocks[name], name
    else:
      shown = str(default).lower() if isinstance(default, bool) else str(default)
      assert "(default: '%s')" % shown in blocks[name], (name, blocks[name])
  for stale in ("True for training, False for testing", "out_root_dir", "[celebA, mnist, lsun]",
                "True for exporting with new batch size", "of for adam"):
    assert stale not in proc.stdout, stale


def test_test_mode_finds_the_newest_run_whatever_its_name(mnist_run, monkeypatch, capsys):
  cwd, run_dir, _ = mnist_run
  named = os.path.join(str(cwd), "out", "my run")
  shutil.copytree(run_dir, named)
  os.utime(os.path.join(named, "checkpoint", "checkpoint"))  # the newest run of mnist now
  try:
    _, out, _ = run_main_here(cwd, monkeypatch, capsys, "--dataset", "mnist", check=True)
  finally:
    shutil.rmtree(named)
  assert os.path.join("out", "my run", "checkpoint") in out, out
  assert os.path.join("out", "my run", "samples", "test_") in out


def test_two_local_devices_checkpoint_resume_and_sample(tmp_path, monkeypatch, capsys):
  """--devices cpu:0,cpu:1 through main.py: checkpoints, resume on two and on one device, the
  pasted resume command, test mode finding the named run, --evaluate.  The two-device runs
  are child processes (virtual devices are set up once per process), the rest runs here."""
  common = ["--dataset", "mnist", "--input_height", "28", "--output_height", "28", "--train",
            "--batch_size", "8", "--train_size", "16", "--ckpt_freq", "1", "--max_to_keep", "2",
            "--out_name", "two devices"]
  proc = run_main(tmp_path, *common, "--epoch", "3", "--devices", "cpu:0,cpu:1")
  assert "2 replicas (cpu:0, cpu:1), 16 images per step" in proc.stdout
  assert " [*] Epoch 0: 1 step in " in proc.stdout  # one step of 2 x 8 per epoch
  ckpt_dir = str(tmp_path / "out" / "two devices" / "checkpoint")
  assert os.path.basename(tf.train.latest_checkpoint(ckpt_dir)) == "model.b8-4"
  # the printed command, pasted as it is, trains on (two devices, --epoch 6)
  (line,) = [l for l in proc.stdout.splitlines() if l.startswith("To train this run further")]
  words = shlex.split(line.split(": ", 1)[1])
  assert words[-2:] == ["--out_name", "two devices"] and "--epoch" in words
  again = subprocess.run(words, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, timeout=600)
  assert again.returncode == 0 and "resuming at counter 4" in again.stdout, again.stderr[-3000:]
  assert os.path.basename(tf.train.latest_checkpoint(ckpt_dir)) == "model.b8-7"
  # on one device: 2 steps per epoch from counter 7 (epoch 3) to the end of epoch 4
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, *common, "--epoch", "5", check=True)
  assert "resuming at counter 7" in out
  assert os.path.basename(tf.train.latest_checkpoint(ckpt_dir)) == "model.b8-11"
  # --max_to_keep 2 counts the checkpoints earlier processes kept
  indexes = sorted(f for f in os.listdir(ckpt_dir) if f.endswith(".index"))
  assert indexes == ["model.b8-10.index", "model.b8-11.index"]
  # one graph event, written when the run started (a resume that writes no summary makes no
  # events file; the one-device resume writes step 10's)
  graphs = events_with_graph(str(tmp_path / "out" / "two devices" / "logs"))
  assert graphs[0] and len(graphs) >= 2 and not any(graphs[1:]), graphs
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, "--dataset", "mnist", "--generate",
                            "4", "--evaluate", "--evaluate_n", "5", "--classifier_epochs", "1",
                            check=True)
  assert "model.b8-11" in out and "class-conditional accuracy" in out
  assert len(glob.glob(str(tmp_path / "out" / "two devices" / "samples" / "generated_*" / "*"))) == 5


def test_test_mode_without_checkpoint_is_one_sentence(tmp_path, monkeypatch, capsys):
  code, out, err = run_main_here(tmp_path, monkeypatch, capsys, "--dataset", "mnist")
  assert code != 0
  assert "Traceback" not in err + out
  errors = [l for l in err.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and "No trained checkpoint for dataset 'mnist'" in errors[0]
  assert "--train" in errors[0]


@pytest.mark.parametrize("extra,size", [([], (64, 64)), (["--output_height", "128"], (128, 128)),
                                        (["--output_height", "48", "--output_width", "80"], (48, 80))])
def test_celeba_folder_trains(tmp_path, extra, size, monkeypatch, capsys):
  """In this process (main.main): the run's files are what is checked, and each child process
  costs the suite a TensorFlow start."""
  write_images(str(tmp_path / "data" / "celebA"), 8, size=(178, 218))
  run_main_here(tmp_path, monkeypatch, capsys, "--dataset", "celebA", "--input_height", "108",
                "--crop", "--train", "--batch_size", "4", "--epoch", "1", *extra, check=True)
  run_dir = only_run_folder(tmp_path)
  grids = glob.glob(os.path.join(run_dir, "samples", "train_*.png"))
  assert len(grids) == 1
  h, w = size
  assert np.asarray(Image.open(grids[0])).shape == (2 * h, 2 * w, 3)  # 4 samples, 2x2
  ckpt = tf.train.get_checkpoint_state(os.path.join(run_dir, "checkpoint"))
  reader = tf.train.load_checkpoint(ckpt.model_checkpoint_path)
  assert reader.get_variable_to_shape_map()["generator/g_h4/w"] == [5, 5, 3, 64]
  # test mode on that run: no dataset needed, channel count from the checkpoint
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, "--dataset", "celebA", "--data_dir",
                            "/nonexistent", check=True)
  assert "Sample grid written" in out


def test_resume_by_out_name(tmp_path, monkeypatch, capsys):
  write_images(str(tmp_path / "data" / "faces"), 8, size=(40, 40))
  common = ["--dataset", "faces", "--input_height", "32", "--crop", "--output_height", "16",
            "--batch_size", "4", "--train", "--out_name", "run1"]
  # --generate with --train: the look runs after training, as the original ran --visualize
  # (this process: main.main); the resume below is another process
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, *common, "--epoch", "1",
                            "--generate", "3", check=True)
  (generated,) = glob.glob(str(tmp_path / "out" / "run1" / "samples" / "generated_*"))
  assert len(os.listdir(generated)) == 4 and "3 images in" in out
  flags_path = str(tmp_path / "out" / "run1" / "FLAGS.json")
  first_seed = json.load(open(flags_path))["seed"]
  proc = run_main(tmp_path, *common, "--epoch", "2")
  steps = [l for l in proc.stdout.splitlines() if l.startswith("[")]
  assert "resuming at counter 3" in proc.stdout
  # --max_to_keep 1 (the default) holds across processes: the first one's checkpoint is gone
  assert sorted(os.listdir(str(tmp_path / "out" / "run1" / "checkpoint"))) == [
      "checkpoint", "model.b4-5.data-00000-of-00001", "model.b4-5.index", "model.b4-5.meta"]
  assert [s[:30] for s in steps] == ["[       4 Epoch:[ 1/ 2] [   0/", "[       5 Epoch:[ 1/ 2] [   1/"]
  # the resumed run keeps its seed, so data order and z carry on
  assert json.load(open(flags_path))["seed"] == first_seed


def test_a_finished_train_and_looks_command_run_again_writes_the_other_looks_and_exits_0(
    tmp_path, monkeypatch, capsys):
  """Scripts rerun commands: once its run has trained, the same command trains nothing, says
  which exports this checkpoint has already, and still writes the looks that add files."""
  write_images(str(tmp_path / "data" / "faces"), 8, size=(40, 40))
  command = ["--dataset", "faces", "--input_height", "32", "--crop", "--output_height", "16",
             "--batch_size", "4", "--train", "--epoch", "1", "--out_name", "run", "--seed", "1",
             "--saved_model", "--generate", "2"]
  run_main_here(tmp_path, monkeypatch, capsys, *command, check=True)
  samples = tmp_path / "out" / "run" / "samples"
  version = tmp_path / "out" / "run" / "saved_model" / "3"
  written = os.path.getmtime(str(version / "saved_model.pb"))
  for folder in glob.glob(str(samples / "generated_*")):
    shutil.rmtree(folder)
  code, out, err = run_main_here(tmp_path, monkeypatch, capsys, *command)
  assert code == 0 and "Traceback" not in err, out[-3000:] + err[-3000:]
  assert "nothing to train" in out
  assert (" [*] --saved_model: ./out/run/saved_model/3 is there already (this checkpoint's), so "
          "it is not written again") in out, out
  assert os.path.getmtime(str(version / "saved_model.pb")) == written
  (generated,) = glob.glob(str(samples / "generated_*"))
  assert len(os.listdir(generated)) == 3 and "2 images in" in out


@pytest.mark.parametrize("args,message", [
    (["--batch_size", "abc"], "flag --batch_size=abc"),
    (["--bach_size", "3"], "Unknown command line flag 'bach_size'"),
])
def test_flags_absl_cannot_read_are_one_line(tmp_path, args, message):
  proc = run_main(tmp_path, "--train", *args, check=False)
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr + proc.stdout
  assert message in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["--batch_size", "0"], "--batch_size must be a positive number"),
    (["--learning_rate", "-1"], "--learning_rate must be positive"),
    (["--z_dist", "gauss"], "--z_dist must be one of"),
    (["--dataset", "nosuchset"], "does not exist"),
    (["--devices", "gpu:0,gpu:1"], "--devices names gpu:0, gpu:1, and TensorFlow sees no GPU here"),
])
def test_bad_flags_are_one_line(tmp_path, monkeypatch, capsys, args, message):
  code, out, err = run_main_here(tmp_path, monkeypatch, capsys, "--train", *args)
  assert code == 1 and "Traceback" not in out + err
  assert err.startswith("error: ") and message in err.splitlines()[0]


def test_dataset_smaller_than_a_batch(tmp_path, monkeypatch, capsys):
  write_images(str(tmp_path / "data" / "tiny"), 3, size=(20, 20))
  code, out, err = run_main_here(tmp_path, monkeypatch, capsys, "--dataset", "tiny",
                                 "--input_height", "16", "--output_height", "16", "--train")
  assert code == 1 and "Traceback" not in err
  assert "fewer than one batch of 64" in err
  assert not os.path.exists(str(tmp_path / "out"))  # no half-made run folder left behind


def test_test_mode_refuses_bad_flags_before_looking_for_a_run(tmp_path, monkeypatch, capsys):
  """(looks.validate has the cases: tests/test_bad_input.py)"""
  code, out, err = run_main_here(tmp_path, monkeypatch, capsys, "--dataset", "mnist", "--label",
                                 "12", "--generate", "3")
  assert code == 1 and "Traceback" not in err
  errors = [l for l in err.splitlines() if l.startswith("error:")]
  assert errors == ["error: --label 12 names no class of this model (its classes: 0-9)."]  # not
  # "no trained run"


def test_evaluate_on_an_image_folder_run_is_refused_before_loading(tmp_path, monkeypatch, capsys):
  run_dir = tmp_path / "out" / "faces run"
  (run_dir / "checkpoint").mkdir(parents=True)
  (run_dir / "checkpoint" / "checkpoint").write_text('model_checkpoint_path: "model.b4-3"\n')
  (run_dir / "FLAGS.json").write_text(json.dumps({"dataset": "faces", "batch_size": 4}))
  code, out, err = run_main_here(tmp_path, monkeypatch, capsys, "--out_name", "faces run",
                                 "--evaluate")
  assert code == 1 and "Traceback" not in err
  assert "this run's data (--dataset faces) has no labels" in err  # not a restore error


def test_files_left_out_by_the_pattern_are_named(tmp_path, monkeypatch, capsys):
  write_images(str(tmp_path / "data" / "mixed"), 3, size=(20, 20))
  write_images(str(tmp_path / "data" / "mixed"), 6, size=(20, 20), ext="png")
  code, out, err = run_main_here(tmp_path, monkeypatch, capsys, "--dataset", "mixed",
                                 "--input_height", "16", "--output_height", "16", "--train",
                                 "--batch_size", "4")
  assert code == 1 and "Traceback" not in err
  assert ("holds 3 images (6 other file(s) in the folder, such as img_000.png, do not match "
          "--input_fname_pattern '*.jpg'), fewer than one batch of 4") in err


def test_checkpoint_dir_without_checkpoint(tmp_path, monkeypatch, capsys):
  (tmp_path / "empty").mkdir()
  code, out, err = run_main_here(tmp_path, monkeypatch, capsys, "--dataset", "mnist",
                                 "--checkpoint_dir", str(tmp_path / "empty"))
  assert code == 1 and "Traceback" not in err
  assert "No checkpoint in %s" % (tmp_path / "empty") in err


def test_training_without_a_setting_takes_its_one_default():
  """DCGAN.train(config) without a setting takes training.TRAIN_DEFAULTS' (main.py's flags take
  theirs from there too), and the model's own learning rate and folders."""
  from settings import Folders
  from training import TRAIN_DEFAULTS, settings_from
  folders = Folders("ckpt", "samples", "run")
  settings = settings_from(object(), 0.125, folders)
  assert {name: getattr(settings, name) for name in TRAIN_DEFAULTS} == TRAIN_DEFAULTS
  assert settings[-3:] == (0.125, "ckpt", "samples")
  given = settings_from(main_config(epoch=3, sample_freq=7, checkpoint_dir="elsewhere"), 0.125,
                        folders)
  assert (given.epoch, given.sample_freq, given.ckpt_freq) == (3, 7, TRAIN_DEFAULTS["ckpt_freq"])
  assert given.checkpoint_dir == "ckpt"  # the model's folders, whatever the flags' names


def main_config(**values):
  import main
  return main.Config(values)


def test_class_folders_train_the_conditional_model_and_their_names_travel_with_the_run(
    tmp_path, monkeypatch, capsys):
  """--labels: <data_dir>/<dataset>/<class>/<images> trains the original's conditional model;
  the run records its classes, and test mode (no data needed) samples a class and exports the
  generator with their names."""
  from test_dataset import write_classes
  write_classes(str(tmp_path / "data" / "pets"), ["cat", "dog", "fox"], count=4, size=(16, 16))
  common = ["--dataset", "pets", "--input_fname_pattern", "*.png", "--out_name", "run"]
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, *common, "--labels", "--train",
                            "--input_height", "16", "--output_height", "16", "--batch_size", "4",
                            "--epoch", "1", "--seed", "2", check=True)
  assert "model: conditional (3 classes: cat, dog, fox) DCGAN, 16x16x3 images" in out
  flags = json.load(open(str(tmp_path / "out" / "run" / "FLAGS.json")))
  assert flags["data"] == {"kind": "classes", "source": "./data/pets", "digest": None,
                           "labels": ["cat", "dog", "fox"], "channels": 3}
  reader = tf.train.load_checkpoint(str(tmp_path / "out" / "run" / "checkpoint" / "model.b4-4"))
  assert reader.get_variable_to_shape_map()["generator/g_h3/w"] == [5, 5, 3, 64 * 2 + 3]  # y in G
  os.rename(str(tmp_path / "data" / "pets" / "fox"), str(tmp_path / "data" / "pets" / "wolf"))
  code, _, err = run_main_here(tmp_path, monkeypatch, capsys, *common, "--labels", "--train",
                               "--input_height", "16", "--output_height", "16", "--batch_size",
                               "4", "--epoch", "2")
  assert code == 1 and ("This run was trained on the classes cat, dog, fox (its FLAGS.json), and "
                        "this command reads ./data/pets as the classes cat, dog, wolf") in err, err
  os.rename(str(tmp_path / "data" / "pets" / "wolf"), str(tmp_path / "data" / "pets" / "fox"))
  # --evaluate: a judge trained on the run's own classes (each tenth image its test split)
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, *common, "--evaluate", "--evaluate_n",
                            "4", "--classifier_dir", str(tmp_path / "judges"),
                            "--classifier_epochs", "1", check=True)
  assert "Training the pets classifier once (1 epoch on 10 images from ./data/pets)" in out, out
  result = json.load(open(str(tmp_path / "out" / "run" / "evaluation.json")))
  assert result["classifier"]["classes"] == ["cat", "dog", "fox"]
  assert result["generated"]["n"] == 12 and len(result["generated"]["per_class_accuracy"]) == 3
  assert result["real_reference"]["n_test"] == 2
  assert "per-class accuracy of generated images: cat:" in out
  shutil.rmtree(str(tmp_path / "data"))  # test mode needs no data
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, *common, "--generate", "3", "--label",
                            "fox", "--saved_model", check=True)  # by its name (or index 2)
  (folder,) = glob.glob(str(tmp_path / "out" / "run" / "samples" / "generated_*"))
  assert len(glob.glob(os.path.join(folder, "*_label2.png"))) == 3
  version = str(tmp_path / "out" / "run" / "saved_model" / "4")
  with open(os.path.join(version, "assets", "generator.json")) as f:
    about = json.load(f)
  assert about["labels"] == 3 and about["label_names"] == ["cat", "dog", "fox"]
  assert "y" in about["inputs"] and about["image_shape"] == [16, 16, 3]
  with tf.Graph().as_default(), tf.Session() as sess:
    meta = tf.saved_model.loader.load(sess, ["serve"], version)
    sig = meta.signature_def["serving_default"]
    run = lambda y: sess.run(sig.outputs["images"].name, {sig.inputs["z"].name: np.zeros(
        (len(y), 100), np.float32), sig.inputs["y"].name: np.array(y, np.int64)})
    assert run([0, 2]).shape == (2, 16, 16, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="y_must_be_0_to_2"):
      run([1, 3])
  code, _, err = run_main_here(tmp_path, monkeypatch, capsys, *common, "--features_experiment")
  assert code == 1 and "--features_experiment works on the conditional MNIST model" in err
