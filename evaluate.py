"""Measuring a trained conditional generator, and the paper's discriminator-features experiment.

--evaluate: a small classifier, the judge (graph and Session too), trained once on
the run's own data's training split and cached by a digest of it, scores N
generated images per class (MNIST: its training split; class folders: every
image but each tenth, which make the test split):
  * class-conditional accuracy: how often the judge reads the class the
    generator was asked for;
  * Frechet distance between the judge's penultimate-layer features of
    the generated images and of the real test split.
Beside each stands the same figure for real data, the reference: the
judge's accuracy on the real test split, and the Frechet distance
between an equally large sample of real training images and the test split.

--features_experiment (Radford et al. 2015, section 5.1), MNIST: every convolutional
layer of D max-pooled to 4x4 and concatenated; a linear (multinomial logistic
regression) classifier trained on K labelled training digits per class;
test accuracy beside the same classifier on raw pixels.
"""
import collections
import hashlib
import os
import time

import numpy as np
import scipy.optimize
import tensorflow.compat.v1 as tf
from tqdm import tqdm

from dataset import IDX_DATASETS, mnist_splits, multi_hot, split_dataset, title
from experiments import attribute_labels, one_hot, sample_in_batches
from step import gen_random
from utils import UserError, plural, resize


def _conv(x, filters, name):
  with tf.variable_scope(name):
    w = tf.get_variable("w", [5, 5, int(x.shape[-1]), filters],
                        initializer=tf.truncated_normal_initializer(stddev=0.05))
    b = tf.get_variable("b", [filters], initializer=tf.zeros_initializer())
    h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, w, [1, 1, 1, 1], "SAME"), b))
    return tf.nn.max_pool2d(h, [1, 2, 2, 1], [1, 2, 2, 1], "SAME")


def _dense(x, units, name, activation=None):
  with tf.variable_scope(name):
    w = tf.get_variable("w", [int(x.shape[-1]), units],
                        initializer=tf.truncated_normal_initializer(stddev=0.05))
    b = tf.get_variable("b", [units], initializer=tf.zeros_initializer())
    h = tf.matmul(x, w) + b
    return activation(h) if activation else h


# A labelled dataset split for its judge: images float32 [N, H, W, C] in [0, 1] and int64 labels
# of each split, where they came from, the judge's name ('MNIST', or the dataset's) and the
# class names in label order.
Splits = collections.namedtuple("Splits", ["train_x", "train_y", "test_x", "test_y", "source",
                                           "name", "names"])


def published_judge_splits(data_dir, kind="mnist"):
  """A published dataset's own training and test splits (dataset.split_dataset: MNIST's,
  Fashion-MNIST's, CIFAR-10's) for its judge; None for another kind of data."""
  published = split_dataset(data_dir, kind)
  if published is None:
    return None
  train_x, train_y, test_x, test_y, source, names = published
  scale = lambda x: (x.astype(np.float32) / 255.0).reshape(x.shape[:3] + (-1,))
  return Splits(scale(train_x), train_y.astype(np.int64), scale(test_x), test_y.astype(np.int64),
                source, title(kind), list(names))


def folder_judge_splits(data, name, every=10):
  """A labelled folder's images (dataset.ClassFoldersData or AttributeFolderData, at the run's
  size), each `every`-th held out as the test split; labels int64 classes, or an attribute
  folder's multi-hot rows (float32 [N, attributes])."""
  images, labels = [], []
  attributes = multi_hot(data.description)
  for start in tqdm(range(0, len(data), 256), desc="reading %s" % name, leave=False,
                    disable=None):
    x, y = data.get(list(range(start, min(start + 256, len(data)))))
    images.append(x)
    labels.append(y if attributes else y.argmax(1))
  x, y = np.concatenate(images), np.concatenate(labels)
  y = y.astype(np.float32 if attributes else np.int64)
  test = np.arange(len(x)) % every == 0
  return Splits(x[~test], y[~test], x[test], y[test], data.source, name, list(data.label_names))


