"""How the tower is laid over replicas (docs/ARCHITECTURE.md, "A training step"), chosen once
when the graph is built by `replication(cluster, ...)`:

  OneReplica  one device: every operation below is the identity, so the graph is exactly the
              original's (invariant 3) and nothing of tf.distribute enters it;
  Mirrored    several replicas of a tf.distribute strategy (local devices, workers, or both):
              the tower on every replica, each on its slice of the fed batch, the losses shared
              out, batch norm's updates deferred into the runs' update ops, the reductions.

model.DCGAN asks these objects and tests no device or worker count itself; nor does the loop
(training.py), which takes its steps per epoch from batches_per_epoch here.
"""
import contextlib

import cluster as cluster_module  # (decides oneDNN before TensorFlow loads)
import tensorflow.compat.v1 as tf
from ops import complete_gradients, deferred_batch_norm_updates, gathered_weight_gradients
from utils import UserError


def batches_per_epoch(num_examples, train_size, batch_size, replicas=1, note=""):
  """Steps in an epoch, as the original counted them (images // (batch_size x replicas));
  a UserError if not even one (note: what the data layer left out, said after the count)."""
  steps = int(min(num_examples, train_size) // (batch_size * replicas))
  if steps < 1:
    per_step = ("one batch of %d" % batch_size if replicas == 1 else
                "one step of %d replicas x %d" % (replicas, batch_size))
    raise UserError("The dataset holds %d images%s%s, fewer than %s; lower --batch_size."
                    % (num_examples, "" if train_size >= num_examples else
                       " (--train_size %g)" % train_size, note, per_step))
  return steps


class OneReplica(object):
  """One device: one replica, this process's only one."""

  count = 1  # replicas in the run
  local = 1  # replicas in this process
  first = 0  # the run-wide index of this process's first replica
  gathers = False

  def build(self, tower, inputs, z, y):
    """tower(inputs, z, y): its dict as is."""
    return tower(inputs, z, y)

  def network_pass(self, passes):
    """Around one pass of a network through the tower: yields the batch-norm updates it hands
    over to the run's update op (none here: they stay in the layers, as in the original)."""
    return contextlib.nullcontext(())

  def share(self, loss):
    return loss

  def gate(self):
    return tf.train.Optimizer.GATE_OP

  def join(self, update, handed_over):
    return update

  def local_copies(self, variable):
    return [variable]


class Mirrored(object):
  """Several replicas of `strategy`; this process holds `local` of them, the first being
  run-wide replica `first`.  gathers: the large linear layers' weight gradients come from
  every replica's all-gathered factors (ops.gathered_weight_gradients)."""

  def __init__(self, strategy, local, first, gathers, batch_size):
    self.strategy, self.local, self.first = strategy, local, first
    self.count = strategy.num_replicas_in_sync
    self.gathers, self.batch_size = gathers, batch_size

  def build(self, tower, inputs, z, y):
    """The tower on every replica, each on its slice of the fed batch.

    The placeholders hold this process's replicas' batches one after another (local x
    batch_size rows); replica r takes the r-th.  The dict returned holds the concatenation
    over this process's replicas of what each computed (G, D's outputs), the mean of their
    losses, the grouped updates, and the first replica's loss-scaling state.
    """
    with self.strategy.scope():
      towers = self.strategy.extended.call_for_each_replica(
          lambda: tower(self._slice(inputs), self._slice(z), self._slice(y)))
      t = {name: self.strategy.group(towers[name]) for name in ('d_optim', 'g_optim')}
    results = lambda value: list(self.strategy.experimental_local_results(value))
    for name in ('G', 'D', 'D_logits', 'D_', 'D_logits_'):
      t[name] = tf.concat(results(towers[name]), 0)
    for name in ('d_loss_real', 'd_loss_fake', 'g_loss', 'd_loss'):
      t[name] = tf.add_n(results(towers[name])) / self.local
    for name in ('d_vars', 'g_vars'):
      t[name] = list(towers[name])
    for name in ('d_scaling', 'g_scaling'):
      t[name] = {key: results(value)[0] for key, value in towers[name].items()}
    return t

  def _slice(self, x):
    if x is None or self.local == 1:
      return x
    context = tf.distribute.get_replica_context()
    index = tf.math.floormod(context.replica_id_in_sync_group, self.local)
    shape = tf.shape(x)
    return tf.gather(tf.reshape(x, tf.concat([[self.local, -1], shape[1:]], 0)), index)

  @contextlib.contextmanager
  def network_pass(self, passes):
    """Around one pass of a network (`passes` of its layers per loss): batch norm's moving-
    average updates (each an all-reduce) are handed over, to join the update ops of the runs
    that compute them instead of holding up the layers' outputs; with gathers, the linear
    layers' weight gradients come from passes x batch_size rows of every replica."""
    with contextlib.ExitStack() as stack:
      handed_over = stack.enter_context(deferred_batch_norm_updates())
      if self.gathers:
        stack.enter_context(gathered_weight_gradients(self.count, passes * self.batch_size))
      yield handed_over

  def share(self, loss):
    # tf.distribute sums the replicas' gradients; TF1 optimizers scale the loss for a mean only
    # under Estimator, so each replica's loss is divided by the number of replicas here.
    return loss / self.count

  def gate(self):
    # Gathered weight gradients, if any layer has them: no gating, or every layer's input
    # gradient would wait for its weight gradient's all-gathers, and G's updates would run D's,
    # which they discard.
    if self.gathers and complete_gradients():
      return tf.train.Optimizer.GATE_NONE
    return tf.train.Optimizer.GATE_OP

  def join(self, update, handed_over):
    return tf.group(update, *handed_over)

  def local_copies(self, variable):
    return list(self.strategy.experimental_local_results(variable))

  def all_reduce_sum(self, fn):
    """Sum over the run of fn(is_first_local_replica) (each process's first replica
    contributes, the others add zeros); the first local replica's copy of the result."""
    local = self.local

    def replica():
      context = tf.distribute.get_replica_context()
      first = tf.equal(tf.math.floormod(context.replica_id_in_sync_group, local), 0)
      return context.all_reduce(tf.distribute.ReduceOp.SUM, fn(first))

    with self.strategy.scope():
      return self.local_copies(self.strategy.extended.call_for_each_replica(replica))[0]

  def broadcast(self, variables, name):
    """An op setting every copy of each variable to the run's replica 0's value."""

    def replica():
      context = tf.distribute.get_replica_context()
      chief = tf.equal(context.replica_id_in_sync_group, 0)
      values = [tf.identity(v) if v.dtype.base_dtype == tf.float32 else tf.cast(v, tf.float64)
                for v in variables]
      values = [tf.where(chief, x, tf.zeros_like(x)) for x in values]
      # one all-reduce per dtype, in the same order on every worker (a batch shares its dtype;
      # fp16's loss-scale counters are integers)
      for dtype in (tf.float32, tf.float64):
        chosen = [i for i, x in enumerate(values) if x.dtype == dtype]
        if chosen:
          summed = context.all_reduce(tf.distribute.ReduceOp.SUM, [values[i] for i in chosen])
          for i, value in zip(chosen, summed):
            values[i] = value
      return values

    with self.strategy.scope():
      reduced = self.strategy.extended.call_for_each_replica(replica)
    assigns = []
    for value, variable in zip(reduced, variables):
      for copy, own in zip(self.local_copies(variable), self.local_copies(value)):
        assigns.append(copy.assign(tf.cast(own, variable.dtype.base_dtype), read_value=False))
    return tf.group(assigns, name=name)


def replication(cluster, gather_gradients, batch_size):
  """The replication a cluster.Cluster (None: one device) asks for.

  gather_gradients: None gathers when there are several workers (across machines the network is
  what limits; on one machine the devices' all-reduce costs less than the larger products),
  unless DCGAN_GATHER_GRADIENTS=0."""
  if cluster is None or cluster.strategy is None:
    return OneReplica()
  if gather_gradients is None:
    gather_gradients = cluster.num_workers > 1 and cluster_module.gather_gradients_default()
  return Mirrored(cluster.strategy, cluster.local_replicas, cluster.first_replica,
                  bool(gather_gradients), batch_size)
