"""Where training runs: one device, several local devices, or several machines (DESIGN.md 6).

Synchronous data parallelism on TensorFlow's own engine: `tf.distribute`'s
MirroredStrategy over the devices of one machine, MultiWorkerMirroredStrategy
(collective all-reduce over TensorFlow's gRPC runtime) across machines.  This
module only decides the layout and builds the strategy and the Session target;
what a replica computes is in model.py.

  Placement            from                                     strategy
  one device           default (one GPU, or the CPU)            none: today's graph
  devices of one host  --devices gpu:0,gpu:1 (or cpu:0,cpu:1)   MirroredStrategy
  several machines     TF_CONFIG, or --worker_hosts/--task_index MultiWorkerMirroredStrategy

Replicas = workers x devices per worker.  Several workers each use all their
local GPUs (CUDA_VISIBLE_DEVICES chooses them), or their CPU.
"""
import collections
import json
import os
import re
import socket

import hardware

hardware.configure()  # oneDNN decided before TensorFlow loads

import tensorflow.compat.v1 as tf  # noqa: E402

from utils import UserError, plural  # noqa: E402

STEP_TIMEOUT_VARIABLE = "DCGAN_STEP_TIMEOUT"


def _seconds(name, default):
  try:
    return max(1, int(os.environ.get(name, default)))
  except ValueError:
    return default


# Every wait on another worker is bounded: a step that has not finished in this many seconds
# means a worker stopped answering, so the others stop within a minute (DCGAN_STEP_TIMEOUT
# changes it, for steps slower than that).  The first iteration, which includes graph
# optimisation and waiting for every worker to start, gets FIRST_STEP_TIMEOUT.
STEP_TIMEOUT = _seconds(STEP_TIMEOUT_VARIABLE, 45)
FIRST_STEP_TIMEOUT = max(300, STEP_TIMEOUT)

# Several workers compute the large linear layers' weight gradients from all-gathered factors
# (model.DCGAN's gather_gradients); DCGAN_GATHER_GRADIENTS=0 all-reduces them instead, for
# workers whose machines might round the same product differently (different CPU or GPU kinds).
GATHER_GRADIENTS_VARIABLE = "DCGAN_GATHER_GRADIENTS"


def gather_gradients_default(environ=None):
  return (os.environ if environ is None else environ).get(GATHER_GRADIENTS_VARIABLE, "1") != "0"


# What a collective raises when a peer is gone (connection reset, refused) or silent (the
# step's deadline passed); model.DCGAN.train turns them into one sentence.
LOST_WORKER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                      tf.errors.AbortedError, tf.errors.CancelledError)


def error_summary(err):
  """The telling part of a collective's error: 'Connection reset by peer', 'deadline exceeded'."""
  if isinstance(err, tf.errors.DeadlineExceededError):
    return "no answer before the deadline"
  text = str(getattr(err, "message", "") or err)
  for pattern in (r"grpc_message:\"([^\"]+)\"", r"aborted by: ([^\n]+)", r"(Connection [a-z ]+)"):
    match = re.search(pattern, text)
    if match:
      return match.group(1).split(":")[-1].strip()
  return type(err).__name__


Layout = collections.namedtuple("Layout", ["workers", "task_index", "devices"])
Layout.__doc__ = """workers: the cluster's host:port list ([] for one process); task_index: this
process's place in it (0, the chief, for one process); devices: local device names ([] for the
default single device)."""


def free_local_ports(count):
  """count ports free on 127.0.0.1 now (for workers on one machine: tests, bench/scaling.py)."""
  sockets = [socket.socket() for _ in range(count)]
  try:
    for sock in sockets:
      sock.bind(("127.0.0.1", 0))
    return [sock.getsockname()[1] for sock in sockets]
  finally:
    for sock in sockets:
      sock.close()


