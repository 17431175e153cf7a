"""Training speed of the real model on this machine, beside the machine's measured peak.

    python bench/train_speed.py --config celebA|mnist [--precision fp32|bf16|both] [--xla]
                                [--kernels PLAN[+FIELD=VALUE...] ...] [--rounds N]

Builds the model from model.py (celebA-64: 64x64x3 unconditional; mnist: 28x28
conditional; batch 64, the original's filter counts), feeds synthetic batches
(the input pipeline is measured by bench/data_pipeline.py), runs --warmup
iterations and then times --steps iterations of DCGAN.train_step: one D update
and two G updates, losses and summaries fetched as the training loop fetches them.
--rounds N times --steps iterations N times and lists each round's median.

--precision both builds the fp32 and the bf16 model in one process (a graph and
a Session each) and times them in turn, round by round, so that a slower minute
of the machine falls on both: bf16's img/s over fp32's is then measured, not
the ratio of two processes' figures (two runs a minute apart can differ by more
than the ratio on some machines: docs/PERFORMANCE.md).  --kernels with several
plans does the same for kernel plans (each in every --precision, timed in turn),
and a plan may change forms of its own (amx+layer_grads=chosen+patches_max_pixels=256:
hardware.KernelPlan's fields), so that a form is measured against the plan in
one process without editing hardware.py; each later plan's img/s is given over
the first's of the same precision.

Useful FLOPs of an iteration are counted from the graph's layers: each linear,
convolution and transposed convolution of the generator's and the
discriminator's forward pass, from its weight shape and output size (2 FLOPs
per multiply-add), gives G_f and D_f per example. This is the architecture's
count, whatever way ops.py computes a layer: extra work a rearrangement costs
(the zeros of conv_forms.deconv_subpixel's kernel) is not counted, and the label
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
--precision bf16 or both). The machine is named beside it: CPU model and kind,
instruction sets, whether oneDNN is on and which ISA it dispatches, the
TensorFlow version and the kernel plan (hardware.py; --kernels picks another
to compare). Prints the figures and appends one JSON line per precision to
bench/results.jsonl.

Two lines say what the CPUs did. "CPUs": how many CPUs' worth this process ran
on while the peak and the steps were timed, and the share other work and the
host's steal took (common.cpu_use_since). "cores": all CPUs' float32 matmul
over one CPU's, in child processes, before the peak and after each round
(common.core_scaling): near the CPU count, each virtual CPU had a core of its
own; near 1, the host ran them on one physical core's hyperthreads then, and
the figures around it are about halved (docs/PERFORMANCE.md).
"""
import argparse
import collections
import contextlib
import sys
import time

# common first: the project on the path, oneDNN decided before TensorFlow loads
from common import (FORM_FIELDS, RESULTS, add_model_arguments, append_result,
                    bench_model, core_scaling, cpu_clock, cpu_use_over, cpu_use_since,
                    kernel_plan, kernels_label, machine, matmul_peak_gflops,
                    print_cpu_use, print_machine, shared_core, synthetic_feed,
                    time_iterations)
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


# --precision: one, or both in one process (PRECISIONS[...] in the order each round times them)
PRECISIONS = {"fp32": ("fp32",), "bf16": ("bf16",), "both": ("fp32", "bf16")}
PEAK_DTYPES = {"fp32": tf.float32, "bf16": tf.bfloat16}

Variant = collections.namedtuple("Variant", ["kernels", "precision"])
Variant.__doc__ = """One model of a run: its --kernels spec (common.KernelsSpec), its
precision."""

