"""What this machine is, and what runs fastest on it: decided here and nowhere else.

Two decisions live in this module:

1. **oneDNN**, before TensorFlow is imported.  TensorFlow turns its oneDNN
   kernels on by itself only on some x86 CPUs (those with AVX512-VNNI, bf16 or
   AMX); elsewhere it runs Eigen's, which on an AVX2 CPU train this model at
   half the speed.  ``configure()`` sets ``TF_ENABLE_ONEDNN_OPTS=1`` on x86
   unless the user set that variable (theirs always wins).  main.py, bench/
   and the tests call it before their first ``import tensorflow``; so does
   ops.py, for code that imports the model directly.

2. **Kernel forms and threads**, for the graph to build.  ops.py can compute a
   layer in several ways that give the same numbers (see its docstrings); which
   one is fastest depends on the device and the instruction set.
   ``kernel_plan(name, lowered)`` gives the plan main.py's ``--kernels`` asks for:
   by default ('auto') the plan for the device the graph will run on ('gpu',
   'amx', 'avx512', 'avx2' or 'cpu'); the plans below are the measured choices
   (bench/train_speed.py --kernels compares them).  A device kind nobody has
   measured gets TensorFlow's plain ops.  The plan is a value: the model hands it
   to every layer (ops.LayerOptions); nothing here remembers one.

oneDNN's ``ONEDNN_MAX_CPU_ISA`` caps the instructions its kernels use; the CPU
kind here is capped the same way, so ``ONEDNN_MAX_CPU_ISA=AVX2`` on an AVX-512
machine runs (and measures) the AVX2 plan with oneDNN's AVX2 kernels.

Nothing here imports TensorFlow at module level.
"""
import collections
import os
import platform
import sys

X86_MACHINES = ("x86_64", "amd64", "i386", "i686", "x86")


# ----------------------------------------------------------------------------
# the CPU

def cpu_info(path="/proc/cpuinfo"):
  """(model name, set of flags) of the first CPU listed, or (platform.processor(), empty set)."""
  model, flags = "", set()
  try:
    with open(path) as f:
      for line in f:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
          model = value.strip()
        elif key == "flags" and not flags:
          flags = set(value.split())
        if model and flags:
          break
  except OSError:
    pass
  return model or platform.processor() or platform.machine(), flags


# oneDNN's ONEDNN_MAX_CPU_ISA values in increasing order, and the first that
# allows each capability this module cares about.
_ONEDNN_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                "AVX512_CORE_VNNI", "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16",
                "AVX10_1_512_AMX", "AVX512_CORE_AMX", "AVX10_1_512_AMX_FP16",
                "AVX512_CORE_AMX_FP16", "ALL")


def _isa_allows(max_isa, needed):
  """True if ONEDNN_MAX_CPU_ISA=max_isa lets oneDNN use the `needed` ISA ('' or unknown: no cap)."""
  max_isa = (max_isa or "").strip().upper()
  if max_isa in ("", "ALL") or max_isa not in _ONEDNN_ISAS:
    return True
  return _ONEDNN_ISAS.index(max_isa) >= _ONEDNN_ISAS.index(needed)


def cpu_features(flags=None, environ=None):
  """What the CPU can do for this model, as oneDNN will be allowed to use it.

  Returns a dict: avx2, avx512, amx, bf16 (native bfloat16 arithmetic:
  AVX512-BF16 or AMX-BF16), each already capped by ONEDNN_MAX_CPU_ISA, and
  max_isa (that variable's value, or None).
  """
  if flags is None:
    flags = cpu_info()[1]
  environ = os.environ if environ is None else environ
  max_isa = environ.get("ONEDNN_MAX_CPU_ISA") or None
  avx512 = "avx512f" in flags and _isa_allows(max_isa, "AVX512_CORE")
  amx = "amx_tile" in flags and _isa_allows(max_isa, "AVX512_CORE_AMX")
  return {
      "avx2": "avx2" in flags and "fma" in flags and _isa_allows(max_isa, "AVX2"),
      "avx512": avx512,
      "amx": amx,
      "bf16": (("avx512_bf16" in flags and avx512 and _isa_allows(max_isa, "AVX512_CORE_BF16"))
               or ("amx_bf16" in flags and amx)),
      "max_isa": max_isa,
  }


