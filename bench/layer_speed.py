"""Each convolution kernel of the model alone, in fp32 and in bfloat16.

    python bench/layer_speed.py [--config celebA|mnist] [--repeats 10]
                                [--kernels PLAN[+FIELD=VALUE...]]

For every convolutional layer of the model (shapes read from the real graph
built by model.py, batch 64) it times the three kernels training runs -
forward, gradient for the input ("data") and gradient for the weights
("weights") - as single TensorFlow ops on variables already in the dtype, and
prints GFLOP/s in fp32, in bf16 (where the CPU has it) and their ratio, beside
the machine's matmul peaks measured in the same run. This is where the
speed-up of --precision bf16 is won or lost: train_speed.py's whole-step ratio
cannot beat these kernels' ratios. Appends one JSON line to bench/results.jsonl.

A generator layer is a transposed convolution: its forward kernel is
Conv2DBackpropInput, its data gradient a strided Conv2D, its weight gradient
Conv2DBackpropFilter with the roles of input and output swapped. These are
TensorFlow's own kernels at the architecture's shapes.  Beside them, the column
"plan" times the same three for the layer as ops.py builds it under this
machine's kernel plan (hardware.py; --kernels names another): where the plan
computes a kernel another way (the 3-channel layers' sub-pixel forms, weight
gradients by patches), that column shows what training really runs (bias
included, label channels counted as input channels).  "plan bf16" is the same
in bfloat16 as --precision bf16 trains it: the plan's lowered forms under the
Session's bf16 rewrite, its weights and bias float32 variables cast at every
run, its input and output gradient bf16 as the layers around it hand them
over.  "cores" is all CPUs' matmul over one CPU's just before and just after
the layer's timings (common.core_scaling): near 1, the virtual CPUs shared a
physical core then and the layer's figures may be halved.
"""
import argparse
import sys
import time

# common first: the project on the path, oneDNN decided before TensorFlow loads
from common import (CONFIGS, RESULTS, add_kernels_argument, append_result, core_scaling,
                    kernel_plan, kernels_label, machine,
                    matmul_peak_gflops, print_machine, shared_core)
import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402
from hardware import cpu_supports_bf16  # noqa: E402
from model import DCGAN  # noqa: E402
from ops import LayerOptions, conv2d, deconv2d  # noqa: E402
from precision import session_config  # noqa: E402
from train_speed import model_layers  # noqa: E402
from utils import UserError  # noqa: E402

STRIDES = [1, 2, 2, 1]
# --precision's name of each dtype a plan column is timed in
PRECISIONS = {tf.float32: "fp32", tf.bfloat16: "bf16"}


def conv_layers(config, batch_size):
  """[(name, small [N, h, w, c], large [N, 2h, 2w, C])] for each conv layer of the model.

  'small' is the low-resolution side (a D layer's output, a G layer's input),
  'large' the other (twice as high and wide, as in both configurations);
  channel counts are the weights' (label channels included).
  """
  layers = []
  with tf.Graph().as_default() as graph, tf.Session() as sess:
    DCGAN(sess, batch_size=batch_size, dataset_name=config, seed=0, **CONFIGS[config])
    for scope in ("generator", "discriminator"):
      for layer, shape, small_hw in model_layers(graph, scope):
        if small_hw is None:
          continue
        # w is [5, 5, large, small] for a D layer, [5, 5, out = large, in = small] for a G layer
        h, w = small_hw
        layers.append((layer, [batch_size, h, w, shape[3]],
                       [batch_size, 2 * h, 2 * w, shape[2]]))
  return layers


def median_seconds(sess, outputs, repeats):
  """{name: median seconds} of fetching next to nothing of each output, after one warm-up run."""
  seconds = {}
  for name, out in outputs.items():
    op = tf.reduce_sum(tf.cast(out[:1], tf.float32))
    sess.run(op)
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      sess.run(op)
      times.append(time.perf_counter() - start)
    seconds[name] = float(np.median(times))
  return seconds


def activation(shape, seed, precision):
  """A layer's input or output gradient as training hands it over: float32 in fp32; in bf16 the
  bf16 tensor the previous layer's ops produced, here a bfloat16 variable read as float32, a
  cast the rewrite cancels (a float32 variable would add a cast of the whole tensor to every
  run, which training's layers do not pay: the rewrite keeps the activations between them in
  bf16)."""
  if precision == "fp32":
    return tf.Variable(tf.random.normal(shape, seed=seed))
  return tf.cast(tf.Variable(tf.cast(tf.random.normal(shape, seed=seed), tf.bfloat16)),
                 tf.float32)


def time_plan_layer(generator, small, large, repeats, kernels, precision="fp32"):
  """Seconds (median) of forward / data / weights of the layer as ops.py builds it with the
  kernel plan of the KernelsSpec `kernels` (--kernels), in `precision` as training runs it
  (bf16: the plan's lowered forms, float32 weights and bias, bf16 activations, the Session's
  bf16 rewrite)."""
  plan = kernel_plan(kernels, precision)
  with tf.Graph().as_default(), tf.Session(config=session_config(precision, plan=plan)) as sess:
    make = lambda shape, seed: activation(shape, seed, precision)
    options = LayerOptions(plan, None, None)
    if generator:
      x = make(small, 1)
      out = deconv2d(x, [None] + large[1:], name="layer", options=options)
    else:
      x = make(large, 1)
      out = conv2d(x, small[3], name="layer", options=options)
    w = [v for v in tf.trainable_variables() if v.op.name == "layer/w"][0]
    dy = make(out.shape.as_list(), 2)
    dx, dw = tf.gradients(out, [x, w], dy)
    sess.run(tf.global_variables_initializer())
    return median_seconds(sess, {"forward": out, "data": dx, "weights": dw}, repeats)