Timed = collections.namedtuple("Timed", ["plan", "flops", "rounds", "last", "spans"])
Timed.__doc__ = """One variant's model as measure() timed it: its kernel plan, (G_f, D_f,
iteration FLOPs), [each round's iteration times], the last step.Step, [each round's
(cpu_clock, cpu_clock) span]."""


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  add_model_arguments(parser, precisions=tuple(PRECISIONS), precision_help=(
      "both: fp32 and bf16 models in one process, each round timing one then the other, and "
      "bf16's img/s over fp32's [fp32]"), several_kernels=True, several_configs=True)
  parser.add_argument("--choose_lowered", action="store_true",
                      help="after the figures, the bf16 forms to put in hardware.LOWERED for "
                      "the first --kernels plan: those of the fastest spec over every --config "
                      "(lowered_choice)")
  parser.add_argument("--xla", action="store_true",
                      help="XLA JIT compilation (global_jit_level ON_1)")
  parser.add_argument("--steps", type=int, default=10, help="timed iterations a round [10]")
  parser.add_argument("--rounds", type=int, default=1,
                      help="rounds of --steps iterations of each precision, in turn [1]")
  parser.add_argument("--warmup", type=int, default=3, help="untimed iterations first [3]")
  parser.add_argument("--intra_op_threads", type=int, default=0)
  parser.add_argument("--inter_op_threads", type=int, default=0)
  parser.add_argument("--results", default=RESULTS)
  args = parser.parse_args()
  texts = [spec.text for spec in args.kernels]
  if len(set(texts)) < len(texts):
    parser.error("--kernels names a plan twice: %s" % " ".join(texts))
  if len(set(args.config)) < len(args.config):
    parser.error("--config names a model twice: %s" % " ".join(args.config))
  if args.choose_lowered and "bf16" not in PRECISIONS[args.precision]:
    parser.error("--choose_lowered compares bf16 forms: give --precision bf16 or both")
  return args


def variants_of(args):
  """Every model the run measures, in the order each round times them: each --kernels spec in
  each precision of --precision."""
  return [Variant(spec, precision) for spec in args.kernels
          for precision in PRECISIONS[args.precision]]


def session_configs(args, variants):
  """{variant: its Session's ConfigProto}.  A UserError if they differ in threads: a process's
  Sessions all run on the thread pools its first one sized (common.thread_pools)."""
  configs = {v: session_config(v.precision, args.xla, args.intra_op_threads,
                               args.inter_op_threads, kernel_plan(v.kernels, v.precision))
             for v in variants}
  if len({(c.intra_op_parallelism_threads, c.inter_op_parallelism_threads)
          for c in configs.values()}) > 1:
    raise UserError("the kernel plans %s ask for different inter-op threads, and the models of "
                    "one process all run on the thread pools its first Session sized; give "
                    "--inter_op_threads to compare them" % ", ".join(t.text for t in args.kernels))
  return configs


def main():
  args = parse_args()
  variants = variants_of(args)
  try:
    configs = session_configs(args, variants)
  except UserError as err:
    print("error: %s" % err, file=sys.stderr)
    return 1
  cores = [core_scaling()]  # before the peak, then after each round (measure)
  clock = cpu_clock()
  precisions = PRECISIONS[args.precision]
  # every variant's Session has the same threads (session_configs; only rewrites differ)
  peaks = {p: matmul_peak_gflops(dtype=PEAK_DTYPES[p], config=configs[variants[0]])
           for p in ("fp32",) + tuple(p for p in precisions if p != "fp32")}
  peak_use = dict(peak=cpu_use_since(clock))
  onednn = hardware.onednn_probe()  # one child Python for every model's description
  peak_fields = {name + "_matmul_peak_gflops": peak for name, peak in peaks.items()}
  every = []
  for config in args.config:  # each model's variants timed in turn, one model after another
    model_args = argparse.Namespace(**dict(vars(args), config=config))
    measured, after_rounds = measure(model_args, variants, configs)  # {variant: Timed}
    model_cores = cores[-1:] + after_rounds
    cores += after_rounds
    results = [result_of(model_args, configs[v], peaks, peak_use, model_cores,
                         machine(timed.plan, onednn, **peak_fields), v, timed)
               for v, timed in measured.items()]
    compare(list(measured), results)
    print_results(model_args, results, model_cores)
    every += results
  for result in every:
    append_result(args.results, result)
  if args.choose_lowered:
    print_lowered_choice(lowered_choice(every, args.kernels))
  return 0


def print_results(args, results, cores):
  """One model's figures: the machine and its peaks (the same for every variant), each
  variant's, and what the CPUs did."""
  print()
  print_machine(results[0]["machine"], kernels=", ".join(
      dict.fromkeys(r["config"]["kernels"] for r in results)))
  for result in results:
    print_result(args, result)
  print_core_scaling(cores)


