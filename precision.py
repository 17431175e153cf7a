"""What --precision means on this machine, and the Session's ConfigProto that carries it out.

Decided once (main.py resolves the flag with precision_mode and passes the Precision on to
session_config and to the model); see README "Precision".
"""
import collections

import tensorflow.compat.v1 as tf

from hardware import cpu_supports_bf16, kernel_plan
from utils import UserError

PRECISIONS = ("fp32", "fp16", "bf16")
EMULATION_OFF = ("constant_folding", "shape_optimization", "common_subgraph_elimination",
                 "function_optimization", "implementation_selector", "debug_stripper",
                 "layout_optimizer", "remapping")

# What a --precision means on a device: the grappler rewrite that lowers the
# graph's matmuls and convolutions (None: none), and whether the optimizers
# scale the losses (always with float16, whose range is too small for GAN
# gradients; never needed with bfloat16, whose range is float32's).
Precision = collections.namedtuple("Precision", ["name", "rewrite", "loss_scaling"])


def precision_mode(precision, gpu=None, cpu_bf16=None, fp16_on_cpu=False):
  """The Precision for --precision on this machine, or a one-sentence UserError.

  fp32: nothing lowered.  fp16: float16 with dynamic loss scaling, by the GPU
  rewrite (auto_mixed_precision) where TensorFlow sees a GPU, else only when
  TensorFlow's CPU emulation of it is asked for with fp16_on_cpu (main.py's
  --fp16_on_cpu; auto_mixed_precision_cpu: each lowered op rounds to float16,
  so it shows what float16 does to the numbers, slowly; the tests run fp16
  this way).
  bf16: oneDNN's bfloat16 rewrite on a CPU that has bfloat16 arithmetic;
  refused on a GPU, whose only graph rewrite is float16 (--precision fp16).
  Float16 is never chosen without loss scaling.
  """
  if gpu is None:
    gpu = bool(tf.config.list_physical_devices("GPU"))
  if precision == "fp32":
    return Precision("fp32", None, False)
  if precision == "fp16":
    if gpu:
      return Precision("fp16", "auto_mixed_precision", True)
    if fp16_on_cpu:
      return Precision("fp16", "auto_mixed_precision_cpu", True)
    raise UserError("--precision fp16 needs a GPU, and TensorFlow sees none here; use --precision "
                    "fp32 (or add --fp16_on_cpu to emulate float16 on the CPU, slowly, as the "
                    "tests do).")
  if precision == "bf16":
    if gpu:
      raise UserError("--precision bf16 has no graph rewrite for GPUs in TensorFlow (its GPU mixed "
                      "precision is float16); use --precision fp16, float16 with loss scaling.")
    if cpu_supports_bf16() if cpu_bf16 is None else cpu_bf16:
      return Precision("bf16", "auto_mixed_precision_onednn_bfloat16", False)
    raise UserError("--precision bf16 needs a CPU with AVX512-BF16 or AMX-BF16 instructions, and "
                    "this machine's has neither; use --precision fp32 (or fp16 on a GPU).")
  raise UserError("--precision must be one of %s, not %r." % (", ".join(PRECISIONS), precision))


def resolved(precision):
  """A Precision as it is, a name through precision_mode."""
  return precision if isinstance(precision, Precision) else precision_mode(precision)


def session_config(precision="fp32", xla=False, intra_op_threads=0, inter_op_threads=0,
                   plan=None):
  """The Session's ConfigProto: GPU memory on demand, threads, the precision's rewrite, XLA.

  Threads left at 0 are TensorFlow's choice, except inter-op threads where the kernel plan
  (a hardware.KernelPlan; None: this machine's) names a number (hardware.py: 1 on AVX2 CPUs).

  A reduced precision (precision_mode) turns on TensorFlow's automatic mixed
  precision graph rewrite for it: variables, losses and optimizer state stay
  float32; the rewrite casts matmuls and convolutions (and what lies between
  them) to the low precision.  fp16's loss scaling is in the graph
  (optim.DynamicLossScale).  precision: a Precision (precision_mode) or its name.
  """
  mode = resolved(precision)
  plan = plan or kernel_plan()
  config = tf.ConfigProto()
  config.gpu_options.allow_growth = True
  config.intra_op_parallelism_threads = intra_op_threads
  config.inter_op_parallelism_threads = inter_op_threads or plan.inter_op_threads
  rewrite = config.graph_options.rewrite_options  # (its enum values, ON and OFF, are its own)
  if mode.rewrite:
    setattr(rewrite, mode.rewrite, rewrite.ON)
  if mode.rewrite == "auto_mixed_precision_cpu":
    # TF 2.21's CPU emulation inserts its casts in the order the graph reaches it and crashes
    # (an uncaught std::out_of_range, a segmentation fault) when a consumer comes before its
    # producer; the optimizers that run before it and reorder the graph are turned off.
    # Without pruning every executor rewrites the whole graph (a second or more each, measured
    # per optimizer with TF_CPP_VMODULE=meta_optimizer=1), so an emulation, which runs for its
    # numerics and not its speed, also leaves out the second pass, the layout optimizer (a
    # GPU's) and the remapper's fusions: 0.4 s an executor instead of 1.2.
    rewrite.disable_model_pruning = True
    rewrite.meta_optimizer_iterations = rewrite.ONE
    for name in EMULATION_OFF:
      setattr(rewrite, name, rewrite.OFF)
  if xla:
    config.graph_options.optimizer_options.global_jit_level = tf.OptimizerOptions.ON_1
  return config
