"""Nothing lost: signals, kills during checkpoint writes, diverging losses, write failures."""
import hashlib
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from conftest import PROJECT_DIR, write_images
from test_main import run_main_here

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


def test_nan_losses_stop_and_keep_the_good_checkpoint(tmp_path, monkeypatch, capsys):
  write_images(str(tmp_path / "data" / "faces"), 8, size=(40, 40))
  run_main_here(tmp_path, monkeypatch, capsys, *train_args("--epoch", "1"), check=True)
  before = digests(checkpoint_dir(tmp_path))
  code, _, err = run_main_here(tmp_path, monkeypatch, capsys, *train_args(
      "--epoch", "20", "--ckpt_freq", "1", "--learning_rate", "1e30"))
  assert code == 1 and "Traceback" not in err
  assert "NaN or infinite" in err and "model.b4-3" in err
  (line,) = [l for l in err.splitlines() if l.startswith("To resume from the last ")]
  assert shlex.split(line.split(": ", 1)[1])[-2:] == ["--out_name", "run"]
  assert digests(checkpoint_dir(tmp_path)) == before  # bit for bit


def test_checkpoint_write_failure_keeps_the_previous_one(tmp_path, monkeypatch, capsys):
  import checkpoints
  write_images(str(tmp_path / "data" / "faces"), 8, size=(40, 40))
  save = checkpoints.Checkpoints.save

  def blocked(self, sess, folder, prefix, step):
    if step == 3:  # (made now: a run's start removes what unfinished saves left)
      os.makedirs(os.path.join(folder, "model.b4-3.index"))  # the write of step 3 fails
    return save(self, sess, folder, prefix, step)

  monkeypatch.setattr(checkpoints.Checkpoints, "save", blocked)
  code, _, err = run_main_here(tmp_path, monkeypatch, capsys,
                               *train_args("--epoch", "2", "--ckpt_freq", "1"))
  assert code == 1 and "Traceback" not in err
  assert "Could not write the checkpoint for step 3" in err
  assert "model.b4-2) is untouched" in err
  assert restores(checkpoint_dir(tmp_path)) == 2
  assert not [f for f in os.listdir(checkpoint_dir(tmp_path)) if "b4-3" in f]


