"""A run's settings as values (settings.py): built once, never assigned to, one set of defaults
for the original's DCGAN(sess, ...) arguments and for main.py's flags."""
import dataclasses

import pytest
import tensorflow.compat.v1 as tf

import settings
from conftest import TINY
from model import DCGAN


def graph_session():
  return tf.Session(graph=tf.Graph())


def test_a_config_is_changed_only_by_making_a_new_one():
  config = settings.Config({"epoch": 2, "out_dir": "/runs"})
  with pytest.raises(AttributeError, match="replace"):
    config.epoch = 3
  later = config.replace(epoch=3, out_name="one")
  assert (config.epoch, later.epoch, later.out_name, later.out_dir) == (2, 3, "one", "/runs")
  assert not hasattr(config, "out_name") and config.as_dict() == {"epoch": 2, "out_dir": "/runs"}


def test_model_settings_are_frozen_and_hold_the_originals_defaults():
  with pytest.raises(dataclasses.FrozenInstanceError):
    settings.MODEL_DEFAULTS.batch_size = 2
  # the original's constructor: carpedm20/DCGAN-tensorflow model.py
  assert [f.name for f in dataclasses.fields(settings.ModelSettings)][:21] == [
      "input_height", "input_width", "crop", "batch_size", "sample_num", "output_height",
      "output_width", "y_dim", "z_dim", "gf_dim", "df_dim", "gfc_dim", "dfc_dim", "c_dim",
      "dataset_name", "max_to_keep", "input_fname_pattern", "checkpoint_dir", "sample_dir",
      "out_dir", "data_dir"]
  d = settings.MODEL_DEFAULTS
  assert (d.input_height, d.crop, d.batch_size, d.z_dim, d.gfc_dim, d.checkpoint_dir) == (
      108, True, 64, 100, 1024, "ckpts")


def test_the_originals_arguments_and_settings_build_the_same_model():
  """DCGAN(sess, ...) by position and by name make the ModelSettings that settings= gives; the
  original's attributes read them; both at once is refused."""
  tiny = dict(TINY, y_dim=3, c_dim=1, seed=5)
  by_name = DCGAN(graph_session(), **tiny)
  by_settings = DCGAN(graph_session(), settings=settings.ModelSettings(**tiny))
  by_position = DCGAN(graph_session(), 108, 108, True, 4, 4, 16, 16, 3, 8, 4, 4, 16, 16, 1,
                      seed=5)
  assert by_name.settings == by_settings.settings == by_position.settings
  assert (by_name.batch_size, by_name.y_dim, by_name.gf_dim, by_name.seed) == (4, 3, 4, 5)
  assert by_name.label_names == ("0", "1", "2") and by_name.plan is by_name.settings.kernels
  assert [v.name for v in by_name.g_vars] == [v.name for v in by_position.g_vars]
  with pytest.raises(TypeError, match="not both"):
    DCGAN(graph_session(), settings=settings.ModelSettings(**tiny), batch_size=2)


def test_a_runs_model_settings_come_from_its_config_folders_and_data():
  flags = dict(input_height=28, input_width=28, crop=False, batch_size=16, output_height=28,
               output_width=28, z_dim=10, input_fname_pattern="*.png", data_dir="/data",
               max_to_keep=2, learning_rate=0.001, beta1=0.4, z_dist="normal01", seed=7,
               G_img_sum=True, initial_loss_scale=64.0, kernels="plain", dataset="pets")
  folders = settings.Folders("/runs/a/checkpoint", "/runs/a/samples", "/runs/a")
  description = {"labels": ["cat", "dog"], "y": "multi_hot"}
  made = settings.model_settings(settings.Config(flags), folders, description, 3, "fp32")
  assert made.dataset_name == "pets" and made.sample_num == 16 and made.y_dim == 2
  assert made.label_names == ("cat", "dog") and made.multi_hot and made.c_dim == 3
  assert (made.checkpoint_dir, made.sample_dir, made.out_dir) == dataclasses.astuple(folders)
  assert all(getattr(made, name) == flags[name] for name in settings.MODEL_FLAGS_AS_GIVEN)
  plain = settings.model_settings(settings.Config(flags), folders, {"labels": None}, 1, "fp32")
  assert plain.y_dim is None and plain.label_names is None and not plain.multi_hot
