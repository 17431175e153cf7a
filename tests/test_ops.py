"""ops.py against NumPy: batch norm (train, inference, moving averages), layers, names."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import conv_forms
import hardware
import np_reference as ref
from precision import session_config
from ops import (FUSED_MIN_EPSILON, Gathering, HeldUpdates, LayerOptions, batch_norm, conv2d,
                 conv_cond_concat, conv_out_size_same, deconv2d, flatten, gathered_matrices,
                 linear, lrelu)


# Every kernel plan by name, and each plan's forms under a reduced-precision rewrite
# (hardware.kernel_plan's lowered) as "<plan> lowered".
ALL_FORMS = dict(hardware.PLANS, **{name + " lowered": hardware.kernel_plan(name, lowered=True)
                                    for name in hardware.PLANS})
# Forms no plan takes yet, which bench/ measures as candidates (--kernels PLAN+FIELD=VALUE):
# every layer up to 8x8 on its small side by matrix products, with TensorFlow's gradients of
# them and with the layers' own.
CANDIDATE_FORMS = {
    "avx512 matmul": hardware.PLANS["avx512"]._replace(matmul_max_pixels=64),
    "avx512 lowered matmul": hardware.kernel_plan("avx512", lowered=True)._replace(
        matmul_max_pixels=64),
}
ALL_FORMS.update(CANDIDATE_FORMS)


def distinct_forms(first=("plain", "avx512", "avx2")):
  """The names of ALL_FORMS to test, one per distinct set of forms: "gpu" and "cpu" run
  "plain"'s forms and "amx" "avx512"'s, so those are tested once, under the first name
  (the plans in `first`, then the others alphabetically)."""
  plans = list(first) + sorted(set(hardware.PLANS) - set(first))
  kept = []
  for name in [form for plan in plans for form in (plan, plan + " lowered")]:
    if all(ALL_FORMS[name]._replace(name="") != ALL_FORMS[k]._replace(name="") for k in kept):
      kept.append(name)
  return kept


PLAN_FORMS = distinct_forms() + sorted(CANDIDATE_FORMS)


def options_for(plan):
  """LayerOptions building layers with the kernel plan named `plan` (a key of ALL_FORMS),
  batch norm's updates in place, no gathering."""
  return LayerOptions(ALL_FORMS[plan], None, None)


def run_bn(x_batches, train, moving=None, shape=None, plan="plain"):
  """Feed each batch through one batch_norm layer built under kernel plan `plan`; return outputs
  and the moving stats after each."""
  graph = tf.Graph()
  with graph.as_default(), tf.Session() as sess:
    x = tf.placeholder(tf.float32, shape or x_batches[0].shape)
    bn = batch_norm(name="bn")
    y = bn(x, train=train, options=options_for(plan))
    with tf.variable_scope("bn", reuse=True):
      beta, gamma = tf.get_variable("beta"), tf.get_variable("gamma")
      mm, mv = tf.get_variable("moving_mean"), tf.get_variable("moving_variance")
    sess.run(tf.global_variables_initializer())
    channels = x_batches[0].shape[-1]
    rng = np.random.RandomState(1)
    params = {"beta": rng.randn(channels), "gamma": 1 + 0.1 * rng.randn(channels)}
    beta.load(params["beta"], sess)
    gamma.load(params["gamma"], sess)
    if moving is not None:
      mm.load(moving[0], sess)
      mv.load(moving[1], sess)
    outs, stats = [], []
    for batch in x_batches:
      outs.append(sess.run(y, {x: batch}))
      stats.append(sess.run([mm, mv]))
    return outs, stats, params


def contrib_step(batch, mm, mv, gamma=1.0, beta=0.0):
  """contrib's batch norm in training, in NumPy: (output, moving mean, moving variance after
  the run; decay 0.9, the variance Bessel-corrected)."""
  axes = tuple(range(batch.ndim - 1))
  n = batch.size // batch.shape[-1]
  mean, var = batch.mean(axes), batch.var(axes)
  out = (batch - mean) / np.sqrt(var + FUSED_MIN_EPSILON) * gamma + beta
  return out, mm - 0.1 * (mm - mean), mv - 0.1 * (mv - var * n / (n - 1.0))