class Judge(object):
  """conv 32 - pool - conv 64 - pool - dense 128 (the features) - dense classes, in its own
  graph, trained on splits (Splits) once and cached in cache_dir under a digest of them.  With
  multi-hot labels (attributes) each output is one attribute's logit (sigmoid, several present
  at once); test_accuracy is then the mean of each attribute's (attribute_accuracy)."""

  FEATURES = 128

  def __init__(self, cache_dir, splits, epochs=4, seed=0):
    self.train_x, self.train_y = splits.train_x, splits.train_y
    self.test_x, self.test_y = splits.test_x, splits.test_y
    self.names, self.shape = list(splits.names), self.train_x.shape[1:]
    self.multi_label = self.train_y.ndim == 2
    digest = hashlib.sha1(np.round(self.train_x * 255).astype(np.uint8).tobytes()
                          + self.train_y.tobytes())
    digest.update(("epochs=%d seed=%d" % (epochs, seed)).encode())
    self.key = digest.hexdigest()[:12]
    self.folder = os.path.join(cache_dir, "%s_classifier-%s" % (splits.name.lower(), self.key))
    self._build(seed)
    ckpt = tf.train.latest_checkpoint(self.folder)
    if ckpt:
      self.saver.restore(self.sess, ckpt)
      print(" [*] %s classifier loaded from %s" % (splits.name, self.folder))
    else:
      print(" [*] Training the %s classifier once (%s on %d images from %s); it is cached "
            "in %s" % (splits.name, plural(epochs, "epoch"), len(self.train_x), splits.source,
                       self.folder))
      self._train(epochs, seed)
    test_predicted, self.test_features = self.predict(self.test_x)
    self.attribute_accuracy = (np.mean(test_predicted == self.test_y, axis=0)
                               if self.multi_label else None)
    self.test_accuracy = float(np.mean(test_predicted == self.test_y))

  def _build(self, seed):
    height, width, channels = self.shape
    self.graph = tf.Graph()
    with self.graph.as_default():
      tf.set_random_seed(seed)
      self.x = tf.placeholder(tf.float32, [None, height, width, channels], name="x")
      h = _conv(_conv(self.x, 32, "c_conv1"), 64, "c_conv2")
      flat = int(np.prod(h.shape.as_list()[1:]))
      self.features = _dense(tf.reshape(h, [-1, flat]), self.FEATURES, "c_fc1", tf.nn.relu)
      self.logits = _dense(self.features, len(self.names), "c_fc2")
      if self.multi_label:
        self.labels = tf.placeholder(tf.float32, [None, len(self.names)], name="labels")
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
            labels=self.labels, logits=self.logits))
      else:
        self.labels = tf.placeholder(tf.int64, [None], name="labels")
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=self.labels, logits=self.logits))
      self.train_op = tf.train.AdamOptimizer(1e-3).minimize(loss)
      self.saver = tf.train.Saver()
      self.init = tf.global_variables_initializer()
    self.sess = tf.Session(graph=self.graph)

  def _train(self, epochs, seed):
    self.sess.run(self.init)
    rng = np.random.RandomState(seed)
    for epoch in range(epochs):
      order = rng.permutation(len(self.train_x))
      for start in tqdm(range(0, len(order), 64), desc="classifier epoch %d" % epoch,
                        leave=False, disable=None):
        idx = order[start:start + 64]
        self.sess.run(self.train_op, {self.x: self.train_x[idx], self.labels: self.train_y[idx]})
    os.makedirs(self.folder, exist_ok=True)
    self.saver.save(self.sess, os.path.join(self.folder, "classifier"))

  def predict(self, images, batch_size=500):
    """(predicted labels, features) for images [N, H, W, C] in [0, 1], at the judge's size: the
    class of each, or with attributes 1 for each one found, 0 for each not."""
    preds, feats = [], []
    for start in range(0, len(images), batch_size):
      logits, features = self.sess.run([self.logits, self.features],
                                       {self.x: images[start:start + batch_size]})
      preds.append((logits > 0).astype(np.float32) if self.multi_label else logits.argmax(1))
      feats.append(features)
    return np.concatenate(preds), np.concatenate(feats).astype(np.float64)

  def close(self):
    self.sess.close()


def frechet_distance(a, b):
  """Frechet distance between Gaussians fitted to feature sets a [N, D] and b [M, D]."""
  mu_a, mu_b = a.mean(0), b.mean(0)
  cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  # Tr(sqrtm(A B)) is the sum of the square roots of A B's eigenvalues, which are
  # real and >= 0 for covariance matrices; this stays exact where ReLU features
  # leave the covariances singular (scipy.linalg.sqrtm then warns and drifts).
  eigenvalues = np.linalg.eigvals(cov_a.dot(cov_b))
  trace_covmean = np.sum(np.sqrt(np.clip(np.real(eigenvalues), 0.0, None)))
  return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_covmean)


