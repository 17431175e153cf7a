"""What differs between the processes of a run, chosen once per process (docs/ARCHITECTURE.md):
how it starts and when it stops (one process, or one of several workers that agree and vote),
and what it writes (the chief writes the run folder's events, grids and checkpoints; the other
workers get an object that writes nothing).  The training loop (training.py) asks these
objects and tests none of it itself.
"""
import os

import cluster as cluster_module  # (decides oneDNN before TensorFlow loads)
import tensorflow.compat.v1 as tf
from checkpoints import last_checkpoint
from utils import UserError


class OneProcess(object):
  """One process (one device or several local ones): nothing to agree on with anyone."""

  lost_worker_errors = ()  # nothing to lose, so nothing is caught and no lost() is asked

  def start(self, dcgan, data, settings, prepare=None):
    """(loaded a checkpoint, its counter): prepare(), initialise, restore the newest
    checkpoint."""
    if prepare is not None:
      prepare()
    dcgan.sess.run(dcgan.init_op)
    return dcgan.load(settings.checkpoint_dir)

  def stop_after(self, step, stop):
    """The signal to stop for after a step: this process's own, whenever it came."""
    return stop.local

  def stop_between_epochs(self, stop):
    return stop.local


class SeveralWorkers(object):
  """Several workers: they join together, and stop after the same step."""

  lost_worker_errors = cluster_module.LOST_WORKER_ERRORS

  def start(self, dcgan, data, settings, prepare=None):
    """(loaded a checkpoint, its counter), agreed by every worker (DCGAN.join_cluster); then
    prepare(), so that a refused start writes nothing."""
    joined = dcgan.joined or dcgan.join_cluster(settings, data)
    if prepare is not None:
      prepare()
    return joined

  def stop_after(self, step, stop):
    """Every worker's vote, summed by the step's last run: all stop after the same step."""
    return step.stop_votes

  def stop_between_epochs(self, stop):
    return 0  # a signal that came after the last vote rides on the next step's

  def lost(self, dcgan, err, counter, settings):
    """A peer gone or silent: one sentence naming it, the step and the last checkpoint."""
    cluster = dcgan.cluster
    raise UserError("Lost %s at step %d (%s), so training stopped on this worker too; the "
                    "last checkpoint is %s: start the same commands on every worker to resume "
                    "from it." % (cluster.lost_worker(err), max(counter, 1),
                                  cluster_module.error_summary(err),
                                  last_checkpoint(settings.checkpoint_dir) if cluster.is_chief
                                  else "the chief's"))


def coordination(cluster):
  return SeveralWorkers() if cluster is not None and cluster.distributed else OneProcess()


class RunWrites(object):
  """What only the chief writes: TensorBoard events, sample grids, checkpoints."""

  fetches_summaries = True

  def __init__(self, dcgan, settings, loaded):
    self.dcgan, self.settings = dcgan, settings
    os.makedirs(settings.sample_dir, exist_ok=True)
    if loaded:
      dcgan.checkpoints.keep_track(settings.checkpoint_dir)  # --max_to_keep counts old ones
    # The graph goes into the events once, when the run starts (TensorBoard warns of a run
    # with several graph events), not again on every resume.
    self.events = tf.summary.FileWriter(os.path.join(dcgan.out_dir, "logs"),
                                        None if loaded else dcgan.sess.graph)
    self.sample_z, self.sample_labels = dcgan.sample_inputs()

  def summaries(self, summaries, counter):
    for summary in summaries:
      self.events.add_summary(summary, counter)

  def grid(self, counter, unless_there=False):
    path = os.path.join(self.settings.sample_dir, "train_{:08d}.png".format(counter))
    if not (unless_there and os.path.exists(path)):
      self.dcgan.save_sample_grid(path, self.sample_z, self.sample_labels)

  def checkpoint(self, counter, feed):
    self.dcgan.save_checked(self.settings.checkpoint_dir, counter, feed, self.sample_z,
                            self.sample_labels)

  def where(self):
    return last_checkpoint(self.settings.checkpoint_dir)

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

  def close(self):
    pass

  def done(self, counter):
    return (" [*] Trained to counter %d; the chief (worker 0) wrote the checkpoint and samples"
            % counter)


def run_writes(dcgan, settings, loaded):
  chief = dcgan.cluster is None or dcgan.cluster.is_chief
  return RunWrites(dcgan, settings, loaded) if chief else NoWrites()