def cpu_kind(flags=None, environ=None):
  """'amx' (AVX-512 and AMX), 'avx512', 'avx2' or 'cpu' (anything else), after
  ONEDNN_MAX_CPU_ISA's cap."""
  features = cpu_features(flags, environ)
  if features["avx512"]:
    return "amx" if features["amx"] else "avx512"
  if features["avx2"]:
    return "avx2"
  return "cpu"


def cpu_supports_bf16():
  """True if this CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16) oneDNN may use."""
  return cpu_features()["bf16"]


# ----------------------------------------------------------------------------
# 1. oneDNN, before TensorFlow is imported

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
decided_by = None  # what the first configure() call of this process returned


def configure(environ=None, machine=None, modules=None):
  """Turn oneDNN on for x86 CPUs unless the user decided; call before importing TensorFlow.

  Returns who decided: 'user' (TF_ENABLE_ONEDNN_OPTS was set), 'dcgan' (this
  function set it to 1: an x86 CPU), 'tensorflow' (another architecture: left
  to TensorFlow), or 'too late' (TensorFlow was already imported, so setting
  the variable would change nothing; it is left alone).
  """
  global decided_by
  environ = os.environ if environ is None else environ
  machine = (machine or platform.machine()).lower()
  modules = sys.modules if modules is None else modules
  if ONEDNN_VARIABLE in environ:
    decision = "user"
  elif "tensorflow" in modules:
    decision = "too late"
  elif machine in X86_MACHINES:
    environ[ONEDNN_VARIABLE] = "1"
    decision = "dcgan"
  else:
    decision = "tensorflow"
  if decided_by is None:
    decided_by = decision
  return decision


def import_tensorflow():
  """The process's one start-up call (main.py, bench/, the tests' conftest, a child process of
  theirs): decide oneDNN (configure), import tensorflow.compat.v1 without its C++ start-up
  chatter, and switch it to TF1 graph behaviour, which the whole project is written for
  (importing a project module changes neither the environment nor TensorFlow).  Returns it.

  TensorFlow logs several lines from C++ while it loads (oneDNN notices, "Could
  not find cuda drivers", "failed call to cuInit" on machines without a GPU),
  some before any log level applies, so TF_CPP_MIN_LOG_LEVEL alone does not hide
  them. They are hidden unless the user set TF_CPP_MIN_LOG_LEVEL=0 (show everything);
  a level the user set (1-3) applies from then on, unset means 3. Python errors
  still surface. For main.py and bench/.
  """
  configure()
  if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() == "0":
    import tensorflow.compat.v1 as tf_v1
  else:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
      os.dup2(devnull, 2)
      import tensorflow.compat.v1 as tf_v1
    finally:
      os.dup2(saved, 2)
      os.close(saved)
      os.close(devnull)
  logger = tf_v1.get_logger()
  level = logger.level
  logger.setLevel("ERROR")  # (its switch warns of its own deprecated parts)
  try:
    tf_v1.disable_v2_behavior()
  finally:
    logger.setLevel(level)
  return tf_v1


_PROBE = ("import tensorflow as tf; x = tf.random.uniform([1, 8, 8, 4]); "
          "tf.nn.conv2d(x, tf.ones([3, 3, 4, 4]), 1, 'SAME').numpy()")


def onednn_probe(timeout=120):
  """(whether TensorFlow runs oneDNN kernels here, the instruction set oneDNN dispatches as its
  verbose mode names it ('Intel AVX2') or None).

  Asked of a child Python with this process's environment and ONEDNN_VERBOSE=1, so
  TF_ENABLE_ONEDNN_OPTS and ONEDNN_MAX_CPU_ISA show their effect: a convolution that oneDNN
  executes prints an 'exec,cpu,convolution' line (Eigen's kernels call oneDNN only for matrix
  products, 'gemm_api'); oneDNN names its ISA either way.  (False, None) if the child fails.
  """
  import subprocess
  env = dict(os.environ, ONEDNN_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="3")
  try:
    proc = subprocess.run([sys.executable, "-c", _PROBE], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, env=env)
  except (OSError, subprocess.SubprocessError):
    return False, None
  return onednn_reported(proc.stdout.splitlines())


