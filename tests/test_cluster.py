"""Several workers through main.py: two processes on 127.0.0.1, free ports.

Every wait is bounded and every process is killed at the end of its test, whatever happens.
"""
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import cluster as cluster_module
import roles
from conftest import PROJECT_DIR
from model import DCGAN
from test_main import run_main_here
from utils import UserError

MAIN = os.path.join(PROJECT_DIR, "main.py")
# the conditional MNIST model on the bundled digits, at 16 px so that a step is quick
MNIST = ["--dataset", "mnist", "--input_height", "28", "--output_height", "16", "--train",
         "--intra_op_threads", "1", "--data_workers", "1"]


class Workers(object):
  """Two main.py workers; worker i writes its output to logs/worker<i>.{out,err}."""

  def __init__(self, tmp_path, args, per_worker=None, env=None):
    self.hosts = ",".join("127.0.0.1:%d" % port for port in cluster_module.free_local_ports(2))
    self.logs = tmp_path / "logs"
    self.logs.mkdir(exist_ok=True)
    self.procs = []
    for index in range(2):
      extra = (per_worker or {}).get(index, [])
      out = open(str(self.logs / ("worker%d.out" % index)), "w")
      err = open(str(self.logs / ("worker%d.err" % index)), "w")
      self.procs.append(subprocess.Popen(
          [sys.executable, MAIN] + list(args) + list(extra)
          + ["--worker_hosts", self.hosts, "--task_index", str(index)],
          cwd=str(tmp_path), stdout=out, stderr=err,
          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))))
      out.close()
      err.close()

  def output(self, index):
    return (self.logs / ("worker%d.out" % index)).read_text()

  def errors(self, index):
    return (self.logs / ("worker%d.err" % index)).read_text()

  def wait_for_step(self, index, counter, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
      if "[%8d Epoch" % counter in self.output(index):
        return
      if any(p.poll() is not None for p in self.procs):
        break
      time.sleep(0.2)
    raise AssertionError("worker %d never reached step %d:\n%s\n%s"
                         % (index, counter, self.output(index)[-2000:], self.errors(index)[-2000:]))

  def wait(self, timeout=300):
    deadline = time.time() + timeout
    for proc in self.procs:
      proc.wait(timeout=max(1, deadline - time.time()))
    return [proc.returncode for proc in self.procs]

  def kill(self):
    for proc in self.procs:
      if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


@pytest.fixture
def workers():
  started = []

  def start(*args, **kwargs):
    started.append(Workers(*args, **kwargs))
    return started[-1]

  yield start
  for group in started:
    group.kill()


def checkpoint_names(folder):
  path = tf.train.latest_checkpoint(folder)
  return path, sorted(tf.train.load_checkpoint(path).get_variable_to_shape_map())


def test_two_workers_train_one_run_folder_that_resumes_on_one_worker(tmp_path, workers,
                                                                    monkeypatch, capsys):
  chief_out, other_out = tmp_path / "chief", tmp_path / "other"
  group = workers(tmp_path, MNIST + ["--epoch", "1", "--train_size", "512", "--out_name", "run"],
                  {0: ["--out_dir", str(chief_out), "--seed", "7"],
                   1: ["--out_dir", str(other_out)]})  # worker 1 takes the chief's seed
  assert group.wait() == [0, 0], group.errors(0)[-2000:] + group.errors(1)[-2000:]
  for index in range(2):
    out = group.output(index)
    # 512 images // (64 x 2 replicas) = 4 steps, the same ones on both workers
    assert "batch 64 on 2 replicas (2 workers x 1 device), 128 images per step" in out
    port = group.hosts.split(",")[index].rsplit(":", 1)[1]
    assert (" [!] Worker %d's TensorFlow server listens on port %s of every network interface, "
            "without authentication" % (index, port)) in out
    assert 'README, "Security"' in out
    assert [l[:35] for l in out.splitlines() if l.startswith("[")] == [
        "[%8d Epoch:[ 0/ 1] [%4d/   4]" % (i + 2, i) for i in range(4)]
    assert "Traceback" not in group.errors(index)
  assert re.search(r"; seed 7(;|$)", group.output(1), re.M)  # the chief's, in its summary
  # one run folder, written by the chief only
  run = chief_out / "run"
  assert not other_out.exists()
  flags = json.loads((run / "FLAGS.json").read_text())
  assert flags["cluster"] == {"workers": group.hosts.split(","), "task_index": 0, "replicas": 2,
                              "devices_per_worker": 1}
  assert glob.glob(str(run / "samples" / "train_*.png")) and glob.glob(str(run / "logs" / "*"))
  path, names = checkpoint_names(str(run / "checkpoint"))
  assert os.path.basename(path) == "model.b64-5"

  # the single-device names: the same model built on one device
  with tf.Graph().as_default(), tf.Session() as sess:
    single = DCGAN(sess, input_height=28, output_height=16, output_width=16, y_dim=10, c_dim=1,
                   dataset_name="mnist", seed=0)
    assert names == sorted(v.op.name for v in single.all_vars)

  # resumes on one worker at the chief's counter; test mode loads it like any other (both in
  # this process: one TensorFlow start each fewer)
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, *(MNIST + [
      "--epoch", "2", "--train_size", "512", "--out_dir", str(chief_out), "--out_name", "run"]),
      check=True)
  assert "Load SUCCESS: resuming at counter 5" in out
  # counter 5 on 8 steps per epoch (one replica) is epoch 0, step 4: 4 + 8 steps to counter 17
  assert " [*] Trained to counter 17;" in out
  _, out, _ = run_main_here(tmp_path, monkeypatch, capsys, "--dataset", "mnist", "--out_dir",
                            str(chief_out), "--out_name", "run", check=True)
  assert "Success to read model.b64-17" in out
  assert glob.glob(str(run / "samples" / "test_*.png"))


