"""train: the training loop, batches, learning-rate schedule, checkpoints and resume, and the history file."""
