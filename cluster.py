"""Where training runs: one device, several local devices, or several machines.

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
import threading
import time

import tensorflow.compat.v1 as tf

from utils import UserError, plural

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


# main.py's --join_timeout, --step_timeout and --gather_gradients defaults, stated here once (the
# flags take them from here), and a Layout's for code that builds one without the flags.
LAYOUT_DEFAULTS = {"join_timeout": 300, "step_timeout": 45, "gather_gradients": True}

Layout = collections.namedtuple("Layout", ["workers", "task_index", "devices", "join_timeout",
                                           "step_timeout", "gather_gradients"],
                                defaults=(LAYOUT_DEFAULTS["join_timeout"],
                                          LAYOUT_DEFAULTS["step_timeout"],
                                          LAYOUT_DEFAULTS["gather_gradients"]))
Layout.__doc__ = """workers: the cluster's host:port list ([] for one process); task_index: this
process's place in it (0, the chief, for one process); devices: local device names ([] for the
default single device).  Several workers bound every wait on each other: join_timeout seconds
for all to start and join (and for the first step, which includes graph optimisation),
step_timeout seconds for each later step, after which a worker that stopped answering is named.
gather_gradients: several workers compute the large linear layers' weight gradients from
all-gathered factors (ops.Gathering; fewer bytes); False all-reduces them, for workers whose
machines might round the same product differently (different CPU or GPU kinds)."""


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


def accepts(address, timeout=1.0):
  """Whether the worker at host:port accepts a TCP connection now (connected, then closed at
  once): True, False when it is refused (nothing listens there), None when there is no answer
  (an unknown or unreachable host, a timeout)."""
  host, port = address.rsplit(":", 1)
  try:
    socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    return True
  except ConnectionRefusedError:
    return False
  except (OSError, ValueError):
    return None


def worker_names(workers, indices, first=False):
  """'worker 1 (127.0.0.1:2223)', 'workers 1 (...) and 2 (...)'; 'Worker ...' if first."""
  names = ["%d (%s)" % (i, workers[i]) for i in indices]
  text = ("worker " + names[0] if len(names) == 1
          else "workers %s and %s" % (", ".join(names[:-1]), names[-1]))
  return text[0].upper() + text[1:] if first else text


class JoinWait(object):
  """Several workers waiting for each other to start and join, within --join_timeout counted
  from this worker's server start: every REPORT_EVERY seconds a line names the workers awaited,
  and a worker whose port accepted connections and then refuses them has stopped, which is said
  in seconds rather than at the deadline.

  begin() restarts the clock at the server's start and tries the other workers' ports in a
  thread (watch()) while the graph is built; until_reachable() waits until all accept; during()
  runs the first collective with the time left while the thread tries them again, after which
  the wait is `finished`.  probe, clock, sleep and say stand for accepts, time.monotonic,
  time.sleep and print (tests fake them)."""

  REPORT_EVERY = 10
  POLL_EVERY = 1.0

  def __init__(self, workers, task_index, timeout, probe=accepts, clock=time.monotonic,
               sleep=time.sleep, say=None):
    self.workers, self.timeout = list(workers), timeout
    self.others = [i for i in range(len(self.workers)) if i != task_index]
    self.probe, self.clock, self.sleep = probe, clock, sleep
    self.say = say or (lambda line: print(line, flush=True))
    self.started, self.reported = clock(), 0
    self.seen = set()  # the workers whose port accepted
    self.stopped = None  # the UserError of a worker that stopped, found by the thread
    self.watcher = None
    self.finished = False  # during() has run: a later join is a wait of its own

  def begin(self):
    """The wait starts now (the server's start): its clock, and watch()'s thread."""
    self.started = self.clock()
    self.watch()

  def elapsed(self):
    return self.clock() - self.started

  def remaining(self):
    return max(0.0, self.timeout - self.elapsed())

  def check(self):
    """Try every other worker's port once: the ones that do not accept yet; a UserError for
    one that accepted before and refuses now."""
    awaited = []
    for i in self.others:
      answer = self.probe(self.workers[i])
      if answer:
        self.seen.add(i)
        continue
      if answer is False and i in self.seen:
        raise UserError("%s stopped before it joined: its port accepted connections, then "
                        "refused them %d s into the wait; start every worker again with the "
                        "same flags." % (worker_names(self.workers, [i], True), self.elapsed()))
      awaited.append(i)
    return awaited

  def report(self, awaited):
    """Say who is awaited, once every REPORT_EVERY seconds."""
    elapsed = self.elapsed()
    if awaited and elapsed >= self.reported + self.REPORT_EVERY:
      self.reported = elapsed - elapsed % self.REPORT_EVERY
      self.say(" [*] Waiting for %s to join: %d s of %d"
               % (worker_names(self.workers, awaited), elapsed, self.timeout))

  def watch(self, cancel=None, joining=False):
    """Try the other workers' ports in a thread, every POLL_EVERY seconds, until unwatch():
    a worker that stopped is kept in self.stopped (and cancel() called); joining: the
    collective is running, so every other worker is awaited, not only the unreachable."""
    done = threading.Event()

    def loop():
      while not done.wait(self.POLL_EVERY):
        try:
          awaited = self.check()
        except UserError as err:
          if not done.is_set():  # (not once the collective is over: all joined it)
            self.stopped = err
            if cancel is not None:
              cancel()
          return
        self.report(self.others if joining else awaited)

    self.watcher = (threading.Thread(target=loop, daemon=True), done)
    self.watcher[0].start()

  def unwatch(self):
    """End watch()'s thread; a worker that stopped meanwhile is its UserError."""
    if self.watcher is not None:
      thread, done = self.watcher
      done.set()
      thread.join(timeout=30)
      self.watcher = None
    if self.stopped is not None:
      raise self.stopped

  def until_reachable(self):
    """Return once every other worker's port accepts; a UserError at the deadline, or as
    soon as a worker stopped."""
    self.unwatch()
    while True:
      awaited = self.check()
      if not awaited:
        return
      if self.elapsed() >= self.timeout:
        raise UserError("%s did not start within %d s (--join_timeout); start %s with the same "
                        "flags, or raise --join_timeout."
                        % (worker_names(self.workers, awaited, True), self.timeout,
                           "it" if len(awaited) == 1 else "them"))
      self.report(awaited)
      self.sleep(min(self.POLL_EVERY, self.remaining()))

  def during(self, run, cancel=None):
    """run(seconds left, at least 1): the first collective, which returns once every worker
    joined it, while watch() tries the other workers' ports; a worker that stopped ends the
    wait (cancel(), which makes run raise) with its UserError, run's deadline with one naming
    the workers that did not join."""
    self.watch(cancel, joining=True)
    error = None
    try:
      result = run(max(1, int(round(self.remaining()))))
    except Exception as err:  # what it means is decided below, once the thread has ended
      error = err
    self.unwatch()
    self.finished = True
    if isinstance(error, LOST_WORKER_ERRORS):
      self.check()  # a worker that stopped since the thread last looked
      if isinstance(error, tf.errors.DeadlineExceededError):
        raise UserError("%s started but did not join within %d s (--join_timeout); check that "
                        "every worker runs with the same flags, or raise --join_timeout."
                        % (worker_names(self.workers, self.others, True), self.timeout))
    if error is not None:
      raise error
    return result


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


def check_timeouts(join_timeout, step_timeout):
  """A one-sentence UserError unless both are positive whole numbers of seconds."""
  for name, value in (("join_timeout", join_timeout), ("step_timeout", step_timeout)):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
      raise UserError("--%s must be a positive number, not %s." % (name, value))


def parse_layout(devices="", worker_hosts="", task_index=None, environ=None,
                 join_timeout=LAYOUT_DEFAULTS["join_timeout"],
                 step_timeout=LAYOUT_DEFAULTS["step_timeout"],
                 gather_gradients=LAYOUT_DEFAULTS["gather_gradients"]):
  """The Layout asked for by --devices, --worker_hosts/--task_index or TF_CONFIG, with the
  --join_timeout and --step_timeout of several workers.

  TF_CONFIG is TensorFlow's own convention ({"cluster": {"worker": [...]}, "task":
  {"type": "worker", "index": N}}); the flags build the same cluster and win over it.
  """
  environ = os.environ if environ is None else environ
  check_timeouts(join_timeout, step_timeout)
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
  return Layout(workers, index, device_names, join_timeout, step_timeout, bool(gather_gradients))


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


def decide_gathers(layout, num_replicas, override=None):
  """Whether a run's replicas gather the large linear layers' weight gradients (ops.Gathering),
  decided here once: never with one replica; else `override` where given; else with several
  workers, unless --nogather_gradients (across machines the network is what limits; on one
  machine the devices' all-reduce costs less than the larger products)."""
  if num_replicas < 2:
    return False
  if override is not None:
    return bool(override)
  return len(layout.workers) > 1 and bool(layout.gather_gradients)


class Cluster(object):
  """The strategy, Session target and roles of this process for a Layout.

  strategy: tf.distribute's, TensorFlow's default one for one device (replicas.Replication
  then leaves the graph as the original's).  gathers: whether the replicas gather the large
  linear layers' weight gradients (decide_gathers, with `gathers` to override it where given:
  tests measure gathering between local devices).  is_chief: task 0,
  the only process that writes the run folder.  session_config(config) adds what the
  collectives need to a ConfigProto.
  """

  def __init__(self, layout, gathers=None):
    self.layout = layout
    self.workers = list(layout.workers)
    self.task_index = layout.task_index
    self.num_workers = max(1, len(self.workers))
    self.is_chief = self.task_index == 0
    self.join_timeout, self.step_timeout = layout.join_timeout, layout.step_timeout
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
      self.strategy = tf.distribute.get_strategy()  # the default: one device
    self.num_replicas = self.strategy.num_replicas_in_sync
    self.local_replicas = self.num_replicas // self.num_workers
    self.gathers = decide_gathers(layout, self.num_replicas, gathers)
    self.first_replica = self.task_index * self.local_replicas  # global index of local replica 0
    # the other workers, watched from the server's start (start) until they joined (joined)
    self.join_wait = (JoinWait(self.workers, self.task_index, self.join_timeout)
                      if self.distributed else None)

  def joined(self, run, cancel):
    """run(seconds): the first collective, run once every other worker's server answers and
    bounded by what is left of --join_timeout, saying meanwhile who is awaited (JoinWait).
    cancel() ends run early when a worker stopped; only the chief uses it: it leads the
    collective and TensorFlow tells it nothing, while the others hear of the chief's end."""
    wait = self.join_wait
    if wait.finished:  # a second join of this process: a wait of its own
      wait = JoinWait(self.workers, self.task_index, self.join_timeout)
    wait.until_reachable()
    return wait.during(run, cancel if self.is_chief else None)

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
      self.join_wait.begin()
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
    if self.num_replicas > 1:
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
