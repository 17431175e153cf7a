"""Training speed of the real model on this machine, beside the machine's measured peak.

    python bench/train_speed.py --config celebA|mnist [--precision fp32|bf16] [--xla]
                                [--kernels auto|plain|avx2|avx512|...]

Builds the model from model.py (celebA-64: 64x64x3 unconditional; mnist: 28x28
conditional; batch 64, the original's filter counts), feeds synthetic batches
(the input pipeline is measured by bench/data_pipeline.py), runs --warmup
iterations and then times --steps iterations of DCGAN.train_step: one D update
and two G updates, losses and summaries fetched as the training loop fetches them.

Useful FLOPs of an iteration are counted from the graph's layers: each linear,
convolution and transposed convolution of the generator's and the
discriminator's forward pass, from its weight shape and output size (2 FLOPs
per multiply-add), gives G_f and D_f per example. This is the architecture's
count, whatever way ops.py computes a layer: extra work a rearrangement costs
(the zeros of ops._deconv_subpixel's kernel) is not counted, and the label
channels of the conditional (mnist) layers count as the input channels they
are in the original, although ops._label_term computes their share (9.7% of
the mnist iteration's count) in closed form.

A D update runs G forward, D forward twice (real, fake) and D
backward twice (gradients for activations and weights, ~2 forwards each):
G_f + 6 D_f. A G update runs G and D forward, D backward for activations
only, G backward for both: 3 G_f + 2 D_f (UPDATE_FORWARDS). An iteration
(step.UPDATES: 1 D + 2 G updates) is therefore 7 G_f + 10 D_f per example.

The peak is the best GFLOP/s of a 2048^3 or 4096^3 matmul in a Session
(bench/common.py), measured in the same run (and in bfloat16 too with
--precision bf16). The machine is named beside it: CPU model and kind,
instruction sets, whether oneDNN is on and which ISA it dispatches, the
TensorFlow version and the kernel plan (hardware.py; --kernels picks another
to compare). Prints the figures and appends one JSON line to
bench/results.jsonl.
"""
import argparse
import sys
import time

# common first: the project on the path, oneDNN decided before TensorFlow loads
from common import (RESULTS, add_model_arguments, append_result,
                    bench_model, cpu_clock, cpu_use_since, machine, matmul_peak_gflops,
                    print_cpu_use, print_machine, synthetic_feed, time_iterations)
import hardware  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402
from precision import session_config  # noqa: E402
from step import UPDATES  # noqa: E402
from ops import conv_out_size_same  # noqa: E402
from utils import UserError  # noqa: E402


def model_layers(graph, scope):
  """(layer name, weight shape, low-resolution side (h, w) or None) per layer under scope/.

  Read from the graph: linear layers (Matrix [in, out]) have no spatial side;
  a discriminator convolution (w [5, 5, in, out]) has its output h x w, a
  generator transposed convolution (w [5, 5, out, in]) its input, half its
  output rounded up.
  """
  for var in graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES):
    layer, _, leaf = var.op.name.rpartition("/")
    if not layer.startswith(scope + "/") or leaf not in ("Matrix", "w"):
      continue
    small = None
    if leaf == "w":
      _, out_h, out_w, _ = graph.get_tensor_by_name(layer + "/BiasAdd:0").shape.as_list()
      small = (out_h, out_w)
      if scope == "generator":
        small = (conv_out_size_same(out_h, 2), conv_out_size_same(out_w, 2))
    yield layer, var.shape.as_list(), small


def forward_flops(graph, scope):
  """FLOPs per example of the forward pass of the network under scope/, layer by layer.

  Counted from each layer's weights and output size as the architecture
  defines it, whatever ops ops.py uses to compute the layer: linear
  Matrix [in, out]: 2 * in * out; discriminator convolution w [5, 5, in, out]
  with output h x w: 2 * h * w * 25 * in * out; generator transposed
  convolution w [5, 5, out, in] with input h x w (half its output, rounded
  up): 2 * h * w * 25 * in * out.
  """
  total = 0
  for _, shape, small in model_layers(graph, scope):
    positions = small[0] * small[1] if small else 1
    total += 2 * positions * int(np.prod(shape))
  return total


# One update of each network in forwards' worth of (G, D) FLOPs (see the docstring).
UPDATE_FORWARDS = {"discriminator": (1, 6), "generator": (3, 2)}