@pytest.mark.serial  # its deadline is timed: run alone (tests/conftest.py)
def test_a_killed_worker_stops_the_other_within_a_minute_naming_it(tmp_path, workers):
  group = workers(tmp_path, MNIST + ["--epoch", "1", "--train_size", "4000", "--out_name", "run",
                                     "--ckpt_freq", "3", "--seed", "1"])
  group.wait_for_step(0, 5)
  group.procs[1].kill()
  killed = time.time()
  assert group.procs[0].wait(timeout=60) == 1
  assert time.time() - killed < 60
  err = group.errors(0)
  assert "Traceback" not in err
  lost = [line for line in err.splitlines() if line.startswith("error: ")]
  assert len(lost) == 1 and ("Lost worker 1 (%s)" % group.hosts.split(",")[1]) in lost[0], err
  # the checkpoint it names is the latest and loads
  ckpt_dir = tmp_path / "out" / "run" / "checkpoint"
  latest = tf.train.latest_checkpoint(str(ckpt_dir))
  assert latest and ("the last checkpoint is ./out/run/checkpoint/%s:" % os.path.basename(latest)
                     in lost[0])
  assert len(tf.train.load_checkpoint(latest).get_variable_to_shape_map()) > 0


@pytest.mark.parametrize("signalled, signum", [
    ([1], signal.SIGTERM),  # worker 0 stops for worker 1's SIGTERM: both exit 143
    ([0, 1], signal.SIGINT),  # Ctrl-C to both in one step: both 130 (the vote counts kinds)
], ids=["SIGTERM to worker 1", "SIGINT to both"])
def test_a_signal_to_any_worker_stops_both_at_the_same_step_and_the_chief_saves(
    tmp_path, workers, signalled, signum):
  group = workers(tmp_path, MNIST + ["--epoch", "1", "--train_size", "4000", "--out_name", "run",
                                     "--seed", "1"])
  group.wait_for_step(1, 4)
  for index in signalled:
    group.procs[index].send_signal(signum)
  assert group.wait(timeout=120) == [128 + signum] * 2
  stopped = []
  for index in range(2):
    assert "Traceback" not in group.errors(index)
    lines = [l for l in group.errors(index).splitlines() if l.startswith("Stopped at counter")]
    assert len(lines) == 1, group.errors(index)
    stopped.append(int(lines[0].split()[3].rstrip(";")))
  assert stopped[0] == stopped[1]
  path = tf.train.latest_checkpoint(str(tmp_path / "out" / "run" / "checkpoint"))
  assert os.path.basename(path) == "model.b64-%d" % stopped[0]


