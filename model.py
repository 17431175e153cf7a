"""The DCGAN: the graph and the one-D-two-G training step (docs/ARCHITECTURE.md).

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

The loop is training.py's, the checkpoints checkpoints.py's; how the tower is laid over
replicas is replicas.py's, how this process works with others roles.py's.
"""
import dataclasses
import os
import random

import numpy as np
import tensorflow.compat.v1 as tf

import hardware
import replicas
import roles
import step
import training
from checkpoints import Checkpoints, checkpoint_prefix
from dataset import data_channels, open_dataset
from ops import (LayerOptions, batch_norm, conv2d, conv_out_size_same, deconv2d,
                 flatten, linear, lrelu)
from optim import SCALE_SCOPES, Optimizer
from precision import resolved
from settings import Folders, ModelSettings
from step import gen_random
from utils import save_sample_grid


def max_pool_to(x, size):
  """Max-pool [N, H, W, C] to about size x size (ceil(H / k) with window = stride = k)."""
  kh = -(-int(x.shape[1]) // size)
  kw = -(-int(x.shape[2]) // size)
  return tf.nn.max_pool2d(x, [1, kh, kw, 1], [1, kh, kw, 1], "SAME")


def histogram_summary(tag, values):
  """A histogram summary tagged exactly `tag`, whatever names the graph already holds, of the
  finite values: TensorFlow's op fails the whole run on a NaN, and a step whose losses are not
  finite stops training (the NaN stop) before its summaries are written."""
  finite = tf.boolean_mask(values, tf.math.is_finite(values))
  return tf.raw_ops.HistogramSummary(tag=tag, values=finite, name=tag + "_summary")


def scalar_summary(tag, value):
  return tf.raw_ops.ScalarSummary(tags=tag, values=value, name=tag + "_summary")


def model_variables(trained):
  """The model's variables (G's and D's, batch norm's moving statistics included, in the order
  they were made), without the optimizers' slots of `trained`."""
  slots = set()
  for var in trained:
    slots.update((var.op.name + '/Adam', var.op.name + '/Adam_1'))
  return [v for v in tf.global_variables()
          if v.op.name.split('/')[0] in ('generator', 'discriminator')
          and v.op.name not in slots]


SETTING_NAMES = frozenset(field.name for field in dataclasses.fields(ModelSettings))


def resolved_settings(settings, data=None):
  """settings with what they leave open decided, once: c_dim (as the original: the data's,
  1 for mnist, the first image's channels of a folder, 3 without an image), the seed (drawn if
  None), the label names ('0' to 'y_dim - 1' if not given), multi_hot (only with y), the
  precision.Precision and the hardware.KernelPlan."""
  c_dim = settings.c_dim
  if c_dim is None:
    c_dim = data.c_dim if data is not None else (
        data_channels(settings.dataset_name, settings.data_dir, settings.input_fname_pattern) or 3)
  precision = resolved(settings.precision)
  kernels = settings.kernels
  if not isinstance(kernels, hardware.KernelPlan):
    kernels = hardware.kernel_plan(kernels, lowered=bool(precision.rewrite))
  names = settings.label_names or [str(label) for label in range(settings.y_dim or 0)]
  return settings.replace(
      c_dim=c_dim, precision=precision, kernels=kernels, label_names=tuple(names) or None,
      seed=(settings.seed if settings.seed is not None
            else random.SystemRandom().randrange(2 ** 31)),
      multi_hot=bool(settings.multi_hot and settings.y_dim))


class DCGAN(object):
  """The original's DCGAN: its graph built in a Session's graph when it is made, its train,
  load and save.

  Args: sess, the tf.Session whose graph the model is built in; then either settings=, a
  settings.ModelSettings (main.py and the benches build one), or the original's arguments,
  which make one (their defaults are settings.ModelSettings'); and the objects a model is
  built with: data, cluster, loss, update_rule.  The settings (as in the original):
    input_height, input_width: size of the center crop taken from images (with crop).
    crop: center-crop images before resizing them to the output size.  True here, as in the
      original's constructor; main.py's --crop is False, as the original's flag: the flag
      decides for runs of main.py, and the data layer states no default of its own.
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
    precision: a precision.Precision (main.py decides it once), or its name, 'fp32',
      'fp16' or 'bf16', resolved here by precision.precision_mode for code that builds a
      DCGAN itself.  With fp16 both optimizers scale their losses dynamically
      (optim.DynamicLossScale, in scopes d_loss_scale/ and g_loss_scale/); an update whose
      scaled gradients overflow is skipped and counted.  The Session must be made with
      precision.session_config(precision) for the rewrite itself.
    initial_loss_scale: fp16's starting loss scale (optim.INITIAL_LOSS_SCALE, TensorFlow's).
    kernels: the kernel plan to build the layers with, by name (hardware.kernel_plan: 'auto'
      is this machine's), or a hardware.KernelPlan.
    label_names: the conditional model's class names in label order (the exports carry them;
      None: '0' to 'y_dim - 1').
    multi_hot: y names attributes, several present at once (--attributes), rather than one
      class of label_names.
  The objects:
    data: a dataset object from the dataset package (else train() opens one).
    cluster: a cluster.Cluster to train on several devices or machines (None: one device;
      replicas.replication).  Every replica runs the step on batch_size images; gradients
      are averaged over replicas before each Adam update (README, "Training on several GPUs
      or machines"); whether they gather the large linear layers' weight gradients from every
      replica's factors is the cluster's decision (cluster.decide_gathers).
    loss: the GAN loss, a function (step.GANModel, step.Tower) -> step.GANLoss (None: the
      original's, step.gan_loss).
    update_rule: a function (learning_rate, beta1) -> each network's update rule (optim.Optimizer
      says what one is; None: Adam, the original's).
  """

  def __init__(self, sess, *args, settings=None, data=None, cluster=None, loss=None,
               update_rule=None, **kwargs):
    """Build the model in sess's graph from `settings` (a settings.ModelSettings), or from the
    original's arguments, by position in its order or by name, which make one (the class's
    docstring says what each does).  The settings as built, what they left open decided
    (resolved_settings), are self.settings; the original's attributes read them."""
    if settings is None:
      settings = ModelSettings(*args, **kwargs)
    elif args or kwargs:
      raise TypeError("DCGAN takes settings= or the original's arguments, not both")
    self.sess, self.data = sess, data
    self.settings = resolved_settings(settings, data)
    self.loss_fn, self.update_rule = loss or step.gan_loss, update_rule
    # how the tower is laid over replicas, and how this process works with the others of its
    # run: both chosen here, once (docs/ARCHITECTURE.md)
    self.replication = replicas.replication(cluster)
    self.coordination = roles.coordination(cluster, self.replication, settings.seed is not None)
    # The conditional generator ends in a sigmoid, the unconditional one in tanh.
    self.value_range = (0.0, 1.0) if self.y_dim else (-1.0, 1.0)

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

    with self.sess.graph.as_default():
      tf.set_random_seed(self.seed)
      self.build_model()

  def __getattr__(self, name):
    """The original's attributes (self.batch_size, self.y_dim, self.checkpoint_dir, ...) and
    this project's (self.seed, self.precision, ...) are self.settings' fields."""
    settings = self.__dict__.get("settings")
    if settings is None or name not in SETTING_NAMES:
      raise AttributeError(name)
    return getattr(settings, name)

  @property
  def plan(self):
    """The hardware.KernelPlan the layers are built with."""
    return self.settings.kernels

  @property
  def gathered(self):
    """The names of the variables whose gradients the replicas compute from gathered factors
    (ops.Gathering; what step.build gave the optimizers), for bench/ and the tests."""
    return self.tower_options.gathered(self.model)

  # --------------------------------------------------------------------------
  # graph

  def build_model(self):
    """The whole graph, optimizers included, the Savers last (docs/ARCHITECTURE.md): the step
    as values (step.py: self.model, self.loss, self.train_ops), with the original's names for
    what they hold (self.G, self.d_loss, self.d_optim, ...)."""
    self.coordination.build_first()  # the agreement collective, first (invariant 5)
    if self.y_dim:
      self.y = tf.placeholder(tf.float32, [None, self.y_dim], name='y')
    else:
      self.y = None
    image_dims = [self.output_height, self.output_width, self.c_dim]
    self.inputs = tf.placeholder(tf.float32, [None] + image_dims, name='real_images')
    self.z = tf.placeholder(tf.float32, [None, self.z_dim], name='z')
    self.learning_rate = tf.placeholder_with_default(
        tf.constant(self.settings.learning_rate, tf.float32), [], name='learning_rate')
    self.feeds = step.Feeds(self.inputs, self.z, self.y, self.learning_rate)

    # D's optimizer first, as in the original (docs/ARCHITECTURE.md, invariant 2)
    self.optimizers = optimizers = {
        net: Optimizer(net, self.replication, self.learning_rate, self.beta1,
                       self.precision.loss_scaling, self.initial_loss_scale,
                       self.update_rule and self.update_rule(self.learning_rate, self.beta1))
        for net in ("discriminator", "generator")}
    self.tower_options = step.TowerOptions(self.plan, self.batch_size,
                                           self.replication.num_replicas, self.replication.gathers)
    self.model, self.loss, updates = step.build(
        self.generator, self.discriminator, self.feeds, self.replication, optimizers,
        self.tower_options, self.loss_fn)
    m, loss = self.model, self.loss
    self.G, self.D, self.D_logits, self.D_, self.D_logits_ = (
        m.generated, m.real, m.real_logits, m.fake, m.fake_logits)
    self.d_vars, self.g_vars = m.discriminator_vars, m.generator_vars
    self.d_loss_real, self.d_loss_fake, self.d_loss, self.g_loss = loss
    self.d_optim, self.d_scaling = updates["discriminator"]
    self.g_optim, self.g_scaling = updates["generator"]
    self.model_vars = model_variables(self.d_vars + self.g_vars)
    self.build_inference()
    self.coordination.build_votes(self.g_loss)
    self.build_summaries()
    self.train_ops = step.gan_train_ops(
        self.loss, updates, {"discriminator": self.d_summary, "generator": self.g_summary})

    self.all_vars = tf.global_variables()
    # Checked before every save: all variables finite, and G and D (inference
    # mode) still produce finite outputs, so a diverged state is never saved.
    self.healthy = tf.reduce_all(
        [tf.reduce_all(tf.is_finite(v)) for v in self.all_vars if v.dtype.base_dtype == tf.float32]
        + [tf.reduce_all(tf.is_finite(self.sampler)),
           tf.reduce_all(tf.is_finite(self.D_logits_inference))], name='healthy')
    self.coordination.build_last(self.all_vars)
    self.init_op = tf.global_variables_initializer()
    # the Savers last (checkpoints.py)
    self.checkpoints = Checkpoints(self.model_vars, self.max_to_keep, self.healthy, self.y_dim,
                                   tuple(SCALE_SCOPES.values()))
    self.saver, self.model_saver = self.checkpoints.saver, self.checkpoints.model_saver

  def build_inference(self):
    """Built once, outside the replicas' towers: the sampler (G with train=False, invariant 7),
    D in inference mode on the inputs, and D's convolutional features of them, each max-pooled
    to 4x4 and concatenated (the paper's features for a linear classifier)."""
    self.sampler = self.generator(self.z, self.y, train=False)
    self.d_layers = []
    _, self.D_logits_inference = self.discriminator(self.inputs, self.y, reuse=True, train=False,
                                                    layers=self.d_layers)
    self.d_features = tf.concat([flatten(max_pool_to(h, 4)) for h in self.d_layers], 1,
                                name='d_features')

  def build_summaries(self):
    """TensorBoard: the original's tags, each merged into the run that computes it."""
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

  def discriminator(self, image, y=None, reuse=False, train=True, layers=None, options=None):
    """D; with train=False batch norm uses its moving statistics.

    If `layers` is a list, the convolutional activations are appended to it
    (the paper's discriminator-features experiment reads them).  options: ops.LayerOptions
    for this pass (None: self.plan's layers, batch norm's updates in place).
    """
    o = options or LayerOptions(self.plan, None, None)
    keep = layers.append if layers is not None else (lambda h: None)
    with tf.variable_scope("discriminator", reuse=reuse):
      if not self.y_dim:
        h0 = lrelu(conv2d(image, self.df_dim, name='d_h0_conv', options=o), options=o)
        h1 = lrelu(self.d_bn1(conv2d(h0, self.df_dim * 2, name='d_h1_conv', options=o),
                              train=train, options=o), options=o)
        h2 = lrelu(self.d_bn2(conv2d(h1, self.df_dim * 4, name='d_h2_conv', options=o),
                              train=train, options=o), options=o)
        h3 = lrelu(self.d_bn3(conv2d(h2, self.df_dim * 8, name='d_h3_conv', options=o),
                              train=train, options=o), options=o)
        for h in (h0, h1, h2, h3):
          keep(h)
        h4 = linear(flatten(h3), 1, 'd_h4_lin', options=o)
        return tf.nn.sigmoid(h4), h4

      # labels=y: the layer takes conv_cond_concat(input, y), as the original's
      h0 = lrelu(conv2d(image, self.c_dim + self.y_dim, name='d_h0_conv', labels=y, options=o),
                 options=o)
      keep(h0)
      h1 = lrelu(self.d_bn1(conv2d(h0, self.df_dim + self.y_dim, name='d_h1_conv', labels=y,
                                   options=o), train=train, options=o), options=o)
      keep(h1)
      h1 = tf.concat([flatten(h1), y], 1)
      h2 = lrelu(self.d_bn2(linear(h1, self.dfc_dim, 'd_h2_lin', options=o), train=train,
                            options=o), options=o)
      h2 = tf.concat([h2, y], 1)
      h3 = linear(h2, 1, 'd_h3_lin', options=o)
      return tf.nn.sigmoid(h3), h3

  def generator(self, z, y=None, train=True, options=None):
    """The generator; with train=False (the sampler) batch norm uses its moving statistics.
    options: ops.LayerOptions for this pass (None: self.plan's layers, batch norm's updates in
    place)."""
    o = options or LayerOptions(self.plan, None, None)
    bn = lambda layer, x: layer(x, train=train, options=o)
    with tf.variable_scope("generator", reuse=tf.AUTO_REUSE):
      s_h, s_w = self.output_height, self.output_width
      s_h2, s_w2 = conv_out_size_same(s_h, 2), conv_out_size_same(s_w, 2)
      s_h4, s_w4 = conv_out_size_same(s_h2, 2), conv_out_size_same(s_w2, 2)
      if not self.y_dim:
        s_h8, s_w8 = conv_out_size_same(s_h4, 2), conv_out_size_same(s_w4, 2)
        s_h16, s_w16 = conv_out_size_same(s_h8, 2), conv_out_size_same(s_w8, 2)

        # project `z` and reshape
        z_ = linear(z, self.gf_dim * 8 * s_h16 * s_w16, 'g_h0_lin', options=o)
        h0 = tf.reshape(z_, [-1, s_h16, s_w16, self.gf_dim * 8])
        h0 = tf.nn.relu(bn(self.g_bn0, h0))
        h1 = deconv2d(h0, [None, s_h8, s_w8, self.gf_dim * 4], name='g_h1', options=o)
        h1 = tf.nn.relu(bn(self.g_bn1, h1))
        h2 = deconv2d(h1, [None, s_h4, s_w4, self.gf_dim * 2], name='g_h2', options=o)
        h2 = tf.nn.relu(bn(self.g_bn2, h2))
        h3 = deconv2d(h2, [None, s_h2, s_w2, self.gf_dim * 1], name='g_h3', options=o)
        h3 = tf.nn.relu(bn(self.g_bn3, h3))
        h4 = deconv2d(h3, [None, s_h, s_w, self.c_dim], name='g_h4', options=o)
        return tf.nn.tanh(h4)

      z = tf.concat([z, y], 1)
      h0 = tf.nn.relu(bn(self.g_bn0, linear(z, self.gfc_dim, 'g_h0_lin', options=o)))
      h0 = tf.concat([h0, y], 1)
      h1 = tf.nn.relu(bn(self.g_bn1, linear(h0, self.gf_dim * 2 * s_h4 * s_w4, 'g_h1_lin',
                                            options=o)))
      h1 = tf.reshape(h1, [-1, s_h4, s_w4, self.gf_dim * 2])
      # labels=y: the layer takes conv_cond_concat(input, y), as the original's
      h2 = tf.nn.relu(bn(self.g_bn2, deconv2d(h1, [None, s_h2, s_w2, self.gf_dim * 2],
                                              name='g_h2', labels=y, options=o)))
      return tf.nn.sigmoid(deconv2d(h2, [None, s_h, s_w, self.c_dim], name='g_h3', labels=y,
                                    options=o))

  # --------------------------------------------------------------------------
  # feeding

  def feed(self, z, labels=None, images=None, learning_rate=None):
    """The feed dict for a step: labels go in only for the conditional model."""
    return step.feed_dict(self.feeds, z, labels, images, learning_rate)

  def sample_inputs(self, num=None):
    """The fixed z (and labels: every class, as evenly as num allows, in order) behind every
    sample grid of a run, whose rows follow the classes (utils.grid_layout)."""
    num = num or self.sample_num
    z = gen_random(np.random.default_rng([self.seed, 2]), self.z_dist, (num, self.z_dim))
    labels = None
    if self.y_dim:
      labels = np.eye(self.y_dim, dtype=np.float32)[np.arange(num) * self.y_dim // num]
    return z, labels

  def sample(self, z, labels=None):
    return self.sess.run(self.sampler, feed_dict=self.feed(z, labels))

  def save_sample_grid(self, path, z, labels=None):
    return save_sample_grid(self.sess, self.sampler, self.feed(z, labels), path,
                            self.value_range, labels)

  # --------------------------------------------------------------------------
  # training

  def train_step(self, feed, summarize=True, stop=0, first=False):
    """One iteration of self.train_ops (step.UPDATES: one D update, then two G updates with the
    same z); a step.Step (step.run_iteration)."""
    return step.run_iteration(self.sess, self.train_ops, feed, summarize, self.coordination,
                              stop, first)

  def train(self, config, prepare=None):
    """Train for config.epoch epochs, resuming from checkpoint_dir if it holds a checkpoint;
    returns the counter it ended at (training.train, the loop, has the rest: it is handed
    self.job(), not the model)."""
    data = self.data if self.data is not None else open_dataset(
        self.dataset_name, self.data_dir, self.input_fname_pattern, self.input_height,
        self.input_width, self.output_height, self.output_width, self.crop)
    return training.train(self.job(data), config, prepare).counter

  def job(self, data):
    """What the loop needs of this model to train on `data`, as values (training.Job)."""
    return training.Job(
        sess=self.sess, train_ops=self.train_ops, feeds=self.feeds, init_op=self.init_op,
        coordination=self.coordination, replication=self.replication, seed=self.seed,
        latent=training.Latent(self.z_dim, self.z_dist, self.batch_size),
        checkpoints=self.checkpoints, sampler=self.sampler, value_range=self.value_range,
        sample=self.sample_inputs(), data=data, fields=self.fields(),
        folders=Folders(self.checkpoint_dir, self.sample_dir, self.out_dir),
        learning_rate=self.settings.learning_rate)

  def fields(self):
    """What shapes this model's graph and data (roles.agreed_fields: several workers must
    agree on it)."""
    return {"dataset": self.dataset_name, "batch_size": self.batch_size,
            "input_height": self.input_height, "input_width": self.input_width,
            "output_height": self.output_height, "output_width": self.output_width,
            "crop": bool(self.crop), "c_dim": self.c_dim, "y_dim": self.y_dim,
            "z_dim": self.z_dim, "z_dist": self.z_dist,
            "filters": (self.gf_dim, self.df_dim, self.gfc_dim, self.dfc_dim),
            "beta1": float(self.beta1), "precision": self.precision.name,
            "replicas": self.replication.local_replicas,
            "gathered": int(self.replication.gathers)}

  # --------------------------------------------------------------------------
  # checkpoints

  def save(self, checkpoint_dir, step, filename='model', ckpt=True, frozen=False):
    """Write checkpoint '<filename>.b<batch_size>-<step>' and/or a frozen sampler GraphDef."""
    filename = checkpoint_prefix(self.batch_size, filename)
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
