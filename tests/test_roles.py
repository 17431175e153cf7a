"""roles.py: what differs between the processes of a run, built in the order every worker
must share."""
import pytest
import tensorflow.compat.v1 as tf

import roles
from replicas import replication


def test_the_workers_collectives_are_built_once_each_in_their_order():
  """roles.SeveralWorkers: the agreement, then the votes, then the broadcast (every worker must
  build the same collectives in the same order); out of order or twice is refused."""
  with tf.Graph().as_default():
    several = roles.SeveralWorkers(None, replication(), True)
    variable = tf.Variable(1.0)
    with pytest.raises(AssertionError, match="build_votes runs once, after build_first"):
      several.build_votes(tf.constant(1.0))
    with pytest.raises(AssertionError, match="build_last runs once, after build_votes"):
      several.build_last([variable])
    several.build_first()
    with pytest.raises(AssertionError, match="build_first runs once"):
      several.build_first()
    several.build_votes(tf.constant(1.0))
    several.build_last([variable])
    with pytest.raises(AssertionError, match="build_last runs once"):
      several.build_last([variable])
    assert several.agreed is not None and several.votes is not None