def test_workers_started_with_different_flags_are_refused_before_the_first_step(tmp_path, workers):
  group = workers(tmp_path, MNIST + ["--epoch", "1", "--train_size", "512", "--out_name", "run"],
                  {1: ["--batch_size", "32"]})
  assert group.wait(timeout=240) == [1, 1]
  for index in range(2):
    err = group.errors(index)
    assert "Traceback" not in err
    assert "The workers were started with different --batch_size" in err, err
    assert "Epoch:[" not in group.output(index)
  assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.serial  # its deadline is timed: run alone (tests/conftest.py)
def test_a_silent_worker_is_noticed_by_the_step_deadline(tmp_path, workers):
  group = workers(tmp_path, MNIST + ["--epoch", "1", "--train_size", "4000", "--out_name", "run",
                                     "--seed", "1", "--step_timeout", "8"])
  group.wait_for_step(0, 4)
  os.kill(group.procs[1].pid, signal.SIGSTOP)
  stopped = time.time()
  assert group.procs[0].wait(timeout=60) == 1
  assert time.time() - stopped < 30
  err = group.errors(0)
  assert "Traceback" not in err and "Lost worker 1" in err and "no answer" in err, err


def test_a_worker_that_never_starts_is_named_while_waiting_and_at_join_timeout(tmp_path):
  port = cluster_module.free_local_ports(2)  # worker 1's port: nobody listens there
  hosts = "127.0.0.1:%d,127.0.0.1:%d" % tuple(port)
  started = time.time()
  proc = subprocess.run([sys.executable, MAIN] + MNIST + [
      "--worker_hosts", hosts, "--task_index", "0", "--join_timeout", "12"], cwd=str(tmp_path),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=90,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode == 1 and time.time() - started < 60, proc.stderr[-3000:]
  assert " [*] Waiting for worker 1 (127.0.0.1:%d) to join: 10 s of 12\n" % port[1] in proc.stdout
  assert "Traceback" not in proc.stderr
  assert ("error: Worker 1 (127.0.0.1:%d) did not start within 12 s (--join_timeout); start it "
          "with the same flags, or raise --join_timeout.\n" % port[1]) in proc.stderr
  assert not (tmp_path / "out").exists()  # nothing written


# Worker 0 of two, worker 1 played by a socket that accepts, never joins, and closes 2 s into
# the collective.
STOPS_BEFORE_JOINING = r"""
import socket, sys, threading
sys.path.insert(0, sys.argv[1])
hosts = sys.argv[2].split(",")
import hardware
hardware.import_tensorflow()  # the process's start: oneDNN, TF1 graph behaviour
import tensorflow.compat.v1 as tf
import cluster as cluster_module
from replicas import replication
from utils import UserError

stand_in = socket.socket()
stand_in.bind(("127.0.0.1", int(hosts[1].rsplit(":", 1)[1])))
stand_in.listen(8)
cluster = cluster_module.Cluster(cluster_module.Layout(hosts, 0, [], join_timeout=120,
                                                      step_timeout=5))
config = cluster.session_config(tf.ConfigProto())
target = cluster.start(config)
with tf.Graph().as_default(), tf.Session(target, config=config) as sess:
  x = tf.placeholder(tf.float64, [1])
  total = replication(cluster).all_reduce_sum(
      lambda is_first_local: tf.where(is_first_local, x, tf.zeros_like(x)))
  threading.Timer(2, stand_in.close).start()
  try:
    cluster.joined(lambda seconds: print("joining, %d s left" % seconds, flush=True) or sess.run(
        total, {x: [1.0]}, options=tf.RunOptions(timeout_in_ms=1000 * seconds)), sess.close)
  except UserError as err:
    print("error: %s" % err, flush=True)
"""


def test_the_chief_notices_a_worker_that_stops_before_joining_in_seconds():
  """TensorFlow's collective tells the chief (the collective's leader) nothing: it would wait
  out --join_timeout; JoinWait sees the port refuse and cancels the collective."""
  hosts = ",".join("127.0.0.1:%d" % port for port in cluster_module.free_local_ports(2))
  proc = subprocess.Popen([sys.executable, "-c", STOPS_BEFORE_JOINING, PROJECT_DIR, hosts],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  try:
    out, err = proc.communicate(timeout=60)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait(timeout=30)
  assert proc.returncode == 0 and "Traceback" not in err, out + err[-3000:]
  lines = out.splitlines()
  assert any(line.startswith("joining, ") for line in lines), out
  assert lines[-1].startswith("error: Worker 1 (%s) stopped before it joined: its port accepted "
                              "connections, then refused them " % hosts.split(",")[1]), out
  assert lines[-1].endswith(" s into the wait; start every worker again with the same flags.")
  assert int(lines[-1].split(" s into")[0].rsplit(" ", 1)[1]) < 30


NAN_ON_ONE_WORKER = r"""
import argparse, sys
sys.path.insert(0, sys.argv[1])
hosts, task, folder = sys.argv[2], int(sys.argv[3]), sys.argv[4]
import hardware
hardware.import_tensorflow()  # the process's start: oneDNN, TF1 graph behaviour
import numpy as np
import tensorflow.compat.v1 as tf
import cluster as cluster_module
from dataset import MnistData
from model import DCGAN
from precision import precision_mode, session_config
from utils import UserError


class Poisoned(MnistData):
  # worker 1's images are NaN from its third batch on; worker 0's stay real
  batches = 0

  def get(self, indices):
    images, labels = MnistData.get(self, indices)
    self.batches += 1
    return (images * np.nan if task == 1 and self.batches >= 3 else images), labels


precision = precision_mode("fp16", fp16_on_cpu=True)  # a NaN update is skipped, not applied
cluster = cluster_module.Cluster(cluster_module.Layout(hosts.split(","), task, [],
                                                      join_timeout=300, step_timeout=20))
config = cluster.session_config(session_config(precision, intra_op_threads=1))
target = cluster.start(config)
with tf.Graph().as_default(), tf.Session(target, config=config) as sess:
  dcgan = DCGAN(sess, batch_size=4, sample_num=4, output_height=16, output_width=16, gf_dim=4,
                df_dim=4, gfc_dim=16, dfc_dim=16, z_dim=8, y_dim=10, c_dim=1,
                dataset_name="mnist", data=Poisoned("/nonexistent", 16, 16), seed=3,
                precision=precision, cluster=cluster, checkpoint_dir=folder + "/checkpoint",
                sample_dir=folder + "/samples", out_dir=folder)
  try:
    dcgan.train(argparse.Namespace(epoch=1, train_size=80, data_workers=1))
  except UserError as err:
    print("error: %s" % err)
    sys.exit(1)
"""


def test_a_nan_on_one_worker_is_reported_as_a_nan_by_every_worker(tmp_path):
  hosts = ",".join("127.0.0.1:%d" % port for port in cluster_module.free_local_ports(2))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  procs = [subprocess.Popen([sys.executable, "-c", NAN_ON_ONE_WORKER, PROJECT_DIR, hosts,
                             str(task), str(tmp_path / ("worker%d" % task))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
           for task in range(2)]
  try:
    outputs = [proc.communicate(timeout=300) for proc in procs]
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)
  errors = []
  for proc, (out, err) in zip(procs, outputs):
    assert proc.returncode == 1 and "Traceback" not in err, out[-2000:] + err[-3000:]
    errors.append([line for line in out.splitlines() if line.startswith("error: ")])
  # both at worker 1's third step, neither as a lost worker; worker 0 says whose losses they were
  for lines in errors:
    assert len(lines) == 1 and "The losses became NaN or infinite at step 3 (" in lines[0], errors
  assert "(on another worker; this one's d_loss" in errors[0][0], errors
  assert "(d_loss nan" in errors[1][0], errors


# --------------------------------------------------------------------------------------------
# the layout: flags and TF_CONFIG

def test_layout_from_flags_and_tf_config():
  assert cluster_module.parse_layout(environ={}) == cluster_module.Layout([], 0, [])
  flags = cluster_module.parse_layout("", "a:1,b:2", 1, environ={})
  assert flags == cluster_module.Layout(["a:1", "b:2"], 1, [])
  tf_config = json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker",
                                                                         "index": 1}})
  assert cluster_module.parse_layout(environ={"TF_CONFIG": tf_config}) == flags
  assert cluster_module.parse_layout("gpu:0,/device:GPU:1", environ={}).devices == [
      "/device:GPU:0", "/device:GPU:1"]
  assert cluster_module.parse_layout("", "a:1", 0, environ={}).workers == []  # one process
  assert cluster_module.parse_layout("cpu:1,cpu:0", environ={}).devices == [
      "/device:CPU:1", "/device:CPU:0"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(worker_hosts="a:1,b:2"), "--worker_hosts needs --task_index"),
    (dict(task_index=1), "--task_index needs --worker_hosts"),
    (dict(worker_hosts="a:1,b:2", task_index=2), "--task_index 2 is outside the 2 workers"),
    (dict(worker_hosts="a:1,a:1", task_index=0), "names the same host:port twice"),
    (dict(worker_hosts="a,b:2", task_index=0), "'a' is not host:port"),
    (dict(devices="gpu0"), "--devices takes device names"),
    (dict(devices="cpu:0,gpu:0"), "mixes CPUs and GPUs"),
    (dict(devices="cpu:0,"), "--devices 'cpu:0,' has an empty name (a comma too many); separate "
                             "the names by single commas, such as cpu:0,cpu:1."),
    (dict(devices=",cpu:0"), "--devices ',cpu:0' has an empty name"),
    (dict(devices="cpu:5"), "--devices cpu:5 names cpu:5, which is not there: CPU replicas are "
                            "virtual devices of this machine's CPU numbered from 0, so write "
                            "cpu:0 for 1 replica."),
    (dict(devices="cpu:0,cpu:2"), "names cpu:2, which is not there: CPU replicas are virtual "
                                  "devices of this machine's CPU numbered from 0, so write "
                                  "cpu:0,cpu:1 for 2 replicas."),
    (dict(join_timeout=0), "--join_timeout must be a positive number, not 0."),
    (dict(step_timeout=-5), "--step_timeout must be a positive number, not -5."),
    (dict(step_timeout=2.5), "--step_timeout must be a positive number, not 2.5."),
    (dict(devices="gpu:0", worker_hosts="a:1,b:2", task_index=0), "--devices applies to one machine"),
    (dict(environ={"TF_CONFIG": "{not json"}), "TF_CONFIG is not the JSON"),
    (dict(environ={"TF_CONFIG": json.dumps({"cluster": {"ps": ["a:1"], "worker": ["b:2"]}})}),
     "'ps' job"),
])
def test_bad_layouts_are_one_sentence(kwargs, message):
  kwargs.setdefault("environ", {})
  with pytest.raises(UserError) as err:
    cluster_module.parse_layout(**kwargs)
  assert message in str(err.value)