def measure(args, variants, configs):
  """({variant: Timed}, [core_scaling after each round]): every variant's model built in a
  graph and Session of its own and warmed up, then --rounds rounds, each timing --steps
  iterations of every variant in turn (so that a slower minute of the machine falls on
  all)."""
  rng = np.random.RandomState(0)
  runs, measured, cores = {}, {}, []
  with contextlib.ExitStack() as stack:
    for variant in variants:
      graph = tf.Graph()
      sess = stack.enter_context(tf.Session(graph=graph, config=configs[variant]))
      with graph.as_default():
        model = bench_model(sess, argparse.Namespace(**dict(
            vars(args), kernels=variant.kernels, precision=variant.precision)))
        sess.run(model.init_op)
        feed = synthetic_feed(model, args.batch_size, rng)
        time_iterations(model, feed, args.warmup, 0)
      runs[variant] = (model, feed)
      measured[variant] = Timed(model.plan, iteration_flops(model), [], None, [])
    for _ in range(args.rounds):
      for variant, (model, feed) in runs.items():
        with model.sess.graph.as_default():
          times, last, span = time_iterations(model, feed, 0, args.steps)
        timed = measured[variant]
        measured[variant] = timed._replace(rounds=timed.rounds + [times], last=last,
                                           spans=timed.spans + [span])
      cores.append(core_scaling())
  return measured, cores


def result_of(args, config, peaks, cpu_use, cores, described, variant, timed):
  """The JSON result of one variant's model: its Timed beside the machine (`described`, its
  peaks included), the peaks, {what was timed: cpu_use_since} before the model's steps and
  the core_scaling samples of the run."""
  flops, rounds, precision = timed.flops, timed.rounds, variant.precision
  times = [t for round_times in rounds for t in round_times]
  s_per_iter = float(np.median(times))
  achieved = flops[2] / s_per_iter / 1e9
  bf16_peak = peaks.get("bf16") if precision == "bf16" else None
  return {
      "bench": "train_speed", "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
      "machine": described,
      "config": {"model": args.config, "precision": precision, "xla": args.xla,
                 "batch_size": args.batch_size, "filters": args.filters,
                 "kernel_plan": described["kernel_plan"],
                 "kernels": kernels_label(timed.plan, variant.kernels),
                 "kernels_spec": variant.kernels.text,
                 "kernel_forms": dict(variant.kernels.forms),
                 "intra_op_threads": config.intra_op_parallelism_threads,
                 "inter_op_threads": config.inter_op_parallelism_threads,
                 "steps": args.steps, "rounds": args.rounds, "warmup": args.warmup},
      "flops": {"generator_forward_per_example": flops[0],
                "discriminator_forward_per_example": flops[1], "iteration": flops[2]},
      "s_per_iter": round(s_per_iter, 4), "s_per_iter_min": round(min(times), 4),
      "rounds_s_per_iter": [round(float(np.median(t)), 4) for t in rounds],
      "images_per_s": round(args.batch_size / s_per_iter, 2),
      "achieved_gflops": round(achieved, 1),
      "percent_of_fp32_peak": round(100 * achieved / peaks["fp32"], 1),
      "percent_of_bf16_peak": round(100 * achieved / bf16_peak, 1) if bf16_peak else None,
      "losses_finite": bool(np.isfinite(list(timed.last.losses)).all()),
      "cpu_use": dict(cpu_use, steps=cpu_use_over(timed.spans)),
      "core_scaling": cores,
  }


def compare(variants, results):
  """Give the results of one process (results[i] variants[i]'s) their img/s over another's (all
  rounds' medians and each round's): a bf16 result over the fp32 one of its kernels
  (bf16_over_fp32), a later kernels' result over the first kernels' of its precision
  (over_kernels).  Variants are told apart by their specs' texts, which parse_args keeps
  distinct: two specs of one plan (auto and its name) label their results alike."""
  by_variant = {(v.kernels.text, v.precision): r for v, r in zip(variants, results)}
  first = variants[0].kernels.text
  for (kernels, precision), result in by_variant.items():
    if precision == "bf16" and (kernels, "fp32") in by_variant:
      result["bf16_over_fp32"] = speedup(by_variant[kernels, "fp32"], result)
    if kernels != first:
      base = by_variant[first, precision]
      result["over_kernels"] = dict(speedup(base, result), kernels=base["config"]["kernels"])


def speedup(base, result):
  """result's img/s over base's: all rounds' medians and each round's."""
  return {"images_per_s": round(base["s_per_iter"] / result["s_per_iter"], 3),
          "rounds": [round(b / r, 3) for b, r in zip(base["rounds_s_per_iter"],
                                                       result["rounds_s_per_iter"])]}


