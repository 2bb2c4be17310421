"""Training: Keras fit under a tf.distribute strategy (fit.py), the strategy itself
(strategy.py), learning-rate schedules (schedules.py) and mixed precision (precision.py)."""