def test_lost_worker_names_the_task_in_the_error():
  c = cluster_module.Cluster.__new__(cluster_module.Cluster)
  c.workers, c.task_index, c.num_workers = ["h:1", "h:2", "h:3"], 0, 3
  err = tf.errors.UnavailableError(None, None, "Collective ops is aborted by: recvmsg:Connection "
                                   "reset by peer\nfrom remote target /job:worker/replica:0/task:2 "
                                   "while calling RecvBuf")
  assert c.lost_worker(err) == "worker 2 (h:3)"
  assert cluster_module.error_summary(err) == "Connection reset by peer"
  assert c.lost_worker(tf.errors.DeadlineExceededError(None, None, "x")) == (
      "a worker that stopped answering")


def test_gathered_gradients_are_several_workers_unless_the_flag_turns_them_off():
  def gathers(workers, devices=(), **kwargs):
    layout = cluster_module.parse_layout(",".join(devices), ",".join(workers), 0 if workers else
                                         None, environ={}, **kwargs)
    assert layout.gather_gradients == kwargs.get("gather_gradients", True)
    return cluster_module.decide_gathers(layout, max(2, len(workers), len(devices)))
  assert gathers(["a:1", "b:2"]) is True
  assert gathers(["a:1", "b:2"], gather_gradients=False) is False
  assert gathers([], ["cpu:0", "cpu:1"]) is False  # one machine: its all-reduce costs less
  assert gathers([]) is False
  one = cluster_module.parse_layout("", "", None, environ={})
  assert cluster_module.decide_gathers(one, 1, override=True) is False  # one replica: never
  assert cluster_module.decide_gathers(one, 2, override=True) is True


