"""The DCGAN: graph, Session training loop, checkpoints and summaries.

A faithful port of carpedm20/DCGAN-tensorflow's model.py to
``tensorflow.compat.v1``: same constructor arguments, same public attributes,
same variable names and shapes (so checkpoints are interchangeable), same
losses and update schedule.  What differs is what users never see:

* the whole graph (networks, losses, optimizers, summaries, Saver) is built
  in the constructor, before the first ``sess.run``;
* the sampler is the generator called again with ``train=False``, not a copy;
* one graph serves any batch size (placeholders have a free batch dimension);
* every loss and summary is fetched by the ``sess.run`` that computes it: the
  original's three extra forward passes per step to print losses are gone;
* resuming continues the counter, epoch, batch index and Adam's state;
  checkpoints holding only model variables (as the original wrote them)
  still load.
"""
import collections
import contextlib
import os
import random
import zlib

import numpy as np

import hardware

hardware.configure()  # oneDNN decided before TensorFlow loads

import tensorflow.compat.v1 as tf  # noqa: E402

import cluster as cluster_module  # noqa: E402
import training  # noqa: E402
from checkpoints import Checkpoints, checkpoint_counter  # noqa: E402
from dataset import data_channels  # noqa: E402
from hardware import kernel_plan, use_plan  # noqa: E402
from ops import (batch_norm, complete_gradients, conv2d, conv_out_size_same, deconv2d,  # noqa: E402
                 deferred_batch_norm_updates, flatten, gathered_weight_gradients, linear, lrelu)
from optim import SCALE_SCOPES, adam_update  # noqa: E402
from precision import resolved  # noqa: E402
from utils import UserError, image_manifold_size, save_images  # noqa: E402

Z_DISTRIBUTIONS = ("normal01", "uniform_signed", "uniform_unsigned")


def gen_random(rng, z_dist, size):
  """Draw latent vectors from the distribution named by --z_dist."""
  if z_dist == "normal01":
    return rng.standard_normal(size).astype(np.float32)
  if z_dist == "uniform_unsigned":
    return rng.uniform(0.0, 1.0, size).astype(np.float32)
  if z_dist == "uniform_signed":
    return rng.uniform(-1.0, 1.0, size).astype(np.float32)
  raise UserError("--z_dist must be one of %s, not %r." % (", ".join(Z_DISTRIBUTIONS), z_dist))


