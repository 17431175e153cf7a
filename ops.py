"""The layers of the DCGAN, written on ``tensorflow.compat.v1``.

Every function here creates its variables with ``tf.get_variable`` under a
``tf.variable_scope`` named like the original's (carpedm20/DCGAN-tensorflow),
so checkpoints keep the original variable names:

    <scope>/w, <scope>/biases           conv2d, deconv2d
    <scope>/Matrix, <scope>/bias        linear
    <scope>/beta, gamma, moving_mean, moving_variance    batch_norm

Shapes follow the original too: conv2d weights are [k_h, k_w, in, out],
deconv2d weights [k_h, k_w, out, in], linear ``Matrix`` [in, out].

How a layer is computed (which kernels, which of the equivalent forms here and in
conv_forms.py) is the kernel plan of the device the graph is built for (hardware.py); every
form gives the plain formulation's values and gradients (tests/test_ops.py).

The whole project is graph-and-Session code: TensorFlow runs with TF1 graph behaviour, which
the program's one start-up call switches on (``hardware.import_tensorflow``: main.py, bench/,
the tests' conftest); importing this module changes nothing.
"""
import collections

import tensorflow.compat.v1 as tf

import conv_forms
import hardware

# TF 1.x's tf.nn.fused_batch_norm raised any epsilon below 1.001e-5 to that
# value (a cuDNN limit), and tf.contrib.layers.batch_norm with
# updates_collections=None always took that fused path (4-D inputs, and 2-D
# inputs reshaped to [N, 1, 1, C]).  So the original's epsilon=1e-5 really was
# 1.001e-5, in training and in inference.  TF 2.x no longer clamps, so we do.
FUSED_MIN_EPSILON = 1.001e-5


class HeldUpdates(object):
  """Batch norm's moving-average updates held out of one network pass (LayerOptions), for the
  run's update op to depend on instead of the layers' outputs: they still happen in the same run.

  For several replicas: there each update is an all-reduce (the replicas' statistics are
  averaged), and a layer whose output waited for it would stall the forward pass a network
  round trip per batch-norm layer.  One device keeps the original's order (no HeldUpdates).

  ops: this pass's updates, which its batch-norm layers hold (`hold`) as they are built: the
  one thing a layer adds to, as the original's networks return only their outputs.  after: the
  HeldUpdates of the tower's pass of the same network before this one (None for its first), a
  finished pass, only read: a layer's updates in this pass follow its updates there, in the
  order the layer was called (D's real pass, then its fake pass), as its outputs ordered them
  on one device, so that every replica reads and updates its copy alike.
  """

  def __init__(self, after=None):
    self.ops, self.after, self._layers = [], after, {}

  def latest(self, name):
    """The held updates of layer `name` in this pass, else in the passes before it ([])."""
    if name in self._layers:
      return self._layers[name]
    return self.after.latest(name) if self.after is not None else []

  def hold(self, name, updates):
    self.ops.extend(updates)
    self._layers[name] = list(updates)


class Gathering(collections.namedtuple("Gathering", ["num_replicas", "rows"])):
  """What LayerOptions asks of the linear layers of one network pass on one replica of
  `num_replicas` (a tf.distribute strategy's), each passing `rows` rows of its batch through
  every linear layer of the network (batch size x calls in the loss): a layer whose Matrix is
  larger than those factors (`takes`) computes the Matrix's gradient from all replicas' factors
  instead of its own; `gathered_matrices` names those Matrices.

  The gradient of x @ Matrix is x^T dy; summed over replicas it is X^T DY, X and DY being
  every replica's x and dy stacked (all-gathered).  replicas x rows x (in + out) numbers
  cross the network instead of all-reducing in x out, and every replica ends up holding the
  sum the all-reduce would have given (MNIST, batch 64, two replicas: g_h1_lin 0.9 M numbers
  instead of 6.5 M).  The optimizer must not all-reduce those gradients again (optim.py).
  """

  def takes(self, size_in, size_out):
    """Whether a linear layer [size_in, size_out] gets its weight gradient from the gathered
    factors (gathers_factors)."""
    return gathers_factors(self.num_replicas, self.rows, size_in, size_out)


