"""Nothing lost: signals, kills during checkpoint writes, diverging losses, write failures."""
import hashlib
import os
import random
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf

from conftest import PROJECT_DIR, write_images
from test_main import run_main

MAIN = os.path.join(PROJECT_DIR, "main.py")


def train_args(*extra):
  return ["--dataset", "faces", "--input_height", "32", "--crop", "--output_height", "16",
          "--batch_size", "4", "--out_name", "run", "--train", "--seed", "5"] + list(extra)


def start(cwd, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
  return subprocess.Popen([sys.executable, MAIN] + list(args), cwd=str(cwd), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_step(proc, counter, timeout=300):
  """Read the training log until the step line of `counter` (or later) appears."""
  deadline = time.time() + timeout
  lines = []
  while time.time() < deadline:
    line = proc.stdout.readline()
    if not line:
      raise AssertionError("training ended early:\n" + "".join(lines[-20:]) + proc.stderr.read())
    lines.append(line)
    if line.startswith("[") and int(line[1:9]) >= counter:
      return int(line[1:9])
  raise AssertionError("no step %d within %d s" % (counter, timeout))


def checkpoint_dir(cwd):
  return os.path.join(str(cwd), "out", "run", "checkpoint")


def restores(folder):
  """The checkpoint the state file names, read in full; returns its counter."""
  state = tf.train.get_checkpoint_state(folder)
  assert state is not None and state.model_checkpoint_path
  path = os.path.join(folder, os.path.basename(state.model_checkpoint_path))
  reader = tf.train.load_checkpoint(path)
  shapes = reader.get_variable_to_shape_map()
  assert "generator/g_h0_lin/Matrix" in shapes and "beta1_power" in shapes
  for name in shapes:
    assert np.isfinite(reader.get_tensor(name)).all()
  return int(path.rsplit("-", 1)[1])


def digests(folder):
  out = {}
  for name in sorted(os.listdir(folder)):
    with open(os.path.join(folder, name), "rb") as f:
      out[name] = hashlib.sha256(f.read()).hexdigest()
  return out


def test_sigterm_saves_and_resume_continues(tmp_path):
  write_images(str(tmp_path / "data" / "faces"), 40, size=(40, 40))  # 10 steps per epoch
  proc = start(tmp_path, *train_args("--epoch", "3"))
  wait_for_step(proc, 5)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 143 and "Traceback" not in err, out[-2000:] + err[-2000:]
  assert "stopping after this step" in out and "Stopped at counter" in err, out[-2000:] + err[-2000:]
  stopped = int(err.split("Stopped at counter ")[1].split(";")[0])
  # the signal lands during step 5 or just after its line: the run stops at counter 5 or later
  assert stopped >= 5 and restores(checkpoint_dir(tmp_path)) == stopped
  # the command it prints, pasted as it is, resumes the run
  (line,) = [l for l in err.splitlines() if l.startswith("To resume: ")]
  words = shlex.split(line[len("To resume: "):])
  args = train_args("--epoch", "3")
  at = args.index("--out_name")
  assert words[1:] == [MAIN] + args[:at] + args[at + 2:] + ["--out_name", "run"], words
  resumed = subprocess.run(words, cwd=str(tmp_path), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "resuming at counter %d" % stopped in resumed.stdout, resumed.stdout[-2000:]
  steps = [int(l[1:9]) for l in resumed.stdout.splitlines() if l.startswith("[")]
  assert steps[0] == stopped + 1 and steps[-1] == 31, steps
  assert restores(checkpoint_dir(tmp_path)) == 31


def test_second_ctrl_c_exits_at_once(tmp_path):
  write_images(str(tmp_path / "data" / "faces"), 40, size=(40, 40))
  proc = start(tmp_path, *train_args("--epoch", "50", "--ckpt_freq", "3"))
  wait_for_step(proc, 7)
  proc.send_signal(signal.SIGINT)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 130 and "Traceback" not in err
  assert restores(checkpoint_dir(tmp_path)) >= 6


def test_sigkill_during_checkpoint_writes_never_breaks_the_latest(tmp_path):
  write_images(str(tmp_path / "data" / "faces"), 40, size=(40, 40))
  rng = random.Random(0)
  last = 0
  for _ in range(3):
    proc = start(tmp_path, *train_args("--epoch", "200", "--ckpt_freq", "1", "--sample_freq", "1000"))
    wait_for_step(proc, last + 2)
    time.sleep(rng.uniform(0.0, 1.5))  # somewhere in the save-every-step loop
    proc.kill()
    proc.communicate(timeout=60)
    counter = restores(checkpoint_dir(tmp_path))
    assert counter >= last
    last = counter
  leftovers = [f for f in os.listdir(checkpoint_dir(tmp_path)) if "tmp" in f.lower()]
  assert len(leftovers) <= 3  # temporary files of interrupted writes only, never the named ones


def test_nan_losses_stop_and_keep_the_good_checkpoint(tmp_path):
  write_images(str(tmp_path / "data" / "faces"), 8, size=(40, 40))
  run_main(tmp_path, *train_args("--epoch", "1"))
  before = digests(checkpoint_dir(tmp_path))
  proc = run_main(tmp_path, *train_args("--epoch", "20", "--ckpt_freq", "1", "--learning_rate", "1e30"),
                  check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert "NaN or infinite" in proc.stderr and "model.b4-3" in proc.stderr
  (line,) = [l for l in proc.stderr.splitlines() if l.startswith("To resume from the last ")]
  assert shlex.split(line.split(": ", 1)[1])[-2:] == ["--out_name", "run"]
  assert digests(checkpoint_dir(tmp_path)) == before  # bit for bit


def test_checkpoint_write_failure_keeps_the_previous_one(tmp_path):
  write_images(str(tmp_path / "data" / "faces"), 8, size=(40, 40))
  os.makedirs(os.path.join(checkpoint_dir(tmp_path), "model.b4-3.index"))  # the write of step 3 fails
  proc = run_main(tmp_path, *train_args("--epoch", "2", "--ckpt_freq", "1"), check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert "Could not write the checkpoint for step 3" in proc.stderr
  assert "model.b4-2) is untouched" in proc.stderr
  assert restores(checkpoint_dir(tmp_path)) == 2
