"""ui: what a learner sees: the playground and the notebook display helpers (figures and the report are drawn in
:mod:`gaplab.report`)."""