def iteration_flops(model):
  """(G's and D's forward FLOPs per example, an iteration's FLOPs: step.UPDATES of them)."""
  g_f = forward_flops(model.sess.graph, "generator")
  d_f = forward_flops(model.sess.graph, "discriminator")
  per_example = sum(count * (UPDATE_FORWARDS[net][0] * g_f + UPDATE_FORWARDS[net][1] * d_f)
                    for net, count in UPDATES)
  return g_f, d_f, per_example * model.batch_size


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  add_model_arguments(parser)
  parser.add_argument("--xla", action="store_true", help="XLA JIT compilation (global_jit_level ON_1)")
  parser.add_argument("--steps", type=int, default=10, help="timed iterations [10]")
  parser.add_argument("--warmup", type=int, default=3, help="untimed iterations first [3]")
  parser.add_argument("--intra_op_threads", type=int, default=0)
  parser.add_argument("--inter_op_threads", type=int, default=0)
  parser.add_argument("--results", default=RESULTS)
  return parser.parse_args()


def main():
  args = parse_args()
  try:
    config = session_config(args.precision, args.xla, args.intra_op_threads,
                            args.inter_op_threads, hardware.kernel_plan(args.kernels))
  except UserError as err:
    print("error: %s" % err, file=sys.stderr)
    return 1

  clock = cpu_clock()
  peak = matmul_peak_gflops(config=config)
  peak_bf16 = (matmul_peak_gflops(dtype=tf.bfloat16, config=config) if args.precision == "bf16"
               else None)
  peak_use = cpu_use_since(clock)
  rng = np.random.RandomState(0)
  with tf.Graph().as_default(), tf.Session(config=config) as sess:
    model = bench_model(sess, args)
    described = machine(model.plan, fp32_matmul_peak_gflops=peak,
                        bf16_matmul_peak_gflops=peak_bf16)
    sess.run(model.init_op)
    g_f, d_f, flops = iteration_flops(model)
    times, last, steps_use = time_iterations(model, synthetic_feed(model, args.batch_size, rng),
                                             args.warmup, args.steps)
  s_per_iter = float(np.median(times))
  achieved = flops / s_per_iter / 1e9
  result = {
      "bench": "train_speed", "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
      "machine": described,
      "config": {"model": args.config, "precision": args.precision, "xla": args.xla,
                 "batch_size": args.batch_size, "filters": args.filters,
                 "kernel_plan": described["kernel_plan"],
                 "intra_op_threads": config.intra_op_parallelism_threads,
                 "inter_op_threads": config.inter_op_parallelism_threads,
                 "steps": args.steps, "warmup": args.warmup},
      "flops": {"generator_forward_per_example": g_f, "discriminator_forward_per_example": d_f,
                "iteration": flops},
      "s_per_iter": round(s_per_iter, 4), "s_per_iter_min": round(min(times), 4),
      "images_per_s": round(args.batch_size / s_per_iter, 2),
      "achieved_gflops": round(achieved, 1),
      "percent_of_fp32_peak": round(100 * achieved / peak, 1),
      "percent_of_bf16_peak": round(100 * achieved / peak_bf16, 1) if peak_bf16 else None,
      "losses_finite": bool(np.isfinite(list(last.losses)).all()),
      "cpu_use": {"peak": peak_use, "steps": steps_use},
  }
  print_result(args, result)
  append_result(args.results, result)
  return 0


def print_result(args, result):
  """The machine, the model and the figures of one run, as its JSON result has them."""
  print()
  print_machine(result["machine"])
  print("model: %s, batch %d, %s%s, inter-op threads %s; iteration = 1 D + 2 G updates = %.1f GFLOP"
        % (args.config, args.batch_size, args.precision, " + XLA" if args.xla else "",
           result["config"]["inter_op_threads"] or "TensorFlow's",
           result["flops"]["iteration"] / 1e9))
  print("s/iter %.3f (median of %d; best %.3f)  img/s %.1f  achieved %.1f GFLOP/s"
        "  = %.1f%% of fp32 peak%s"
        % (result["s_per_iter"], args.steps, result["s_per_iter_min"], result["images_per_s"],
           result["achieved_gflops"], result["percent_of_fp32_peak"],
           " (%.1f%% of bf16 peak)" % result["percent_of_bf16_peak"]
           if result["percent_of_bf16_peak"] is not None else ""))
  print_cpu_use(result["cpu_use"])


if __name__ == "__main__":
  sys.exit(main())
