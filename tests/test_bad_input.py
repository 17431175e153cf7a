"""Every row of the README's bad-input table: one sentence, non-zero exit, no traceback,
existing files untouched."""
import hashlib
import json
import os
import re
import shlex
import struct
import sys

import numpy as np
import pytest

from conftest import write_images
from utils import UserError
from test_main import run_main_here


def tree_digest(folder):
  out = {}
  for root, _, files in os.walk(str(folder)):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, str(folder))] = hashlib.sha256(f.read()).hexdigest()
  return out


def idx(array):
  return struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape) \
      + array.astype(np.uint8).tobytes()


def mnist_folder(tmp_path, broken):
  folder = tmp_path / "data" / "mnist"
  folder.mkdir(parents=True)
  files = {"train-images-idx3-ubyte": idx(np.zeros((8, 28, 28))),
           "train-labels-idx1-ubyte": idx(np.arange(8) % 10),
           "t10k-images-idx3-ubyte": idx(np.zeros((4, 28, 28))),
           "t10k-labels-idx1-ubyte": idx(np.arange(4) % 10)}
  files.update(broken)
  for name, data in files.items():
    (folder / name).write_bytes(data)


def setup_faces(tmp_path, count=8):
  write_images(str(tmp_path / "data" / "faces"), count, size=(40, 40))


FACES = ["--dataset", "faces", "--input_height", "32", "--crop", "--output_height", "16", "--batch_size", "4"]

