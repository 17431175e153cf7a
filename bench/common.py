"""Shared by the benchmarks: what the machine is, its measured matmul peak, where results go.

Every bench script imports it before any other project module or TensorFlow: it puts the
project's modules on the path, and imports TensorFlow as main.py does (oneDNN decided first,
its C++ start-up lines hidden unless the user set TF_CPP_MIN_LOG_LEVEL).
"""
import argparse
import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import hardware  # noqa: E402
from utils import UserError  # noqa: E402

tf = hardware.import_tensorflow()
tf.get_logger().setLevel("ERROR")

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.jsonl")

# The two measured models: celebA-64 (64x64x3, unconditional) and mnist (28x28, conditional).
CONFIGS = {
    "celebA": dict(output_height=64, output_width=64, c_dim=3, y_dim=None),
    "mnist": dict(output_height=28, output_width=28, c_dim=1, y_dim=10),
}


def add_model_arguments(parser, precisions=("fp32", "bf16"), precision_help=None,
                        several_kernels=False, several_configs=False):
  """The flags of the measured model that bench_model builds, on an argparse parser.
  several_kernels: --kernels takes one KernelsSpec or more (a list), else one; several_configs:
  --config takes one of CONFIGS or more (a list), else one."""
  parser.add_argument("--config", choices=sorted(CONFIGS), nargs="+" if several_configs else None,
                      default=["celebA"] if several_configs else "celebA")
  parser.add_argument("--precision", choices=precisions, default="fp32", help=precision_help)
  add_kernels_argument(parser, several_kernels)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--filters", type=int, default=64, help="gf_dim = df_dim [64]")
  parser.add_argument("--fc", type=int, default=1024, help="gfc_dim = dfc_dim (mnist) [1024]")


def add_kernels_argument(parser, several=False, what="kernel plan"):
  """--kernels: a KernelsSpec (kernels_spec), or with several one or more of them."""
  default = kernels_spec(hardware.DEFAULT_KERNELS)
  parser.add_argument(
      "--kernels", type=kernels_spec, metavar="PLAN[+FIELD=VALUE...]",
      nargs="+" if several else None, default=[default] if several else default,
      help="%s (hardware.py: one of %s), optionally with forms changed from it, such as "
      "amx+layer_grads=chosen+patches_max_pixels=256 (hardware.KernelPlan's fields)%s "
      "[auto: this machine's]" % (what, ", ".join(hardware.KERNEL_CHOICES),
                                  "; several: timed in turn in one process, each later one's "
                                  "img/s given over the first's" if several else ""))


KernelsSpec = collections.namedtuple("KernelsSpec", ["text", "name", "forms"])
KernelsSpec.__doc__ = """A --kernels value: its text, the plan's name (hardware.KERNEL_CHOICES)
and ((field, value), ...) of the forms it changes from that plan, in its order (kernel_plan
applies them)."""

# The KernelPlan fields a --kernels spec may change: the forms (a plan's threads are the
# Session's, --inter_op_threads, and its name is the spec's own).
FORM_FIELDS = tuple(f for f in hardware.KernelPlan._fields if f not in ("name", "inter_op_threads"))


def kernels_spec(text):
  """The KernelsSpec of 'PLAN' or 'PLAN+FIELD=VALUE+...': a form measured without editing
  hardware.py.  A value reads as its field's type in hardware.PLANS (true/false, a number, or
  one of the words some plan uses).  Raises argparse.ArgumentTypeError, said in one line."""
  name, *changes = text.split("+")
  if name not in hardware.KERNEL_CHOICES:
    raise argparse.ArgumentTypeError("%r names no kernel plan; choose one of %s"
                                     % (name, ", ".join(hardware.KERNEL_CHOICES)))
  forms = []
  for change in changes:
    field, equals, value = change.partition("=")
    if not equals or field not in FORM_FIELDS:
      raise argparse.ArgumentTypeError("%r is not FIELD=VALUE with FIELD one of %s"
                                       % (change, ", ".join(FORM_FIELDS)))
    forms.append((field, form_value(field, value)))
  return KernelsSpec(text, name, tuple(forms))


def form_value(field, text):
  """text as a value of the KernelPlan field `field`, typed as hardware.PLANS has it."""
  used = {getattr(plan, field) for plan in hardware.PLANS.values()}
  kind = type(next(iter(used)))
  if kind is int:
    if not text.isdigit():
      raise argparse.ArgumentTypeError("%s=%s: %s takes a whole number" % (field, text, field))
    return int(text)
  words = {"true": True, "false": False} if kind is bool else {value: value for value in used}
  if text not in words:
    raise argparse.ArgumentTypeError("%s=%s: %s takes %s"
                                     % (field, text, field, " or ".join(sorted(words))))
  return words[text]