def to_size(images, height, width):
  """Generated images [N, h, w, C] in [0, 1] -> [N, height, width, C] for the judge."""
  if images.shape[1:3] == (height, width):
    return images.astype(np.float32)
  gray = images.shape[-1] == 1
  resized = [resize((img[:, :, 0] if gray else img) * 255.0, height, width) / 255.0
             for img in images]
  return np.stack(resized).reshape((len(images), height, width, images.shape[-1]))


def evaluate_conditional(dcgan, judge, per_label=100, seed=0):
  """The --evaluate figures as a dict: per_label generated images of each class, judged."""
  classes_n = len(judge.names)
  if dcgan.y_dim != classes_n or dcgan.c_dim != judge.shape[2]:
    raise UserError("--evaluate's judge knows %d classes of %d-channel images, and this model "
                    "makes %s classes of %d-channel ones; evaluate it on the data it was "
                    "trained on." % (classes_n, judge.shape[2], dcgan.y_dim, dcgan.c_dim))
  rng = np.random.default_rng(seed)
  classes = np.repeat(np.arange(classes_n), per_label)
  z = gen_random(rng, dcgan.z_dist, (len(classes), dcgan.z_dim))
  generated = to_size(sample_in_batches(dcgan, z, one_hot(classes, classes_n)),
                      judge.shape[0], judge.shape[1])
  predicted, gen_features = judge.predict(generated)
  per_class = [float(np.mean(predicted[classes == k] == k)) for k in range(classes_n)]
  return {
      "generated": {"n": int(len(classes)), "per_label": per_label,
                    "class_conditional_accuracy": float(np.mean(predicted == classes)),
                    "per_class_accuracy": per_class,
                    "frechet_distance": frechet_distance(gen_features, judge.test_features)},
      "real_reference": real_reference(judge, len(classes), seed),
      "classifier": {"folder": judge.folder, "features": Judge.FEATURES,
                     "classes": judge.names},
  }


def real_reference(judge, count, seed):
  """The real data's figures beside the generated ones: the judge's accuracy on the real test
  split, and the Frechet distance between `count` real training images and that split."""
  reference_idx = np.random.RandomState(seed).choice(len(judge.train_x),
                                                    min(count, len(judge.train_x)), replace=False)
  _, reference_features = judge.predict(judge.train_x[reference_idx])
  return {"test_accuracy": judge.test_accuracy,
          "frechet_distance": frechet_distance(reference_features, judge.test_features),
          "n_train_sample": int(len(reference_idx)), "n_test": int(len(judge.test_x))}


def evaluate_attributes(dcgan, judge, frequency, per_attribute=100, seed=0):
  """The --evaluate figures of an attribute model as a dict: for each attribute, how often the
  judge finds it in per_attribute images asked with it and in the same z asked without it (the
  other attributes drawn at their frequency, the same in both), beside the judge's accuracy on
  that attribute in real held-out images; the Frechet distance of images asked at the
  attributes' frequency."""
  names = judge.names
  if list(names) != list(dcgan.label_names or ()) or dcgan.c_dim != judge.shape[2]:
    raise UserError("--evaluate's judge knows the attributes %s of %d-channel images, and this "
                    "model takes %s and makes %d-channel images; evaluate it on the data and "
                    "--attributes it was trained on." % (", ".join(names), judge.shape[2],
                                                         ", ".join(dcgan.label_names),
                                                         dcgan.c_dim))
  rng = np.random.default_rng(seed)
  z = gen_random(rng, dcgan.z_dist, (per_attribute, dcgan.z_dim))
  base = attribute_labels(per_attribute, frequency, {}, rng)
  judged = lambda labels: judge.predict(to_size(sample_in_batches(dcgan, z, labels),
                                                judge.shape[0], judge.shape[1]))
  _, gen_features = judged(base)
  found = {}
  for a, name in enumerate(names):
    rates = []
    for value in (1.0, 0.0):
      labels = base.copy()
      labels[:, a] = value
      rates.append(float(np.mean(judged(labels)[0][:, a])))
    found[name] = {"with": rates[0], "without": rates[1],
                   "real_accuracy": float(judge.attribute_accuracy[a]),
                   "frequency": float(frequency[a])}
  return {
      "generated": {"n": int(per_attribute), "per_attribute": found,
                    "frechet_distance": frechet_distance(gen_features, judge.test_features)},
      "real_reference": real_reference(judge, per_attribute, seed),
      "classifier": {"folder": judge.folder, "features": Judge.FEATURES, "attributes": names},
  }


