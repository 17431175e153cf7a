"""One training iteration as values (docs/ARCHITECTURE.md, "A training step").

As TF-GAN's chain: building returns a GANModel (what the networks computed, and their
variables), a GANLoss (the losses) and, once the summaries exist, GANTrainOps (per network its
update op, the losses and summary each of its runs fetches, and its loss-scale
state; and UPDATES, the updates per iteration).  run_iteration runs one iteration of a
GANTrainOps and returns a Step.  The loop (training.py) knows these tuples, never the DCGAN.
"""
import collections

import numpy as np
import tensorflow.compat.v1 as tf

from ops import Gathering, HeldUpdates, LayerOptions, gathered_matrices
from utils import UserError

# The updates of one iteration, in order: one D update, then two G updates with the same z, so
# that d_loss does not go to zero (the original's choice, not the paper's).  run_iteration, the
# skipped-update report and bench/ read it; nothing else says it.
UPDATES = (("discriminator", 1), ("generator", 2))
# Passes of each network's layers per loss (G once; D twice, real and generated): the rows a
# gathered weight gradient sums (ops.Gathering), and bench/scaling.py's count of them.
LAYER_PASSES = {"generator": 1, "discriminator": 2}
LABELS = {"discriminator": "D", "generator": "G"}  # as the progress lines name the networks

GANModel = collections.namedtuple("GANModel", [
    "generated", "real", "real_logits", "fake", "fake_logits", "discriminator_vars",
    "generator_vars"])
GANModel.__doc__ = """G(z); D's sigmoid and logits on the real images and on G(z); D's and
G's trainable variables."""

GANLoss = collections.namedtuple("GANLoss", ["d_loss_real", "d_loss_fake", "d_loss", "g_loss"])
GANLoss.__doc__ = """The original's losses (sigmoid cross-entropy): D's on real and generated
images and their sum; G's, which labels its images real."""
# Which GANLoss terms each network's update run fetches (the terms of the loss it minimises).
FETCHED = {"discriminator": ("d_loss_real", "d_loss_fake", "d_loss"), "generator": ("g_loss",)}

NetworkTrainOp = collections.namedtuple("NetworkTrainOp", ["update", "losses", "summary",
                                                           "scaling"])
NetworkTrainOp.__doc__ = """One network's: the op of one update (optim.NetworkUpdate's); the
losses ({GANLoss field: tensor}) and summary each of its runs fetches (the last run's kept); the
loss-scale state each run reads ({} without loss scaling)."""

GANTrainOps = collections.namedtuple("GANTrainOps", ["discriminator", "generator", "updates"])
GANTrainOps.__doc__ = """Each network's NetworkTrainOp, and the updates per iteration
((network, count), ... in order: UPDATES)."""

Feeds = collections.namedtuple("Feeds", ["inputs", "z", "y", "learning_rate"])
Feeds.__doc__ = """The placeholders a step feeds (y None for an unconditional model)."""

# What one iteration computed: the losses (a GANLoss of numbers), each fetched by the run that
# computes it; the summaries asked for; [(network label, loss-scale state)] of the fp16 updates
# that were skipped; the stop votes (a signal number, or several workers' sum; 0: none); how
# many processes' losses were NaN or infinite (0: none).
Step = collections.namedtuple("Step", ["losses", "summaries", "skipped", "stop_votes",
                                       "diverged"])


class TowerOptions(collections.namedtuple("TowerOptions", ["plan", "batch_size", "num_replicas",
                                                           "gathers"])):
  """How a tower's layers are built on each of num_replicas replicas (a value, the same for
  every tower): the hardware.KernelPlan; with several replicas, batch norm's updates held
  (ops.HeldUpdates) and, if `gathers`, the large linear layers' weight gradients from every
  replica's factors (ops.Gathering) of batch_size rows per pass."""

  def gathering(self, network):
    """The ops.Gathering of `network`'s passes, or None (gathers: cluster.decide_gathers, never
    with one replica)."""
    if not self.gathers:
      return None
    return Gathering(self.num_replicas, LAYER_PASSES[network] * self.batch_size)

  def network(self, network, after=None):
    """The LayerOptions of one pass of `network`; after: the LayerOptions of the tower's pass
    of it before this one, whose batch-norm updates this pass's follow."""
    if self.num_replicas == 1:
      return LayerOptions(self.plan, None, None)  # the original's layers
    return LayerOptions(self.plan, HeldUpdates(after.held if after is not None else None),
                        self.gathering(network))

  def gathered(self, model):
    """The names of a GANModel's variables whose gradients its linear layers compute from
    every replica's factors: already the run's sums (ops.gathered_matrices)."""
    return frozenset().union(*(
        gathered_matrices(self.gathering(net), getattr(model, net + "_vars"))
        for net in ("discriminator", "generator")))