def kernel_plan(spec, precision="fp32"):
  """The hardware.KernelPlan a KernelsSpec builds in precision: its plan with the precision's
  lowered forms (hardware.kernel_plan), then the forms the spec changes.  A UserError if the
  spec changes a form the plan would not use, so that no figure is read as a form's that
  never ran."""
  changed = dict(spec.forms)
  plan = hardware.kernel_plan(spec.name, lowered=precision != "fp32")._replace(**changed)
  unused = [field for field in hardware.CHOSEN_ONLY if field in changed]
  if unused and plan.layer_grads != "chosen":
    raise UserError("--kernels %s: in %s the plan's layers take TensorFlow's gradients, which "
                    "use no %s; add +layer_grads=chosen" % (spec.text, precision,
                                                           " or ".join(unused)))
  return plan


def kernels_label(plan, spec):
  """What a figure was measured with: the plan's name (an 'auto' spec's too) and the forms the
  spec changes, as it wrote them (avx512+patches_max_pixels=64)."""
  return plan.name + spec.text[len(spec.name):]


def bench_model(sess, args):
  """model.py's DCGAN as the benches measure it, in sess's graph, from add_model_arguments'
  flags: one of CONFIGS, batch args.batch_size, args.filters filters, args.fc units, the plan
  of args.kernels (one KernelsSpec) in args.precision, seed 0."""
  from model import DCGAN
  return DCGAN(sess, settings=bench_settings(args))


def warmed_up_model(sess, args):
  """(model, feed): bench_model in sess's graph, initialised, after args.warmup iterations on
  a synthetic batch (synthetic_feed, seed 0) that the feed holds."""
  model = bench_model(sess, args)
  sess.run(model.init_op)
  feed = synthetic_feed(model, args.batch_size, np.random.RandomState(0))
  for _ in range(args.warmup):
    model.train_step(feed)
  return model, feed


def bench_settings(args):
  """The settings.ModelSettings of bench_model's model."""
  from settings import ModelSettings
  return ModelSettings(
      batch_size=args.batch_size, sample_num=args.batch_size, gf_dim=args.filters,
      df_dim=args.filters, gfc_dim=args.fc, dfc_dim=args.fc, dataset_name=args.config, seed=0,
      precision=args.precision, kernels=kernel_plan(args.kernels, args.precision),
      **CONFIGS[args.config])


def synthetic_feed(model, count, rng):
  """A training feed of count random images in the model's value range, labels and z."""
  low, high = model.value_range
  images = rng.uniform(low, high, (count, model.output_height, model.output_width,
                                   model.c_dim)).astype(np.float32)
  labels = (np.eye(model.y_dim, dtype=np.float32)[rng.randint(model.y_dim, size=count)]
            if model.y_dim else None)
  z = rng.uniform(-1, 1, (count, model.z_dim)).astype(np.float32)
  return model.feed(z, labels, images)


def time_iterations(model, feed, warmup, steps):
  """(seconds of each of `steps` DCGAN.train_step iterations after `warmup` untimed ones,
  the last iteration's step.Step, the (cpu_clock, cpu_clock) span of the timed ones:
  cpu_use_over takes it).  Each fetches the losses and summaries, as every step of the
  training loop does (training.py)."""
  for _ in range(warmup):
    model.train_step(feed)
  times, losses = [], None
  clock = cpu_clock()
  for _ in range(steps):
    start = time.perf_counter()
    losses = model.train_step(feed)
    times.append(time.perf_counter() - start)
  return times, losses, (clock, cpu_clock())


def cpu_clock(stat="/proc/stat"):
  """(wall seconds, this process's CPU seconds, the machine's CPU time by /proc/stat field in
  seconds or None where there is no /proc/stat) now: cpu_use_since takes it."""
  try:
    with open(stat) as f:
      fields = f.readline().split()[1:]
    ticks = [int(value) / os.sysconf("SC_CLK_TCK") for value in fields]
  except (OSError, ValueError):
    ticks = None
  return time.perf_counter(), time.process_time(), ticks