def gathered_matrices(gathering, var_list):
  """The names of var_list's linear-layer Matrices (`linear`'s 'Matrix' variables) whose
  gradients the layers built with `gathering` (None: none) compute from gathered factors: the
  same decision `linear` made, taken again from their shapes."""
  if gathering is None:
    return frozenset()
  return frozenset(v.name for v in var_list if v.name.endswith("/Matrix:0")
                   and gathering.takes(*v.shape.as_list()))


class LayerOptions(collections.namedtuple("LayerOptions", ["plan", "held", "gathering"])):
  """How the layers of one network pass are built, given to every layer as an argument:
  plan: the hardware.KernelPlan of the graph's device (which equivalent forms compute a layer);
  held: a HeldUpdates for batch norm's moving-average updates, or None (each layer's output
  waits for its own updates, the original's order);
  gathering: a Gathering for the linear layers' weight gradients, or None (their own)."""


def plain_options():
  """TensorFlow's plain ops, batch norm's updates in place, no gathering: the original's layers."""
  return LayerOptions(hardware.PLANS["plain"], None, None)


def gathers_factors(num_replicas, rows, size_in, size_out):
  """Whether a linear layer [size_in, size_out] gets its weight gradient from gathered factors
  (Gathering): when all replicas' factors together are
  fewer numbers than the gradient.  (A ring all-gather of them moves (replicas - 1) / replicas
  of that per replica, a ring all-reduce of the gradient twice that fraction of it: so this
  gathers only where it moves at most half the bytes, and pays for the larger product.)"""
  return num_replicas * rows * (size_in + size_out) < size_in * size_out


class batch_norm(object):
  """Batch normalisation with the numerics of the original's layer.

  The original called ``tf.contrib.layers.batch_norm(x, decay=0.9,
  epsilon=1e-5, scale=True, updates_collections=None, is_training=train,
  scope=name)``.  That layer, and this one:

  * creates ``beta`` (zeros), ``gamma`` (ones), ``moving_mean`` (zeros) and
    ``moving_variance`` (ones) in the scope ``name``;
  * with ``train=True`` normalises with the batch mean and the biased batch
    variance over all axes but the last, and, in the same run, updates the
    moving averages in place:
        moving_mean     -= (1 - decay) * (moving_mean - batch_mean)
        moving_variance -= (1 - decay) * (moving_variance - unbiased_batch_var)
    (the fused kernel hands back the Bessel-corrected variance, n / (n - 1));
  * with ``train=False`` normalises with the moving statistics and changes
    nothing;
  * uses epsilon max(epsilon, 1.001e-5) (see FUSED_MIN_EPSILON).

  Inputs of rank 2 ([N, C]) and 4 ([N, H, W, C]) are supported.
  """

  def __init__(self, epsilon=1e-5, momentum=0.9, name="batch_norm"):
    self.epsilon = epsilon
    self.momentum = momentum
    self.name = name

  def __call__(self, x, train=True, options=None):
    """options: LayerOptions (None: plain_options()): the plan's batch statistics, and where
    the moving-average updates go (options.held)."""
    options = options or plain_options()
    rank = x.shape.ndims
    if rank not in (2, 4):
      raise ValueError("batch_norm takes rank 2 or 4 inputs, got rank %s" % rank)
    channels = int(x.shape[-1])
    with tf.variable_scope(self.name):
      beta = tf.get_variable("beta", [channels], initializer=tf.zeros_initializer())
      gamma = tf.get_variable("gamma", [channels], initializer=tf.ones_initializer())
      # MEAN: under a tf.distribute strategy each replica's in-place update is averaged, so
      # the moving statistics stay identical on every replica (no effect on one device)
      moving_mean = tf.get_variable(
          "moving_mean", [channels], initializer=tf.zeros_initializer(), trainable=False,
          aggregation=tf.VariableAggregation.MEAN)
      moving_variance = tf.get_variable(
          "moving_variance", [channels], initializer=tf.ones_initializer(), trainable=False,
          aggregation=tf.VariableAggregation.MEAN)

      x4 = tf.reshape(x, [-1, 1, 1, channels]) if rank == 2 else x
      epsilon = max(self.epsilon, FUSED_MIN_EPSILON)
      if train:
        if options.plan.batch_norm_stats == "matmul":
          y, mean, variance = _batch_norm_by_matmul(x4, gamma, beta, epsilon)
        else:
          y, mean, variance = tf.nn.fused_batch_norm(x4, gamma, beta, epsilon=epsilon)
        decay_complement = 1.0 - self.momentum
        held = options.held
        previous = held.latest(self.name) if held is not None else []
        with tf.control_dependencies(previous):
          update_mean = tf.assign_sub(moving_mean, (moving_mean - mean) * decay_complement)
          update_variance = tf.assign_sub(
              moving_variance, (moving_variance - variance) * decay_complement)
        if held is not None:
          held.hold(self.name, [update_mean, update_variance])  # the run's update op runs them
        else:
          with tf.control_dependencies([update_mean, update_variance]):
            y = tf.identity(y)
      else:
        y = _normalize_by_moving_statistics(x4, gamma, beta, moving_mean, moving_variance,
                                            epsilon)
      if rank == 2:
        y = tf.reshape(y, [-1, channels])
      else:
        y.set_shape(x.shape)
      return y


