"""The training loop (docs/ARCHITECTURE.md): resume, epochs, each replica's slice of the epoch's
order, prefetch, steps, signals, the NaN stop, sample grids, checkpoints and progress.

The loop is the same for one device, several local devices and several workers: what differs
is chosen once per process in roles.py (how it starts and when it stops; what it writes).
"""
import collections
import contextlib
import os
import signal
import sys
import threading
import time

import numpy as np
from tqdm import tqdm

from checkpoints import describe_removed
from dataset import prefetch
from step import batch_z, feed_dict, run_iteration
from utils import UserError, plural

# What the loop is given (model.DCGAN.job builds it; the loop sees nothing else of a model):
# the Session; the step as values (step.GANTrainOps, step.Feeds); the variables' initializer;
# this process's roles.py coordination and replicas.Replication; the seed asked for (several
# workers agree on the chief's in coordination.start); the Latent z; the
# checkpoints.Checkpoints; the sampler tensor, its pixel range and the fixed (z, labels) of the
# sample grids; the data (the dataset package); {name: value} of what shapes the model and data
# (roles.agreed_fields); the settings.Folders; and the learning rate a config does not set.
Job = collections.namedtuple("Job", [
    "sess", "train_ops", "feeds", "init_op", "coordination", "replication", "seed", "latent",
    "checkpoints", "sampler", "value_range", "sample", "data", "fields", "folders",
    "learning_rate"])
Latent = collections.namedtuple("Latent", ["z_dim", "z_dist", "batch_size"])

# The loop's settings and their defaults, stated once: train(job, config) takes each from
# config when it has it, and main.py's flags take their defaults from here.  learning_rate
# defaults to the job's; the folders are the job's (the model's, settings.Folders).
TRAIN_DEFAULTS = {"epoch": 25, "train_size": np.inf, "sample_freq": 200, "ckpt_freq": 200,
                  "summary_freq": 10, "data_workers": 2}
TrainSettings = collections.namedtuple(
    "TrainSettings", sorted(TRAIN_DEFAULTS) + ["learning_rate", "checkpoint_dir", "sample_dir"])

# What a call of train() did: the counter it ended at, the steps it ran, their seconds, and
# {part: seconds} of the loop (LOOP_PARTS; "data": waiting for batches).
TrainResult = collections.namedtuple("TrainResult", ["counter", "steps", "seconds", "spent"])
# The parts of the loop timed apart (Stopwatch), as its closing line names them: the training
# step's sess.runs; waiting for a batch; TensorBoard events; the progress bar and lines; sample
# grids; checkpoints (with their health check).  What is left of the loop's time (z, feeds,
# each epoch's order and prefetch start, signals) is "the rest".
LOOP_PARTS = collections.OrderedDict([
    ("step", "the training step"), ("data", "waiting for data"), ("summaries", "summaries"),
    ("progress", "progress lines"), ("grids", "sample grids"), ("checkpoints", "checkpoints")])


def settings_from(config, learning_rate, folders):
  """The TrainSettings config asks for: each of its attributes that config has, else the
  default (TRAIN_DEFAULTS, or the model's own learning rate given here), in the model's
  settings.Folders."""
  defaults = dict(TRAIN_DEFAULTS, learning_rate=learning_rate)
  return TrainSettings(checkpoint_dir=folders.checkpoint_dir, sample_dir=folders.sample_dir,
                       **{name: getattr(config, name, defaults[name]) for name in defaults})