def parse_devices(text):
  """'gpu:0,gpu:1' -> ['/device:GPU:0', '/device:GPU:1']; '' -> [] (the default).

  CPU names must be cpu:0 to cpu:N-1, the N virtual devices configure_devices makes of this
  machine's CPU; GPU names are checked there against the GPUs TensorFlow sees."""
  if not (text or "").strip():
    return []
  names = []
  for item in text.split(","):
    item = item.strip().lower().lstrip("/")
    if not item:
      raise UserError("--devices %r has an empty name (a comma too many); separate the names by "
                      "single commas, such as cpu:0,cpu:1." % text)
    if item.startswith("device:"):
      item = item[len("device:"):]
    match = re.fullmatch(r"(cpu|gpu):(\d+)", item)
    if not match:
      raise UserError("--devices takes device names separated by commas, such as gpu:0,gpu:1 or "
                      "cpu:0,cpu:1, not %r." % text)
    name = "/device:%s:%s" % (match.group(1).upper(), match.group(2))
    if name in names:
      raise UserError("--devices names %s twice." % name)
    names.append(name)
  kinds = {name.split(":")[1] for name in names}
  if len(kinds) > 1:
    raise UserError("--devices mixes CPUs and GPUs (%s); replicas must be alike, so name one kind."
                    % text)
  cpus = sorted(int(name.rsplit(":", 1)[1]) for name in names if ":CPU:" in name)
  if cpus and cpus != list(range(len(cpus))):
    raise UserError("--devices %s names cpu:%d, which is not there: CPU replicas are virtual "
                    "devices of this machine's CPU numbered from 0, so write %s for %s."
                    % (text, [i for i in cpus if i >= len(cpus)][0],
                       ",".join("cpu:%d" % i for i in range(len(cpus))),
                       plural(len(cpus), "replica")))
  return names


def parse_layout(devices="", worker_hosts="", task_index=None, environ=None):
  """The Layout asked for by --devices, --worker_hosts/--task_index or TF_CONFIG.

  TF_CONFIG is TensorFlow's own convention ({"cluster": {"worker": [...]}, "task":
  {"type": "worker", "index": N}}); the flags build the same cluster and win over it.
  """
  environ = os.environ if environ is None else environ
  workers, index = [], 0
  if worker_hosts:
    workers = [host.strip() for host in worker_hosts.split(",") if host.strip()]
    if task_index is None:
      raise UserError("--worker_hosts needs --task_index, this worker's place in that list "
                      "(0 is the chief).")
    index = task_index
  elif environ.get("TF_CONFIG", "").strip():
    try:
      tf_config = json.loads(environ["TF_CONFIG"])
      cluster, task = tf_config.get("cluster", {}), tf_config.get("task", {})
      other = sorted(set(cluster) - {"worker"})
      if other:
        raise UserError("TF_CONFIG's cluster has a %r job; training here is synchronous "
                        "all-reduce between 'worker' tasks only, so list every machine under "
                        "\"worker\" (the first is the chief)." % other[0])
      if task.get("type", "worker") != "worker":
        raise UserError("TF_CONFIG's task type is %r; it must be \"worker\"." % task.get("type"))
      workers, index = list(cluster.get("worker", [])), int(task.get("index", 0))
    except (ValueError, TypeError, AttributeError) as err:
      raise UserError("TF_CONFIG is not the JSON TensorFlow expects ({\"cluster\": {\"worker\": "
                      "[\"host:port\", ...]}, \"task\": {\"type\": \"worker\", \"index\": N}}): "
                      "%s." % err)
  elif task_index is not None:
    raise UserError("--task_index needs --worker_hosts (or TF_CONFIG), the list of every "
                    "worker's host:port.")
  for host in workers:
    if not re.fullmatch(r"[A-Za-z0-9_.\-\[\]:]+:\d+", host):
      raise UserError("Worker address %r is not host:port." % host)
  if len(set(workers)) != len(workers):
    raise UserError("The worker list names the same host:port twice: %s." % ",".join(workers))
  if workers and not 0 <= index < len(workers):
    raise UserError("--task_index %d is outside the %d workers listed (0 to %d)."
                    % (index, len(workers), len(workers) - 1))
  device_names = parse_devices(devices)
  if len(workers) > 1 and device_names:
    raise UserError("--devices applies to one machine; with several workers each uses all its "
                    "local GPUs (choose them with CUDA_VISIBLE_DEVICES) or its CPU.")
  if len(workers) == 1:
    workers = []  # a one-worker cluster is one process
  return Layout(workers, index, device_names)


def configure_devices(layout):
  """Make the local devices the layout names exist (virtual CPUs need it before TensorFlow's
  runtime starts); a one-sentence UserError for devices this machine does not have."""
  import tensorflow as tf2
  wanted_cpus = [int(name.rsplit(":", 1)[1]) + 1 for name in layout.devices if ":CPU:" in name]
  wanted_gpus = [int(name.rsplit(":", 1)[1]) + 1 for name in layout.devices if ":GPU:" in name]
  if wanted_gpus:
    have = len(tf2.config.list_physical_devices("GPU"))
    missing = ["gpu:%d" % (n - 1) for n in sorted(wanted_gpus) if n > have]
    if missing:
      raise UserError("--devices names %s, and TensorFlow sees %s here%s."
                      % (", ".join(missing), "no GPU" if not have else "only gpu:0-%d" % (have - 1),
                         "" if have else "; leave --devices out to train on the CPU"))
  if wanted_cpus and max(wanted_cpus) > 1:
    cpu = tf2.config.list_physical_devices("CPU")[0]
    try:
      # one CPU shown as several devices: they share its cores (a way to test and measure
      # several replicas on one machine, not a way to go faster)
      tf2.config.set_logical_device_configuration(
          cpu, [tf2.config.LogicalDeviceConfiguration()] * max(wanted_cpus))
    except RuntimeError as err:
      raise UserError("Virtual CPU devices must be set up before TensorFlow starts, and it had "
                      "(%s)." % err)