def time_kernels(small, large, dtype, repeats):
  """Seconds (median) of forward / data / weights for a 5x5/2 layer between these shapes."""
  filter_shape = [5, 5, large[3], small[3]]  # a D layer's: large -> small
  with tf.Graph().as_default(), tf.Session() as sess:
    make = lambda shape, seed: tf.Variable(tf.cast(tf.random.normal(shape, seed=seed), dtype))
    x_large, x_small, w = make(large, 1), make(small, 2), make(filter_shape, 3)
    kernels = {
        # large -> small (D forward; G data gradient)
        "conv": tf.nn.conv2d(x_large, w, STRIDES, "SAME"),
        # small -> large (G forward; D data gradient)
        "conv_transpose": tf.nn.conv2d_transpose(x_small, w, large, STRIDES),
        # the weights' gradient, either layer
        "filter_grad": tf.raw_ops.Conv2DBackpropFilter(
            input=x_large, filter_sizes=filter_shape, out_backprop=x_small, strides=STRIDES,
            padding="SAME"),
    }
    sess.run(tf.global_variables_initializer())
    return median_seconds(sess, kernels, repeats)


def layer_gflops(layer, small, large, dtypes, repeats, kernels):
  """{role: {column: GFLOP/s}} of one layer's three kernels (role: forward, data, weights):
  TensorFlow's kernel in each of dtypes (column: the dtype's name) and the plan's layer
  (column 'plan', and 'plan_bf16' where bfloat16 is among dtypes)."""
  flops = 2 * np.prod(small[:3]) * 25 * small[3] * large[3]
  generator = layer.startswith("generator/")
  timed = {dt.name: time_kernels(small, large, dt, repeats) for dt in dtypes}
  plans = {"plan": time_plan_layer(generator, small, large, repeats, kernels)}
  if tf.bfloat16 in dtypes:
    plans["plan_bf16"] = time_plan_layer(generator, small, large, repeats, kernels, "bf16")
  kernels = {"forward": "conv_transpose" if generator else "conv",
             "data": "conv" if generator else "conv_transpose", "weights": "filter_grad"}
  return {role: dict({name: flops / t[kernel] / 1e9 for name, t in timed.items()},
                     **{name: flops / t[role] / 1e9 for name, t in plans.items()})
          for role, kernel in kernels.items()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", choices=sorted(CONFIGS), default="celebA")
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=10)
  add_kernels_argument(parser, what="kernel plan of the plan columns")
  parser.add_argument("--results", default=RESULTS)
  args = parser.parse_args()
  dtypes = [tf.float32] + ([tf.bfloat16] if cpu_supports_bf16() else [])
  try:  # a spec the plan columns cannot build is said before any timing
    plan, *_ = [kernel_plan(args.kernels, PRECISIONS[dt]) for dt in dtypes]
  except UserError as err:
    print("error: %s" % err, file=sys.stderr)
    return 1
  label = kernels_label(plan, args.kernels)
  threads = session_config(plan=plan)  # the first Session sizes the pools (common.thread_pools)
  peaks = {dt.name: matmul_peak_gflops(dtype=dt, config=threads) for dt in dtypes}
  described = machine(plan, **{
      "%s_matmul_peak_gflops" % ("fp32" if name == "float32" else "bf16"): value
      for name, value in peaks.items()})
  print_machine(described, kernels=label)
  print("%-26s %-8s %9s %9s %9s %6s %9s %6s %11s" % (
      "layer", "kernel", "fp32", "plan", "bf16", "ratio", "plan bf16", "ratio", "cores"))
  rows, before = [], core_scaling()
  for layer, small, large in conv_layers(args.config, args.batch_size):
    gflops = layer_gflops(layer, small, large, dtypes, args.repeats, args.kernels)
    after = core_scaling()
    cores = "%s/%s" % tuple("%.2fx" % c["ratio"] if c["ratio"] else "?" for c in (before, after))
    for role, rates in gflops.items():
      print(("%-26s %-8s %9.1f %9.1f %s %11s" % (
          layer, role, rates["float32"], rates["plan"],
          " ".join("%9.1f %5.2fx" % (rates[name], rates[name] / rates[fp32])
                   for name, fp32 in (("bfloat16", "float32"), ("plan_bf16", "plan"))
                   if name in rates), cores if role == "forward" else "")).rstrip())
      rows.append({"layer": layer, "kernel": role, "small": small, "large": large,
                   "gflops": {k: round(v, 1) for k, v in rates.items()},
                   "core_scaling": [before, after]})
    before = after
  print("(GFLOP/s of each kernel alone, batch %d; fp32 and bf16: TensorFlow's kernel; plan, plan "
        "bf16: the layer as ops.py computes it with kernel plan %s, as training runs it in that "
        "precision; ratios: bf16 over fp32; cores: all CPUs' matmul over one CPU's before/after "
        "the layer's timings, common.core_scaling)" % (args.batch_size, label))
  if any(shared_core(c) for row in rows for c in row["core_scaling"]):
    print("A cores figure near 1: the virtual CPUs shared a physical core around that layer's "
          "timings, which may be about halved (docs/PERFORMANCE.md); run it again.")
  result = {"bench": "layer_speed", "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "machine": described,
            "config": {"model": args.config, "batch_size": args.batch_size,
                       "repeats": args.repeats, "kernels": label},
            "layers": rows}
  append_result(args.results, result)
  return 0


if __name__ == "__main__":
  sys.exit(main())
