"""report: what the numbers look like and say: the study's journey table (``summary.csv``), one phase's figures,
the comparison figures, the notes in sentences and ``report.html``. The stages (pipeline) write them; the
notebooks and the playground (ui) show them."""
