"""pipeline: study files, stages, run folders, the runner and its executors."""