# --z_dist's distributions: uniform in [low, high), or None for the standard normal.  Stated
# once: training's z, the exported generator's `sample` and its description (export.py).
Z_RANGES = {"normal01": None, "uniform_signed": (-1.0, 1.0), "uniform_unsigned": (0.0, 1.0)}
Z_DISTRIBUTIONS = tuple(sorted(Z_RANGES))


def gen_random(rng, z_dist, size):
  """Draw latent vectors from the distribution named by --z_dist."""
  if z_dist not in Z_RANGES:
    raise UserError("--z_dist must be one of %s, not %r." % (", ".join(Z_DISTRIBUTIONS), z_dist))
  if Z_RANGES[z_dist] is None:
    return rng.standard_normal(size).astype(np.float32)
  low, high = Z_RANGES[z_dist]
  return rng.uniform(low, high, size).astype(np.float32)


def batch_z(seed, z_dist, shape, counter, first_replica=0, local_replicas=1):
  """z [batch, z_dim] = shape for step `counter`, local_replicas replicas from first_replica
  one after another:
  replica r's from the seed (seed, 1, counter, r), replica 0's from (seed, 1, counter) as on
  one device."""
  draws = []
  for replica in range(first_replica, first_replica + local_replicas):
    key = [seed, 1, counter] + ([replica] if replica else [])
    draws.append(gen_random(np.random.default_rng(key), z_dist, shape))
  return draws[0] if local_replicas == 1 else np.concatenate(draws)


def feed_dict(feeds, z, labels=None, images=None, learning_rate=None):
  """The feed dict for Feeds: labels go in only for a conditional model."""
  feed = {feeds.z: z}
  if feeds.y is not None:
    feed[feeds.y] = labels
  if images is not None:
    feed[feeds.inputs] = images
  if learning_rate is not None:
    feed[feeds.learning_rate] = learning_rate
  return feed


def gan_model(generator, discriminator, options, inputs, z, y):
  """The GANModel of one tower: G once, D on the real and the generated images, each pass of
  a network built with its LayerOptions (TowerOptions.network; D's fake pass after its real
  one); returns it and each pass's LayerOptions (their held batch-norm updates)."""
  real = options.network("discriminator")
  passes = {"generator": options.network("generator"), "real": real,
            "fake": options.network("discriminator", after=real)}
  generated = generator(z, y, options=passes["generator"])
  real, real_logits = discriminator(inputs, y, reuse=False, options=passes["real"])
  fake, fake_logits = discriminator(generated, y, reuse=True, options=passes["fake"])
  t_vars = tf.trainable_variables()
  d_vars = [var for var in t_vars if var.name.startswith('discriminator/')]
  g_vars = [var for var in t_vars if var.name.startswith('generator/')]
  return GANModel(generated, real, real_logits, fake, fake_logits, d_vars, g_vars), passes


# What a GAN loss is given besides the GANModel, for one tower (the seam for another loss:
# tests/test_seams.py plugs a hinge loss and an R1 penalty in): the real images and y this
# tower was fed, discriminate(images) -> D's logits of other images (another pass of D in this
# tower, under reuse, in training mode), and loss_scale() -> fp16's scale of D's loss (1
# without), for a term that takes gradients of its own.
Tower = collections.namedtuple("Tower", ["images", "y", "discriminate", "loss_scale"])


def gan_loss(model, tower=None):
  """The original's GANLoss of a GANModel (a loss function: (GANModel, Tower) -> GANLoss)."""
  def cross_entropy(logits, labels):
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(logits=logits, labels=labels))

  d_loss_real = cross_entropy(model.real_logits, tf.ones_like(model.real))
  d_loss_fake = cross_entropy(model.fake_logits, tf.zeros_like(model.fake))
  g_loss = cross_entropy(model.fake_logits, tf.ones_like(model.fake))
  return GANLoss(d_loss_real, d_loss_fake, d_loss_real + d_loss_fake, g_loss)


def held(passes, names):
  return [op for name in names for op in (passes[name].held.ops if passes[name].held else [])]


