"""Optimisation: one Optimizer per network owns its update for every replica count
(docs/ARCHITECTURE.md, "A training step").

As StyleGAN's optimizer does (dnnlib/tflib/optimizer.py), each replica's tower hands it its
loss (register_gradients: the replica's share of the loss, fp16's loss scale, the gradients),
and it applies once (apply_updates: the sum over replicas, except gradients already complete
from gathered factors; fp16's skip of a non-finite update and its count; Adam, with the
original's variable names; the batch-norm updates the run holds).  One device is the same
object with one replica.  Nothing of TensorFlow's optimizers is overridden or called privately:
Adam is written out with TensorFlow's own Adam kernels, so its numbers are TF1 Adam's.
"""
import collections

import tensorflow.compat.v1 as tf

# fp16's loss-scale variables, per network (their names are in fp16 checkpoints)
SCALE_SCOPES = {"discriminator": "d_loss_scale", "generator": "g_loss_scale"}
# fp16's first loss scale: TensorFlow's DynamicLossScale default (DCGAN's initial_loss_scale)
INITIAL_LOSS_SCALE = 2 ** 15
# and how it moves: doubled after this many finite updates in a row, halved on an overflow
SCALE_PERIOD, SCALE_FACTOR = 2000, 2.0

# What one replica's tower registered for one network: its gradients (in var_list's order),
# whether they are all finite (fp16; else None), and the batch-norm updates its run holds.
Registered = collections.namedtuple("Registered", ["grads", "finite", "held"])

# One network's update: the op, and the loss-scale state each run of it reads after updating
# ({} without loss scaling; else 'finite': this run's gradients were applied, 'scale': the
# scale after the run, 'skipped': updates skipped so far).
NetworkUpdate = collections.namedtuple("NetworkUpdate", ["update", "scaling"])


class Adam(object):
  """TF1's tf.train.AdamOptimizer, written out: the same variables (<var>/Adam, <var>/Adam_1,
  beta1_power and beta2_power, colocated with the first variable by name; a second Adam's are
  beta1_power_1 and beta2_power_1) and the same kernels (ApplyAdam, or ResourceApplyAdam for
  resource variables), applied to each replica's copy by tf.distribute's update."""

  def __init__(self, learning_rate, beta1, beta2=0.999, epsilon=1e-8):
    self.learning_rate, self.beta1, self.beta2, self.epsilon = learning_rate, beta1, beta2, epsilon
    self.slots, self.powers = {}, None

  def create(self, var_list, strategy):
    """Adam's variables for var_list, as minimize() made them (when the networks exist)."""
    first = min(var_list, key=lambda v: v.name)
    with strategy.extended.colocate_vars_with(first):
      self.powers = (tf.Variable(self.beta1, name="beta1_power", trainable=False),
                     tf.Variable(self.beta2, name="beta2_power", trainable=False))
    for var in var_list:
      with strategy.extended.colocate_vars_with(var):
        self.slots[var.name] = tuple(
            tf.get_variable(var.op.name + suffix, var.shape, var.dtype.base_dtype,
                            tf.zeros_initializer(), trainable=False)
            for suffix in ("/Adam", "/Adam_1"))

  def apply(self, strategy, grads_and_vars):
    """The op applying each gradient to its variable on every replica, then the beta powers."""
    beta1, beta2, epsilon = (tf.convert_to_tensor(x) for x in (self.beta1, self.beta2,
                                                                self.epsilon))
    learning_rate = tf.convert_to_tensor(self.learning_rate)

    def update(var, grad, m, v, beta1_power, beta2_power):
      ref = var.dtype.base_dtype != var.dtype  # a TF1 reference variable (one device)
      apply = tf.raw_ops.ApplyAdam if ref else tf.raw_ops.ResourceApplyAdam
      handles = (var, m, v) if ref else (var.handle, m.handle, v.handle)
      return apply(var=handles[0], m=handles[1], v=handles[2],
                   beta1_power=tf.cast(beta1_power, tf.float32),
                   beta2_power=tf.cast(beta2_power, tf.float32), lr=learning_rate, beta1=beta1,
                   beta2=beta2, epsilon=epsilon, grad=grad, use_locking=False)

    updates = []
    for grad, var in grads_and_vars:
      updates += [_op(u) for u in strategy.extended.update(
          var, update, args=(grad,) + self.slots[var.name] + self.powers, group=False)]
    with tf.control_dependencies(updates):
      finish = [strategy.extended.update(power, lambda p, b: p.assign(p * b), args=(b,))
                for power, b in zip(self.powers, (beta1, beta2))]
    return tf.group(*(updates + finish))


def _op(value):
  return value.op if isinstance(value, tf.Tensor) else value


