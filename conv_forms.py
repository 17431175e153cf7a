"""The 5x5/2 layers' kernels in the forms a kernel plan chooses (hardware.KernelPlan): each
the same sum as TensorFlow's convolution, transposed convolution or weight gradient, computed
by other kernels (matrix products, a stride-1 convolution, image patches), used by ops.py's
conv2d and deconv2d; every form gives TensorFlow's values and gradients (tests/test_ops.py).
"""
import tensorflow.compat.v1 as tf

STRIDES_2 = [1, 2, 2, 1]


def five_by_five_stride_2(w, strides):
  """True for a 5x5 layer at stride 2, the only one the forms here compute."""
  return list(strides) == STRIDES_2 and w.shape.as_list()[:2] == [5, 5]


def strided_conv(x, w, max_pixels, strides=STRIDES_2):
  """tf.nn.conv2d(x, w, strides, 'SAME'); by image patches times the weights (conv_patches)
  where the layer's output has at most max_pixels pixels and its input exactly twice its size."""
  in_h, in_w = int(x.shape[1]), int(x.shape[2])
  if (in_h % 2 == 0 and in_w % 2 == 0 and (in_h // 2) * (in_w // 2) <= max_pixels
      and five_by_five_stride_2(w, strides)):
    return conv_patches(x, w)
  return tf.nn.conv2d(x, w, strides=strides, padding="SAME")


def conv_patches(x, w):
  """tf.nn.conv2d(x, w, 2, 'SAME') of a 5x5 layer from 2h x 2w to h x w as one matrix product:
  the layer's image patches (``patches``) times w as a [25 in, out] matrix.  Its gradients
  are the patches' slices' pads and matrix products."""
  out_h, out_w = int(x.shape[1]) // 2, int(x.shape[2]) // 2
  in_c, out_c = int(w.shape[2]), int(w.shape[3])
  out = tf.matmul(patches(x), tf.reshape(w, [25 * in_c, out_c]))
  return tf.reshape(out, [-1, out_h, out_w, out_c])


def patches(x):
  """The 5x5/2 'SAME' patches of x [N, 2h, 2w, c] as [N * h * w, 25 * c], the values and order
  of tf.image.extract_patches: the 25 taps every output pixel sees, side by side in a 5x5
  kernel's order.  The taps are slices of x padded 1 before and 3 after (SAME pads 1 and 2;
  the third is never read) and cut into its 2x2 phases (space_to_depth): tap (ky, kx) of
  output (i, j) is phase (ky % 2, kx % 2) at (i + ky // 2, j + kx // 2).  Slices, pads and
  concatenations keep the dtype a precision rewrite gives their input, where
  ExtractImagePatches stays float32 and its output, 6x its input, is cast."""
  out_h, out_w, in_c = int(x.shape[1]) // 2, int(x.shape[2]) // 2, int(x.shape[3])
  phases = tf.nn.space_to_depth(tf.pad(x, [[0, 0], [1, 3], [1, 3], [0, 0]]), 2)
  taps = []
  for ky in range(5):
    for kx in range(5):
      phase = (ky % 2) * 2 + kx % 2
      taps.append(phases[:, ky // 2:ky // 2 + out_h, kx // 2:kx // 2 + out_w,
                         phase * in_c:(phase + 1) * in_c])
  return tf.reshape(tf.concat(taps, 3), [-1, 25 * in_c])


def transposed_conv(x, w, out_h, out_w, small_forms, max_pixels=0, strides=STRIDES_2):
  """conv2d_transpose(x, w [k, k, out, in]) with output out_h x out_w and any batch size.

  small_forms: compute it by ``small_deconv`` where that applies; max_pixels: by the input
  times the weights, its columns added into place (``deconv_columns``), where the input has
  at most max_pixels pixels and the output exactly twice its size.
  """
  out_c = int(w.shape[2])
  in_h, in_w = int(x.shape[1]), int(x.shape[2])
  doubles = (out_h, out_w) == (2 * in_h, 2 * in_w) and five_by_five_stride_2(w, strides)
  out = None
  if doubles and small_forms and out_c <= SMALL_DECONV_CHANNELS:
    out = small_deconv(x, w)
  elif doubles and in_h * in_w <= max_pixels:
    out = deconv_columns(x, w)
  if out is None:
    batch = x.shape.as_list()[0]
    if batch is not None:
      output_shape = [batch, out_h, out_w, out_c]
    else:  # any batch: [batch] + the static rest
      output_shape = tf.concat([tf.shape(x)[:1], [out_h, out_w, out_c]], 0)
    out = tf.nn.conv2d_transpose(x, w, output_shape=output_shape, strides=strides)
  out.set_shape([x.shape[0], out_h, out_w, out_c])
  return out


def filter_grad(large, small, w, plan):
  """The weight gradient of a 5x5/2 'SAME' layer between `large` and `small` [N, h, w, c].

  For a convolution large is its input and small the gradient of its output;
  for a transposed convolution large is the gradient of its output and small
  its input.  Either way the result has w's shape [5, 5, large channels,
  small channels].  Where the plan says so (few pixels on the small side,
  where oneDNN's Conv2DBackpropFilter runs at half a GEMM's speed) it is one
  matrix product: the 5x5 patches of `large` (the taps each small-side pixel
  sees, in the weights' order; by ExtractImagePatches, or by ``patches`` where
  the plan's patch_slices says and `large` is even-sized) transposed, times `small`.
  """
  shape = w.shape.as_list()
  if int(small.shape[1]) * int(small.shape[2]) <= plan.patches_max_pixels:
    if plan.patch_slices and int(large.shape[1]) % 2 == 0 and int(large.shape[2]) % 2 == 0:
      taps = patches(large)
    else:
      taps = tf.reshape(tf.image.extract_patches(large, [1, 5, 5, 1], STRIDES_2, [1, 1, 1, 1],
                                                 "SAME"), [-1, 25 * shape[2]])
    flat = tf.matmul(taps, tf.reshape(small, [-1, shape[3]]), transpose_a=True)
    return tf.reshape(flat, shape)
  return tf.raw_ops.Conv2DBackpropFilter(input=large, filter_sizes=shape, out_backprop=small,
                                         strides=STRIDES_2, padding="SAME")


# A 5x5/2 'SAME' transposed convolution whose output is exactly twice its input
# (pad 1 before, 2 after) writes output row 2m + p (phase p in {0, 1}) from
# input rows m + d, d in {-1, 0, 1}, through kernel row _PHASE_TAP[p][d]
# (None: no tap).  Columns likewise.
_PHASE_TAP = ({-1: 3, 0: 1, 1: None}, {-1: 4, 0: 2, 1: 0})
SMALL_DECONV_CHANNELS = 4


def small_deconv(x, w):
  """tf.nn.conv2d_transpose of a 5x5/2 layer to 1-4 output channels, exactly twice its input
  (transposed_conv decides where it applies).

  With 1-4 output channels oneDNN's transposed convolution (a backward-data
  kernel) runs at 5-15% of the machine's matmul peak; its gradients too.  The
  same sum, reordered:

  * 1 output channel (mnist's g_h3): "columns".  One matmul [N*H*W, in] x
    [in, 25] gives every pixel's contribution through every kernel tap; the
    taps are shifted into place by padding and summed per output phase, and
    depth_to_space interleaves the four phases.
  * 2-4 output channels (celebA's g_h4): "sub-pixel".  One stride-1 3x3
    convolution with 4 * out channels computes the four phases at once (its
    kernel is the 5x5 one rearranged, zeros where a phase has no tap), then
    depth_to_space.

  Both give conv2d_transpose's result up to float rounding (tests/test_ops.py);
  the variable is the original's [5, 5, out, in] ``w`` either way.
  """
  if int(w.shape[2]) == 1:
    return deconv_columns(x, w)
  return deconv_subpixel(x, w)


def deconv_columns(x, w):
  in_h, in_w, in_c = (int(d) for d in x.shape[1:])
  out_c = int(w.shape[2])
  # [5, 5, out, in] -> [in, 25 * out], tap-major
  matrix = tf.reshape(tf.transpose(w, [3, 0, 1, 2]), [in_c, 25 * out_c])
  columns = tf.matmul(tf.reshape(x, [-1, in_c]), matrix)
  taps = tf.split(tf.reshape(columns, [-1, in_h, in_w, 25 * out_c]), 25, axis=3)
  phases = []
  for p_row in (0, 1):
    for p_col in (0, 1):
      # tap (ky, kx) = (2a + p_row, 2b + p_col) lands at padded phase position (m + a, n + b)
      phases.append(tf.add_n([
          tf.pad(taps[(2 * a + p_row) * 5 + 2 * b + p_col],
                 [[0, 0], [a, 2 - a], [b, 2 - b], [0, 0]])
          for a in range(3 - p_row) for b in range(3 - p_col)]))
  full = tf.nn.depth_to_space(tf.concat(phases, 3), 2)  # [N, 2H + 4, 2W + 4, out]
  return full[:, 1:1 + 2 * in_h, 1:1 + 2 * in_w, :]


def deconv_subpixel(x, w):
  in_c, out_c = int(w.shape[3]), int(w.shape[2])
  # kernel [3, 3, in, 4 * out]: for each window offset (dy, dx) and phase
  # (p_row, p_col) the 5x5 tap that connects them, or zeros
  flat = tf.concat([tf.reshape(w, [25, out_c, in_c]), tf.zeros([1, out_c, in_c], w.dtype)], 0)
  index = []
  for dy in (-1, 0, 1):
    for dx in (-1, 0, 1):
      for p_row in (0, 1):
        for p_col in (0, 1):
          ky, kx = _PHASE_TAP[p_row][dy], _PHASE_TAP[p_col][dx]
          index.append(25 if ky is None or kx is None else ky * 5 + kx)
  kernel = tf.reshape(tf.gather(flat, index), [3, 3, 4, out_c, in_c])
  kernel = tf.reshape(tf.transpose(kernel, [0, 1, 4, 2, 3]), [3, 3, in_c, 4 * out_c])
  phases = tf.nn.conv2d(x, kernel, strides=[1, 1, 1, 1], padding="SAME")
  return tf.nn.depth_to_space(phases, 2)
