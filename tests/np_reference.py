"""An independent NumPy forward pass of the DCGAN generator of carpedm20/DCGAN-tensorflow.

Reads weights by their checkpoint names and computes with plain loops over
kernel taps, so it shares no code with ops.py or model.py.
"""
import math

import numpy as np

EPS = 1.001e-5  # tf.contrib.layers.batch_norm's effective epsilon (fused path)


def size_same(n):
  return int(math.ceil(n / 2.0))


def conv2d_same(x, w, b, stride=2):
  """'SAME' convolution, x [N,H,W,C], w [k,k,C,O]."""
  n, h, wd, _ = x.shape
  k = w.shape[0]
  oh, ow = size_same(h), size_same(wd)
  ph = max((oh - 1) * stride + k - h, 0)
  pw = max((ow - 1) * stride + k - wd, 0)
  xp = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
  out = np.zeros((n, oh, ow, w.shape[3]))
  for a in range(k):
    for c in range(k):
      out += xp[:, a:a + stride * oh:stride, c:c + stride * ow:stride, :] @ w[a, c]
  return out + b


def deconv2d_same(x, w, b, out_h, out_w, stride=2):
  """Transposed 'SAME' convolution (the adjoint of conv2d_same), w [k,k,O,C]."""
  n, ih, iw, _ = x.shape
  k = w.shape[0]
  ph = max((ih - 1) * stride + k - out_h, 0)
  pw = max((iw - 1) * stride + k - out_w, 0)
  big = np.zeros((n, out_h + ph, out_w + pw, w.shape[2]))
  for a in range(k):
    for c in range(k):
      big[:, a:a + stride * ih:stride, c:c + stride * iw:stride, :] += x @ w[a, c].T
  return big[:, ph // 2:ph // 2 + out_h, pw // 2:pw // 2 + out_w, :] + b


def bn_inference(x, weights, scope):
  mean, var = weights[scope + "/moving_mean"], weights[scope + "/moving_variance"]
  return (x - mean) / np.sqrt(var + EPS) * weights[scope + "/gamma"] + weights[scope + "/beta"]


def relu(x):
  return np.maximum(x, 0)


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def linear(x, weights, scope):
  return x @ weights[scope + "/Matrix"] + weights[scope + "/bias"]


def deconv(x, weights, scope, out_h, out_w):
  return deconv2d_same(x, weights[scope + "/w"], weights[scope + "/biases"], out_h, out_w)


def generator_inference(weights, z, y, out_h, out_w):
  """The sampler: generator with batch norm on moving statistics."""
  g = lambda name: "generator/" + name
  h2s, w2s = size_same(out_h), size_same(out_w)
  h4s, w4s = size_same(h2s), size_same(w2s)
  n = z.shape[0]
  if y is None:
    h8s, w8s = size_same(h4s), size_same(w4s)
    h16s, w16s = size_same(h8s), size_same(w8s)
    gf8 = weights[g("g_h0_lin/Matrix")].shape[1] // (h16s * w16s)
    h = linear(z, weights, g("g_h0_lin")).reshape(n, h16s, w16s, gf8)
    h = relu(bn_inference(h, weights, g("g_bn0")))
    for layer, (hh, ww) in zip((1, 2, 3), ((h8s, w8s), (h4s, w4s), (h2s, w2s))):
      h = relu(bn_inference(deconv(h, weights, g("g_h%d" % layer), hh, ww), weights, g("g_bn%d" % layer)))
    return np.tanh(deconv(h, weights, g("g_h4"), out_h, out_w))

  def cond(h):
    return np.concatenate([h, np.broadcast_to(y[:, None, None, :], h.shape[:3] + (y.shape[1],))], 3)

  h = relu(bn_inference(linear(np.concatenate([z, y], 1), weights, g("g_h0_lin")), weights, g("g_bn0")))
  h = np.concatenate([h, y], 1)
  h = relu(bn_inference(linear(h, weights, g("g_h1_lin")), weights, g("g_bn1")))
  gf2 = h.shape[1] // (h4s * w4s)
  h = cond(h.reshape(n, h4s, w4s, gf2))
  h = cond(relu(bn_inference(deconv(h, weights, g("g_h2"), h2s, w2s), weights, g("g_bn2"))))
  return sigmoid(deconv(h, weights, g("g_h3"), out_h, out_w))