def onednn_reported(lines):
  """(oneDNN executed a convolution, the ISA it names or None) from a process's output lines
  printed with ONEDNN_VERBOSE=1 (onednn_probe's, or a bench's own traced run)."""
  lines = [line for line in lines if line.startswith("onednn_verbose")]
  isa = next((line.split(",isa:", 1)[1].strip() for line in lines if ",isa:" in line), None)
  return any(",exec,cpu,convolution," in line for line in lines), isa


# ----------------------------------------------------------------------------
# 2. kernel forms and threads, per kind of device

KernelPlan = collections.namedtuple("KernelPlan", [
    "name",
    # conditional layers: the label channels' share in closed form (ops._label_term)
    # instead of conv_cond_concat followed by the layer
    "label_term",
    # linear layers: input gradient as (Matrix @ dy^T)^T instead of dy @ Matrix^T
    "linear_input_grad",
    # transposed convolutions to 1-4 channels, exactly twice the input: forward
    # by "columns" (1 channel) or "sub-pixel" (2-4) instead of conv2d_transpose
    "small_deconv",
    # 'autodiff': a layer's gradients are TensorFlow's gradients of the ops its
    # forward ran; 'chosen': each 5x5/2 layer has its own gradient, its input
    # and weight gradients computed by the kernels chosen below
    "layer_grads",
    # (chosen) input gradient of a convolution from 1-4 channels, exactly twice
    # its output (a transposed convolution to 1-4 channels): by small_deconv's forms
    "small_input_grad",
    # (chosen) weight gradient by image patches and one matrix product where the
    # layer's low-resolution side has at most this many pixels (0: never)
    "patches_max_pixels",
    # (chosen) those patches as slices of the input's 2x2 phases (conv_forms.patches) instead
    # of ExtractImagePatches, which a precision rewrite leaves float32 and casts 6x its input
    "patch_slices",
    # 5x5/2 layers whose low-resolution side has at most this many pixels (0: never):
    # forward and input gradient as one matrix product each (a convolution's image
    # patches times the weights; a transposed convolution's input times the weights,
    # its columns added into place), so that their autodiff weight gradients are
    # matrix products too
    "matmul_max_pixels",
    # lrelu's gradient from its output instead of its input (same values), so the
    # layer before it has one consumer and grappler's remapper can fuse them
    "lrelu_output_grad",
    # batch norm's training forward: 'fused' (FusedBatchNormV3) or 'matmul'
    # (statistics as two matrix-vector products, ops._batch_norm_by_matmul)
    "batch_norm_stats",
    # the Session's inter-op threads when the user leaves it at 0
    "inter_op_threads",
])

# The fields only a layer's own gradient reads (marked "(chosen)" above): with
# layer_grads='autodiff' they change nothing.
CHOSEN_ONLY = ("small_input_grad", "patches_max_pixels", "patch_slices")

PLANS = {
    # TensorFlow's plain ops: what nobody has measured otherwise.
    "plain": KernelPlan("plain", label_term=False, linear_input_grad=False, small_deconv=False,
                        layer_grads="autodiff", small_input_grad=False, patches_max_pixels=0,
                        patch_slices=False, matmul_max_pixels=0, lrelu_output_grad=False,
                        batch_norm_stats="fused", inter_op_threads=0),
    # AVX-512 (measured with bf16-capable EPYC, oneDNN on): the forms the
    # speed work was tuned with; TensorFlow's gradients; its thread pools.
    "avx512": KernelPlan("avx512", label_term=True, linear_input_grad=True, small_deconv=True,
                         layer_grads="autodiff", small_input_grad=False, patches_max_pixels=0,
                         patch_slices=False, matmul_max_pixels=0, lrelu_output_grad=False,
                         batch_norm_stats="fused", inter_op_threads=0),
    # AVX2 (measured on an AVX2-only EPYC, oneDNN on; docs/PERFORMANCE.md):
    # oneDNN's weight gradients at 4x4 run at half the speed of a GEMM on the
    # same numbers, sub-pixel is the fastest 3-channel forward but TensorFlow's
    # kernels its fastest gradients, and one op at a time beats two ops
    # sharing the two cores.
    "avx2": KernelPlan("avx2", label_term=True, linear_input_grad=True, small_deconv=True,
                       layer_grads="chosen", small_input_grad=True, patches_max_pixels=16,
                       patch_slices=False, matmul_max_pixels=0, lrelu_output_grad=True,
                       batch_norm_stats="matmul", inter_op_threads=1),
}
# AVX-512 with AMX (measured on an AMX Xeon with the avx512 plan: fp32 within 3% of every
# form tried): the avx512 plan's forms in fp32, its own plan and LOWERED forms (bf16) so that
# tuning one kind leaves the other as measured.
PLANS["amx"] = PLANS["avx512"]._replace(name="amx")
# GPUs and other CPUs: TensorFlow's plain ops until measured otherwise.
PLANS["gpu"] = PLANS["plain"]._replace(name="gpu")
PLANS["cpu"] = PLANS["plain"]._replace(name="cpu")