def _normalize_by_moving_statistics(x, gamma, beta, moving_mean, moving_variance, epsilon):
  """Inference batch norm, x * scale + offset, as the fused kernel computes it (scale = gamma /
  sqrt(moving_variance + epsilon), offset = beta - moving_mean * scale), written as a multiply
  and an add: the ops every runtime has, which no graph optimizer fuses into a CPU-specific op
  (an exported generator is this layer too, README "Using the generator elsewhere")."""
  scale = gamma * tf.rsqrt(moving_variance + epsilon)
  return x * scale + (beta - moving_mean * scale)


def _batch_norm_by_matmul(x, gamma, beta, epsilon):
  """tf.nn.fused_batch_norm(x, gamma, beta, epsilon) in training mode, by other kernels.

  Returns (y, batch mean, Bessel-corrected batch variance), as the fused op
  does.  oneDNN's AVX2 batch-norm forward runs 5x slower than its AVX-512
  one (22 ms against 4 for [64, 32, 32, 64], one Intel Xeon); here the
  statistics are two matrix-vector products (ones @ x, ones @ (x - mean)^2:
  two passes, as exact as the fused kernel's) and the normalisation one
  multiply-add.  The gradient is the fused kernel's own, FusedBatchNormGradV3,
  given the batch mean and biased variance it keeps (its reserve spaces).
  """
  channels = int(x.shape[-1])

  @tf.custom_gradient
  def normalize(x, gamma, beta):
    flat = tf.reshape(x, [-1, channels])
    rows = tf.shape(flat)[0]
    ones = tf.ones([1, rows], x.dtype)
    count = tf.cast(rows, x.dtype)
    mean = tf.reshape(tf.matmul(ones, flat), [channels]) / count
    centered = flat - mean
    variance = tf.reshape(tf.matmul(ones, tf.square(centered)), [channels]) / count
    scale = gamma * tf.rsqrt(variance + epsilon)
    y = tf.reshape(centered * scale + beta, tf.shape(x))
    unbiased = variance * (count / tf.maximum(count - 1.0, 1.0))

    def grad(dy, unused_dmean, unused_dvariance):
      dx, dgamma, dbeta = tf.raw_ops.FusedBatchNormGradV3(
          y_backprop=dy, x=x, scale=gamma, reserve_space_1=mean, reserve_space_2=variance,
          reserve_space_3=tf.zeros([0], x.dtype), epsilon=epsilon, is_training=True)[:3]
      return dx, dgamma, dbeta
    return (y, tf.stop_gradient(mean), tf.stop_gradient(unbiased)), grad
  return normalize(x, gamma, beta)


