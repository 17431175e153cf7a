"""How fast the image-folder pipeline feeds training, next to how fast training eats.

    python bench/data_pipeline.py [--images 640] [--steps 6] [--workers 2]

Builds a folder of 178x218 JPEGs (CelebA's aligned size; smooth gradients plus
noise, quality 90) unless --data names a folder of real ones, then measures

  * loader throughput, images/s, for the celebA configuration (centre crop 108,
    resize to 64): cold (decoding JPEGs) in one thread and with --workers
    threads, and cached (--cache: a second epoch reads the on-disk cache);
  * the training step rate of the real celebA-64 model (model.py, batch 64) fed
    by the real pipeline, and the fraction of the training loop's time spent
    waiting for a batch (target < 2%).

Prints a table and appends one JSON line to bench/results.jsonl.
"""
import argparse
import os
import tempfile
import time

# common first: the project on the path, oneDNN decided before TensorFlow loads
from common import RESULTS, append_result, machine, matmul_peak_gflops, print_machine
import hardware  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402
from dataset import ImageFolderData, prefetch  # noqa: E402
from model import DCGAN  # noqa: E402
import training  # noqa: E402
from precision import session_config  # noqa: E402

TARGET_WAIT = 0.02


def make_jpegs(folder, count, size=(178, 218), seed=0):
  rng = np.random.RandomState(seed)
  w, h = size
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  for i in range(count):
    phase = rng.uniform(0, 6.28, 3)
    base = np.stack([127 + 100 * np.sin(xx / (9 + 3 * c) + yy / 17.0 + phase[c]) for c in range(3)], -1)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(os.path.join(folder, "%06d.jpg" % (i + 1)), quality=90)


def images_per_second(data, batches, workers):
  start = time.perf_counter()
  count = 0
  for images, _ in prefetch(data, batches, workers=workers):
    count += len(images)
  return count / (time.perf_counter() - start)


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data", help="a folder of JPEGs to use instead of generated ones")
  parser.add_argument("--images", type=int, default=640, help="generated images [640]")
  parser.add_argument("--steps", type=int, default=6, help="timed training steps [6]")
  parser.add_argument("--workers", type=int, default=2, help="loader threads [2]")
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--input_height", type=int, default=108)
  parser.add_argument("--output_height", type=int, default=64)
  parser.add_argument("--filters", type=int, default=64, help="gf_dim = df_dim [64]")
  parser.add_argument("--results", default=RESULTS)
  return parser.parse_args()


def main():
  args = parse_args()

  with tempfile.TemporaryDirectory(prefix="dcgan-bench-") as tmp:
    if args.data:
      data_dir, name = os.path.split(os.path.abspath(args.data))
    else:
      data_dir, name = tmp, "celebA"
      os.makedirs(os.path.join(tmp, name))
      make_jpegs(os.path.join(tmp, name), args.images)
    shape = (args.input_height, None, args.output_height, None, True)
    data = ImageFolderData(data_dir, name, "*.jpg", *shape)
    n = len(data)
    batches = [np.arange(i, min(i + args.batch_size, n)) for i in range(0, n, args.batch_size)]

    cold_1 = images_per_second(data, batches, 0)
    cold_w = images_per_second(ImageFolderData(data_dir, name, "*.jpg", *shape), batches, args.workers)
    cached = ImageFolderData(data_dir, name, "*.jpg", *shape, cache_dir=os.path.join(tmp, "cache"))
    images_per_second(cached, batches, args.workers)  # first epoch fills the cache
    cached_w = images_per_second(cached, batches, args.workers)

    steps = min(args.steps, n // args.batch_size)
    config = argparse.Namespace(epoch=1, train_size=steps * args.batch_size, data_workers=args.workers,
                                sample_freq=10 ** 9, ckpt_freq=10 ** 9, learning_rate=0.0002)
    with tf.Graph().as_default(), tf.Session(config=session_config()) as sess:
      model = DCGAN(sess, input_height=args.input_height, input_width=args.input_height, crop=True,
                    batch_size=args.batch_size, sample_num=args.batch_size,
                    output_height=args.output_height, output_width=args.output_height,
                    gf_dim=args.filters, df_dim=args.filters, c_dim=3, dataset_name=name,
                    checkpoint_dir=os.path.join(tmp, "ckpt"), sample_dir=os.path.join(tmp, "samples"),
                    out_dir=tmp, seed=0, data=ImageFolderData(data_dir, name, "*.jpg", *shape))
      stats = training.train(model.job(model.data), config)

  peak = matmul_peak_gflops()
  wait = stats.spent["data"] / stats.seconds
  result = {
      "bench": "data_pipeline", "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
      "machine": machine(hardware.kernel_plan(), fp32_matmul_peak_gflops=peak),
      "config": {"image": "178x218 jpeg", "crop": args.input_height, "output": args.output_height,
                 "batch_size": args.batch_size, "filters": args.filters, "workers": args.workers,
                 "images": n, "generated": not args.data},
      "loader_images_per_s": {"cold_1_thread": round(cold_1, 1),
                              "cold_%d_threads" % args.workers: round(cold_w, 1),
                              "cached": round(cached_w, 1)},
      "train": {"steps": stats.steps, "s_per_step": round(stats.seconds / stats.steps, 4),
                "images_per_s": round(stats.steps * args.batch_size / stats.seconds, 2),
                "data_wait_fraction": round(wait, 5)},
      "target_data_wait_fraction": TARGET_WAIT, "meets_target": wait < TARGET_WAIT,
  }
  print()
  print_machine(result["machine"])
  print("loader, images/s (178x218 JPEG -> crop %d -> %d):" % (args.input_height, args.output_height))
  for key, value in result["loader_images_per_s"].items():
    print("  %-16s %10.1f" % (key, value))
  print("training (batch %d): %.3f s/step, %.1f images/s" % (
      args.batch_size, result["train"]["s_per_step"], result["train"]["images_per_s"]))
  print("waiting for data: %.2f%% of training time (target < %.0f%%): %s" % (
      100 * wait, 100 * TARGET_WAIT, "met" if result["meets_target"] else "NOT met"))
  append_result(args.results, result)


if __name__ == "__main__":
  main()