# --------------------------------------------------------------------------------------------
# deadlines, joining, the stop vote, a lost worker's sentence

def test_the_deadlines_and_gathering_are_the_flags_stated_once():
  import main
  for name, default in cluster_module.LAYOUT_DEFAULTS.items():
    assert main.FLAGS[name].default == default, name
    assert cluster_module.Layout._field_defaults[name] == default, name
  layout = cluster_module.parse_layout("", "a:1,b:2", 1, environ={}, join_timeout=12,
                                       step_timeout=8)
  assert (layout.join_timeout, layout.step_timeout) == (12, 8)
  cluster = cluster_module.Cluster(cluster_module.Layout([], 0, [], 12, 8))  # (one device: cheap)
  assert (cluster.join_timeout, cluster.step_timeout) == (12, 8)
  several = roles.SeveralWorkers(cluster, None, True)
  assert several.run_options().timeout_in_ms == 8000
  assert several.run_options(first=True).timeout_in_ms == 12000  # joining, graph optimisation
  assert not hasattr(cluster_module, "STEP_TIMEOUT_VARIABLE")


@pytest.mark.parametrize("signals, stops", [
    ([signal.SIGINT, signal.SIGINT], [signal.SIGINT] * 2),  # 2 + 2 is no signal
    ([0, signal.SIGTERM], [signal.SIGTERM] * 2),
    ([signal.SIGTERM, signal.SIGINT, 0], [signal.SIGTERM, signal.SIGINT, signal.SIGINT]),
    ([signal.SIGHUP, 0], [signal.SIGHUP, signal.SIGTERM]),  # 1 + 0: no one got SIGINT
    ([0, 0], [0, 0]),
])
def test_the_stop_vote_counts_kinds_so_each_worker_stops_for_a_real_signal(signals, stops):
  """Each worker's vote (vote_feed), summed over the workers as the step's last run does, then
  each worker's tally: its own signal, else SIGINT if any worker got one, else SIGTERM."""
  several = roles.SeveralWorkers(None, None, True)
  several.votes_in = "votes"
  votes = [np.asarray(several.vote_feed({}, signum, False)["votes"]) for signum in signals]
  total = {"votes": np.sum(votes, axis=0) + [0, 0, 1]}  # + one worker's NaN, added by the graph
  assert [several.tally(total, signum, False) for signum in signals] == [
      (int(stop), 1) for stop in stops]