def cpu_use_since(before, stat="/proc/stat"):
  """What the CPUs did since cpu_clock() gave `before`: {'cpus', 'process_cpus' (CPUs' worth
  this process ran on), 'others_percent' (of all CPU time: other processes and the kernel's
  interrupts), 'steal_percent' (time the hypervisor gave this machine's CPUs to someone else)}.
  A run whose peak or step time falls while process_cpus stays near 'cpus' lost its speed
  inside the cores (the host's sharing of them, their clock), not to other work."""
  return cpu_use_over([(before, cpu_clock(stat))])


def cpu_use_over(spans):
  """cpu_use_since's figures over the (before, after) cpu_clock() pairs of spans together
  (the rounds of one precision, say), as if they were one span."""
  wall = sum(after[0] - before[0] for before, after in spans)
  process = sum(after[1] - before[1] for before, after in spans)
  ticks = None
  if all(None not in (before[2], after[2]) for before, after in spans):
    ticks = [sum(values) for values in zip(*(
        [b - a for a, b in zip(before[2], after[2])] for before, after in spans))]
  use = {"cpus": os.cpu_count(), "process_cpus": round(process / wall, 2),
         "others_percent": None, "steal_percent": None}
  # user nice system idle iowait irq softirq steal [guest guest_nice: counted in user]
  total = sum(ticks[:8]) if ticks is not None else 0
  if total > 0:
    busy = sum(ticks[i] for i in (0, 1, 2, 5, 6) if i < len(ticks))
    use["others_percent"] = round(100 * max(busy - process, 0) / total, 1)
    use["steal_percent"] = round(100 * ticks[7] / total, 1) if len(ticks) > 7 else 0.0
  return use


def print_cpu_use(uses):
  """One line from {what was timed: cpu_use_since(...)}: how many CPUs this process ran on
  while each was timed, and what else the machine and its host did meanwhile."""
  print("CPUs (%d): %s" % (next(iter(uses.values()))["cpus"], "; ".join(
      "%s %.2f this process%s" % (
          name, use["process_cpus"],
          ", others %.0f%%, host steal %.0f%%" % (use["others_percent"], use["steal_percent"])
          if use["steal_percent"] is not None else "")
      for name, use in uses.items())))


def append_result(path, result):
  """Append one benchmark result as a JSON line to path and say so."""
  with open(path, "a") as f:
    f.write(json.dumps(result) + "\n")
  print("appended to %s" % path)


def machine(plan, onednn=None, **peaks):
  """hardware.describe(plan, onednn) plus the peaks measured in this run (GFLOP/s, rounded),
  for results.jsonl; plan: the hardware.KernelPlan the measured graph was built with."""
  described = hardware.describe(plan, onednn)
  described.update({name: round(value, 1) for name, value in peaks.items() if value})
  return described


def print_machine(described, kernels=None):
  """Name the machine beside its peaks, so no figure is read without it; kernels: what the
  figures were measured with, where it says more than the plan's name (kernels_label)."""
  isa = [name for name in ("avx2", "avx512", "amx") if described["isa"][name]]
  peaks = ", ".join("%s %.1f GFLOP/s" % (key[:-len("_matmul_peak_gflops")], value)
                    for key, value in described.items() if key.endswith("_matmul_peak_gflops"))
  print("machine: %s, %d CPUs, kind %s (%s%s%s)" % (
      described["cpu_model"], described["cpus"], described["cpu_kind"], "+".join(isa) or "no AVX2",
      ", bf16" if described["isa"]["bf16"] else ", no bf16",
      ", ONEDNN_MAX_CPU_ISA=%s" % described["onednn_max_cpu_isa"]
      if described["onednn_max_cpu_isa"] else ""))
  print("software: TensorFlow %s, oneDNN %s%s, kernel plan %s" % (
      described["tensorflow"], "on" if described["onednn"] else "off",
      " (dispatching %s)" % described["onednn_isa"] if described["onednn_isa"] else "",
      kernels or described["kernel_plan"]))
  if peaks:
    print("matmul peak: %s (measured now)" % peaks)


# The test suite sets it to time one repeat per size: it checks the benches' fields, not
# their figures, and this measurement is a good part of a small bench run's time.
PEAK_SECONDS_VARIABLE = "BENCH_PEAK_SECONDS"


def thread_pools(config):
  """A ConfigProto with config's thread counts and nothing else (no rewrite, no XLA).

  TensorFlow sizes a process's thread pools when its first Session starts: the CPU device's
  intra-op pool always, the inter-op pool unless use_per_session_threads is set. A later
  Session runs on those pools whatever its own config says (measured: a first Session with one
  intra-op thread held a later two-thread Session's matmul at 107 GFLOP/s, against 201 the
  other way round). So a bench that opens a Session before the measured model's, as the peak
  does, opens it with the model's thread counts, or the model runs on the peak's pools.
  """
  return tf.ConfigProto(intra_op_parallelism_threads=config.intra_op_parallelism_threads,
                        inter_op_parallelism_threads=config.inter_op_parallelism_threads)