@pytest.mark.parametrize("plan", sorted(PLAN_FORMS))
@pytest.mark.parametrize("shape,loc,spread", [((4, 3, 3, 5), 1, 2), ((6, 7), 1, 2),
                                               ((4, 3, 3, 5), 100, 0.1)])
def test_batch_norm_training_matches_contrib_numerics(shape, loc, spread, plan):
  """Every plan's batch norm (fused, or statistics by matmul) gives contrib's outputs and moving
  averages; a mean far above the spread checks the statistics are two-pass, not E[x^2]-E[x]^2."""
  rng = np.random.RandomState(0)
  batches = [(rng.randn(*shape) * spread + loc).astype(np.float32) for _ in range(2)]
  outs, stats, params = run_bn(batches, train=True, plan=plan)
  mm, mv = np.zeros(shape[-1]), np.ones(shape[-1])
  for batch, out, (got_mm, got_mv) in zip(batches, outs, stats):
    # updated in place by the same run
    expected, mm, mv = contrib_step(batch, mm, mv, params["gamma"], params["beta"])
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_mm, mm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_mv, mv, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("plan", sorted(PLAN_FORMS))
def test_batch_norm_epsilon_is_the_fused_minimum(plan):
  """Tiny variances show the difference between epsilon 1e-5 and the fused 1.001e-5."""
  x = (np.random.RandomState(2).randn(8, 2, 2, 3) * 3e-3).astype(np.float32)
  (out,), _, params = run_bn([x], train=True, plan=plan)
  mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
  normalized = (out - params["beta"]) / params["gamma"]
  np.testing.assert_allclose(normalized, (x - mean) / np.sqrt(var + 1.001e-5), rtol=2e-5, atol=2e-5)
  assert np.abs(normalized - (x - mean) / np.sqrt(var + 1e-5)).max() > 1e-4


@pytest.mark.parametrize("shape", [(4, 3, 3, 5), (6, 7)])
def test_batch_norm_inference_uses_moving_stats_and_changes_nothing(shape):
  rng = np.random.RandomState(3)
  moving = (rng.randn(shape[-1]), rng.rand(shape[-1]) + 0.5)
  batch = rng.randn(*shape).astype(np.float32)
  (out,), ((mm, mv),), params = run_bn([batch], train=False, moving=moving)
  expected = (batch - moving[0]) / np.sqrt(moving[1] + FUSED_MIN_EPSILON) * params["gamma"] + params["beta"]
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(mm, moving[0], rtol=1e-6)
  np.testing.assert_allclose(mv, moving[1], rtol=1e-6)


