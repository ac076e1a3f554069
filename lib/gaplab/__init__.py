"""gaplab: train small GPT models from scratch and watch the train/validation gap open."""

__version__ = "0.1.0"
