"""Optimisation: Adam with the original's slot and beta-power names, fp16's dynamic loss
scaling with its skip-and-count, and the cross-replica reduction that leaves gathered
gradients (ops.gathered_weight_gradients) alone.
"""
import hardware

hardware.configure()  # oneDNN decided before TensorFlow loads

import tensorflow.compat.v1 as tf  # noqa: E402

from ops import complete_gradients  # noqa: E402


class AdamOptimizer(tf.train.AdamOptimizer):
  """TF1's Adam (same slots, same names), whose cross-replica step all-reduces only the
  gradients that are one replica's part: those of complete_gradients() (ops.py,
  gathered_weight_gradients) are already the sum over all replicas, the same on each, and
  each replica applies its own."""

  def _distributed_apply(self, distribution, grads_and_vars, global_step=None, name=None):
    complete = complete_gradients()
    grads_and_vars = list(grads_and_vars)
    if any(v.name in complete for _, v in grads_and_vars):
      distribution = _ReducingOnly(distribution, complete)
    return tf.train.AdamOptimizer._distributed_apply(self, distribution, grads_and_vars,
                                                      global_step, name)


class _ReducingOnly(object):
  """A tf.distribute strategy whose extended.batch_reduce_to leaves the gradients of the named
  variables as they are (each replica keeps its own); everything else is the strategy's."""

  def __init__(self, strategy, complete):
    self._strategy, self._complete = strategy, complete
    self.extended = _ReducingOnlyExtended(strategy.extended, complete)

  def __getattr__(self, name):
    return getattr(self._strategy, name)


class _ReducingOnlyExtended(object):

  def __init__(self, extended, complete):
    self._extended, self._complete = extended, complete

  def __getattr__(self, name):
    return getattr(self._extended, name)

  def batch_reduce_to(self, reduce_op, value_destination_pairs, options=None):
    pairs = list(value_destination_pairs)
    partial = [(g, v) for g, v in pairs if v.name not in self._complete]
    reduced = iter(self._extended.batch_reduce_to(reduce_op, partial, options) if partial else ())
    return [g if v.name in self._complete else next(reduced) for g, v in pairs]


def adam_update(loss, var_list, learning_rate, beta1, loss_scaling=False, scale_scope=None,
                initial_loss_scale=2 ** 15, gate_gradients=tf.train.Optimizer.GATE_OP):
  """(Adam's update of var_list for loss, loss-scaling tensors or {}).

  With loss_scaling (fp16) the update goes through TensorFlow's
  MixedPrecisionLossScaleOptimizer with a DynamicLossScale (start
  initial_loss_scale, TensorFlow's 2^15 by default; halved on overflow,
  doubled after 2,000 good steps), its variables in
  scale_scope/: the loss is multiplied by the scale before the float16
  backward pass and the gradients divided by it in float32; if any is not
  finite, Adam is not applied (variables and Adam's state untouched) and the
  step is counted in scale_scope/skipped_steps.  The dict holds 'finite'
  (this run's gradients were applied), 'scale' (the scale after the run) and
  'skipped' (the count after it), all read by the run that updates.
  gate_gradients: TF1's GATE_OP by default (as minimize(): an op's input gradients wait for
  each other); GATE_NONE lets a layer's input gradient go on without its weight gradient
  (same values), which gathered weight gradients need to overlap the backward pass.
  """
  adam = AdamOptimizer(learning_rate, beta1=beta1)
  if not loss_scaling:
    return adam.minimize(loss, var_list=var_list, gate_gradients=gate_gradients), {}
  with tf.variable_scope(scale_scope):
    loss_scale = tf.mixed_precision.DynamicLossScale(initial_loss_scale=initial_loss_scale)
    skipped = tf.get_variable('skipped_steps', [], tf.int64, tf.zeros_initializer(),
                              trainable=False,
                              aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
  # Adam's variables now, as minimize() makes them: the wrapper applies Adam inside a tf.cond,
  # whose name scope would otherwise rename beta1_power and beta2_power (cond_1/beta1_power).
  adam._create_slots(var_list)  # pylint: disable=protected-access
  scaled = tf.mixed_precision.MixedPrecisionLossScaleOptimizer(adam, loss_scale)
  grads_and_vars = scaled.compute_gradients(loss, var_list=var_list,
                                            gate_gradients=gate_gradients)
  finite = tf.reduce_all([tf.reduce_all(tf.is_finite(g)) for g, _ in grads_and_vars
                          if g is not None], name=scale_scope + '/finite')
  apply = scaled.apply_gradients(grads_and_vars)
  with tf.control_dependencies([apply]):
    count = tf.assign_add(skipped, tf.cast(tf.logical_not(finite), tf.int64))
  with tf.control_dependencies([count]):
    scale_after = tf.identity(loss_scale(), name=scale_scope + '/scale_after')
    skipped_after = tf.identity(skipped)
  return tf.group(apply, count), {'finite': finite, 'scale': scale_after, 'skipped': skipped_after}


SCALE_SCOPES = ('d_loss_scale', 'g_loss_scale')