def print_attribute_evaluation(result):
  g, r = result["generated"], result["real_reference"]
  print("%-24s %15s %18s %16s" % ("attribute", "found: asked", "found: not asked",
                                  "judge on real"))
  for name, found in g["per_attribute"].items():
    print("%-24s %14.1f%% %17.1f%% %15.1f%%" % (name, 100 * found["with"],
                                                100 * found["without"],
                                                100 * found["real_accuracy"]))
  print("%-24s %15.3f %18s %16.3f  (real: training vs test images)"
        % ("Frechet distance", g["frechet_distance"], "", r["frechet_distance"]))


def print_evaluation(result):
  g, r = result["generated"], result["real_reference"]
  print("%-36s %12s %16s" % ("", "generated", "real (reference)"))
  print("%-36s %11.2f%% %15.2f%%" % ("class-conditional accuracy", 100 * g["class_conditional_accuracy"],
                                     100 * r["test_accuracy"]))
  print("%-36s %12.3f %16.3f" % ("Frechet distance to the test split", g["frechet_distance"],
                                 r["frechet_distance"]))
  names = result["classifier"]["classes"]
  print("per-class accuracy of generated images: " +
        " ".join("%s:%.0f%%" % (names[k], 100 * a) for k, a in enumerate(g["per_class_accuracy"])))


# ----------------------------------------------------------------------------
# discriminator features


def logistic_regression(x, y, classes, l2=1e-2):
  """Multinomial logistic regression with L2, fitted by L-BFGS; returns a predict function."""
  mean, std = x.mean(0), x.std(0) + 1e-6
  xs = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
  targets = np.eye(classes)[y]

  def loss_and_grad(flat):
    w = flat.reshape(xs.shape[1], classes)
    logits = xs.dot(w)
    logits -= logits.max(1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(1, keepdims=True)
    loss = -np.sum(targets * np.log(p + 1e-12)) / len(xs) + 0.5 * l2 * np.sum(w[:-1] ** 2)
    grad = xs.T.dot(p - targets) / len(xs)
    grad[:-1] += l2 * w[:-1]
    return loss, grad.ravel()

  w0 = np.zeros(xs.shape[1] * classes)
  fit = scipy.optimize.minimize(loss_and_grad, w0, jac=True, method="L-BFGS-B",
                                options={"maxiter": 500})
  w = fit.x.reshape(xs.shape[1], classes)
  return lambda data: np.hstack([(data - mean) / std, np.ones((len(data), 1))]).dot(w).argmax(1)


def d_features(dcgan, images, batch_size=256):
  feats = []
  for start in range(0, len(images), batch_size):
    batch = images[start:start + batch_size]
    feed = {dcgan.inputs: batch}
    if dcgan.y_dim:
      feed[dcgan.y] = np.zeros((len(batch), dcgan.y_dim), np.float32)  # no label given away
    feats.append(dcgan.sess.run(dcgan.d_features, feed))
  return np.concatenate(feats).astype(np.float64)


def features_experiment(dcgan, data_dir, per_class=10, seed=0, dataset="mnist"):
  """Test accuracy of a linear classifier on D's features vs on raw pixels, K labels per class
  of an IDX dataset (MNIST's unless dataset says)."""
  if dcgan.c_dim != 1 or (dcgan.output_height, dcgan.output_width) != (28, 28):
    raise UserError("The features experiment needs a model of 28x28 MNIST digits (--dataset mnist).")
  train_x, train_y, test_x, test_y, _ = mnist_splits(data_dir, dataset)
  classes = len(IDX_DATASETS[dataset].names)
  rng = np.random.RandomState(seed)
  chosen = np.concatenate([rng.choice(np.flatnonzero(train_y == k), per_class, replace=False)
                           for k in range(classes) if np.count_nonzero(train_y == k) >= per_class])
  if len(chosen) < classes * per_class:
    raise UserError("The training split has fewer than %d images of some class." % per_class)
  scale = lambda x: x.astype(np.float32)[..., None] / 255.0
  train_images, test_images = scale(train_x[chosen]), scale(test_x)
  labels = train_y[chosen].astype(np.int64)
  result = {"labels_per_class": per_class, "n_test": int(len(test_x))}
  start = time.time()
  for name, train_f, test_f in (
      ("discriminator_features", d_features(dcgan, train_images), d_features(dcgan, test_images)),
      ("raw_pixels", train_images.reshape(len(chosen), -1).astype(np.float64),
       test_images.reshape(len(test_x), -1).astype(np.float64))):
    predict = logistic_regression(train_f, labels, classes)
    result[name] = {"dimensions": int(train_f.shape[1]),
                    "test_accuracy": float(np.mean(predict(test_f) == test_y))}
  result["seconds"] = round(time.time() - start, 2)
  return result