def build(generator, discriminator, feeds, replication, optimizers, options, loss_fn=gan_loss):
  """(GANModel, GANLoss, {network: optim.NetworkUpdate}) of the tower on every replica.

  generator(z, y, options=...), discriminator(image, y, reuse=..., options=...): the networks.
  optimizers: {network: optim.Optimizer}, D's first (its Adam's variables are made first, as
  the original's: beta1_power is D's, beta1_power_1 G's).  options: the TowerOptions.
  loss_fn(GANModel, Tower) -> GANLoss: the loss (the original's, gan_loss, unless another is
  given).  The model and losses hold this process's replicas' outputs concatenated and losses
  averaged.
  """
  def tower(inputs, z, y):
    model, passes = gan_model(generator, discriminator, options, inputs, z, y)
    passes = dict(passes, extra=options.network("discriminator", after=passes["fake"]))
    loss = loss_fn(model, Tower(inputs, y, extra_pass(discriminator, options, passes["extra"], y),
                                optimizers["discriminator"].scale))
    complete = options.gathered(model)
    # the batch-norm updates each run computes: D's run passes G, D(real), D(fake) and the
    # loss's own passes of D (Tower.discriminate, if it made any); G's runs pass G and D(fake)
    registered = {
        "discriminator": optimizers["discriminator"].register_gradients(
            loss.d_loss, model.discriminator_vars,
            held(passes, ("generator", "real", "fake", "extra")), complete),
        "generator": optimizers["generator"].register_gradients(
            loss.g_loss, model.generator_vars, held(passes, ("generator", "fake")), complete)}
    return model, loss, registered

  model, loss, registered = replication.towers(tower, feeds.inputs, feeds.z, feeds.y)
  model = model._replace(**{name: replication.concat(getattr(model, name)) for name in (
      "generated", "real", "real_logits", "fake", "fake_logits")})
  loss = GANLoss(*(replication.mean(value) for value in loss))
  model = model._replace(discriminator_vars=list(model.discriminator_vars),
                         generator_vars=list(model.generator_vars))
  complete = options.gathered(model)
  updates = {net: optimizers[net].apply_updates(registered[net], getattr(model, net + "_vars"),
                                                complete)
             for net in ("discriminator", "generator")}
  return model, loss, updates


def extra_pass(discriminator, options, extra, y):
  """A Tower's discriminate(images): D's logits of images in another pass of this tower, built
  with the LayerOptions `extra` (TowerOptions.network, after the tower's fake pass): with
  several replicas its batch-norm updates are held there, in the order of the calls, for D's
  update to run.  Where several workers gather the large linear layers' weight gradients (their
  factors counted for LAYER_PASSES' passes), a loss may not add a pass: refused in one
  sentence."""
  def discriminate(images):
    if options.gathering("discriminator") is not None:
      raise ValueError("A loss that runs D once more (Tower.discriminate) cannot be used where "
                       "workers gather the linear layers' gradients; train with "
                       "--nogather_gradients.")
    return discriminator(images, y, reuse=True, options=extra)[1]
  return discriminate


def gan_train_ops(loss, updates, summaries):
  """The GANTrainOps of a GANLoss, {network: optim.NetworkUpdate} and {network: its merged
  summary}: each network's update fetches its FETCHED losses; UPDATES."""
  return GANTrainOps(*(
      NetworkTrainOp(updates[net].update, {name: getattr(loss, name) for name in FETCHED[net]},
                     summaries[net], updates[net].scaling)
      for net in ("discriminator", "generator")), updates=UPDATES)


def run_iteration(sess, train_ops, feed, summarize=True, coordination=None, stop=0,
                  first=False):
  """One iteration of GANTrainOps: each network's updates in order (train_ops.updates); a Step.

  Every run of a network fetches the same: its update, loss-scale state, losses and (when
  summarize) summary, so that a network's runs share one executor, which TensorFlow optimises
  once; the last run's losses and summary are the Step's.  The iteration's last run also
  carries this process's votes (coordination: roles.py's; a signal number `stop`, 0 for none;
  whether its losses so far diverged), summed over the workers when there are several, so
  that all of them stop after the same step.  first: the process's first iteration (its runs
  may take longer).
  """
  runs = [(net, i == count - 1) for net, count in train_ops.updates for i in range(count)]
  options = coordination.run_options(first) if coordination else None
  losses, summaries, skipped, diverged = {}, [], [], False
  for index, (net, last_of_net) in enumerate(runs):
    op = getattr(train_ops, net)
    fetches = {"update": op.update, "scaling": op.scaling, "losses": op.losses,
               "summaries": [op.summary] if summarize else []}
    run_feed = feed
    if coordination and index == len(runs) - 1:
      fetches.update(coordination.vote_fetches())
      run_feed = coordination.vote_feed(feed, stop, diverged)
    out = sess.run(fetches, feed_dict=run_feed, options=options)
    if last_of_net:
      losses.update(out["losses"])
      summaries += out["summaries"]
      diverged = diverged or not np.isfinite(list(out["losses"].values())).all()
    if out["scaling"] and not out["scaling"]["finite"]:  # fp16: its gradients overflowed
      skipped.append((LABELS[net], out["scaling"]))
  stop_votes, diverged = (coordination.tally(out, stop, diverged) if coordination
                          else (stop, int(diverged)))
  return Step(GANLoss(**losses), summaries, skipped, stop_votes, diverged)