def test_ctrl_c_with_the_pipe_reader_gone_still_saves_and_resumes(tmp_path, monkeypatch, capsys):
  """`main.py ... 2>&1 | tee log`, then Ctrl-C: tee dies with the same signal, so every write
  after it fails; the stop checkpoint must not depend on them."""
  write_images(str(tmp_path / "data" / "faces"), 40, size=(40, 40))  # 10 steps per epoch
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
  proc = subprocess.Popen([sys.executable, MAIN] + train_args("--epoch", "3"), cwd=str(tmp_path),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  reader = subprocess.Popen(["cat"], stdin=proc.stdout, stdout=subprocess.PIPE)
  proc.stdout.close()  # the reader (cat) holds the pipe's only read end
  try:
    seen, deadline = b"", time.time() + 300
    while b"[       5 Epoch" not in seen and time.time() < deadline and reader.poll() is None:
      seen += reader.stdout.read1(4096)
    assert b"[       5 Epoch" in seen, seen[-2000:]
    reader.kill()
    reader.wait(timeout=30)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
  finally:
    for p in (reader, proc):
      if p.poll() is None:
        p.kill()
        p.wait(timeout=30)
  stopped = restores(checkpoint_dir(tmp_path))  # the stop's own checkpoint (--ckpt_freq is 200)
  assert stopped >= 6
  _, out, err = run_main_here(tmp_path, monkeypatch, capsys, *train_args("--epoch", "1"))
  assert "resuming at counter %d" % stopped in out, out + err


def test_a_closed_terminal_saves_like_sigterm(tmp_path):
  write_images(str(tmp_path / "data" / "faces"), 40, size=(40, 40))
  proc = start(tmp_path, *train_args("--epoch", "3"))
  wait_for_step(proc, 4)
  proc.send_signal(signal.SIGHUP)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 128 + signal.SIGHUP and "Traceback" not in err, err[-2000:]
  stopped = int(err.split("Stopped at counter ")[1].split(";")[0])
  assert stopped >= 4 and restores(checkpoint_dir(tmp_path)) == stopped


def test_a_second_signal_names_the_checkpoint_that_stays_or_says_there_is_none(
    monkeypatch, capsys):
  import training

  class Exited(Exception):
    pass

  def exit_now(code):
    raise Exited(code)

  monkeypatch.setattr(training.os, "_exit", exit_now)
  for where, said in (("none", "no checkpoint was written yet, so nothing of this run can be "
                               "resumed"),
                      ("out/run/checkpoint/model.b4-6", "the last checkpoint, "
                                                        "out/run/checkpoint/model.b4-6, stays")):
    stop = training.StopRequest(lambda: where)
    try:
      stop.handle(signal.SIGINT, None)
      assert stop.local == signal.SIGINT
      stop.handle(signal.SIGHUP, None)  # the terminal closing after Ctrl-C: the save goes on
      with pytest.raises(Exited) as exited:
        stop.handle(signal.SIGINT, None)
    finally:
      stop.restore()
    assert exited.value.args == (130,)
    err = capsys.readouterr().err
    assert "Second signal: exiting now without saving; " + said in err, err


def test_a_second_signal_during_a_save_leaves_nothing_of_it(tmp_path, monkeypatch, capsys):
  """Ctrl-C twice while a checkpoint is written.  Python runs a signal's handler between the
  save's steps, never inside TensorFlow's write: here the second lands after the data and
  index are written, before the 'checkpoint' file names them and the meta graph is written."""
  import checkpoints
  import training
  write_images(str(tmp_path / "data" / "faces"), 8, size=(40, 40))  # 2 steps an epoch

  class Exited(Exception):
    pass

  def exit_now(code):
    raise Exited(code)

  save = checkpoints.Checkpoints.save

  def cut_short(self, sess, folder, prefix, step):
    if step < 4:
      return save(self, sess, folder, prefix, step)
    self.saver.save(sess, os.path.join(folder, prefix), global_step=step, write_state=False,
                    write_meta_graph=False)
    assert os.path.exists(os.path.join(folder, "%s-%d.index" % (prefix, step)))
    handler = signal.getsignal(signal.SIGINT)
    handler(signal.SIGINT, None)
    handler(signal.SIGINT, None)

  monkeypatch.setattr(training.os, "_exit", exit_now)
  monkeypatch.setattr(checkpoints.Checkpoints, "save", cut_short)
  with pytest.raises(Exited) as exited:
    run_main_here(tmp_path, monkeypatch, capsys, *train_args("--epoch", "3", "--ckpt_freq", "2"))
  assert exited.value.args == (130,)
  err = capsys.readouterr().err
  folder = checkpoint_dir(tmp_path)
  assert sorted(os.listdir(folder)) == ["checkpoint", "model.b4-2.data-00000-of-00001",
                                        "model.b4-2.index", "model.b4-2.meta"]
  assert ("Second signal: exiting now without saving (removed what the save in progress left "
          "unfinished: model.b4-4 (") in err, err
  assert "the last checkpoint, ./out/run/checkpoint/model.b4-2, stays loadable" in err
  assert restores(folder) == 2


def test_a_resume_removes_what_an_unfinished_save_left_and_says_so(tmp_path, monkeypatch, capsys):
  """A kill in the middle of a save (SIGKILL, a power cut) leaves its data and index without a
  meta graph, unnamed by the 'checkpoint' file; the next start of the run removes them."""
  write_images(str(tmp_path / "data" / "faces"), 8, size=(40, 40))
  run_main_here(tmp_path, monkeypatch, capsys, *train_args("--epoch", "1"), check=True)
  folder = checkpoint_dir(tmp_path)
  for ending in (".index", ".data-00000-of-00001"):  # what such a save leaves
    shutil.copy(os.path.join(folder, "model.b4-3" + ending),
                os.path.join(folder, "model.b4-9" + ending))
  os.makedirs(os.path.join(folder, "model.b4-9_temp"))
  with open(os.path.join(folder, "model.b4-9_temp", "part-00000-of-00001.index"), "wb") as f:
    f.write(b"\0" * 100)
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, *train_args("--epoch", "2"), check=True)
  assert " [*] Removed what an unfinished save had left in ./out/run/checkpoint: model.b4-9 (" in out
  assert "resuming at counter 3" in out
  assert sorted(os.listdir(folder)) == ["checkpoint", "model.b4-5.data-00000-of-00001",
                                        "model.b4-5.index", "model.b4-5.meta"]


def test_every_message_names_a_moved_runs_checkpoint_where_it_is_now(tmp_path, monkeypatch,
                                                                     capsys):
  """The 'checkpoint' file keeps the absolute paths a run was trained with; copied elsewhere,
  the run's messages name its checkpoint in its new place, as loading finds it."""
  from checkpoints import last_checkpoint
  data = write_images(str(tmp_path / "data" / "faces"), 8, size=(40, 40))
  first, moved = tmp_path / "first", tmp_path / "moved"
  run_main_here(tmp_path, monkeypatch, capsys, *train_args(
      "--epoch", "1", "--data_dir", os.path.dirname(data), "--out_dir", str(first)), check=True)
  shutil.copytree(str(first), str(moved))
  shutil.rmtree(str(first))
  folder = os.path.join(str(moved), "run", "checkpoint")
  state = tf.train.get_checkpoint_state(folder)
  assert state.model_checkpoint_path.startswith(str(first))  # the old place, as TensorFlow wrote it
  assert last_checkpoint(folder) == os.path.join(folder, "model.b4-3")  # the second signal's
  code, _, err = run_main_here(tmp_path, monkeypatch, capsys, *train_args(
      "--epoch", "20", "--ckpt_freq", "1", "--learning_rate", "1e30", "--data_dir",
      os.path.dirname(data), "--out_dir", str(moved)))
  assert code == 1 and "the last good checkpoint is %s." % os.path.join(folder, "model.b4-3") in err
  assert "Couldn't match files" not in err, err