def test_a_worker_lost_before_any_checkpoint_says_the_run_starts_again(tmp_path):
  chief = cluster_module.Cluster.__new__(cluster_module.Cluster)
  chief.workers, chief.task_index, chief.num_workers, chief.is_chief = ["h:1", "h:2"], 0, 2, True
  settings = types.SimpleNamespace(checkpoint_dir=str(tmp_path / "checkpoint"))
  with pytest.raises(UserError) as err:
    roles.SeveralWorkers(chief, None, True).lost(tf.errors.DeadlineExceededError(None, None, "x"),
                                                 1, settings)
  assert str(err.value) == (
      "Lost worker 1 (h:2) at step 1 (no answer before the deadline), so training stopped on "
      "this worker too; no checkpoint was written yet, so the same commands on every worker "
      "start the run again from scratch.")


class FakeTime(object):
  def __init__(self):
    self.now = 0.0

  def clock(self):
    return self.now

  def sleep(self, seconds):
    self.now += seconds


def test_the_join_wait_names_who_it_awaits_and_gives_up_at_join_timeout():
  fake, lines = FakeTime(), []
  wait = cluster_module.JoinWait(["a:1", "127.0.0.1:9", "c:3", "d:4"], 0, 30,
                                 probe=lambda host: host in ("c:3",) or None,
                                 clock=fake.clock, sleep=fake.sleep, say=lines.append)
  with pytest.raises(UserError) as err:
    wait.until_reachable()
  assert lines == [" [*] Waiting for workers 1 (127.0.0.1:9) and 3 (d:4) to join: %d s of 30" % t
                   for t in (10, 20)]
  assert str(err.value) == ("Workers 1 (127.0.0.1:9) and 3 (d:4) did not start within 30 s "
                            "(--join_timeout); start them with the same flags, or raise "
                            "--join_timeout.")
  assert fake.now == 30


