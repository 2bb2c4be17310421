"""Training: Keras fit under a tf.distribute strategy (fit.py) with its callbacks
(callbacks.py) and loss (losses.py), the strategy itself (strategy.py), learning-rate
schedules (schedules.py), mixed precision (precision.py), BN re-estimation (batchnorm.py) and
the float model's training presets (presets.py)."""
