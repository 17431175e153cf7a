"""What differs between the processes of a run, chosen once per process (docs/ARCHITECTURE.md):
how it starts and when it stops (one process, or one of several workers that agree and vote),
and what it writes (the chief writes the run folder's events, grids and checkpoints; the other
workers get an object that writes nothing).  The training loop (training.py) asks these
objects and tests none of it itself.
"""
import os
import signal
import zlib

import numpy as np

import cluster as cluster_module  # (decides oneDNN before TensorFlow loads)
import tensorflow.compat.v1 as tf
from checkpoints import (checkpoint_counter, checkpoint_prefix, describe_removed,
                         last_checkpoint, remove_abandoned)
from step import feed_dict
from utils import UserError, save_sample_grid


class OneProcess(object):
  """One process (one device or several local ones): nothing to agree on with anyone, so
  nothing of this enters the graph."""

  lost_worker_errors = ()  # nothing to lose, so nothing is caught and no lost() is asked

  def build_first(self):
    pass

  def build_votes(self, g_loss):
    pass

  def build_last(self, variables):
    pass

  def run_options(self, first=False):
    return None

  def vote_fetches(self):
    return {}

  def vote_feed(self, feed, stop, d_diverged):
    return feed

  def tally(self, out, stop, diverged):
    """(stop votes, processes whose losses diverged) of a step: this process's own."""
    return stop, int(diverged)

  def start(self, job, settings, prepare=None):
    """(loaded a checkpoint, its counter, the run's seed) of a training.Job: prepare(seed),
    initialise, restore the newest checkpoint."""
    if prepare is not None:
      prepare(job.seed)
    job.sess.run(job.init_op)
    loaded, counter = job.checkpoints.restore(job.sess, settings.checkpoint_dir)
    return loaded, counter, job.seed

  def stop_after(self, step, stop):
    """The signal to stop for after a step: this process's own, whenever it came."""
    return stop.local

  def stop_between_epochs(self, stop):
    return stop.local

  def writes(self, job, settings, loaded):
    return RunWrites(job, settings, loaded)