CASES = {
    "dataset folder missing": (None, ["--dataset", "celebA", "--train"], "does not exist"),
    "dataset folder empty": (lambda p: (p / "data" / "celebA").mkdir(parents=True),
                             ["--dataset", "celebA", "--train"], "No files match"),
    "pattern matching nothing": (setup_faces, FACES + ["--input_fname_pattern", "*.png", "--train"],
                                 "No files match"),
    "dataset smaller than one batch": (lambda p: setup_faces(p, 3), FACES + ["--train"],
                                       "fewer than one batch of 4"),
    "--train_size smaller than one batch": (
        lambda p: setup_faces(p, 8), FACES + ["--train", "--train_size", "3"],
        "--train_size 3 uses 3 of the dataset's 8 images, fewer than one batch of 4; raise "
        "--train_size or lower --batch_size."),
    "--train_size and the dataset smaller than one batch": (
        lambda p: setup_faces(p, 3), FACES + ["--train", "--train_size", "2"],
        "--train_size 2 uses 2 of the dataset's 3 images, fewer than one batch of 4; lower "
        "--batch_size."),
    "no readable image at all": (lambda p: [(p / "data" / "faces").mkdir(parents=True),
                                            (p / "data" / "faces" / "a.jpg").write_text("text")],
                                 FACES + ["--train"], "None of the 1 files"),
    "IDX file with a wrong magic number": (
        lambda p: mnist_folder(p, {"train-labels-idx1-ubyte": idx(np.zeros((8, 2)))}),
        ["--dataset", "mnist", "--train", "--batch_size", "4"], "magic number 0x00000802"),
    "IDX file truncated": (
        lambda p: mnist_folder(p, {"t10k-images-idx3-ubyte": idx(np.zeros((4, 28, 28)))[:-100]}),
        ["--dataset", "mnist", "--train", "--batch_size", "4"], "is truncated"),
    "MNIST folder incomplete": (
        lambda p: [mnist_folder(p, {}), os.remove(str(p / "data" / "mnist" / "t10k-images-idx3-ubyte"))],
        ["--dataset", "mnist", "--train"], "is incomplete"),
    "output size the architecture cannot make": (setup_faces, FACES + ["--output_height", "0", "--train"],
                                                 "--output_height must be a positive number, not 0."),
    "batch_size <= 0": (None, ["--batch_size", "-2", "--train"], "--batch_size must be a positive"),
    "epoch < 1 with --train": (None, ["--epoch", "0", "--train"], "--epoch must be a positive number, not 0."),
    "learning_rate <= 0": (None, ["--learning_rate", "0", "--train"], "--learning_rate must be positive"),
    "out_dir not writable": (lambda p: [setup_faces(p), (p / "blocker").write_text("a file")],
                             FACES + ["--out_dir", "blocker/out", "--train"], "Cannot write the run folder"),
    "test mode without a checkpoint": (None, ["--dataset", "mnist"], "No trained checkpoint"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(tmp_path, monkeypatch, capsys, name):
  setup, args, message = CASES[name]
  if setup:
    setup(tmp_path)
  before = tree_digest(tmp_path)
  code, out, err = run_main_here(tmp_path, monkeypatch, capsys, *args)
  assert code == 1, out[-2000:] + err[-2000:]
  assert "Traceback" not in err + out
  errors = [l for l in err.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and message in errors[0], err
  after = tree_digest(tmp_path)
  assert {k: v for k, v in after.items() if k in before} == before  # nothing changed
  assert not [k for k in after if k not in before and not k.startswith("checkpoint")]


def test_flags_that_disagree_with_the_checkpoint(tmp_path, monkeypatch, capsys):
  setup_faces(tmp_path)  # 8 images: 2 steps of 4 an epoch
  run_main_here(tmp_path, monkeypatch, capsys, *FACES, "--out_name", "run", "--train", "--epoch",
                "2", "--z_dim", "12", check=True)
  record = (tmp_path / "out" / "run" / "FLAGS.json").read_text()
  strict = json.loads(record, parse_constant=lambda name: pytest.fail("not JSON: " + name))
  assert strict["train_size"] is None  # all images; Infinity is not JSON
  before = tree_digest(tmp_path / "out")
  here = lambda *args: run_main_here(tmp_path, monkeypatch, capsys, *FACES, "--out_name", "run",
                                     *args)
  for args, flag in (
      (["--z_dim", "20"], "it was trained with --z_dim 12"),
      (["--z_dim", "12", "--output_height", "32"], "set --output_height and --output_width"),
      (["--z_dim", "12", "--batch_size", "2"], "This run was trained with --batch_size 4 (its "
                                               "checkpoint model.b4-5), and its counter counts"),
      (["--z_dim", "12", "--train_size", "4"], "This run was trained with --train_size inf (its "
                                               "FLAGS.json)")):
    code, out, err = here("--train", "--epoch", "3", *args)
    assert code == 1 and "Traceback" not in err and err.count("error: ") == 1
    assert flag in err, err
  # test mode takes the run's own flags, and says which flag is wrong when told otherwise
  code, _, err = here("--z_dim", "20")
  assert code == 1 and "--z_dim 12" in err
  # a run trained 2 epochs asked for 1: nothing trains, its record stays, and the command it
  # suggests trains
  code, out, err = here("--train", "--epoch", "1", "--z_dim", "12")
  assert code == 0 and "has trained 2 epochs already, as many as --epoch 1 asks" in out, out + err
  (line,) = [l for l in out.splitlines() if l.startswith("To train this run further")]
  assert line.startswith("To train this run further, raise --epoch above 2: ")
  words = shlex.split(line.split(": ", 1)[1])
  assert int(words[words.index("--epoch") + 1]) > 2 and words[-2:] == ["--out_name", "run"]
  # an existing TFLite or ONNX file is refused before anything loads, as a SavedModel version is
  for kind in ("tflite", "onnx"):
    earlier = tmp_path / "out" / "run" / kind / ("model-5." + kind)
    earlier.parent.mkdir()
    earlier.write_bytes(b"an earlier export")
    code, _, err = here("--" + kind)
    assert code == 1 and "model-5.%s exists already; an export is never overwritten" % kind in err
    assert earlier.read_bytes() == b"an earlier export"
    earlier.unlink()
    earlier.parent.rmdir()
  assert tree_digest(tmp_path / "out") == before


def test_a_run_record_from_before_reads_infinity_and_null_alike():
  import main
  import runs
  config = main.Config(dict(batch_size=4, train_size=np.inf))
  for record in ({"train_size": float("inf")}, {"train_size": None}, {}):
    runs.check_same_counting(config, "out/run/checkpoint/model.b4-5", record)
  with pytest.raises(UserError, match="--train_size 640 "):
    runs.check_same_counting(config, "out/run/checkpoint/model.b4-5", {"train_size": 640.0})


@pytest.mark.parametrize("args,message", [
    (["--dataset", "mnist", "--evaluate", "--evaluate_n", "0"], "--evaluate_n must be a positive number, not 0."),
    (["--dataset", "mnist", "--features_experiment", "--labels_per_class", "0"],
     "--labels_per_class must be a positive number, not 0."),
    (["--arithmetic", "1 - 2 + 3", "--arithmetic_pool", "0"], "--arithmetic_pool must be a positive number"),
    (["--dataset", "mnist", "--evaluate", "--classifier_epochs", "0"],
     "--classifier_epochs must be a positive number, not 0."),
    (["--walk", "--walk_steps", "1"], "--walk_steps must be 2 or more, not 1."),
    (["--walk", "--walk_pairs", "0"], "--walk_pairs must be a positive number, not 0."),
    (["--generate", "-3"], "--generate must be 0 or more, not -3."),
    (["--visualize", "--visualize_option", "7"], "--visualize_option must be 0-4, not 7."),
    (["--train", "--beta1", "1.5"], "--beta1 must be at least 0 and below 1, not 1.5."),
    (["--train", "--train_size", "0"], "--train_size must be 1 or more images, not 0."),
    (["--train", "--initial_loss_scale", "0"], "--initial_loss_scale must be 1 or more (and "
                                                "finite), not 0."),
    (["--train", "--initial_loss_scale", "inf"], "--initial_loss_scale must be 1 or more"),
    (["--train", "--intra_op_threads", "-1"], "--intra_op_threads must be 0 or more, not -1."),
    (["--train", "--out_name", "../escaped"], "--out_name is the name of a run's folder inside "
                                              "--out_dir, not a path, so '../escaped' cannot be"),
    (["--train", "--out_name", "/abs"], "so '/abs' cannot be one; to keep runs elsewhere, set --out_dir."),
    (["--train", "--out_name", "a/b"], "so 'a/b' cannot be one"),
    (["--train", "--out_name", "~/x"], "so '~/x' cannot be one"),
    (["--out_name", ".."], "so '..' cannot be one"),
])
def test_out_of_range_flags_are_refused_before_anything_loads(tmp_path, monkeypatch, capsys,
                                                              args, message):
  work = tmp_path / "work"
  work.mkdir()
  code, out, err = run_main_here(work, monkeypatch, capsys, *args)
  assert code == 1 and "Traceback" not in out + err
  assert err.splitlines()[0] == "error: " + err.splitlines()[0][len("error: "):]
  assert message in err.splitlines()[0], err  # its own sentence, not "no trained checkpoint"
  assert os.listdir(str(tmp_path)) == ["work"] and not os.listdir(str(work))  # nothing written


def test_bf16_without_hardware_through_main(tmp_path, monkeypatch, capsys):
  """The --precision bf16 row: main's own entry point, on a machine made to lack bf16."""
  import main
  import precision
  monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: False)
  monkeypatch.setattr(precision.tf.config, "list_physical_devices", lambda kind: [])
  monkeypatch.chdir(tmp_path)
  setup_faces(tmp_path)
  main.FLAGS.unparse_flags()
  main.FLAGS(["main.py"] + FACES + ["--train", "--precision", "bf16"])
  try:
    with pytest.raises(SystemExit) as exit_info:
      main.main(["main.py"])
  finally:
    main.FLAGS.unparse_flags()
  err = capsys.readouterr().err
  assert exit_info.value.code == 1 and "Traceback" not in err
  assert err.startswith("error: --precision bf16 needs a CPU with AVX512-BF16")
  assert not (tmp_path / "out").exists()


def test_resume_command_replaces_flags_in_either_form_and_quotes_for_a_shell():
  import runs
  argv = ["main.py", "--dataset=mnist", "--out_name", "old", "--epoch=3", "--train", "--seed", "2"]
  command = runs.resume_command("a run's name", argv, epoch=6)
  words = shlex.split(command)
  assert words[1:] == ["main.py", "--dataset=mnist", "--train", "--seed", "2", "--epoch", "6",
                       "--out_name", "a run's name"]
  assert words[0] in (sys.executable, os.path.relpath(sys.executable))


# class folders read with --labels, as a run records them (dataset.ClassFoldersData)
PETS = {"kind": "classes", "source": "data/pets", "digest": None, "labels": ["cat", "dog", "fox"],
        "channels": 3}


@pytest.mark.parametrize("dataset,flags,message", [
    ("mnist", dict(label=3), "--label picks the class of --generate"),
    ("faces", dict(label=3, generate=2), "--label needs a conditional model (MNIST, or class "
                                         "folders trained with --labels)"),
    ("mnist", dict(label=10, generate=2), "--label 10 names no class of this model (its classes: "
                                          "0-9)."),
    ("faces", dict(evaluate=True), "--evaluate judges how often a conditional model's images "
                                   "show the class asked for, and this run's data (--dataset "
                                   "faces) has no labels"),
    ("faces", dict(features_experiment=True), "--features_experiment works on the conditional"),
    ("mnist", dict(label=9, generate=2, evaluate=True, features_experiment=True), None),
    ("faces", dict(generate=2), None),
    (PETS, dict(label=2, generate=2), None),
    (PETS, dict(label=3, generate=2), "--label 3 names no class of this model (its classes: "
                                      "cat, dog, fox, or their indices 0-2)."),
    (PETS, dict(label="fox", generate=2), None),
    (PETS, dict(label="wolf", generate=2), "--label wolf names no class"),
    (PETS, dict(evaluate=True), None),  # its own judge
    (PETS, dict(features_experiment=True), "--features_experiment works on the conditional MNIST"),
])
def test_looks_that_cannot_apply_are_refused(dataset, flags, message):
  import looks
  import main
  from dataset import described
  description = dataset if isinstance(dataset, dict) else described(dataset)
  values = dict(dataset="pets" if isinstance(dataset, dict) else dataset, label=-1, generate=0,
                evaluate=False, features_experiment=False)
  values.update(flags)
  config = main.Config(values)
  if message is None:
    looks.validate(config, description)
  else:
    with pytest.raises(UserError, match="^" + re.escape(message)):
      looks.validate(config, description)
