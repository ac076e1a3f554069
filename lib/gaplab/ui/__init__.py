"""ui: what a learner sees: the playground, notebook display helpers, figures and the HTML report."""