class SeveralWorkers(object):
  """Several workers: they check they were started alike, join, vote each step on stopping
  and on diverged losses, and stop after the same step.  Their collectives are built by
  build_first (before anything else in the graph), build_votes and build_last, once each and
  in that order (asserted: every worker must build the same collectives in the same order)."""

  lost_worker_errors = cluster_module.LOST_WORKER_ERRORS

  def __init__(self, cluster, replication, seed_given):
    self.cluster, self.replication = cluster, replication
    self.seed_given = seed_given  # False: this worker takes the chief's seed

  def build_first(self):
    """What the workers must agree on, all-reduced: first in the graph, so it is the same
    collective on every worker whatever else differs (docs/ARCHITECTURE.md, invariant 5).

    agree_in (float64, fed by agreement()): per AGREED_FIELDS a weight w (1, or 0 where a worker
    leaves it to the chief), w * hash, w * hash^2 and the chief's hash, then the chief's seed,
    counter and whether it loaded a checkpoint."""
    assert not hasattr(self, "agreed"), "build_first runs once"
    self.agree_in = tf.placeholder(tf.float64, [4 * len(AGREED_FIELDS) + 3],
                                   name='cluster/agree')
    self.agreed = self.replication.all_reduce_sum(
        lambda is_first_local: tf.where(is_first_local, self.agree_in,
                                        tf.zeros_like(self.agree_in)))

  def build_votes(self, g_loss):
    """Each step's votes, summed over the workers by its last run: [1 if this worker got a
    signal to stop, 1 if that signal was SIGINT, 1 if its losses were NaN or infinite] (counts,
    not signal numbers, so that they add up), so that all stop after the same step
    (stop_signal) and report a NaN on any of them as a NaN."""
    assert hasattr(self, "agreed") and not hasattr(self, "votes"), (
        "build_votes runs once, after build_first")
    self.votes_in = tf.placeholder_with_default(tf.zeros([3]), [3], name='cluster/stop')
    own = self.votes_in + tf.stack(
        [0.0, 0.0, tf.cast(tf.logical_not(tf.is_finite(g_loss)), tf.float32)])
    self.votes = self.replication.all_reduce_sum(
        lambda is_first_local: tf.where(is_first_local, own, tf.zeros_like(own)))

  def build_last(self, variables):
    """broadcast_op: every copy of every variable set to the chief's first replica's value
    (after the chief restored a checkpoint; the other workers need not see its files)."""
    assert hasattr(self, "votes") and not hasattr(self, "broadcast_op"), (
        "build_last runs once, after build_votes")
    self.broadcast_op = self.replication.broadcast(variables, 'cluster/broadcast')

  def run_options(self, first=False):
    """Every run bounded, so a worker that stops answering is noticed: by --step_timeout, or
    before the first step is done (joining, graph optimisation) --join_timeout if longer."""
    cluster = self.cluster
    seconds = max(cluster.join_timeout, cluster.step_timeout) if first else cluster.step_timeout
    return tf.RunOptions(timeout_in_ms=1000 * seconds)

  def vote_fetches(self):
    return {"votes": self.votes}

  def vote_feed(self, feed, stop, d_diverged):
    """stop: the signal number this worker votes with (0: none)."""
    feed = dict(feed)
    feed[self.votes_in] = [float(stop != 0), float(stop == signal.SIGINT), float(d_diverged)]
    return feed

  def tally(self, out, stop, diverged):
    """(the signal to stop for after this step, 0 for none; workers whose losses diverged),
    from the votes summed over the workers; stop is the signal this worker voted with."""
    stopping, interrupted, diverged = (int(round(v)) for v in out["votes"])
    return stop_signal(stop, stopping, interrupted), diverged

  def agreement(self, sess, fields, seed, counter, loaded):
    """(seed, counter, loaded) of the chief, after checking that every worker was started
    alike; a one-sentence UserError naming the first field that differs.

    fields: {name: value or None} for AGREED_FIELDS (None: this worker takes the chief's).
    """
    chief = self.cluster.is_chief
    vector = []
    for name in AGREED_FIELDS:
      value = fields[name]
      weight = 0.0 if (value is None and not chief) else 1.0
      h = float(field_hash(value))
      vector += [weight, weight * h, weight * h * h, h if chief else 0.0]
    vector += [seed if chief else 0, counter if chief else 0, float(loaded) if chief else 0]
    feed = {self.agree_in: np.array(vector, np.float64)}
    total = self.cluster.joined(
        lambda seconds: sess.run(self.agreed, feed,
                                 options=tf.RunOptions(timeout_in_ms=1000 * seconds)),
        cancel=sess.close)
    for i, name in enumerate(AGREED_FIELDS):
      weight, h, h2, chief_h = total[4 * i:4 * i + 4]
      if h != weight * chief_h or h2 != weight * chief_h * chief_h:
        raise UserError("The workers were started with different %s, so they would build "
                        "different graphs or data; start every worker with the same flags (this "
                        "one has %s)." % (AGREED_FIELD_NAMES.get(name, "--" + name), fields[name]))
    seed, counter, loaded = total[-3:]
    return int(seed), int(counter), bool(loaded)

  def join(self, job, settings):
    """Before the first step: (loaded a checkpoint, counter, the chief's seed).

    The chief finds its checkpoint; the workers check they were started alike (a UserError
    otherwise) and take the chief's seed and counter; all initialise (TensorFlow broadcasts
    the chief's initial values); the chief restores and its variables are broadcast.
    """
    chief, path, sess = self.cluster.is_chief, None, job.sess
    if chief:
      path, _ = job.checkpoints.check(settings.checkpoint_dir)
    fields = agreed_fields(job, settings)
    if not self.seed_given:
      fields["seed"] = None
    seed, counter, loaded = self.agreement(
        sess, fields, job.seed, checkpoint_counter(path) if path else 0, path is not None)
    sess.run(job.init_op, options=self.run_options(first=True))
    if chief and loaded:
      job.checkpoints.restore(sess, settings.checkpoint_dir)
    if loaded:
      sess.run(self.broadcast_op, options=self.run_options(first=True))
    return loaded, counter, seed

  def start(self, job, settings, prepare=None):
    """(loaded a checkpoint, its counter, the run's seed), agreed by every worker (join); then
    prepare(seed), so that a refused start writes nothing."""
    loaded, counter, seed = self.join(job, settings)
    if prepare is not None:
      prepare(seed)
    return loaded, counter, seed

  def stop_after(self, step, stop):
    """The signal to stop for, from every worker's vote in the step's last run (tally): all
    stop after the same step."""
    return step.stop_votes

  def stop_between_epochs(self, stop):
    return 0  # a signal that came after the last vote rides on the next step's

  def writes(self, job, settings, loaded):
    """The chief writes the run folder; the others nothing."""
    return RunWrites(job, settings, loaded) if self.cluster.is_chief else NoWrites()

  def lost(self, err, counter, settings):
    """A peer gone or silent: one sentence naming it, the step and the last checkpoint."""
    cluster = self.cluster
    path = last_checkpoint(settings.checkpoint_dir) if cluster.is_chief else "the chief's"
    if path == "none":  # (checkpoints.last_checkpoint's answer when there is none)
      then = ("no checkpoint was written yet, so the same commands on every worker start the "
              "run again from scratch")
    else:
      then = ("the last checkpoint is %s: start the same commands on every worker to resume "
              "from it" % path)
    raise UserError("Lost %s at step %d (%s), so training stopped on this worker too; %s."
                    % (cluster.lost_worker(err), max(counter, 1),
                       cluster_module.error_summary(err), then))


