"""How the tower is laid over replicas (docs/ARCHITECTURE.md, "A training step"): one
Replication, chosen once when the graph is built by `replication(cluster)`, for every replica
count.  It holds a tf.distribute strategy (TensorFlow's default strategy for one device, a
Mirrored or MultiWorkerMirrored one for several) and says how many replicas this process holds.

With one replica every operation here leaves the tower as the original built it (nothing is
sliced, summed or held back, and nothing of tf.distribute enters the graph); with several, the
tower runs on every replica, each on its slice of the fed batch, batch norm's updates are held
for the runs' update ops, and gradients are summed.  model.DCGAN, step.py and optim.py ask this
object and test no device or worker count themselves; nor does the loop (training.py), which
takes its steps per epoch from batches_per_epoch here.
"""
import tensorflow.compat.v1 as tf

from ops import Gathering, HeldUpdates, LayerOptions
from utils import UserError


def batches_per_epoch(num_examples, train_size, batch_size, replicas=1, note=""):
  """Steps in an epoch, as the original counted them (images // (batch_size x replicas));
  a UserError if not even one (note: what the data layer left out, said after the count)."""
  steps = int(min(num_examples, train_size) // (batch_size * replicas))
  if steps < 1:
    per_step = ("one batch of %d" % batch_size if replicas == 1 else
                "one step of %d replicas x %d" % (replicas, batch_size))
    if train_size < num_examples:  # the user's limit is short of a step (the data too?)
      fix = ("raise --train_size or lower --batch_size" if num_examples >= batch_size * replicas
             else "lower --batch_size")
      raise UserError("--train_size %g uses %d of the dataset's %d images%s, fewer than %s; %s."
                      % (train_size, int(train_size), num_examples, note, per_step, fix))
    raise UserError("The dataset holds %d images%s, fewer than %s; lower --batch_size."
                    % (num_examples, note, per_step))
  return steps


class TowerOptions(object):
  """The LayerOptions of one replica's tower, one per network pass (network(passes)), and the
  names of the variables whose gradients its linear layers complete from gathered factors."""

  def __init__(self, plan, replication, batch_size):
    self.plan, self.replication, self.batch_size = plan, replication, batch_size
    self.order, self.complete = {}, set()

  def network(self, passes):
    """Options for one pass of a network whose layers pass `passes` times per loss."""
    replication = self.replication
    if replication.count == 1:
      return LayerOptions(self.plan, None, None)  # the original's layers
    gathering = (Gathering(replication.count, passes * self.batch_size, self.complete)
                 if replication.gathers else None)
    return LayerOptions(self.plan, HeldUpdates(self.order), gathering)


class Replication(object):
  """`strategy`'s replicas; this process holds `local` of them, the first being run-wide replica
  `first`.  gathers: the large linear layers' weight gradients come from every replica's
  all-gathered factors (ops.Gathering)."""

  def __init__(self, strategy, local=1, first=0, gathers=False):
    self.strategy, self.local, self.first, self.gathers = strategy, local, first, gathers
    self.count = strategy.num_replicas_in_sync

  def tower_options(self, plan, batch_size):
    return TowerOptions(plan, self, batch_size)

  def towers(self, tower, inputs, z, y):
    """tower(inputs, z, y) on every replica, each on its slice of the fed batch (the
    placeholders hold this process's replicas' batches one after another, local x batch_size
    rows); what they return, regrouped by tf.distribute (one replica: as returned)."""
    if self.count == 1:
      return tower(inputs, z, y)
    with self.strategy.scope():
      return self.strategy.extended.call_for_each_replica(
          lambda: tower(self._slice(inputs), self._slice(z), self._slice(y)))

  def _slice(self, x):
    if x is None or self.local == 1:
      return x
    context = tf.distribute.get_replica_context()
    index = tf.math.floormod(context.replica_id_in_sync_group, self.local)
    shape = tf.shape(x)
    return tf.gather(tf.reshape(x, tf.concat([[self.local, -1], shape[1:]], 0)), index)

  def concat(self, value):
    """This process's replicas' values of a tensor, concatenated along the batch."""
    return value if self.count == 1 else tf.concat(self.local_copies(value), 0)

  def mean(self, value):
    """The mean over this process's replicas of a scalar."""
    return value if self.count == 1 else tf.add_n(self.local_copies(value)) / self.local

  def sum_gradients(self, grads, var_list, complete):
    """Each variable's gradient summed over the replicas (its own where `complete` names it);
    inside the strategy's scope."""
    if self.count == 1:
      return list(grads)
    partial = [(g, v) for g, v in zip(grads, var_list) if v.name not in complete]
    summed = iter(self.strategy.extended.batch_reduce_to(tf.distribute.ReduceOp.SUM, partial)
                  if partial else ())
    return [g if v.name in complete else next(summed) for g, v in zip(grads, var_list)]

  def all_true(self, flag):
    """Whether a bool each replica computed is true on every replica; inside the strategy's
    scope."""
    if self.count == 1:
      return flag
    ones = self.strategy.extended.call_for_each_replica(
        lambda f: tf.cast(f, tf.float32), args=(flag,))
    total = self.strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)
    return tf.equal(total, float(self.count))

  def local_copies(self, value):
    """This process's replicas' copies of a variable or values of a tensor (one: itself)."""
    return list(self.strategy.experimental_local_results(value))

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


def replication(cluster=None, gathers=None):
  """The Replication a cluster.Cluster asks for (None: one device).  gathers: whether several
  replicas gather the large linear layers' weight gradients (None: the cluster's choice,
  cluster.Cluster.gathers)."""
  if cluster is None:
    return Replication(tf.distribute.get_strategy())
  gathers = cluster.gathers if gathers is None else bool(gathers)
  return Replication(cluster.strategy, cluster.local_replicas, cluster.first_replica,
                     gathers and cluster.num_replicas > 1)