def conv_out_size_same(size, stride):
  """Spatial size after a 'SAME' convolution with this stride: ceil(size / stride)."""
  return -(-int(size) // int(stride))


def conv_cond_concat(x, y):
  """Concatenate the conditioning vector ``y`` [N, 1, 1, Y] onto every pixel of ``x``."""
  height, width = int(x.shape[1]), int(x.shape[2])
  return tf.concat([x, tf.tile(y, [1, height, width, 1])], 3)


def conv2d(input_, output_dim, k_h=5, k_w=5, d_h=2, d_w=2, stddev=0.02, name="conv2d",
           labels=None, options=None):
  """5x5/2 'SAME' convolution with bias; weights truncated normal (stddev 0.02).

  With ``labels`` [N, Y] the layer convolves ``conv_cond_concat(input_,
  labels)``, as the original's conditional layers do: ``w`` has the Y label
  channels after the input's.  The kernel plan (options.plan; None: plain_options()) decides
  whether the label channels' share is computed by ``_label_term`` instead.
  """
  plan = (options or plain_options()).plan
  in_c = int(input_.shape[-1])
  label_c = int(labels.shape[-1]) if labels is not None else 0
  strides = [1, d_h, d_w, 1]
  with tf.variable_scope(name):
    w = tf.get_variable("w", [k_h, k_w, in_c + label_c, output_dim],
                        initializer=tf.truncated_normal_initializer(stddev=stddev))
    w_input, w_labels, input_ = _split_labels(w, 2, input_, labels, plan)
    conv = _conv(input_, w_input, strides, plan)
    biases = tf.get_variable("biases", [output_dim], initializer=tf.constant_initializer(0.0))
    out = tf.nn.bias_add(conv, biases)
    if w_labels is not None:
      out += _label_term(labels, w_labels, input_, lambda maps, kernel: tf.nn.conv2d(
          maps, kernel, strides=strides, padding="SAME"))
    return out


def _split_labels(w, axis, input_, labels, plan):
  """(weights for input_, weights for the label channels or None, input_ to convolve).

  Without labels: (w, None, input_).  With labels and the plan's closed-form
  label term: w split at the input's channel count along `axis` (split, not
  slices: its gradient is one concat, two slices' are two zero-filled copies).
  Otherwise the original's way: (w, None, conv_cond_concat(input_, labels)).
  """
  if labels is None:
    return w, None, input_
  label_c = int(labels.shape[-1])
  if not plan.label_term:
    return w, None, conv_cond_concat(input_, tf.reshape(labels, [-1, 1, 1, label_c]))
  w_input, w_labels = tf.split(w, [int(input_.shape[-1]), label_c], axis=axis)
  return w_input, w_labels, input_


def _chosen(plan, w, strides):
  """True if this layer's gradients are the plan's chosen kernels (5x5/2 layers only)."""
  return plan.layer_grads == "chosen" and conv_forms.five_by_five_stride_2(w, strides)


def _conv(x, w, strides, plan):
  """tf.nn.conv2d(x, w, strides, 'SAME'), its gradients computed as the plan says."""
  if not _chosen(plan, w, strides):
    return conv_forms.strided_conv(x, w, plan.matmul_max_pixels, strides)
  in_h, in_w = int(x.shape[1]), int(x.shape[2])

  @tf.custom_gradient
  def conv(x, w):
    def grad(dy):
      dx = conv_forms.transposed_conv(dy, w, in_h, in_w, plan.small_input_grad,
                                      plan.matmul_max_pixels)
      return dx, conv_forms.filter_grad(x, dy, w, plan)
    return conv_forms.strided_conv(x, w, plan.matmul_max_pixels), grad
  return conv(x, w)


def _deconv(x, w, out_h, out_w, strides, plan):
  """conv2d_transpose(x, w) to out_h x out_w, forward and gradients as the plan says."""
  forward = lambda x, w: conv_forms.transposed_conv(x, w, out_h, out_w, plan.small_deconv,
                                          plan.matmul_max_pixels, strides)
  if not _chosen(plan, w, strides):
    return forward(x, w)

  @tf.custom_gradient
  def deconv(x, w):
    def grad(dy):
      dx = conv_forms.strided_conv(dy, w, plan.matmul_max_pixels)
      return dx, conv_forms.filter_grad(dy, x, w, plan)
    return forward(x, w), grad
  return deconv(x, w)


def _label_term(labels, w_labels, input_, layer):
  """layer(conv_cond_concat(0, labels)) for a layer that is linear in its input channels.

  The label channels of conv_cond_concat hold the same value on every pixel,
  so their contribution to a convolution (or transposed convolution) is
  labels @ T, where T[k] is the layer applied to label k's one-hot channel on
  an input-sized map: a batch-of-Y layer run instead of the batch-of-N one over
  Y extra channels.  Exact, borders included; any label values, not only
  one-hot.
  """
  label_c = int(labels.shape[-1])
  height, width = int(input_.shape[1]), int(input_.shape[2])
  one_hot_maps = tf.tile(tf.reshape(tf.eye(label_c), [label_c, 1, 1, label_c]),
                         [1, height, width, 1])
  per_label = layer(one_hot_maps, w_labels)  # [Y, H', W', out]
  out_shape = per_label.shape.as_list()[1:]
  return tf.reshape(tf.matmul(labels, tf.reshape(per_label, [label_c, -1])), [-1] + out_shape)


def deconv2d(input_, output_shape, k_h=5, k_w=5, d_h=2, d_w=2, stddev=0.02,
             name="deconv2d", with_w=False, labels=None, options=None):
  """5x5/2 transposed convolution with bias; weights normal (stddev 0.02).

  ``output_shape`` is [batch, height, width, channels]; batch may be None, in
  which case the batch size of ``input_`` is used, so one graph serves any
  batch size.  ``labels`` [N, Y]: the layer takes ``conv_cond_concat(input_,
  labels)``, as in conv2d.

  The result is that of ``tf.nn.conv2d_transpose``; where the kernel plan says
  so, the generators' last layer (1 or 3 output channels, output exactly twice
  the input) is computed another way, see ``conv_forms.small_deconv`` (options.plan; None:
  plain_options()).
  """
  plan = (options or plain_options()).plan
  _, out_h, out_w, out_c = output_shape
  in_c = int(input_.shape[-1])
  label_c = int(labels.shape[-1]) if labels is not None else 0
  strides = [1, d_h, d_w, 1]
  with tf.variable_scope(name):
    w = tf.get_variable("w", [k_h, k_w, out_c, in_c + label_c],
                        initializer=tf.random_normal_initializer(stddev=stddev))
    w_input, w_labels, input_ = _split_labels(w, 3, input_, labels, plan)
    deconv = _deconv(input_, w_input, out_h, out_w, strides, plan)
    biases = tf.get_variable("biases", [out_c], initializer=tf.constant_initializer(0.0))
    deconv = tf.nn.bias_add(deconv, biases)
    if w_labels is not None:
      deconv += _label_term(labels, w_labels, input_, lambda maps, kernel: (
          tf.nn.conv2d_transpose(maps, kernel, [label_c, out_h, out_w, out_c], strides=strides)))
    if with_w:
      return deconv, w, biases
    return deconv


def lrelu(x, leak=0.2, name="lrelu", options=None):
  """Leaky ReLU, max(x, leak * x) for 0 <= leak <= 1 (the original's formula).

  One LeakyRelu op: its gradient is one op too, where max(x, leak * x) made
  five (compare, two selects, zeros, multiply).
  """
  if (options or plain_options()).plan.lrelu_output_grad and 0 < leak <= 1:
    return _leaky_relu_output_grad(x, leak, name)
  return tf.nn.leaky_relu(x, alpha=leak, name=name)


def _leaky_relu_output_grad(x, leak, name):
  """tf.nn.leaky_relu whose gradient reads the output, not the input.

  For 0 < leak <= 1 the output has the sign of the input, so LeakyReluGrad
  gives the same values from either.  Reading the output leaves the input
  (a convolution's BiasAdd) with one consumer, which grappler's remapper needs
  to fuse convolution, bias and activation: with TensorFlow's own gradient
  the remapper fails on this model's graph and none of its fusions apply.
  """
  @tf.custom_gradient
  def leaky_relu(x):
    y = tf.nn.leaky_relu(x, alpha=leak, name=name)
    return y, lambda dy: tf.raw_ops.LeakyReluGrad(gradients=dy, features=y, alpha=leak)
  return leaky_relu(x)


def linear(input_, output_size, scope=None, stddev=0.02, bias_start=0.0, with_w=False,
           options=None):
  """Fully connected layer: input_ [N, in] @ Matrix [in, out] + bias.

  options: LayerOptions (None: plain_options()): the plan's input gradient, and a Gathering
  that may compute Matrix's gradient from every replica's factors."""
  options = options or plain_options()
  with tf.variable_scope(scope or "Linear"):
    matrix = tf.get_variable("Matrix", [int(input_.shape[1]), output_size], tf.float32,
                             tf.random_normal_initializer(stddev=stddev))
    bias = tf.get_variable("bias", [output_size],
                           initializer=tf.constant_initializer(bias_start))
    gathering = options.gathering
    if gathering is not None and gathering.takes(int(input_.shape[1]), output_size):
      out = _gathered_matmul(input_, matrix, options.plan)  # (named by gathered_matrices)
    elif options.plan.linear_input_grad:
      out = _matmul(input_, matrix, options.plan)
    else:
      out = tf.matmul(input_, matrix)
    out = out + bias
    if with_w:
      return out, matrix, bias
    return out


def _matmul(x, matrix, plan):
  """x @ matrix, whose input gradient avoids oneDNN's slow transposed-B matmul.

  TensorFlow's gradient for x is dy @ matrix^T; for the few-row, wide shapes
  of the linear layers here (dy [64, 1024], matrix [3636, 1024]) oneDNN runs
  that 1.4-2x slower than (matrix @ dy^T)^T, the same numbers.
  """
  @tf.custom_gradient
  def product(x, matrix):
    def grad(dy):
      return _input_grad(dy, matrix, plan), tf.matmul(x, dy, transpose_a=True)
    return tf.matmul(x, matrix), grad
  return product(x, matrix)


def _input_grad(dy, matrix, plan):
  if plan.linear_input_grad:
    return tf.transpose(tf.matmul(matrix, tf.transpose(dy)))  # see _matmul
  return tf.matmul(dy, matrix, transpose_b=True)


def _gathered_matmul(x, matrix, plan):
  """x @ matrix on one replica, whose gradient for matrix is the sum over all replicas
  (Gathering): every replica's x and dy are all-gathered, stacked in replica order, and
  multiplied here."""
  @tf.custom_gradient
  def product(x, matrix):
    def grad(dy):
      # (stop_gradient: all_gather's own gradient would search the other replicas' subgraphs
      # for their variables, which are not the graph's variables by name)
      xs, dys = tf.distribute.get_replica_context().all_gather(
          [tf.stop_gradient(x), tf.stop_gradient(dy)], axis=0)
      return _input_grad(dy, matrix, plan), tf.matmul(xs, dys, transpose_a=True)
    return tf.matmul(x, matrix), grad
  return product(x, matrix)


def flatten(x):
  """[N, H, W, C] -> [N, H*W*C], keeping the static size the next linear layer needs."""
  size = 1
  for dim in x.shape.as_list()[1:]:
    size *= dim
  return tf.reshape(x, [-1, size])