def default_devices():
  """Every local GPU if there are several, else [] (one device: no strategy)."""
  import tensorflow as tf2
  gpus = tf2.config.list_physical_devices("GPU")
  return ["/device:GPU:%d" % i for i in range(len(gpus))] if len(gpus) > 1 else []


class Cluster(object):
  """The strategy, Session target and roles of this process for a Layout.

  strategy is None for one device (the single-device graph, unchanged).  is_chief: task 0,
  the only process that writes the run folder.  session_config(config) adds what the
  collectives need to a ConfigProto.
  """

  def __init__(self, layout):
    self.layout = layout
    self.workers = list(layout.workers)
    self.task_index = layout.task_index
    self.num_workers = max(1, len(self.workers))
    self.is_chief = self.task_index == 0
    self.server = None
    self.target = ""
    devices = list(layout.devices) or default_devices()
    if self.workers:
      resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
          tf.train.ClusterSpec({"worker": self.workers}), task_type="worker",
          task_id=self.task_index, rpc_layer="grpc")
      self.strategy = tf.distribute.experimental.MultiWorkerMirroredStrategy(
          cluster_resolver=resolver)
    elif len(devices) > 1:
      self.strategy = tf.distribute.MirroredStrategy(devices)
    else:
      self.strategy = None
    if self.strategy is None:
      self.num_replicas, self.local_replicas = 1, 1
    else:
      self.num_replicas = self.strategy.num_replicas_in_sync
      self.local_replicas = len(self.strategy.extended.worker_devices)
    self.first_replica = self.task_index * self.local_replicas  # global index of local replica 0

  @property
  def distributed(self):
    return self.num_workers > 1

  def session_config(self, config):
    cpus = [name for name in self.layout.devices if ":CPU:" in name]
    if len(cpus) > 1:  # virtual CPU devices (configure_devices); a Session sees one unless told
      config.device_count["CPU"] = max(int(name.rsplit(":", 1)[1]) for name in cpus) + 1
    if self.distributed:
      config = self.strategy.update_config_proto(config)
    return config

  def start(self, config):
    """Start this worker's gRPC server (several workers); returns the Session target."""
    if self.distributed and self.server is None:
      try:
        self.server = tf.distribute.Server(
            tf.train.ClusterSpec({"worker": self.workers}), job_name="worker",
            task_index=self.task_index, config=config, start=True)
      except (tf.errors.OpError, RuntimeError, ValueError) as err:
        raise UserError("Could not start worker %d's server on %s (%s); is the port free?"
                        % (self.task_index, self.workers[self.task_index],
                           str(getattr(err, "message", err)).splitlines()[0]))
      self.target = self.server.target
      print(self.exposure())
    return self.target

  def exposure(self):
    """The line a worker prints once its server is up: TensorFlow binds it to 0.0.0.0 (every
    interface; its gRPC server takes no bind address) and authenticates nobody."""
    port = self.workers[self.task_index].rsplit(":", 1)[1]
    return (" [!] Worker %d's TensorFlow server listens on port %s of every network interface, "
            "without authentication: whoever can reach that port can run operations as this "
            "user. Run workers only inside a trusted network (README, \"Security\")."
            % (self.task_index, port))

  def describe(self):
    if self.distributed:
      return {"workers": self.workers, "task_index": self.task_index,
              "replicas": self.num_replicas,
              "devices_per_worker": self.local_replicas}
    if self.strategy is not None:
      return {"devices": list(self.strategy.extended.worker_devices),
              "replicas": self.num_replicas}
    return {"replicas": 1}

  def lost_worker(self, err):
    """Which worker an error of a collective names ('worker 1 (host:port)'), or a fallback."""
    text = str(getattr(err, "message", "") or err)
    tasks = [int(t) for t in re.findall(r"/job:worker/replica:\d+/task:(\d+)", text)]
    others = [t for t in tasks if t != self.task_index and t < len(self.workers)]
    if not others and self.num_workers == 2:
      others = [1 - self.task_index]
    if others:
      return "worker %d (%s)" % (others[0], self.workers[others[0]])
    return "a worker that stopped answering"