class DynamicLossScale(object):
  """fp16's loss scale, as TensorFlow's DynamicLossScale moves it, in <scope>/: the scale
  (current_loss_scale, starting at `initial`) halves, not below 1, after an update whose
  gradients were not all finite, and doubles (unless that overflows) after SCALE_PERIOD finite
  ones in a row (good_steps); skipped_steps counts the updates skipped.  The variables are made
  by the first replica's tower that asks (variables(): the others reuse them)."""

  def __init__(self, scope, initial):
    self.scope, self.initial = scope, initial

  def variables(self):
    with tf.variable_scope(self.scope, reuse=tf.AUTO_REUSE):
      scale = tf.get_variable("current_loss_scale", [], tf.float32,
                              tf.constant_initializer(float(self.initial)), trainable=False,
                              use_resource=True)
      good = tf.get_variable("good_steps", [], tf.int64, tf.zeros_initializer(),
                             trainable=False, use_resource=True)
      skipped = tf.get_variable("skipped_steps", [], tf.int64, tf.zeros_initializer(),
                                trainable=False,
                                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    return scale, good, skipped

  def update(self, finite):
    """The op moving the scale after an update whose gradients were `finite` (a bool)."""
    scale, good, _ = self.variables()
    good_after = good + 1
    grow = tf.logical_and(finite, good_after >= SCALE_PERIOD)
    doubled = scale * SCALE_FACTOR
    new_scale = tf.where(finite, tf.where(tf.logical_and(grow, tf.is_finite(doubled)), doubled,
                                          tf.identity(scale)),
                         tf.maximum(scale / SCALE_FACTOR, 1.0))
    new_good = tf.where(tf.logical_and(finite, tf.logical_not(grow)), good_after,
                        tf.zeros_like(good_after))
    return tf.group(scale.assign(new_scale), good.assign(new_good))


class Optimizer(object):
  """One network's optimizer for `replication` (replicas.Replication; one device: one replica):
  its update rule, Adam(learning_rate, beta1) unless `rule` gives another, with fp16's dynamic
  loss scaling when loss_scaling (its variables in SCALE_SCOPES[network], starting at
  initial_loss_scale).

  An update rule (the seam for another optimizer: tests/test_seams.py plugs RMSProp in) has
  create(var_list, strategy), which makes its variables once the network exists, and
  apply(strategy, grads_and_vars), the op applying the summed gradients to every replica's copy
  (strategy.extended.update); the sums, fp16's scale and skip, and the held batch-norm updates
  stay this object's."""

  def __init__(self, network, replication, learning_rate, beta1, loss_scaling=False,
               initial_loss_scale=INITIAL_LOSS_SCALE, rule=None):
    self.network, self.replication = network, replication
    self.rule = rule or Adam(learning_rate, beta1)
    self.loss_scale = (DynamicLossScale(SCALE_SCOPES[network], initial_loss_scale)
                       if loss_scaling else None)

  def scale(self):
    """fp16's loss scale as a tensor (1 without loss scaling): what a loss term that takes
    gradients of its own (a gradient penalty) multiplies by before and divides by after, so
    that its inner gradients do not underflow."""
    if self.loss_scale is None:
      return tf.constant(1.0)
    return tf.identity(self.loss_scale.variables()[0])

  def register_gradients(self, loss, var_list, held=(), complete=frozenset()):
    """In one replica's tower: the Registered gradients of its share of `loss` for var_list.

    held: the batch-norm updates of the passes the update's run computes (ops.HeldUpdates).
    complete: names of the variables whose gradients linear layers computed from every
    replica's factors (ops.Gathering): already the run's sum, so they are not reduced again,
    and no op's input gradients wait for each other (TF1's GATE_OP), or every layer's input
    gradient would wait for its weight gradient's all-gathers.
    """
    num_replicas = self.replication.num_replicas
    # tf.distribute sums the replicas' gradients; each replica's loss is divided by their number
    share = loss / num_replicas if num_replicas > 1 else loss
    if self.loss_scale is not None:
      share = share * self.scale()
    grads = tf.gradients(share, var_list, gate_gradients=not complete)
    finite = None
    if self.loss_scale is not None:
      reciprocal = 1.0 / self.scale()
      grads = [g * reciprocal for g in grads]
      finite = tf.reduce_all([tf.reduce_all(tf.is_finite(g)) for g in grads])
    return Registered(grads, finite, list(held))

  def apply_updates(self, registered, var_list, complete=frozenset()):
    """The NetworkUpdate applying the Registered gradients of every replica (regrouped by
    tf.distribute) to var_list once, after Adam's variables are made; complete: as
    register_gradients was given it (those gradients are not summed again)."""
    replication, strategy = self.replication, self.replication.strategy
    with strategy.scope():
      self.rule.create(var_list, strategy)
      grads = replication.sum_gradients(registered.grads, var_list, complete)
      apply = lambda: self.rule.apply(strategy, list(zip(grads, var_list)))
      if self.loss_scale is None:
        update, scaling = apply(), {}
      else:
        update, scaling = self._apply_scaled(apply, replication.all_true(registered.finite))
      if registered.held:
        update = tf.group(update, strategy.group(registered.held))
    return NetworkUpdate(update, scaling)

  def _apply_scaled(self, apply, finite):
    """fp16: Adam only if every replica's gradients are finite; the scale moves; the count."""
    scale, _, skipped = self.loss_scale.variables()
    finite = tf.identity(finite, name=self.loss_scale.scope + '/finite')
    applied = tf.cond(finite, apply, tf.no_op)
    moved = self.loss_scale.update(finite)
    with tf.control_dependencies([applied, moved]):
      count = tf.assign_add(skipped, tf.cast(tf.logical_not(finite), tf.int64))
    with tf.control_dependencies([count]):
      scale_after = tf.identity(scale, name=self.loss_scale.scope + '/scale_after')
      skipped_after = tf.identity(skipped)
    return (tf.group(applied, moved, count),
            {'finite': finite, 'scale': scale_after, 'skipped': skipped_after})