# What a plan changes when a reduced-precision rewrite lowers the graph's matmuls
# (kernel_plan's lowered), beyond batch statistics by the fused kernel (every plan).
LOWERED = {
    # bf16 on an AVX512-BF16 EPYC: oneDNN's bf16 weight gradients of the 4x4 layers (g_h1,
    # d_h3) ran at 0.7-0.8x their fp32 speed, image patches times one bf16 matmul faster:
    # celebA-64 1.12-1.17x faster, MNIST (no 4x4 layer) unchanged (docs/PERFORMANCE.md).
    "avx512": dict(layer_grads="chosen", patches_max_pixels=16),
    # bf16 on an AMX Xeon (docs/PERFORMANCE.md, "AVX-512 + AMX Intel Xeon"): the avx512 forms
    # (celebA-64 1.15x TensorFlow's bf16 gradients), and the 4x4 layers' forward and input
    # gradient as bf16 matrix products too (1.10x more; at 8x8 0.91x), MNIST (no 4x4 layer) 1.02x;
    # their patches by slices, which stay bf16 (1.07x more; at 8x8 too 1.02x, noise).
    "amx": dict(layer_grads="chosen", patches_max_pixels=16, patch_slices=True,
                matmul_max_pixels=16),
}

# --kernels: a plan by name, or "auto" for this machine's (kernel_plan); its default
DEFAULT_KERNELS = "auto"
KERNEL_CHOICES = (DEFAULT_KERNELS,) + tuple(sorted(PLANS))


def device_kind():
  """'gpu' if TensorFlow sees a GPU (the graph's layers will run there), else cpu_kind()."""
  import tensorflow as tf
  if tf.config.list_physical_devices("GPU"):
    return "gpu"
  return cpu_kind()


def kernel_plan(name=DEFAULT_KERNELS, lowered=False):
  """The KernelPlan to build a graph with: the one named (--kernels, one of PLANS, for
  comparing them), or for 'auto' the plan of this machine's device kind.

  lowered: a reduced-precision rewrite will lower the graph's matmuls (precision.Precision's
  rewrite): the plan's LOWERED forms, and batch statistics by the fused kernel, which keeps
  them float32 (statistics by matmul would be lowered too).
  """
  if name == DEFAULT_KERNELS:
    plan = PLANS[device_kind()]
  elif name in PLANS:
    plan = PLANS[name]
  else:
    raise ValueError("--kernels %s names no kernel plan; choose one of %s."
                     % (name, ", ".join(KERNEL_CHOICES)))
  if lowered:
    plan = plan._replace(batch_norm_stats="fused", **LOWERED.get(plan.name, {}))
  return plan


def describe(plan, onednn=None):
  """What a benchmark figure depends on: CPU, instruction set, oneDNN, TensorFlow, the kernel
  plan (a KernelPlan) the graph is built with.

  onednn: (on, ISA) as onednn_reported gives them, when the caller's own run already said;
  None: asked of one child Python (onednn_probe).  Imports TensorFlow (call configure() first).
  """
  import tensorflow as tf
  model, flags = cpu_info()
  features = cpu_features(flags)
  onednn, isa = onednn if onednn is not None else onednn_probe()
  return {
      "cpu_model": model,
      "cpus": os.cpu_count(),
      "cpu_kind": cpu_kind(flags),
      "isa": {k: features[k] for k in ("avx2", "avx512", "amx", "bf16")},
      "onednn_max_cpu_isa": features["max_isa"],
      "onednn": onednn,
      "onednn_decided_by": decided_by,
      "onednn_isa": isa if onednn else None,
      "tensorflow": tf.__version__,
      "kernel_plan": plan.name,
  }