def matmul_peak_gflops(sizes=(2048, 4096), seconds=None, dtype=tf.float32, config=None):
  """Best GFLOP/s of an n x n x n matmul in a Session on this machine (2 n^3 FLOPs each).

  The operands are variables already in `dtype` (no cast is timed) and only one
  row of the product is fetched, so the figure is the matmul alone; the best
  over the sizes and over the repeats (about `seconds` per size: 1.5, or
  $BENCH_PEAK_SECONDS) is the peak.  config: the measured model's Session config, whose
  thread counts the peak's Sessions take (thread_pools: the first Session sizes them).
  """
  if seconds is None:
    seconds = float(os.environ.get(PEAK_SECONDS_VARIABLE, 1.5))
  threads = thread_pools(config) if config is not None else None
  best_rate = 0.0
  for n in sizes:
    with tf.Graph().as_default(), tf.Session(config=threads) as sess:
      a = tf.Variable(tf.cast(tf.random.uniform([n, n], seed=1), dtype))
      b = tf.Variable(tf.cast(tf.random.uniform([n, n], seed=2), dtype))
      op = tf.reduce_sum(tf.cast(tf.matmul(a, b)[:1], tf.float32))
      sess.run(tf.global_variables_initializer())
      sess.run(op)  # warm-up
      best, spent = float("inf"), 0.0
      while spent < seconds or best == float("inf"):
        start = time.perf_counter()
        sess.run(op)
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
      best_rate = max(best_rate, 2.0 * n ** 3 / best / 1e9)
  return best_rate


# A child Python's best float32 2048^3 matmul in GFLOP/s, by numpy's BLAS with the threads its
# environment allows (BLAS_THREAD_VARIABLES): no TensorFlow, so it starts in a fraction of a second.
_BLAS_MATMUL = """
import sys, time
import numpy as np
seconds = float(sys.argv[1])
a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
a @ a
best, spent = float("inf"), 0.0
while spent < seconds or best == float("inf"):
  start = time.perf_counter()
  a @ a
  elapsed = time.perf_counter() - start
  best, spent = min(best, elapsed), spent + elapsed
print(2.0 * 2048 ** 3 / best / 1e9)
"""


def shared_core(sample):
  """True if a core_scaling sample says the virtual CPUs shared physical cores then: all of
  them multiplied less than 0.65x their count times one's (two: below 1.3x)."""
  return bool(sample["ratio"]) and sample["ratio"] < 0.65 * sample["cpus"]


# What caps a BLAS's threads, per vendor numpy may be built with: OpenBLAS (PyPI's wheels),
# OpenMP builds, MKL, Apple's Accelerate.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                         "VECLIB_MAXIMUM_THREADS")


def core_scaling(seconds=None, timeout=120):
  """How much faster all this machine's CPUs multiply matrices than one: {'cpus', 'one_gflops',
  'all_gflops', 'ratio'} (None where a child failed), each the best float32 matmul of a child
  Python whose BLAS runs one thread or one per CPU, about `seconds` each (as the peak's).

  A ratio near the CPU count: the CPUs are cores of their own.  Near 1 on a virtual machine
  whose CPUs are all busy with this work: its virtual CPUs share one physical core now (the
  host placed them on two hyperthreads of it; or it halved their clock, which looks the same
  from inside), and every figure of the run is about halved; the host may place them
  otherwise a minute later.  TensorFlow's own pools cannot tell: a process sizes them once
  (thread_pools), hence children.
  """
  if seconds is None:
    seconds = float(os.environ.get(PEAK_SECONDS_VARIABLE, 1.5))
  import subprocess
  cpus = os.cpu_count()
  rates = {}
  for name, threads in (("one_gflops", 1), ("all_gflops", cpus)):
    env = dict(os.environ, **{variable: str(threads) for variable in BLAS_THREAD_VARIABLES})
    try:
      proc = subprocess.run([sys.executable, "-c", _BLAS_MATMUL, str(seconds)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            timeout=timeout, check=True)
      rates[name] = round(float(proc.stdout.split()[-1]), 1)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
      rates[name] = None
  ratio = (round(rates["all_gflops"] / rates["one_gflops"], 2)
           if rates["one_gflops"] and rates["all_gflops"] else None)
  return dict(cpus=cpus, ratio=ratio, **rates)