def print_result(args, result):
  """The model and the figures of one precision's run, as its JSON result has them."""
  config = result["config"]
  print("model: %s, batch %d, %s%s, %sinter-op threads %s; iteration = 1 D + 2 G updates = "
        "%.1f GFLOP" % (args.config, args.batch_size, config["precision"],
                        " + XLA" if args.xla else "",
                        "kernels %s, " % config["kernels"] if len(args.kernels) > 1 else "",
                        config["inter_op_threads"] or "TensorFlow's",
                        result["flops"]["iteration"] / 1e9))
  print("s/iter %.3f (median of %d; best %.3f)  img/s %.1f  achieved %.1f GFLOP/s"
        "  = %.1f%% of fp32 peak%s"
        % (result["s_per_iter"], args.steps * args.rounds, result["s_per_iter_min"],
           result["images_per_s"], result["achieved_gflops"], result["percent_of_fp32_peak"],
           " (%.1f%% of bf16 peak)" % result["percent_of_bf16_peak"]
           if result["percent_of_bf16_peak"] is not None else ""))
  if args.rounds > 1:
    print("rounds: s/iter %s (medians of %d)" % (
        " / ".join("%.3f" % t for t in result["rounds_s_per_iter"]), args.steps))
  if "bf16_over_fp32" in result:
    print_speedup("bf16 over fp32", result["bf16_over_fp32"])
  if "over_kernels" in result:
    print_speedup("over kernels %s" % result["over_kernels"]["kernels"], result["over_kernels"])
  print_cpu_use(result["cpu_use"])


def print_speedup(what, ratio):
  """One line: a speedup (compare's) of one model over another measured in this process."""
  print("%s, the same process: %.2fx img/s (rounds %s)" % (
      what, ratio["images_per_s"], " / ".join("%.2fx" % r for r in ratio["rounds"])))


def lowered_choice(results, specs, noise=0.02):
  """What the bf16 results of every --config say of the first spec's plan's LOWERED forms:
  (the chosen spec, {config: its bf16 img/s over the first spec's}, the LOWERED dict of its
  bf16 plan).  The chosen spec is the one whose geometric mean of those ratios is highest
  among those no slower than the first on any model (each ratio at least 1 - noise), if that
  mean beats the first's by more than the noise; else the first (nothing to change)."""
  bf16 = {(r["config"]["model"], r["config"]["kernels_spec"]): r["s_per_iter"]
          for r in results if r["config"]["precision"] == "bf16"}
  models = list(dict.fromkeys(model for model, _ in bf16))
  first = specs[0]
  ratios = {spec.text: {m: bf16[m, first.text] / bf16[m, spec.text] for m in models}
            for spec in specs}
  score = {text: float(np.exp(np.mean(np.log(list(r.values()))))) for text, r in ratios.items()}
  eligible = [s for s in specs if min(ratios[s.text].values()) >= 1 - noise]
  best = max(eligible, key=lambda s: score[s.text])
  chosen = best if score[best.text] > 1 + noise else first
  return chosen, ratios[chosen.text], lowered_forms(kernel_plan(chosen, "bf16"))


def lowered_forms(plan):
  """The LOWERED entry that makes hardware.kernel_plan(plan's name, lowered=True) this plan:
  its fields that differ from the plan's own (batch statistics are fused in every lowered
  plan, threads are the Session's)."""
  base = hardware.PLANS[plan.name]
  return {field: getattr(plan, field) for field in FORM_FIELDS
          if field != "batch_norm_stats" and getattr(plan, field) != getattr(base, field)}


def print_lowered_choice(choice):
  """The line --choose_lowered ends with: which LOWERED entry the measurements ask for."""
  spec, ratios, forms = choice
  print("\nLOWERED[%r] = dict(%s)  # the forms of --kernels %s in bf16: %s over the first spec"
        % (spec.name, ", ".join("%s=%r" % item for item in sorted(forms.items())), spec.text,
           ", ".join("%s %.2fx" % item for item in ratios.items())))


def print_core_scaling(cores):
  """One line: the core_scaling ratios before the peak and after each round, and what a ratio
  near 1 means."""
  ratios = ["%.2fx" % c["ratio"] if c["ratio"] else "?" for c in cores]
  print("cores: %d CPUs' matmul over one CPU's %s before the peak, %s after each round%s" % (
      cores[0]["cpus"], ratios[0], " / ".join(ratios[1:]),
      " (near 1: the virtual CPUs shared a physical core then; docs/PERFORMANCE.md)"
      if any(shared_core(c) for c in cores) else ""))


if __name__ == "__main__":
  sys.exit(main())