@pytest.mark.parametrize("plan", sorted(PLAN_FORMS))
@pytest.mark.parametrize("shape", [(4, 3, 3, 5), (6, 7)])
def test_batch_norm_gradients_are_the_fused_ops_under_every_plan(shape, plan):
  rng = np.random.RandomState(4)
  x = (rng.randn(*shape) * 2 + 1).astype(np.float32)
  dy = rng.randn(*shape).astype(np.float32)
  gamma = (1 + 0.1 * rng.randn(shape[-1])).astype(np.float32)
  beta = rng.randn(shape[-1]).astype(np.float32)
  with tf.Graph().as_default(), tf.Session() as sess:
    xt = tf.constant(x)
    y = batch_norm(name="bn")(xt, train=True, options=options_for(plan))
    with tf.variable_scope("bn", reuse=True):
      variables = [tf.get_variable("gamma"), tf.get_variable("beta")]
    variables[0].load(gamma, sess)
    variables[1].load(beta, sess)
    got = sess.run(tf.gradients(y, [xt] + variables, tf.constant(dy)))
  with tf.Graph().as_default(), tf.Session() as sess:
    xt, gt, bt = tf.constant(x.reshape((-1, 1, 1, shape[-1]))), tf.constant(gamma), tf.constant(beta)
    y, _, _ = tf.nn.fused_batch_norm(xt, gt, bt, epsilon=FUSED_MIN_EPSILON)
    want = sess.run(tf.gradients(y, [xt, gt, bt], tf.constant(dy.reshape(y.shape))))
  np.testing.assert_allclose(got[0], want[0].reshape(shape), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(got[2], want[2], rtol=1e-4, atol=1e-4)


def test_batch_norm_variables_match_the_original():
  with tf.Graph().as_default():
    with tf.variable_scope("generator"):
      batch_norm(name="g_bn0")(tf.zeros([2, 4, 4, 6]))
    names = {v.op.name: (v.shape.as_list(), v in tf.trainable_variables())
             for v in tf.global_variables()}
  assert names == {
      "generator/g_bn0/beta": ([6], True),
      "generator/g_bn0/gamma": ([6], True),
      "generator/g_bn0/moving_mean": ([6], False),
      "generator/g_bn0/moving_variance": ([6], False),
  }


def evaluate(build):
  with tf.Graph().as_default(), tf.Session() as sess:
    out = build()
    sess.run(tf.global_variables_initializer())
    values = sess.run([out] + tf.global_variables())
    names = [v.op.name for v in tf.global_variables()]
    return values[0], dict(zip(names, values[1:]))


@pytest.mark.parametrize("plan", sorted(PLAN_FORMS))
@pytest.mark.parametrize("size", [7, 8, 16])
def test_conv2d_matches_numpy(size, plan):
  x = np.random.RandomState(4).randn(2, size, size + 1, 3).astype(np.float32)
  out, weights = evaluate(lambda: conv2d(tf.constant(x), 5, name="c", options=options_for(plan)))
  assert out.shape == (2, conv_out_size_same(size, 2), conv_out_size_same(size + 1, 2), 5)
  assert weights["c/w"].shape == (5, 5, 3, 5) and weights["c/biases"].shape == (5,)
  assert abs(weights["c/w"]).max() <= 0.04 + 1e-6  # truncated normal, stddev 0.02
  np.testing.assert_allclose(out, ref.conv2d_same(x, weights["c/w"], weights["c/biases"]), atol=1e-5)


@pytest.mark.parametrize("plan", sorted(PLAN_FORMS))
@pytest.mark.parametrize("out_hw", [(8, 8), (7, 9)])
def test_deconv2d_matches_numpy(out_hw, plan):
  out_h, out_w = out_hw
  x = np.random.RandomState(5).randn(3, conv_out_size_same(out_h, 2), conv_out_size_same(out_w, 2),
                                     4).astype(np.float32)
  out, weights = evaluate(lambda: deconv2d(tf.constant(x), [None, out_h, out_w, 2], name="d",
                                           options=options_for(plan)))
  assert out.shape == (3, out_h, out_w, 2)
  assert weights["d/w"].shape == (5, 5, 2, 4)
  np.testing.assert_allclose(
      out, ref.deconv2d_same(x, weights["d/w"], weights["d/biases"], out_h, out_w), atol=1e-5)


@pytest.mark.parametrize("plan", sorted(PLAN_FORMS))
def test_linear_lrelu_and_cond_concat(plan):
  x = np.random.RandomState(6).randn(3, 5).astype(np.float32)
  out, weights = evaluate(lambda: linear(tf.constant(x), 4, "g_h0_lin", options=options_for(plan)))
  assert weights["g_h0_lin/Matrix"].shape == (5, 4) and weights["g_h0_lin/bias"].shape == (4,)
  np.testing.assert_allclose(out, x @ weights["g_h0_lin/Matrix"] + weights["g_h0_lin/bias"], atol=1e-6)

  leaky, _ = evaluate(lambda: lrelu(tf.constant(x), options=options_for(plan)))
  np.testing.assert_allclose(leaky, np.where(x > 0, x, 0.2 * x), atol=1e-7)

  fmap = np.random.RandomState(7).randn(3, 2, 4, 6).astype(np.float32)
  y = np.eye(3, dtype=np.float32)[[2, 0, 1]]
  cat, _ = evaluate(lambda: conv_cond_concat(tf.constant(fmap), tf.constant(y.reshape(3, 1, 1, 3))))
  assert cat.shape == (3, 2, 4, 9)
  np.testing.assert_array_equal(cat[..., :6], fmap)
  np.testing.assert_array_equal(cat[..., 6:], np.broadcast_to(y[:, None, None, :], (3, 2, 4, 3)))

  flat, _ = evaluate(lambda: flatten(tf.constant(fmap)))
  np.testing.assert_array_equal(flat, fmap.reshape(3, -1))


def test_conv_out_size_same_is_ceil_half():
  assert [conv_out_size_same(s, 2) for s in (1, 2, 7, 28, 64, 65, 108)] == [1, 1, 4, 14, 32, 33, 54]


def layer_and_gradients(build, x, dy_seed):
  """build(x_tensor)'s output, the gradients of <output, dy> for x and every variable, and the
  op types of the forward graph."""
  with tf.Graph().as_default() as graph, tf.Session() as sess:
    xt = tf.constant(x)
    out = build(xt)
    forward_op_types = {op.type for op in graph.get_operations()}
    dy = np.random.RandomState(dy_seed).randn(*out.shape.as_list()).astype(np.float32)
    variables = tf.trainable_variables()
    grads = tf.gradients(out, [xt] + variables, tf.constant(dy))
    sess.run(tf.global_variables_initializer())
    values = sess.run([out] + grads)
    weights = dict(zip([v.op.name for v in variables], sess.run(variables)))
    return values, weights, dy, forward_op_types


@pytest.mark.parametrize("plan", sorted(PLAN_FORMS))
@pytest.mark.parametrize("out_c,in_hw,out_hw,native", [
    (1, (4, 5), (8, 10), False),  # "columns" path (mnist's g_h3)
    (3, (4, 4), (8, 8), False),   # "sub-pixel" path (celebA's g_h4)
    (8, (4, 4), (8, 8), True),    # enough channels: conv2d_transpose
    (3, (4, 4), (7, 8), True),    # output not twice the input: conv2d_transpose
])
def test_deconv2d_paths_match_conv2d_transpose_and_its_gradients(out_c, in_hw, out_hw, native,
                                                                  plan):
  """native: conv2d_transpose even where the plan computes small transposed convolutions
  another way (conv_forms.small_deconv); plans without small_deconv run conv2d_transpose,
  except where the plan computes the layer by matrix products (matmul_max_pixels)."""
  x = np.random.RandomState(8).randn(2, in_hw[0], in_hw[1], 6).astype(np.float32)
  (out, dx, dw, db), weights, dy, op_types = layer_and_gradients(
      lambda t: deconv2d(t, [None, out_hw[0], out_hw[1], out_c], name="g_h3",
                         options=options_for(plan)), x, 9)
  forms = ALL_FORMS[plan]
  by_matmul = (in_hw[0] * in_hw[1] <= forms.matmul_max_pixels
               and out_hw == (2 * in_hw[0], 2 * in_hw[1]))
  assert ("Conv2DBackpropInput" in op_types) == (
      (native or not forms.small_deconv) and not by_matmul)
  w = weights["g_h3/w"]
  with tf.Graph().as_default(), tf.Session() as sess:
    xt, wt = tf.constant(x), tf.constant(w)
    want = tf.nn.conv2d_transpose(xt, wt, [2, out_hw[0], out_hw[1], out_c], [1, 2, 2, 1])
    want_dx, want_dw = tf.gradients(want, [xt, wt], tf.constant(dy))
    want, want_dx, want_dw = sess.run([want, want_dx, want_dw])
  np.testing.assert_allclose(out, want + weights["g_h3/biases"], atol=1e-5)
  np.testing.assert_allclose(dx, want_dx, atol=1e-4)
  np.testing.assert_allclose(dw, want_dw, atol=1e-4)
  np.testing.assert_allclose(db, dy.sum(axis=(0, 1, 2)), atol=1e-4)


@pytest.mark.parametrize("plan", sorted(PLAN_FORMS))
def test_linear_gradients_are_the_matmul_gradients(plan):
  x = np.random.RandomState(10).randn(5, 7).astype(np.float32)
  (out, dx, dmatrix, dbias), weights, dy, _ = layer_and_gradients(
      lambda t: linear(t, 3, "d_h3_lin", options=options_for(plan)), x, 11)
  matrix = weights["d_h3_lin/Matrix"]
  np.testing.assert_allclose(out, x @ matrix, atol=1e-6)  # bias starts at 0
  np.testing.assert_allclose(dx, dy @ matrix.T, atol=1e-5)
  np.testing.assert_allclose(dmatrix, x.T @ dy, atol=1e-5)
  np.testing.assert_allclose(dbias, dy.sum(axis=0), atol=1e-5)


@pytest.mark.parametrize("plan", sorted(PLAN_FORMS))
@pytest.mark.parametrize("layer,out_c", [("conv2d", 5), ("deconv2d", 6), ("deconv2d", 1)])
def test_labels_argument_equals_the_layer_over_conv_cond_concat(layer, out_c, plan):
  """labels=y gives the original's layer(conv_cond_concat(x, y)): values and gradients."""
  rng = np.random.RandomState(12)
  x = rng.randn(3, 6, 6, 4).astype(np.float32)
  y = rng.rand(3, 3).astype(np.float32)  # any values, not only one-hot
  y[0] = [0, 1, 0]

  def build(labels, features):
    if layer == "conv2d":
      return conv2d(features, out_c, name="d_h1_conv", labels=labels, options=options_for(plan))
    return deconv2d(features, [None, 12, 12, out_c], name="g_h2", labels=labels,
                    options=options_for(plan))

  (out, dx, dw, db), weights, dy, _ = layer_and_gradients(lambda t: build(tf.constant(y), t), x, 13)
  (w_name, w), = [(k, v) for k, v in weights.items() if k.endswith("/w")]
  assert w.shape[2 if layer == "conv2d" else 3] == 4 + 3  # the original's variable: input + labels
  with tf.Graph().as_default(), tf.Session() as sess:
    xt, wt = tf.constant(x), tf.constant(w)
    cat = conv_cond_concat(xt, tf.constant(y.reshape(3, 1, 1, 3)))
    if layer == "conv2d":
      want = tf.nn.conv2d(cat, wt, [1, 2, 2, 1], "SAME")
    else:
      want = tf.nn.conv2d_transpose(cat, wt, [3, 12, 12, out_c], [1, 2, 2, 1])
    want_dx, want_dw = tf.gradients(want, [xt, wt], tf.constant(dy))
    want, want_dx, want_dw = sess.run([want, want_dx, want_dw])
  np.testing.assert_allclose(out, want, atol=1e-5)  # biases start at 0
  np.testing.assert_allclose(dx, want_dx, atol=1e-4)
  np.testing.assert_allclose(dw, want_dw, atol=1e-4)


# Cases that reach every form a kernel plan can choose: (layer, input [N, H, W, C], output
# channels, output size for deconv2d, label channels).
FORM_CASES = {
    "conv 3 channels in, input gradient sub-pixel": ("conv2d", (2, 16, 16, 3), 6, None, 0),
    "conv 1 channel + labels, input gradient columns": ("conv2d", (2, 14, 14, 1), 5, None, 3),
    "conv to 4x4, weight gradient by patches": ("conv2d", (2, 8, 8, 5), 7, None, 0),
    "conv to 3x4, odd input, patches": ("conv2d", (3, 5, 7, 4), 6, None, 0),
    "conv to 8x8, Conv2DBackpropFilter": ("conv2d", (2, 16, 16, 6), 4, None, 0),
    "deconv from 4x4, patches": ("deconv2d", (2, 4, 4, 6), 5, (8, 8), 0),
    "deconv to 3 channels, sub-pixel": ("deconv2d", (2, 8, 8, 6), 3, (16, 16), 0),
    "deconv to 1 channel + labels, columns": ("deconv2d", (3, 7, 7, 4), 1, (14, 14), 3),
    "deconv to 7x9, odd output": ("deconv2d", (2, 4, 5, 6), 2, (7, 9), 0),
    "deconv from 8x8 + labels": ("deconv2d", (2, 8, 8, 5), 6, (16, 16), 2),
}


@pytest.mark.parametrize("plan", sorted(PLAN_FORMS))
@pytest.mark.parametrize("case", sorted(FORM_CASES))
def test_every_plan_gives_the_plain_layers_values_and_gradients(plan, case):
  layer, x_shape, out_c, out_hw, label_c = FORM_CASES[case]
  rng = np.random.RandomState(14)
  x = rng.randn(*x_shape).astype(np.float32)
  y = np.eye(label_c, dtype=np.float32)[rng.randint(label_c, size=x_shape[0])] if label_c else None

  def build(t):
    labels = tf.constant(y) if label_c else None
    if layer == "conv2d":
      return conv2d(t, out_c, name="l", labels=labels, options=options_for(plan))
    return deconv2d(t, [None, out_hw[0], out_hw[1], out_c], name="l", labels=labels,
                    options=options_for(plan))

  (out, dx, dw, db), weights, dy, _ = layer_and_gradients(build, x, 15)
  w = weights["l/w"]
  with tf.Graph().as_default(), tf.Session() as sess:
    xt, wt = tf.constant(x), tf.constant(w)
    cat = conv_cond_concat(xt, tf.constant(y.reshape(-1, 1, 1, label_c))) if label_c else xt
    if layer == "conv2d":
      want = tf.nn.conv2d(cat, wt, [1, 2, 2, 1], "SAME")
    else:
      want = tf.nn.conv2d_transpose(cat, wt, [x_shape[0], out_hw[0], out_hw[1], out_c], [1, 2, 2, 1])
    want_dx, want_dw = tf.gradients(want, [xt, wt], tf.constant(dy))
    want, want_dx, want_dw = sess.run([want, want_dx, want_dw])
  np.testing.assert_allclose(out, want, atol=1e-5)  # biases start at 0
  np.testing.assert_allclose(dx, want_dx, atol=1e-4)
  np.testing.assert_allclose(dw, want_dw, atol=1e-4)
  np.testing.assert_allclose(db, dy.sum(axis=(0, 1, 2)), atol=1e-4)


def gradient_op_types(plan, build, x_shape):
  """Op types of build(x, options)'s forward and gradient graph, its layers built with `plan`."""
  with tf.Graph().as_default() as graph:
    xt = tf.placeholder(tf.float32, x_shape)
    out = build(xt, options_for(plan))
    tf.gradients(out, [xt] + tf.trainable_variables())
    return {op.type for op in graph.get_operations()}


def test_plans_choose_their_kernels():
  """The plan, not the layer code, decides which kernels a layer runs."""
  small_conv = lambda t, o: conv2d(t, 8, name="d_h0_conv", options=o)  # 3 channels in, 16x16 -> 8x8
  last_deconv = lambda t, o: deconv2d(t, [None, 16, 16, 3], name="g_h4", options=o)
  deep_conv = lambda t, o: conv2d(t, 8, name="d_h3_conv", options=o)  # 8x8 -> 4x4
  linear_layer = lambda t, o: linear(t, 4, "d_h2_lin", options=o)
  for name in ("plain", "gpu", "cpu"):
    assert "ExtractImagePatches" not in gradient_op_types(name, deep_conv, [2, 8, 8, 4])
    assert "Conv2DBackpropInput" in gradient_op_types(name, last_deconv, [2, 8, 8, 6])
    assert "Conv2DBackpropInput" in gradient_op_types(name, small_conv, [2, 16, 16, 3])
    assert "IdentityN" not in gradient_op_types(name, linear_layer, [2, 5])  # no custom gradient
  avx2 = hardware.PLANS["avx2"]
  assert avx2.patches_max_pixels >= 16 and avx2.small_input_grad and avx2.small_deconv
  assert "ExtractImagePatches" in gradient_op_types("avx2", deep_conv, [2, 8, 8, 4])
  types = gradient_op_types("avx2", small_conv, [2, 16, 16, 3])
  assert "Conv2DBackpropInput" not in types and "DepthToSpace" in types  # dx by sub-pixel
  types = gradient_op_types("avx2", last_deconv, [2, 8, 8, 6])
  assert "Conv2DBackpropInput" not in types and "Conv2DBackpropFilter" in types
  # AVX-512 keeps the forms it was tuned with and TensorFlow's gradients of them
  types = gradient_op_types("avx512", last_deconv, [2, 8, 8, 6])
  assert "DepthToSpace" in types and "IdentityN" not in types  # sub-pixel, autodiff gradients
  assert "ExtractImagePatches" not in gradient_op_types("avx512", deep_conv, [2, 8, 8, 4])
  assert "IdentityN" in gradient_op_types("avx512", linear_layer, [2, 5])
  # in bf16 (lowered) its 4x4 weight gradients are patches and one matmul, its input
  # gradients TensorFlow's kernels
  assert "ExtractImagePatches" in gradient_op_types("avx512 lowered", deep_conv, [2, 8, 8, 4])
  types = gradient_op_types("avx512 lowered", small_conv, [2, 16, 16, 3])
  assert "Conv2DBackpropInput" in types and "ExtractImagePatches" not in types
  # AMX in bf16: the 4x4 layers' forward and input gradient as matrix products too (no
  # convolution kernel left), the larger layers' TensorFlow's
  deep_deconv = lambda t, o: deconv2d(t, [None, 8, 8, 6], name="g_h1", options=o)  # 4x4 -> 8x8
  for layer, shape in ((deep_conv, [2, 8, 8, 4]), (deep_deconv, [2, 4, 4, 4])):
    types = gradient_op_types("amx lowered", layer, shape)
    assert not types & {"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"}
    assert {"MatMul", "SpaceToDepth", "DepthToSpace"} <= types
    assert "ExtractImagePatches" not in types  # its weight gradients' patches by slices too
  assert "Conv2D" in gradient_op_types("amx lowered", small_conv, [2, 16, 16, 3])
  # batch norm: oneDNN's fused forward except on AVX2, where the statistics are matmuls; the
  # fused kernel's gradient everywhere
  norm = lambda t, o: batch_norm(name="g_bn1")(t, train=True, options=o)
  for name in ("plain", "gpu", "cpu", "avx512"):
    assert "FusedBatchNormV3" in gradient_op_types(name, norm, [2, 4, 4, 6])
  types = gradient_op_types("avx2", norm, [2, 4, 4, 6])
  assert "FusedBatchNormV3" not in types and {"MatMul", "FusedBatchNormGradV3"} <= types


@pytest.mark.parametrize("shape", [(3, 8, 8, 5), (2, 16, 12, 3), (2, 2, 2, 4)])
def test_patches_by_slices_are_tensorflows_image_patches_exactly(shape):
  """conv_forms.patches (the matrix-product forms' and, with patch_slices, the weight
  gradients' patches) holds extract_patches' values in its order: the same matrix products,
  bit for bit."""
  x = tf.constant(np.random.RandomState(5).randn(*shape).astype(np.float32))
  want = tf.image.extract_patches(x, [1, 5, 5, 1], [1, 2, 2, 1], [1, 1, 1, 1], "SAME")
  with tf.Session() as sess:
    got, want = sess.run([conv_forms.patches(x), tf.reshape(want, [-1, 25 * shape[3]])])
  assert got.shape == want.shape and np.array_equal(got, want)


@pytest.mark.parametrize("plan", sorted(PLAN_FORMS))
def test_lrelu_gradient_is_the_leaky_relus_under_every_plan(plan):
  x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]], np.float32)
  (out, dx), _, dy, _ = layer_and_gradients(lambda t: lrelu(t, options=options_for(plan)), x, 16)
  np.testing.assert_allclose(out, np.where(x > 0, x, 0.2 * x), atol=1e-7)
  np.testing.assert_allclose(dx, np.where(x > 0, dy, 0.2 * dy), atol=1e-7)



