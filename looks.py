"""Test mode's ways of looking at a trained model (and a training command's, after it trains):
which were asked for, whether they apply to the run's data, whether the data and folders they
read and write are the run's and writable, all checked before the model loads; then each one run
and what it wrote said (`run`)."""
import os

import numpy as np

import experiments
import export
from dataset import IDX_DATASETS, data_identity, multi_hot, open_run_data, title
from utils import (UserError, expand_path, timestamp, training_pictures, visualize,
                   writable_folder, write_json_atomic, written_summary)

# The ways of writing a trained model in another form (the SavedModel's conversions are
# export.CONVERSIONS' flags), and with them the ways of looking at one: test mode's, or with
# --train after training, as the original ran --visualize, --export and --freeze after dcgan.train.
WRITE_FLAGS = ("export", "freeze", "saved_model") + tuple(export.CONVERSIONS)
LOOK_FLAGS = ("visualize", "generate", "walk", "arithmetic", "evaluate", "features_experiment",
              "training_pictures") + WRITE_FLAGS


def validate(config, description):
  """Refuse test-mode flags that cannot apply to a model of this data (dataset.described: what a
  run records of it) before anything loads."""
  if str(config.label).strip() not in experiments.ALL_LABELS and not config.generate:
    raise UserError("--label picks the class of --generate's images; add --generate N (or drop "
                    "--label).")
  if multi_hot(description):
    experiments.chosen_attributes(config.label, description["labels"])
  else:
    experiments.label_index(config.label, description["labels"])
  if config.evaluate and not description["labels"]:
    raise UserError("--evaluate judges how often a conditional model's images show the class "
                    "asked for, and this run's data (--dataset %s) has no labels, so it cannot be "
                    "measured here; train on labelled data (MNIST, or class folders with --labels) "
                    "to evaluate." % config.dataset)
  if config.features_experiment and description["kind"] not in IDX_DATASETS:
    raise UserError("--features_experiment works on the conditional MNIST model (--dataset mnist, "
                    "or fashion_mnist) only, and this run is --dataset %s." % config.dataset)


def check_own_data(config, description, data_dir_given):
  """--evaluate and --features_experiment score against the data the run trained on (its
  FLAGS.json's data digest; a run written before it had none): before anything loads, a
  one-sentence UserError if --data_dir (the run's own unless given) gives other data."""
  kind, trained_on = description["kind"], description.get("digest")
  if not trained_on:
    return  # (an image folder is read where --data_dir says: only published files have a digest)
  here, digest = data_identity(config.data_dir, kind)
  if digest != trained_on:
    raise UserError("This run was trained on other %s files (in %s) than --data_dir %s%s "
                    "gives (%s); point --data_dir at a folder whose %s folder holds the run's."
                    % (title(kind), description["source"], config.data_dir,
                       "" if data_dir_given else " (the run's)", here, kind))


def check_writable(config, folders):
  """Before anything loads: a one-sentence UserError naming the first of the run's
  settings.Folders that the looks asked for would write into and cannot (a read-only run
  folder, say)."""
  samples = [name for name in ("visualize", "generate", "walk", "arithmetic", "training_pictures")
             if getattr(config, name)]
  if not samples and not any(getattr(config, name) for name in LOOK_FLAGS):
    samples = ["test mode's sample grid"]
  elsewhere = "copy the run folder to a place you can write to and point --out_dir there"
  targets = [(folders.sample_dir, samples, "give --sample_dir a folder you can write to"),
             (folders.out_dir, [name for name in ("evaluate", "features_experiment", "saved_model")
                        + tuple(export.CONVERSIONS) if getattr(config, name)], elsewhere),
             (folders.checkpoint_dir, [name for name in ("export", "freeze")
                                      if getattr(config, name)], elsewhere)]
  if config.evaluate:
    targets.append((expand_path(config.classifier_dir), ["the --evaluate classifier's cache"],
                    "give --classifier_dir a folder you can write to"))
  for folder, looks, fix in targets:
    reason = looks and writable_folder(folder)
    if reason:
      names = ", ".join(look if " " in look else "--" + look for look in looks)
      raise UserError("Cannot write into %s (%s), where %s writes; %s." % (folder, reason, names,
                                                                         fix))


def run_evaluation(dcgan, config, folders, counter, description):
  """--evaluate: the run's own data's judge (evaluate.Judge) scores the model; the path of
  evaluation.json."""
  import evaluate
  splits = (evaluate.published_judge_splits(config.data_dir, description["kind"])
            or evaluate.folder_judge_splits(open_run_data(config), config.dataset))
  judge = evaluate.Judge(expand_path(config.classifier_dir), splits,
                         epochs=config.classifier_epochs)
  attributes = multi_hot(description)
  try:
    if attributes:
      result = evaluate.evaluate_attributes(dcgan, judge, description["frequency"],
                                            config.evaluate_n, seed=config.seed or 0)
    else:
      result = evaluate.evaluate_conditional(dcgan, judge, config.evaluate_n,
                                             seed=config.seed or 0)
  finally:
    judge.close()
  result.update(checkpoint=folders.checkpoint_dir, counter=counter)
  (evaluate.print_attribute_evaluation if attributes else evaluate.print_evaluation)(result)
  return write_json_atomic(os.path.join(folders.out_dir, "evaluation.json"), result)


def run(dcgan, config, folders, counter, description):
  """The test-mode ways of looking at a model that were asked for, written into the run's
  settings.Folders; True if any was."""
  import evaluate
  seed = config.seed
  stamp = timestamp("%Y%m%d%H%M%S")
  written = []

  def report(paths):
    """Say what one look wrote (one line for a folder of many files), as it finishes."""
    for line in written_summary(paths):
      print(" [*] " + line)
    return list(paths)

  if config.visualize:
    written += report(visualize(dcgan.sess, dcgan, config, config.visualize_option,
                                folders.sample_dir, rng=np.random.RandomState(seed)))
  if config.generate:
    folder, grids = experiments.generate(dcgan, config.generate, os.path.join(
        folders.sample_dir, "generated_" + stamp), config.label, np.random.default_rng(seed),
        description.get("frequency"))
    print(" [*] %d images in %s" % (config.generate, folder))
    written += report(grids)
  if config.walk:
    written += report(experiments.latent_walks(dcgan, folders.sample_dir, config.walk_pairs,
                                               config.walk_steps, np.random.default_rng(seed)))
  if config.arithmetic:
    written += report(experiments.z_arithmetic(dcgan, folders.sample_dir, config.arithmetic,
                                               config.arithmetic_pool,
                                               rng=np.random.default_rng(seed)))
  if config.evaluate:
    written += report([run_evaluation(dcgan, config, folders, counter, description)])
  if config.features_experiment:
    result = evaluate.features_experiment(dcgan, config.data_dir, config.labels_per_class,
                                          seed or 0, dataset=config.dataset)
    print("linear classifier, %d labels per class: D features %.2f%% (%d dims), raw pixels %.2f%%"
          % (config.labels_per_class, 100 * result["discriminator_features"]["test_accuracy"],
             result["discriminator_features"]["dimensions"], 100 * result["raw_pixels"]["test_accuracy"]))
    written += report([write_json_atomic(os.path.join(folders.out_dir, "d_features.json"), result)])
  if config.training_pictures:
    pictures = training_pictures(folders.sample_dir, os.path.join(folders.out_dir, "logs"))
    if not pictures:
      raise UserError("The run %s has no sample grids or logs to draw." % folders.out_dir)
    written += report(pictures)
  return bool(written)