def stop_signal(own, stopping, interrupted):
  """The signal a worker stops for after a step's vote: its own (own: the signal number it
  voted with, 0 for none); else, if any worker voted to stop (stopping: how many did), SIGINT
  if any of them got SIGINT (interrupted: how many), else SIGTERM; 0 if no worker voted."""
  if own:
    return int(own)
  if not stopping:
    return 0
  return int(signal.SIGINT if interrupted else signal.SIGTERM)


def coordination(cluster, replication, seed_given=True):
  """How this process works with the others of its run: a cluster.Cluster of several workers
  (their collectives built on `replication`), or one process (cluster None or one worker)."""
  if cluster is not None and cluster.distributed:
    return SeveralWorkers(cluster, replication, seed_given)
  return OneProcess()


# What every worker must have been started with alike (SeveralWorkers.agreement): the flags
# that shape the graph or the data, and the data itself (its size).
AGREED_FIELDS = ("dataset", "images", "batch_size", "input_height", "input_width",
                 "output_height", "output_width", "crop", "c_dim", "y_dim", "z_dim", "z_dist",
                 "filters", "train_size", "epoch", "learning_rate", "beta1", "precision", "seed",
                 "replicas", "gathered")
AGREED_FIELD_NAMES = {"images": "datasets (their numbers of images differ)",
                      "c_dim": "image channels", "y_dim": "labels",
                      "filters": "network sizes", "replicas": "numbers of local devices",
                      "gathered": "--gather_gradients"}


def field_hash(value):
  """A 20-bit hash of a value's repr: small enough that sums of its square stay exact in
  float64 for thousands of workers."""
  return zlib.crc32(repr(value).encode("utf-8")) & 0xFFFFF


def agreed_fields(job, settings):
  """{name: value} of AGREED_FIELDS for this worker: the model's (job.fields) and the run's."""
  return dict(job.fields, images=len(job.data), train_size=float(settings.train_size),
              epoch=settings.epoch, learning_rate=float(settings.learning_rate), seed=job.seed)


class RunWrites(object):
  """What only the chief writes: TensorBoard events, sample grids, checkpoints."""

  fetches_summaries = True

  def __init__(self, job, settings, loaded):
    self.job, self.settings = job, settings
    os.makedirs(settings.sample_dir, exist_ok=True)
    removed = remove_abandoned(settings.checkpoint_dir)
    if removed:
      print(" [*] Removed what an unfinished save had left in %s: %s"
            % (settings.checkpoint_dir, describe_removed(removed)))
    if loaded:
      job.checkpoints.keep_track(settings.checkpoint_dir)  # --max_to_keep counts old ones
    # The graph goes into the events once, when the run starts (TensorBoard warns of a run
    # with several graph events), not again on every resume.
    self.events = tf.summary.FileWriter(os.path.join(job.folders.out_dir, "logs"),
                                        None if loaded else job.sess.graph)

  def summaries(self, summaries, counter):
    for summary in summaries:
      self.events.add_summary(summary, counter)

  def grid(self, counter, unless_there=False):
    path = os.path.join(self.settings.sample_dir, "train_{:08d}.png".format(counter))
    if not (unless_there and os.path.exists(path)):
      job = self.job
      save_sample_grid(job.sess, job.sampler, feed_dict(job.feeds, *job.sample), path,
                       job.value_range, job.sample[1])

  def checkpoint(self, counter, feed):
    """Save a checkpoint if the model is still healthy (Checkpoints.save_checked): the sampler
    and D's inference pass see the grids' z and labels, and as many of the step's images
    (several replicas feed replicas x batch_size of them, one replica's worth of z)."""
    job = self.job
    z, labels = job.sample
    images = feed[job.feeds.inputs]
    n = min(len(images), len(z))
    check = feed_dict(job.feeds, z[:n], None if labels is None else labels[:n], images[:n])
    job.checkpoints.save_checked(job.sess, self.settings.checkpoint_dir,
                                 checkpoint_prefix(job.latent.batch_size), counter, check)

  def where(self):
    return last_checkpoint(self.settings.checkpoint_dir)

  def abandon(self):
    """Exiting in the middle of a save: remove what it had written (checkpoints.remove_abandoned);
    [(name, bytes)] removed."""
    return remove_abandoned(self.settings.checkpoint_dir)

  def close(self):
    self.events.close()

  def done(self, counter):
    return (" [*] Trained to counter %d; checkpoint in %s, samples in %s"
            % (counter, self.settings.checkpoint_dir, self.settings.sample_dir))


class NoWrites(object):
  """A worker other than the chief: the chief writes everything."""

  fetches_summaries = False

  def summaries(self, summaries, counter):
    pass

  def grid(self, counter, unless_there=False):
    pass

  def checkpoint(self, counter, feed):
    pass

  def where(self):
    return "written by the chief (worker 0)"

  def abandon(self):
    return []

  def close(self):
    pass

  def done(self, counter):
    return (" [*] Trained to counter %d; the chief (worker 0) wrote the checkpoint and samples"
            % counter)
