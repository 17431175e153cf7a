"""How the tower is laid over replicas (docs/ARCHITECTURE.md, "A training step"): one
Replication, chosen once when the graph is built by `replication(cluster)`, for every replica
count.  It holds a tf.distribute strategy (TensorFlow's default strategy for one device, a
Mirrored or MultiWorkerMirrored one for several) and says how many replicas this process holds.

With one replica every operation here leaves the tower as the original built it (nothing is
sliced or summed, and nothing of tf.distribute enters the graph); with several, the tower runs
on every replica, each on its slice of the fed batch, and gradients are summed.  model.DCGAN,
step.py and optim.py ask this object and test no device or worker count themselves; nor does
the loop (training.py).
"""
import tensorflow.compat.v1 as tf


class Replication(object):
  """`strategy`'s num_replicas replicas; this process holds local_replicas of them, the first
  being run-wide replica first_replica.  gathers: the large linear layers' weight gradients come
  from every replica's all-gathered factors (ops.Gathering; cluster.Cluster decides it)."""

  def __init__(self, strategy, local_replicas=1, first_replica=0, gathers=False):
    self.strategy, self.gathers = strategy, gathers
    self.local_replicas, self.first_replica = local_replicas, first_replica
    self.num_replicas = strategy.num_replicas_in_sync

  def towers(self, tower, inputs, z, y):
    """tower(inputs, z, y) on every replica, each on its slice of the fed batch (the
    placeholders hold this process's replicas' batches one after another, local_replicas x
    batch_size rows); what they return, regrouped by tf.distribute (one replica: as returned)."""
    if self.num_replicas == 1:
      return tower(inputs, z, y)
    with self.strategy.scope():
      return self._each_replica(lambda: tower(self._slice(inputs), self._slice(z),
                                              self._slice(y)))

  def _each_replica(self, fn, args=()):
    """fn(*args) on every replica (tf.distribute's call_for_each_replica), as Python: fn builds
    graph ops and tests no tensor, so tf.distribute's default AutoGraph conversion, which
    rewrites fn and what it calls into modules it writes to the temporary folder (left there
    when a process is killed), would only slow the build."""
    return self.strategy.extended.call_for_each_replica(
        tf.autograph.experimental.do_not_convert(fn), args=args)

  def _slice(self, x):
    if x is None or self.local_replicas == 1:
      return x
    context = tf.distribute.get_replica_context()
    index = tf.math.floormod(context.replica_id_in_sync_group, self.local_replicas)
    shape = tf.shape(x)
    return tf.gather(tf.reshape(x, tf.concat([[self.local_replicas, -1], shape[1:]], 0)), index)

  def concat(self, value):
    """This process's replicas' values of a tensor, concatenated along the batch."""
    return value if self.num_replicas == 1 else tf.concat(self.local_copies(value), 0)

  def mean(self, value):
    """The mean over this process's replicas of a scalar."""
    if self.num_replicas == 1:
      return value
    return tf.add_n(self.local_copies(value)) / self.local_replicas

  def sum_gradients(self, grads, var_list, complete):
    """Each variable's gradient summed over the replicas (its own where `complete` names it);
    inside the strategy's scope."""
    if self.num_replicas == 1:
      return list(grads)
    partial = [(g, v) for g, v in zip(grads, var_list) if v.name not in complete]
    summed = iter(self.strategy.extended.batch_reduce_to(tf.distribute.ReduceOp.SUM, partial)
                  if partial else ())
    return [g if v.name in complete else next(summed) for g, v in zip(grads, var_list)]

  def all_true(self, flag):
    """Whether a bool each replica computed is true on every replica; inside the strategy's
    scope."""
    if self.num_replicas == 1:
      return flag
    ones = self._each_replica(lambda f: tf.cast(f, tf.float32), args=(flag,))
    total = self.strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)
    return tf.equal(total, float(self.num_replicas))

  def local_copies(self, value):
    """This process's replicas' copies of a variable or values of a tensor (one: itself)."""
    return list(self.strategy.experimental_local_results(value))

  def all_reduce_sum(self, fn):
    """Sum over the run of fn(is_first_local) (each process's first replica contributes, the
    others add zeros); the first local replica's copy of the result."""
    local_replicas = self.local_replicas

    def replica():
      context = tf.distribute.get_replica_context()
      is_first_local = tf.equal(
          tf.math.floormod(context.replica_id_in_sync_group, local_replicas), 0)
      return context.all_reduce(tf.distribute.ReduceOp.SUM, fn(is_first_local))

    with self.strategy.scope():
      return self.local_copies(self._each_replica(replica))[0]

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
      reduced = self._each_replica(replica)
    assigns = []
    for value, variable in zip(reduced, variables):
      for copy, own in zip(self.local_copies(variable), self.local_copies(value)):
        assigns.append(copy.assign(tf.cast(own, variable.dtype.base_dtype), read_value=False))
    return tf.group(assigns, name=name)


def replication(cluster=None):
  """The Replication a cluster.Cluster asks for, gathering where it decided (None: one
  device)."""
  if cluster is None:
    return Replication(tf.distribute.get_strategy())
  return Replication(cluster.strategy, cluster.local_replicas, cluster.first_replica,
                     cluster.gathers)