def batches_per_epoch(num_examples, train_size, batch_size, num_replicas=1, note=""):
  """Steps in an epoch, as the original counted them (images // (batch_size x num_replicas));
  a UserError if not even one (note: what the data layer left out, said after the count)."""
  steps = int(min(num_examples, train_size) // (batch_size * num_replicas))
  if steps < 1:
    per_step = ("one batch of %d" % batch_size if num_replicas == 1 else
                "one step of %d replicas x %d" % (num_replicas, batch_size))
    if train_size < num_examples:  # the user's limit is short of a step (the data too?)
      fix = ("raise --train_size or lower --batch_size"
             if num_examples >= batch_size * num_replicas else "lower --batch_size")
      raise UserError("--train_size %g uses %d of the dataset's %d images%s, fewer than %s; %s."
                      % (train_size, int(train_size), num_examples, note, per_step, fix))
    raise UserError("The dataset holds %d images%s, fewer than %s; lower --batch_size."
                    % (num_examples, note, per_step))
  return steps


class TrainingInterrupted(Exception):
  """SIGINT or SIGTERM stopped training after a step; a checkpoint was saved."""

  def __init__(self, signum, counter, path):
    Exception.__init__(self, signum, counter, path)
    self.signum, self.counter, self.path = signum, counter, path


class StopRequest(object):
  """SIGINT, SIGTERM or SIGHUP (a closed terminal) during training: the first asks to stop
  after the current step and save; a second SIGINT or SIGTERM exits at once.  Checkpoints and
  grids are written by rename, so exiting at any moment leaves the last complete checkpoint
  loadable.  Nothing here depends on printing: where the output's reader is gone (a pipe whose
  reader died with the same Ctrl-C, a closed terminal), the messages are dropped and the stop
  goes on.  where() names the last checkpoint ('none' before the first); abandon() removes what
  a save the second signal cuts short had written, [(name, bytes)] of it."""

  SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
  QUIT_AT_ONCE = (signal.SIGINT, signal.SIGTERM)  # as the second signal

  def __init__(self, where, abandon=list):
    self.signum = None
    self.where, self.abandon = where, abandon
    self.previous = {}
    if threading.current_thread() is threading.main_thread():
      for signum in self.SIGNALS:
        self.previous[signum] = signal.signal(signum, self.handle)

  def handle(self, signum, frame):
    if self.signum is None:
      self.signum = signum
      say(" [!] %s: stopping after this step and saving a checkpoint (send it again to quit at "
          "once)" % signal.Signals(signum).name)
    elif signum in self.QUIT_AT_ONCE:
      try:
        removed = self.abandon()  # a save this signal cut short (signals come between its steps)
      except OSError:
        removed = []  # exiting matters more
      where = self.where()
      left = ("no checkpoint was written yet, so nothing of this run can be resumed"
              if where == "none" else "the last checkpoint, %s, stays loadable" % where)
      cut = (" (removed what the save in progress left unfinished: %s)"
             % describe_removed(removed) if removed else "")
      say("\n [!] Second signal: exiting now without saving%s; %s.\n" % (cut, left),
          file=sys.stderr)
      os._exit(128 + signum)

  def restore(self):
    for signum, handler in self.previous.items():
      signal.signal(signum, handler)
    self.previous = {}

  @property
  def local(self):
    return self.signum or 0


def say(text, file=None):
  """Print a line between progress bars (on stdout unless file is given) where printing still
  works; never raise for it."""
  file = file or sys.stdout
  try:
    tqdm.write(text, file=file)
    file.flush()
  except (OSError, ValueError):
    pass


# ----------------------------------------------------------------------------
# the loop


class Stopwatch(object):
  """Seconds per part of the loop (LOOP_PARTS), summed over a call of train()."""

  def __init__(self):
    self.seconds = dict.fromkeys(LOOP_PARTS, 0.0)

  @contextlib.contextmanager
  def part(self, name):
    start = time.perf_counter()
    try:
      yield
    finally:
      self.seconds[name] += time.perf_counter() - start


def spent_line(steps, seconds, spent):
  """The closing line: the loop's seconds per step and each part's share of them."""
  shares = ["%s %.1f%%" % (LOOP_PARTS[name], 100.0 * spent[name] / max(seconds, 1e-9))
            for name in LOOP_PARTS]
  rest = seconds - sum(spent.values())
  return (" [*] %s in %.1f s, %.3f s each: %s, the rest %.1f%%"
          % (plural(steps, "step"), seconds, seconds / max(steps, 1), ", ".join(shares),
             100.0 * rest / max(seconds, 1e-9)))


class Progress(object):
  """Where the loop is, the one record it changes as it goes: read by the handlers around it
  (a lost worker's step, the last save); its Stopwatch times the loop's parts."""

  def __init__(self):
    self.counter, self.saved_at, self.feed = 0, None, None
    self.ran, self.d_loss, self.g_loss = False, None, None
    self.clock = Stopwatch()


# What one call of the loop holds fixed: the Job, its TrainSettings, the seed of the run (the
# chief's, agreed), the writes (roles.py), the StopRequest, steps per epoch, the start time.
Loop = collections.namedtuple("Loop", ["job", "settings", "seed", "writes", "stop",
                                       "batch_idxs", "start_time"])


def train(job, config, prepare=None):
  """Train job for config's epochs, resuming from its checkpoint folder; a TrainResult.

  prepare(seed), if given, runs once before the first step with the run's seed (main.py
  writes the run folder there): on several workers after they agreed, so a refused start
  writes nothing.  On several workers every worker calls this with the same flags; only the
  chief writes.  A lost worker stops the others with a UserError naming it.
  """
  settings = settings_from(config, job.learning_rate, job.folders)
  coordinate = job.coordination
  progress = Progress()
  try:
    loaded, counter, seed = coordinate.start(job, settings, prepare)
    return _train(job, settings, seed, loaded, counter, progress)
  except coordinate.lost_worker_errors as err:
    coordinate.lost(err, progress.counter, settings)


def _train(job, settings, seed, loaded, counter, progress):
  """The epochs from the loaded counter on, then the last save; a TrainResult."""
  data = job.data
  batch_idxs = batches_per_epoch(len(data), settings.train_size, job.latent.batch_size,
                                 job.replication.num_replicas)
  if loaded:
    print(" [*] Load SUCCESS: resuming at counter %d" % counter)
  else:
    print(" [*] No checkpoint yet in %s: training from scratch" % settings.checkpoint_dir)
    counter = 1
  progress.counter = counter
  progress.saved_at = counter if loaded else None
  start_epoch, start_idx = divmod(counter - 1, batch_idxs)
  if start_epoch >= settings.epoch:
    print(" [*] The checkpoint has trained %s already, as many as --epoch %d asks: nothing to "
          "train." % (plural(start_epoch, "epoch"), settings.epoch))
    return TrainResult(counter, 0, 0.0, dict(progress.clock.seconds))
  writes = job.coordination.writes(job, settings, loaded)
  loop = Loop(job, settings, seed, writes, StopRequest(writes.where, writes.abandon), batch_idxs,
              time.time())
  try:
    for epoch in range(start_epoch, settings.epoch):
      stopping = _epoch(loop, progress, epoch, start_idx if epoch == start_epoch else 0)
      if stopping:
        if progress.saved_at != progress.counter and progress.feed is not None:
          writes.checkpoint(progress.counter, progress.feed)  # the signal came after the check
        signum = stopping if stopping in [int(s) for s in StopRequest.SIGNALS] else signal.SIGTERM
        raise TrainingInterrupted(signum, progress.counter, writes.where())
  finally:
    loop.stop.restore()
    writes.close()
    if getattr(data, "cache", None) is not None:
      data.cache.flush()
  counter, clock = progress.counter, progress.clock
  steps = counter - 1 - (start_epoch * batch_idxs + start_idx)
  seconds = time.time() - loop.start_time
  if data.report():
    print(" [!] " + data.report())
  if progress.saved_at != counter and progress.feed is not None:
    with clock.part("checkpoints"):
      writes.checkpoint(counter, progress.feed)
  if steps:
    print(spent_line(steps, time.time() - loop.start_time, clock.seconds))
  print(writes.done(counter))
  return TrainResult(counter, steps, seconds, dict(clock.seconds))


def _epoch(loop, progress, epoch, first):
  """One epoch from batch index `first`; the signal to stop for (0: none)."""
  job, settings, writes = loop.job, loop.settings, loop.writes
  local_replicas, first_replica = job.replication.local_replicas, job.replication.first_replica
  batch_size = job.latent.batch_size
  step_images = batch_size * job.replication.num_replicas
  # Every replica takes its own slice of the epoch's permutation; this worker's replicas take
  # local_replicas x batch_size images of each step's batch_size x num_replicas.
  order = np.random.default_rng([loop.seed, 0, epoch]).permutation(len(job.data))
  mine = slice(first_replica * batch_size, (first_replica + local_replicas) * batch_size)
  batches = prefetch(job.data, (order[idx * step_images:(idx + 1) * step_images][mine]
                                for idx in range(first, loop.batch_idxs)),
                     workers=settings.data_workers)
  bar = tqdm(total=loop.batch_idxs, initial=first, desc="epoch %d/%d" % (epoch, settings.epoch),
             unit="step", leave=False, disable=None)
  clock = progress.clock
  epoch_start, waited_before, stopping = time.time(), clock.seconds["data"], 0
  try:
    for idx in range(first, loop.batch_idxs):
      with clock.part("data"):
        batch_images, batch_labels = next(batches)
      stopping = _step(loop, progress, batch_images, batch_labels)
      with clock.part("progress"):
        bar.update(1)
        tqdm.write("[%8d Epoch:[%2d/%2d] [%4d/%4d] time: %4.4f, d_loss: %.8f, g_loss: %.8f"
                   % (progress.counter, epoch, settings.epoch, idx, loop.batch_idxs,
                      time.time() - loop.start_time, progress.d_loss, progress.g_loss))
      if progress.counter % settings.sample_freq == 0:
        with clock.part("grids"):
          writes.grid(progress.counter)
      if progress.counter % settings.ckpt_freq == 0 or stopping:
        with clock.part("checkpoints"):
          writes.checkpoint(progress.counter, progress.feed)
        progress.saved_at = progress.counter
      if stopping:
        return stopping
  finally:
    batches.close()
    bar.close()
  stopping = job.coordination.stop_between_epochs(loop.stop)
  if stopping:
    return stopping
  epoch_wait = clock.seconds["data"] - waited_before
  elapsed = time.time() - epoch_start
  print(" [*] Epoch %d: %s in %.1f s, %.1f%% of it waiting for data"
        % (epoch, plural(loop.batch_idxs - first, "step"), elapsed,
           100.0 * epoch_wait / max(elapsed, 1e-9)))
  with clock.part("grids"):
    writes.grid(progress.counter, unless_there=True)  # every epoch's end, so short runs have one
  return 0


def _step(loop, progress, images, labels):
  """One iteration on this batch; the signal to stop for after it (0: none)."""
  job, settings, writes, stop = loop.job, loop.settings, loop.writes, loop.stop
  counter, latent, replication = progress.counter, job.latent, job.replication
  z = batch_z(loop.seed, latent.z_dist, (latent.batch_size, latent.z_dim), counter,
              replication.first_replica, replication.local_replicas)
  progress.feed = feed_dict(job.feeds, z, labels, images, settings.learning_rate)
  # Summaries are fetched by every step (one executor per network run, however they are
  # written) and written at --summary_freq's cadence (and at step 1).
  summarize = writes.fetches_summaries
  with progress.clock.part("step"):
    step = run_iteration(job.sess, job.train_ops, progress.feed, summarize, job.coordination,
                         stop.local, first=not progress.ran)
  progress.ran = True
  stopping = job.coordination.stop_after(step, stop)
  losses = step.losses
  if step.diverged:
    own = np.isfinite([losses.d_loss_real, losses.d_loss_fake, losses.g_loss]).all()
    said = "d_loss %s, g_loss %s" % (losses.d_loss_real + losses.d_loss_fake, losses.g_loss)
    raise UserError("The losses became NaN or infinite at step %d (%s), so training stopped "
                    "without saving; the last good checkpoint is %s. Lower --learning_rate to "
                    "train on." % (counter, "on another worker; this one's " + said if own
                                   else said, writes.where()))
  if counter % settings.summary_freq == 0 or counter == 1:
    with progress.clock.part("summaries"):
      writes.summaries(step.summaries, counter)
  for net, info in step.skipped:
    tqdm.write(" [!] step %d: %s's float16 gradients overflowed, so its update was skipped; "
               "loss scale lowered to %g (%d %s updates skipped so far)"
               % (counter, net, info["scale"], info["skipped"], net))
  progress.counter = counter + 1
  progress.d_loss, progress.g_loss = losses.d_loss_real + losses.d_loss_fake, losses.g_loss
  return stopping