@pytest.mark.parametrize("plan", sorted(PLAN_FORMS))
def test_held_updates_leave_the_outputs_and_follow_the_calls_order(plan):
  """With HeldUpdates, batch norm holds its moving-average updates in held.ops instead of
  making its output wait for them; a layer's second pass (D's fake after its real one, its
  HeldUpdates `after` the first's) updates after its first, as the outputs ordered them
  without HeldUpdates."""
  rng = np.random.RandomState(17)
  real = (rng.randn(4, 3, 3, 5) + 1).astype(np.float32)
  fake = (rng.randn(4, 3, 3, 5) * 2 - 3).astype(np.float32)
  first = HeldUpdates()
  second = HeldUpdates(after=first)
  with tf.Graph().as_default(), tf.Session() as sess:
    bn = batch_norm(name="d_bn1")
    y_real = bn(tf.constant(real), options=LayerOptions(ALL_FORMS[plan], first, None))
    with tf.variable_scope(tf.get_variable_scope(), reuse=True):
      y_fake = bn(tf.constant(fake), options=LayerOptions(ALL_FORMS[plan], second, None))
    with tf.variable_scope("d_bn1", reuse=True):
      mm, mv = tf.get_variable("moving_mean"), tf.get_variable("moving_variance")
    assert len(first.ops) == 2 and len(second.ops) == 2
    assert first.latest("d_bn1") == first.ops and second.latest("d_bn1") == second.ops
    assert first.latest("d_bn2") == [] and second.after is first
    sess.run(tf.global_variables_initializer())
    outs = sess.run([y_real, y_fake])
    np.testing.assert_array_equal(sess.run(mm), np.zeros(5))  # the outputs ran no update
    np.testing.assert_array_equal(sess.run(mv), np.ones(5))
    sess.run(second.ops)  # runs the first pass's updates before its own
    got_mm, got_mv = sess.run([mm, mv])
  want_mm, want_mv = np.zeros(5), np.ones(5)
  for batch, out in zip((real, fake), outs):
    expected, want_mm, want_mv = contrib_step(batch, want_mm, want_mv)  # gamma 1, beta 0
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(got_mm, want_mm, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got_mv, want_mv, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("plan", sorted(PLAN_FORMS))
def test_gathering_takes_the_weight_gradient_of_the_layers_it_pays_for(plan):
  """With Gathering, a linear layer whose Matrix outnumbers the replicas' factors gets its
  gradient from the gathered factors and is named by gathered_matrices; a smaller one keeps its
  own.
  One replica (the default replica context): the gathered gradient is x^T dy."""
  rng = np.random.RandomState(18)
  x = rng.randn(2, 30).astype(np.float32)
  with tf.Graph().as_default(), tf.Session() as sess:
    options = LayerOptions(ALL_FORMS[plan], None, Gathering(1, 2))
    wide = linear(tf.constant(x), 40, "g_h0_lin", options=options)  # 2 x 70 < 30 x 40
    narrow = linear(wide, 1, "d_h3_lin", options=options)  # 2 x 41 > 40 x 1
    assert gathered_matrices(options.gathering, tf.global_variables()) == {"g_h0_lin/Matrix:0"}
    assert gathered_matrices(None, tf.global_variables()) == frozenset()
    dy = rng.randn(2, 1).astype(np.float32)
    variables = tf.trainable_variables()
    grads = tf.gradients(narrow, variables, tf.constant(dy))
    # the layers decided alike: only g_h0_lin's gradient gathers factors (of x and dy, each
    # stopped: ops._gathered_matmul)
    assert {op.name.split("/")[1] for op in tf.get_default_graph().get_operations()
            if op.type == "StopGradient"} == {"g_h0_lin"}
    sess.run(tf.global_variables_initializer())
    values = sess.run([wide, narrow] + grads + variables)
  got = dict(zip([v.op.name for v in variables], values[2:2 + len(variables)]))
  weights = dict(zip([v.op.name for v in variables], values[2 + len(variables):]))
  hidden = x @ weights["g_h0_lin/Matrix"]  # biases start at 0
  np.testing.assert_allclose(values[0], hidden, atol=1e-5)
  np.testing.assert_allclose(values[1], hidden @ weights["d_h3_lin/Matrix"], atol=1e-5)
  d_hidden = dy @ weights["d_h3_lin/Matrix"].T
  np.testing.assert_allclose(got["d_h3_lin/Matrix"], hidden.T @ dy, atol=1e-5)
  np.testing.assert_allclose(got["g_h0_lin/Matrix"], x.T @ d_hidden, atol=1e-5)
  np.testing.assert_allclose(got["g_h0_lin/bias"], d_hidden.sum(0), atol=1e-5)


@pytest.mark.parametrize("case", ["conv to 4x4, weight gradient by patches",
                                  "deconv from 4x4, patches"])
def test_the_matmul_forms_give_tensorflows_kernels_values_in_bf16(case):
  """In bf16 as --precision bf16 trains (the Session's rewrite), the AMX plan's 4x4 layers (all
  three kernels by matrix products) give TensorFlow's kernels' values and gradients within
  bf16's rounding: within 3% of each result's largest magnitude."""
  layer, x_shape, out_c, out_hw, _ = FORM_CASES[case]
  x = np.random.RandomState(21).randn(*x_shape).astype(np.float32)
  results = {}
  for plan in ("plain", "amx lowered"):
    with tf.Graph().as_default(), tf.Session(config=session_config("bf16")) as sess:
      tf.set_random_seed(3)
      xt = tf.constant(x)
      if layer == "conv2d":
        out = conv2d(xt, out_c, name="l", options=options_for(plan))
      else:
        out = deconv2d(xt, [None, out_hw[0], out_hw[1], out_c], name="l",
                       options=options_for(plan))
      dy = tf.constant(np.random.RandomState(22).randn(*out.shape.as_list()), tf.float32)
      grads = tf.gradients(out, [xt, tf.trainable_variables()[0]], dy)
      sess.run(tf.global_variables_initializer())
      results[plan] = sess.run([out] + grads)
  for got, want in zip(results["amx lowered"], results["plain"]):
    assert np.abs(got - want).max() <= 0.03 * np.abs(want).max()