def test_the_join_wait_says_at_once_that_a_worker_whose_port_refuses_has_stopped():
  fake = FakeTime()
  wait = cluster_module.JoinWait(["a:1", "b:2"], 1, 300, probe=lambda host: fake.now < 5,
                                 clock=fake.clock, sleep=fake.sleep)
  assert wait.check() == []  # worker 0 accepts
  fake.sleep(5)
  with pytest.raises(UserError) as err:
    wait.check()  # and now refuses
  assert str(err.value) == (
      "Worker 0 (a:1) stopped before it joined: its port accepted connections, then refused "
      "them 5 s into the wait; start every worker again with the same flags.")


def test_the_join_wait_counts_from_its_begin_and_is_finished_once_joined():
  """--join_timeout counts from begin() (the server's start), not from when the Cluster made
  the wait; once during() ran, the wait is finished (a later join is a wait of its own)."""
  fake = FakeTime()
  wait = cluster_module.JoinWait(["a:1", "b:2"], 0, 30, probe=lambda host: True,
                                 clock=fake.clock, sleep=fake.sleep)
  fake.sleep(100)  # the data opened, the run named, before the server starts
  wait.POLL_EVERY = 3600.0  # (the thread begin() starts stays asleep)
  wait.begin()
  assert wait.remaining() == 30 and not wait.finished
  wait.until_reachable()
  assert wait.during(lambda seconds: seconds) == 30 and wait.finished


@pytest.fixture
def listening():
  """A socket listening on 127.0.0.1 (it accepts nothing itself: the kernel completes the
  connections); closed at the end of the test, if the test did not."""
  sock = socket.socket()
  sock.bind(("127.0.0.1", 0))
  sock.listen(16)
  yield sock
  sock.close()


def test_a_port_that_accepts_then_closes_is_a_stopped_worker_during_the_collective(listening):
  address = "127.0.0.1:%d" % listening.getsockname()[1]
  assert cluster_module.accepts(address) is True
  wait = cluster_module.JoinWait(["127.0.0.1:1", address], 0, 60)
  wait.POLL_EVERY = 0.05
  wait.until_reachable()
  cancelled, given = threading.Event(), []

  def run(seconds):  # the collective: it would wait out its deadline unless cancelled
    given.append(seconds)
    listening.close()
    if cancelled.wait(20):
      raise tf.errors.CancelledError(None, None, "Session::Close()")
    return "joined"

  started = time.time()
  with pytest.raises(UserError) as err:
    wait.during(run, cancel=cancelled.set)
  assert time.time() - started < 5 and 55 <= given[0] <= 60
  assert str(err.value).startswith("Worker 1 (%s) stopped before it joined" % address)
  assert cluster_module.accepts(address) is False


def test_a_collective_that_outlives_join_timeout_names_the_workers_that_did_not_join(listening):
  address = "127.0.0.1:%d" % listening.getsockname()[1]
  wait = cluster_module.JoinWait([address, "127.0.0.1:1"], 1, 30)
  wait.until_reachable()

  def run(seconds):
    raise tf.errors.DeadlineExceededError(None, None, "Operation timed out.")

  with pytest.raises(UserError) as err:
    wait.during(run)
  assert str(err.value) == ("Worker 0 (%s) started but did not join within 30 s (--join_timeout); "
                            "check that every worker runs with the same flags, or raise "
                            "--join_timeout." % address)


def test_a_worker_that_stops_while_this_one_builds_its_graph_is_named_when_it_joins(listening):
  address = "127.0.0.1:%d" % listening.getsockname()[1]
  wait = cluster_module.JoinWait(["127.0.0.1:1", address], 0, 60)
  wait.POLL_EVERY = 0.05
  wait.watch()  # from the server's start (Cluster.start)
  deadline = time.time() + 10
  while 1 not in wait.seen and time.time() < deadline:
    time.sleep(0.02)
  listening.close()
  time.sleep(0.3)
  with pytest.raises(UserError) as err:
    wait.until_reachable()
  assert str(err.value).startswith("Worker 1 (%s) stopped before it joined" % address)