def max_pool_to(x, size):
  """Max-pool [N, H, W, C] to about size x size (ceil(H / k) with window = stride = k)."""
  kh = -(-int(x.shape[1]) // size)
  kw = -(-int(x.shape[2]) // size)
  return tf.nn.max_pool2d(x, [1, kh, kw, 1], [1, kh, kw, 1], "SAME")


def histogram_summary(tag, values):
  """A histogram summary tagged exactly `tag`, whatever names the graph already holds."""
  return tf.raw_ops.HistogramSummary(tag=tag, values=values, name=tag + "_summary")


def scalar_summary(tag, value):
  return tf.raw_ops.ScalarSummary(tags=tag, values=value, name=tag + "_summary")


# What every worker of a cluster must have been started with alike (DCGAN.agreement): the
# flags that shape the graph or the data, and the data itself (its size).
AGREED_FIELDS = ("dataset", "images", "batch_size", "input_height", "input_width",
                 "output_height", "output_width", "crop", "c_dim", "y_dim", "z_dim", "z_dist",
                 "filters", "train_size", "epoch", "learning_rate", "beta1", "precision", "seed",
                 "replicas", "gathered")
AGREED_FIELD_NAMES = {"images": "datasets (their numbers of images differ)",
                      "c_dim": "image channels", "y_dim": "labels",
                      "filters": "network sizes", "replicas": "numbers of local devices",
                      "gathered": "DCGAN_GATHER_GRADIENTS"}


def field_hash(value):
  """A 20-bit hash of a value's repr: small enough that sums of its square stay exact in
  float64 for thousands of workers."""
  return zlib.crc32(repr(value).encode("utf-8")) & 0xFFFFF


# What one training iteration computed (DCGAN.train_step): the losses, each fetched by the run
# that computes it; the summaries asked for; [(net, loss-scale info)] of the fp16 updates that
# were skipped; the sum of every worker's stop vote (several workers; None in one process).
Step = collections.namedtuple("Step", ["d_loss_real", "d_loss_fake", "g_loss", "summaries",
                                       "skipped", "stop_votes"])


class DCGAN(object):

  def __init__(self, sess, input_height=108, input_width=108, crop=True,
               batch_size=64, sample_num=64, output_height=64, output_width=64,
               y_dim=None, z_dim=100, gf_dim=64, df_dim=64,
               gfc_dim=1024, dfc_dim=1024, c_dim=None, dataset_name='default',
               max_to_keep=1, input_fname_pattern='*.jpg', checkpoint_dir='ckpts',
               sample_dir='samples', out_dir='./out', data_dir='./data',
               learning_rate=0.0002, beta1=0.5, z_dist='uniform_signed', seed=None,
               G_img_sum=False, data=None, precision='fp32', initial_loss_scale=2 ** 15,
               cluster=None, gather_gradients=None):
    """
    Args (as in the original):
      sess: the tf.Session whose graph the model is built in.
      input_height, input_width: size of the center crop taken from images (with crop).
      crop: center-crop images before resizing them to the output size.
      batch_size: images per training step (the graph itself takes any batch size).
      sample_num: images in each sample grid written during training.
      output_height, output_width: size of generated images.
      y_dim: label size for the conditional model (10 for MNIST), None for unconditional.
      z_dim: size of the latent vector z. [100]
      gf_dim, df_dim: filters in the first generator / discriminator conv layer. [64]
      gfc_dim, dfc_dim: units in the conditional model's fully connected layers. [1024]
      c_dim: image channels (1 for grayscale). As in the original, when it is not given it
        comes from the data: 1 for mnist, the first image's channels for a folder of images
        (data's own when `data` is given), 3 if there is no image to read.
      dataset_name, input_fname_pattern, data_dir: where train() finds its data.
      max_to_keep: checkpoints kept by the Saver.
      checkpoint_dir, sample_dir, out_dir: where checkpoints, grids and logs go.
    Additions:
      learning_rate, beta1: Adam's defaults (train(config) feeds config.learning_rate).
      z_dist: 'uniform_signed' | 'uniform_unsigned' | 'normal01'.
      seed: seeds the initial weights, data order, z and sample z (random if None).
      G_img_sum: add generated images to the TensorBoard summaries.
      data: a dataset object from dataset.py (else train() opens one).
      precision: a precision.Precision, or 'fp32', 'fp16' or 'bf16' (precision.precision_mode).
        With fp16 both optimizers scale their losses dynamically (optim.adam_update:
        TensorFlow's MixedPrecisionLossScaleOptimizer with a
        DynamicLossScale each, in scopes d_loss_scale/ and g_loss_scale/); a step whose
        scaled gradients overflow is skipped and counted.  The Session must be made with
        precision.session_config(precision) for the rewrite itself.
      initial_loss_scale: fp16's starting loss scale [2^15, TensorFlow's default].
      cluster: a cluster.Cluster to train on several devices or machines (None: one device,
        the original's graph).  Every replica runs the step on batch_size images; gradients
        are averaged over replicas before each Adam update (README, "Training on several GPUs
        or machines").
      gather_gradients: several replicas: compute the large linear layers' weight gradients
        from every replica's all-gathered factors instead of all-reducing them
        (ops.gathered_weight_gradients; the same sums, fewer bytes).  None: when there are
        several workers (across machines the network is what limits; on one machine the
        devices' all-reduce costs less than the larger products), unless
        DCGAN_GATHER_GRADIENTS=0.
    """
    self.sess = sess
    self.crop = crop
    self.batch_size = batch_size
    self.sample_num = sample_num
    self.input_height = input_height
    self.input_width = input_width
    self.output_height = output_height
    self.output_width = output_width
    self.y_dim = y_dim
    self.z_dim = z_dim
    self.gf_dim = gf_dim
    self.df_dim = df_dim
    self.gfc_dim = gfc_dim
    self.dfc_dim = dfc_dim
    if c_dim is None:
      c_dim = data.c_dim if data is not None else (
          data_channels(dataset_name, data_dir, input_fname_pattern) or 3)
    self.c_dim = c_dim
    self.dataset_name = dataset_name
    self.input_fname_pattern = input_fname_pattern
    self.max_to_keep = max_to_keep
    self.checkpoint_dir = checkpoint_dir
    self.sample_dir = sample_dir
    self.out_dir = out_dir
    self.data_dir = data_dir
    self.beta1 = beta1
    self.default_learning_rate = learning_rate
    self.z_dist = z_dist
    self.seed = seed if seed is not None else random.SystemRandom().randrange(2 ** 31)
    self.G_img_sum = G_img_sum
    self.data = data
    self.precision = resolved(precision)
    self.initial_loss_scale = initial_loss_scale
    self.cluster = cluster
    self.joined = None  # (loaded, counter) once join_cluster ran
    self.seed_given = True  # several workers: False takes the chief's seed (join_cluster)
    self.strategy = cluster.strategy if cluster is not None else None
    self.replicas = cluster.num_replicas if cluster is not None else 1
    # this process's replicas and the global index of its first (one device: 1 and 0)
    self.local_replicas = cluster.local_replicas if cluster is not None else 1
    self.first_replica = cluster.first_replica if cluster is not None else 0
    if gather_gradients is None:
      gather_gradients = (cluster is not None and cluster.num_workers > 1
                          and cluster_module.gather_gradients_default())
    self.gather_gradients = bool(gather_gradients) and self.replicas > 1
    # The conditional generator ends in a sigmoid, the unconditional one in tanh.
    self.value_range = (0.0, 1.0) if y_dim else (-1.0, 1.0)

    # batch normalization : deals with poor initialization helps gradient flow
    self.d_bn1 = batch_norm(name='d_bn1')
    self.d_bn2 = batch_norm(name='d_bn2')
    if not self.y_dim:
      self.d_bn3 = batch_norm(name='d_bn3')
    self.g_bn0 = batch_norm(name='g_bn0')
    self.g_bn1 = batch_norm(name='g_bn1')
    self.g_bn2 = batch_norm(name='g_bn2')
    if not self.y_dim:
      self.g_bn3 = batch_norm(name='g_bn3')

    plan = kernel_plan()
    if self.precision.rewrite and plan.batch_norm_stats != "fused":
      # batch statistics by matmul would be lowered too; the fused kernel keeps them float32
      plan = plan._replace(batch_norm_stats="fused")
    with self.sess.graph.as_default(), use_plan(plan):
      tf.set_random_seed(self.seed)
      self.build_model()

  # --------------------------------------------------------------------------
  # graph

  def build_model(self):
    distributed = self.cluster is not None and self.cluster.distributed
    if distributed:
      self.build_agreement()  # first: its collective must be the same on every worker's graph
    if self.y_dim:
      self.y = tf.placeholder(tf.float32, [None, self.y_dim], name='y')
    else:
      self.y = None
    image_dims = [self.output_height, self.output_width, self.c_dim]
    self.inputs = tf.placeholder(tf.float32, [None] + image_dims, name='real_images')
    self.z = tf.placeholder(tf.float32, [None, self.z_dim], name='z')
    self.learning_rate = tf.placeholder_with_default(
        tf.constant(self.default_learning_rate, tf.float32), [], name='learning_rate')

    if self.strategy is None:
      tower = self.tower(self.inputs, self.z, self.y)
      self.d_optim, self.d_scaling = tower['d_optim'], tower['d_scaling']
      self.g_optim, self.g_scaling = tower['g_optim'], tower['g_scaling']
    else:
      tower = self.build_replicas()
    for name in ('G', 'D', 'D_logits', 'sampler', 'D_', 'D_logits_', 'd_layers',
                 'D_logits_inference', 'd_features', 'd_loss_real', 'd_loss_fake', 'g_loss',
                 'd_loss', 'model_vars', 'd_vars', 'g_vars'):
      setattr(self, name, tower[name])

    # TensorBoard: the original's tags, each merged into the run that computes it.
    # (tf.summary.histogram("z", ...) would be tagged "z_1": the placeholder owns "z".)
    self.z_sum = histogram_summary("z", self.z)
    self.d_sum = histogram_summary("d", self.D)
    self.d__sum = histogram_summary("d_", self.D_)
    self.d_loss_real_sum = scalar_summary("d_loss_real", self.d_loss_real)
    self.d_loss_fake_sum = scalar_summary("d_loss_fake", self.d_loss_fake)
    self.d_loss_sum = scalar_summary("d_loss", self.d_loss)
    self.g_loss_sum = scalar_summary("g_loss", self.g_loss)
    d_summaries = [self.z_sum, self.d_sum, self.d_loss_real_sum, self.d_loss_fake_sum,
                   self.d_loss_sum]
    g_summaries = [self.d__sum, self.g_loss_sum]
    if self.precision.loss_scaling:
      # the scale after this run's update (halved if its gradients overflowed)
      d_summaries.append(scalar_summary("d_loss_scale", self.d_scaling["scale"]))
      g_summaries.append(scalar_summary("g_loss_scale", self.g_scaling["scale"]))
    self.d_summary = tf.summary.merge(d_summaries)
    if self.G_img_sum:
      self.G_sum = tf.raw_ops.ImageSummary(tag="G", tensor=self.G, max_images=3, name="G_summary")
      g_summaries.append(self.G_sum)
    self.g_summary = tf.summary.merge(g_summaries)

    self.all_vars = tf.global_variables()
    # Checked before every save: all variables finite, and G and D (inference
    # mode) still produce finite outputs, so a diverged state is never saved.
    self.healthy = tf.reduce_all(
        [tf.reduce_all(tf.is_finite(v)) for v in self.all_vars if v.dtype.base_dtype == tf.float32]
        + [tf.reduce_all(tf.is_finite(self.sampler)),
           tf.reduce_all(tf.is_finite(self.D_logits_inference))], name='healthy')
    if distributed:
      self.build_broadcast()
    self.init_op = tf.global_variables_initializer()
    # the Savers last (checkpoints.py)
    self.checkpoints = Checkpoints(self.model_vars, self.max_to_keep, self.healthy, self.y_dim,
                                   SCALE_SCOPES)
    self.saver, self.model_saver = self.checkpoints.saver, self.checkpoints.model_saver

  def tower(self, inputs, z, y):
    """One replica's step: G, D on real and generated images, the losses and both updates.

    The sampler (G with train=False), D in inference mode and its features are built here
    too, on the same inputs, so one device's graph is exactly the original's order.
    """
    t = {}
    # Several replicas: batch norm's moving-average updates (each an all-reduce) join the
    # update ops of the runs that compute them instead of holding up the layers' outputs.
    # With gather_gradients, the large linear layers' weight gradients are computed from
    # every replica's factors (ops.gathered_weight_gradients): G's layers are passed once
    # per loss, D's twice (real and fake).
    defer = deferred_batch_norm_updates if self.replicas > 1 else contextlib.nullcontext
    if self.gather_gradients:
      gathered = lambda calls: gathered_weight_gradients(self.replicas, calls * self.batch_size)
    else:
      gathered = lambda calls: contextlib.nullcontext()
    with defer() as g_updates, gathered(1):
      t['G'] = self.generator(z, y)
    with defer() as d_real_updates, gathered(2):
      t['D'], t['D_logits'] = self.discriminator(inputs, y, reuse=False)
    t['sampler'] = self.generator(self.z, self.y, train=False)
    with defer() as d_fake_updates, gathered(2):
      t['D_'], t['D_logits_'] = self.discriminator(t['G'], y, reuse=True)
    # D's convolutional features of the inputs (inference mode), each max-pooled
    # to 4x4 and concatenated: the paper's features for a linear classifier.
    t['d_layers'] = []
    _, t['D_logits_inference'] = self.discriminator(self.inputs, self.y, reuse=True, train=False,
                                                    layers=t['d_layers'])
    t['d_features'] = tf.concat([flatten(max_pool_to(h, 4)) for h in t['d_layers']], 1,
                                name='d_features')

    def sigmoid_cross_entropy_with_logits(logits, labels):
      return tf.nn.sigmoid_cross_entropy_with_logits(logits=logits, labels=labels)

    t['d_loss_real'] = tf.reduce_mean(
        sigmoid_cross_entropy_with_logits(t['D_logits'], tf.ones_like(t['D'])))
    t['d_loss_fake'] = tf.reduce_mean(
        sigmoid_cross_entropy_with_logits(t['D_logits_'], tf.zeros_like(t['D_'])))
    t['g_loss'] = tf.reduce_mean(
        sigmoid_cross_entropy_with_logits(t['D_logits_'], tf.ones_like(t['D_'])))
    t['d_loss'] = t['d_loss_real'] + t['d_loss_fake']

    t['model_vars'] = tf.global_variables()
    t_vars = tf.trainable_variables()
    t['d_vars'] = [var for var in t_vars if var.name.startswith('discriminator/')]
    t['g_vars'] = [var for var in t_vars if var.name.startswith('generator/')]

    # Optimizers, D's first as in the original (so Adam's beta1_power belongs
    # to D and beta1_power_1 to G in both).  Under tf.distribute each replica's
    # gradients are averaged over all replicas before Adam applies them.
    # (tf.distribute sums the replicas' gradients; TF1 optimizers scale the loss for a mean
    # only under Estimator, so each replica's loss is divided by the number of replicas here.)
    scaling = self.precision.loss_scaling
    d_loss, g_loss = t['d_loss'], t['g_loss']
    if self.replicas > 1:
      d_loss, g_loss = d_loss / self.replicas, g_loss / self.replicas
    # (Gathered weight gradients, if any layer has them: no gating, or every layer's input
    # gradient would wait for its weight gradient's all-gathers, and G's updates would run
    # D's, which they discard.)
    gate = (tf.train.Optimizer.GATE_NONE if self.gather_gradients and complete_gradients()
            else tf.train.Optimizer.GATE_OP)
    t['d_optim'], t['d_scaling'] = adam_update(d_loss, t['d_vars'], self.learning_rate,
                                               self.beta1, scaling, SCALE_SCOPES[0],
                                               self.initial_loss_scale, gate)
    t['g_optim'], t['g_scaling'] = adam_update(g_loss, t['g_vars'], self.learning_rate,
                                               self.beta1, scaling, SCALE_SCOPES[1],
                                               self.initial_loss_scale, gate)
    if self.replicas > 1:
      # the updates each run made on one device: D's run passes G, D(real) and D(fake); G's
      # runs pass G and D(fake)
      t['d_optim'] = tf.group(t['d_optim'], *(g_updates + d_real_updates + d_fake_updates))
      t['g_optim'] = tf.group(t['g_optim'], *(g_updates + d_fake_updates))
    return t

  def build_replicas(self):
    """The tower on every replica of self.strategy, each on its slice of the fed batch.

    The placeholders hold this worker's replicas' batches one after another
    (local_replicas x batch_size images and z); replica r takes the r-th.  What the rest of
    the model reads (losses, D's outputs) is the mean or concatenation over this worker's
    replicas; the sampler and D's inference outputs are the first replica's (all replicas
    hold the same variables).
    """
    strategy, local = self.strategy, self.cluster.local_replicas

    def replica_slice(x):
      if x is None or local == 1:
        return x
      index = tf.math.floormod(tf.distribute.get_replica_context().replica_id_in_sync_group, local)
      shape = tf.shape(x)
      return tf.gather(tf.reshape(x, tf.concat([[local, -1], shape[1:]], 0)), index)

    def replica():
      return self.tower(replica_slice(self.inputs), replica_slice(self.z), replica_slice(self.y))

    with strategy.scope():
      # (each replica's own list of the model's variables would depend on how far the others
      # have got, so the tower's list is read from the graph afterwards)
      towers = strategy.extended.call_for_each_replica(
          lambda: {k: v for k, v in replica().items() if k != 'model_vars'})
      self.d_optim = strategy.group(towers['d_optim'])
      self.g_optim = strategy.group(towers['g_optim'])
    first = lambda value: strategy.experimental_local_results(value)[0]
    mean = lambda value: tf.add_n(list(strategy.experimental_local_results(value))) / local
    concat = lambda value: tf.concat(list(strategy.experimental_local_results(value)), 0)
    if self.precision.loss_scaling:
      self.d_scaling = {k: first(v) for k, v in towers['d_scaling'].items()}
      self.g_scaling = {k: first(v) for k, v in towers['g_scaling'].items()}
    else:
      self.d_scaling, self.g_scaling = {}, {}
    t = {name: first(towers[name]) for name in ('sampler', 'D_logits_inference', 'd_features')}
    t['d_layers'] = [first(h) for h in towers['d_layers']]
    for name in ('G', 'D', 'D_logits', 'D_', 'D_logits_'):
      t[name] = concat(towers[name])
    for name in ('d_loss_real', 'd_loss_fake', 'g_loss', 'd_loss'):
      t[name] = mean(towers[name])
    for name in ('d_vars', 'g_vars'):
      t[name] = list(towers[name])
    slots = set()
    for var in t['d_vars'] + t['g_vars']:
      slots.update((var.op.name + '/Adam', var.op.name + '/Adam_1'))
    t['model_vars'] = [v for v in tf.global_variables()
                       if v.op.name.split('/')[0] in ('generator', 'discriminator')
                       and v.op.name not in slots]
    return t

  def all_reduce_sum(self, fn):
    """Sum over all workers of fn(is_first_local_replica) (each worker's first replica
    contributes, the others add zeros); the first local replica's copy of the result."""
    local = self.cluster.local_replicas

    def replica():
      ctx = tf.distribute.get_replica_context()
      first = tf.equal(tf.math.floormod(ctx.replica_id_in_sync_group, local), 0)
      return ctx.all_reduce(tf.distribute.ReduceOp.SUM, fn(first))

    with self.strategy.scope():
      return self.strategy.experimental_local_results(
          self.strategy.extended.call_for_each_replica(replica))[0]

  def build_agreement(self):
    """Several workers: what they must agree on, all-reduced.

    agree_in (float64, fed by train()): per AGREED_FIELDS a weight w (1, or 0 where a worker
    leaves it to the chief), w * hash, w * hash^2 and the chief's hash, then the chief's seed,
    counter and whether it loaded a checkpoint; the sum says if every worker built the same
    graph and data (agreement()).  stop_in: a signal number (0: none), summed every step so
    that all workers stop after the same one.
    """
    size = 4 * len(AGREED_FIELDS) + 3
    self.agree_in = tf.placeholder(tf.float64, [size], name='cluster/agree')
    self.agreed = self.all_reduce_sum(
        lambda first: tf.where(first, self.agree_in, tf.zeros_like(self.agree_in)))
    self.stop_in = tf.placeholder_with_default(tf.constant(0.0), [], name='cluster/stop')
    self.stop_votes = self.all_reduce_sum(
        lambda first: tf.where(first, self.stop_in, tf.zeros_like(self.stop_in)))

  def build_broadcast(self):
    """broadcast_op: every variable's every copy set to the chief's first replica's value
    (after the chief restored a checkpoint; the other workers need not see its files)."""
    variables = tf.global_variables()

    def chief_values():
      chief = tf.equal(tf.distribute.get_replica_context().replica_id_in_sync_group, 0)
      values = [tf.identity(v) if v.dtype.base_dtype == tf.float32 else tf.cast(v, tf.float64)
                for v in variables]
      return [tf.where(chief, x, tf.zeros_like(x)) for x in values]

    local = self.cluster.local_replicas

    def replica():
      ctx = tf.distribute.get_replica_context()
      return ctx.all_reduce(tf.distribute.ReduceOp.SUM, chief_values())

    with self.strategy.scope():
      reduced = self.strategy.extended.call_for_each_replica(replica)
    assigns = []
    for i, var in enumerate(variables):
      values = self.strategy.experimental_local_results(reduced[i])
      copies = self.strategy.experimental_local_results(var)
      assert len(values) == len(copies) == local
      for copy, value in zip(copies, values):
        assigns.append(copy.assign(tf.cast(value, var.dtype.base_dtype), read_value=False))
    self.broadcast_op = tf.group(assigns, name='cluster/broadcast')

  def agreement(self, fields, seed, counter, loaded):
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
    total = self.sess.run(self.agreed, {self.agree_in: np.array(vector, np.float64)},
                          options=self.run_options(first=True))
    for i, name in enumerate(AGREED_FIELDS):
      weight, h, h2, chief_h = total[4 * i:4 * i + 4]
      if h != weight * chief_h or h2 != weight * chief_h * chief_h:
        raise UserError("The workers were started with different %s, so they would build "
                        "different graphs or data; start every worker with the same flags (this "
                        "one has %s)." % (AGREED_FIELD_NAMES.get(name, "--" + name), fields[name]))
    seed, counter, loaded = total[-3:]
    return int(seed), int(counter), bool(loaded)

  def run_options(self, first=False):
    """Several workers: every run bounded, so a worker that stops answering is noticed."""
    if self.cluster is None or not self.cluster.distributed:
      return None
    seconds = cluster_module.FIRST_STEP_TIMEOUT if first else cluster_module.STEP_TIMEOUT
    return tf.RunOptions(timeout_in_ms=1000 * seconds)

  def discriminator(self, image, y=None, reuse=False, train=True, layers=None):
    """D; with train=False batch norm uses its moving statistics.

    If `layers` is a list, the convolutional activations are appended to it
    (the paper's discriminator-features experiment reads them).
    """
    keep = layers.append if layers is not None else (lambda h: None)
    with tf.variable_scope("discriminator", reuse=reuse):
      if not self.y_dim:
        h0 = lrelu(conv2d(image, self.df_dim, name='d_h0_conv'))
        h1 = lrelu(self.d_bn1(conv2d(h0, self.df_dim * 2, name='d_h1_conv'), train=train))
        h2 = lrelu(self.d_bn2(conv2d(h1, self.df_dim * 4, name='d_h2_conv'), train=train))
        h3 = lrelu(self.d_bn3(conv2d(h2, self.df_dim * 8, name='d_h3_conv'), train=train))
        for h in (h0, h1, h2, h3):
          keep(h)
        h4 = linear(flatten(h3), 1, 'd_h4_lin')
        return tf.nn.sigmoid(h4), h4

      # labels=y: the layer takes conv_cond_concat(input, y), as the original's
      h0 = lrelu(conv2d(image, self.c_dim + self.y_dim, name='d_h0_conv', labels=y))
      keep(h0)
      h1 = lrelu(self.d_bn1(conv2d(h0, self.df_dim + self.y_dim, name='d_h1_conv', labels=y),
                            train=train))
      keep(h1)
      h1 = tf.concat([flatten(h1), y], 1)
      h2 = lrelu(self.d_bn2(linear(h1, self.dfc_dim, 'd_h2_lin'), train=train))
      h2 = tf.concat([h2, y], 1)
      h3 = linear(h2, 1, 'd_h3_lin')
      return tf.nn.sigmoid(h3), h3

  def generator(self, z, y=None, train=True):
    """The generator; with train=False (the sampler) batch norm uses its moving statistics."""
    with tf.variable_scope("generator", reuse=tf.AUTO_REUSE):
      s_h, s_w = self.output_height, self.output_width
      s_h2, s_w2 = conv_out_size_same(s_h, 2), conv_out_size_same(s_w, 2)
      s_h4, s_w4 = conv_out_size_same(s_h2, 2), conv_out_size_same(s_w2, 2)
      if not self.y_dim:
        s_h8, s_w8 = conv_out_size_same(s_h4, 2), conv_out_size_same(s_w4, 2)
        s_h16, s_w16 = conv_out_size_same(s_h8, 2), conv_out_size_same(s_w8, 2)

        # project `z` and reshape
        z_ = linear(z, self.gf_dim * 8 * s_h16 * s_w16, 'g_h0_lin')
        h0 = tf.reshape(z_, [-1, s_h16, s_w16, self.gf_dim * 8])
        h0 = tf.nn.relu(self.g_bn0(h0, train=train))
        h1 = deconv2d(h0, [None, s_h8, s_w8, self.gf_dim * 4], name='g_h1')
        h1 = tf.nn.relu(self.g_bn1(h1, train=train))
        h2 = deconv2d(h1, [None, s_h4, s_w4, self.gf_dim * 2], name='g_h2')
        h2 = tf.nn.relu(self.g_bn2(h2, train=train))
        h3 = deconv2d(h2, [None, s_h2, s_w2, self.gf_dim * 1], name='g_h3')
        h3 = tf.nn.relu(self.g_bn3(h3, train=train))
        h4 = deconv2d(h3, [None, s_h, s_w, self.c_dim], name='g_h4')
        return tf.nn.tanh(h4)

      z = tf.concat([z, y], 1)
      h0 = tf.nn.relu(self.g_bn0(linear(z, self.gfc_dim, 'g_h0_lin'), train=train))
      h0 = tf.concat([h0, y], 1)
      h1 = tf.nn.relu(self.g_bn1(linear(h0, self.gf_dim * 2 * s_h4 * s_w4, 'g_h1_lin'),
                                 train=train))
      h1 = tf.reshape(h1, [-1, s_h4, s_w4, self.gf_dim * 2])
      # labels=y: the layer takes conv_cond_concat(input, y), as the original's
      h2 = tf.nn.relu(self.g_bn2(deconv2d(h1, [None, s_h2, s_w2, self.gf_dim * 2], name='g_h2',
                                          labels=y), train=train))
      return tf.nn.sigmoid(deconv2d(h2, [None, s_h, s_w, self.c_dim], name='g_h3', labels=y))

  # --------------------------------------------------------------------------
  # feeding

  def feed(self, z, labels=None, images=None, learning_rate=None):
    """The feed dict for a step: labels go in only for the conditional model."""
    feed = {self.z: z}
    if self.y_dim:
      feed[self.y] = labels
    if images is not None:
      feed[self.inputs] = images
    if learning_rate is not None:
      feed[self.learning_rate] = learning_rate
    return feed

  def sample_inputs(self, num=None):
    """The fixed z (and labels, cycling 0..y_dim-1) behind every sample grid of a run."""
    num = num or self.sample_num
    z = gen_random(np.random.default_rng([self.seed, 2]), self.z_dist, (num, self.z_dim))
    labels = None
    if self.y_dim:
      labels = np.eye(self.y_dim, dtype=np.float32)[np.arange(num) % self.y_dim]
    return z, labels

  def sample(self, z, labels=None):
    return self.sess.run(self.sampler, feed_dict=self.feed(z, labels))

  def save_sample_grid(self, path, z, labels=None):
    samples = self.sample(z, labels)
    save_images(samples, image_manifold_size(len(samples)), path, self.value_range)
    return path

  # --------------------------------------------------------------------------
  # training

  def train_step(self, feed, summarize=True, stop=0, first=False):
    """One iteration: one D update, then two G updates with the same z; returns a Step.

    Each loss is fetched by the run that computes it (d's before the D update, g's before the
    second G update); the summaries only when summarize is true.  On several workers the last
    run also sums every worker's stop (a signal number or 0) into Step.stop_votes, so that all
    of them stop after the same step.
    """
    options = self.run_options(first)
    d_summary = [self.d_summary] if summarize else []
    g_summary = [self.g_summary] if summarize else []
    # Phase 1: update D on a real and a generated batch.
    out = self.sess.run([self.d_optim, self.d_scaling, self.d_loss_real, self.d_loss_fake]
                        + d_summary, feed_dict=feed, options=options)
    scaling = [("D", out[1])]
    err_d_real, err_d_fake, summaries = out[2], out[3], out[4:]
    # Phase 2: update G twice with the same z, so that d_loss does not go to
    # zero (the original's choice, not the paper's).
    out = self.sess.run([self.g_optim, self.g_scaling], feed_dict=feed, options=options)
    scaling.append(("G", out[1]))
    last = [self.g_optim, self.g_scaling, self.g_loss] + g_summary
    if options is not None:
      feed = dict(feed)
      feed[self.stop_in] = float(stop)
      last.append(self.stop_votes)
    out = self.sess.run(last, feed_dict=feed, options=options)
    stop_votes = int(round(out.pop())) if options is not None else None
    scaling.append(("G", out[1]))
    # fp16: which updates were skipped because their scaled gradients overflowed
    skipped = [(net, info) for net, info in scaling if info and not info["finite"]]
    return Step(err_d_real, err_d_fake, out[2], summaries + out[3:], skipped, stop_votes)

  def train(self, config, prepare=None):
    """Train for config.epoch epochs, resuming from checkpoint_dir if it holds a checkpoint;
    returns the counter it ended at (training.train, the loop, has the rest)."""
    return training.train(self, config, prepare).counter

  def batch_z(self, counter, first_replica=0, replicas=1):
    """z for step `counter`, replicas first_replica.. one after another: replica r's from the
    seed (seed, 1, counter, r), replica 0's from (seed, 1, counter) as on one device."""
    draws = []
    for replica in range(first_replica, first_replica + replicas):
      key = [self.seed, 1, counter] + ([replica] if replica else [])
      draws.append(gen_random(np.random.default_rng(key), self.z_dist,
                              (self.batch_size, self.z_dim)))
    return draws[0] if replicas == 1 else np.concatenate(draws)

  def agreed_fields(self, data, settings):
    return {"dataset": self.dataset_name, "images": len(data), "batch_size": self.batch_size,
            "input_height": self.input_height, "input_width": self.input_width,
            "output_height": self.output_height, "output_width": self.output_width,
            "crop": bool(self.crop), "c_dim": self.c_dim, "y_dim": self.y_dim,
            "z_dim": self.z_dim, "z_dist": self.z_dist,
            "filters": (self.gf_dim, self.df_dim, self.gfc_dim, self.dfc_dim),
            "train_size": float(settings.train_size), "epoch": settings.epoch,
            "learning_rate": float(settings.learning_rate),
            "beta1": float(self.beta1), "precision": self.precision.name,
            "seed": self.seed if self.seed_given else None,
            "replicas": self.cluster.local_replicas,
            "gathered": int(self.gather_gradients)}

  def join_cluster(self, settings, data=None):
    """Several workers, before the first step: (loaded a checkpoint, counter).

    The chief finds its checkpoint; the workers check they were started alike (a UserError
    otherwise) and take the chief's seed and counter; all initialise (TensorFlow broadcasts
    the chief's initial values); the chief restores and its variables are broadcast.
    """
    checkpoint_dir = settings.checkpoint_dir
    data = data if data is not None else self.data
    path = None
    if self.cluster.is_chief:
      path, _ = self.check_checkpoint(checkpoint_dir)
    self.seed, counter, could_load = self.agreement(
        self.agreed_fields(data, settings), self.seed,
        checkpoint_counter(path) if path else 0, path is not None)
    self.sess.run(self.init_op, options=self.run_options(first=True))
    if self.cluster.is_chief and could_load:
      self.load(checkpoint_dir)
    if could_load:
      self.sess.run(self.broadcast_op, options=self.run_options(first=True))
    self.joined = (could_load, counter)
    return self.joined

  # --------------------------------------------------------------------------
  # checkpoints

  def save_checked(self, checkpoint_dir, step, feed, sample_z, sample_labels=None):
    """Save a checkpoint if the model is still healthy (Checkpoints.save_checked)."""
    # The sampler and D's inference pass see the grid's z and labels, and as many of the step's
    # images (several replicas feed replicas x batch_size of them, one replica's worth of z).
    n = min(len(feed[self.inputs]), len(sample_z))
    check = self.feed(sample_z[:n], None if sample_labels is None else sample_labels[:n],
                      feed[self.inputs][:n])
    return self.checkpoints.save_checked(self.sess, checkpoint_dir,
                                         'model.b' + str(self.batch_size), step, check)

  def save(self, checkpoint_dir, step, filename='model', ckpt=True, frozen=False):
    """Write checkpoint '<filename>.b<batch_size>-<step>' and/or a frozen sampler GraphDef."""
    filename += '.b' + str(self.batch_size)
    os.makedirs(checkpoint_dir, exist_ok=True)
    written = []
    if ckpt:
      written.append(self.checkpoints.save(self.sess, checkpoint_dir, filename, step))
    if frozen:
      graph_def = tf.graph_util.convert_variables_to_constants(
          self.sess, self.sess.graph.as_graph_def(), [self.sampler.op.name])
      name = '{}-{:06d}_frz.pb'.format(filename, step)
      tf.train.write_graph(graph_def, checkpoint_dir, name, as_text=False)
      written.append(os.path.join(checkpoint_dir, name))
    return written

  def load(self, checkpoint_dir):
    """Restore the newest checkpoint in checkpoint_dir; returns (found, counter)
    (Checkpoints.restore)."""
    return self.checkpoints.restore(self.sess, checkpoint_dir)

  def check_checkpoint(self, checkpoint_dir):
    """(path, variable shapes) of checkpoint_dir's newest checkpoint, or (None, None); a
    one-sentence UserError if it does not fit this graph (Checkpoints.check)."""
    return self.checkpoints.check(checkpoint_dir)
