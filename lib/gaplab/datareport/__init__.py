"""datareport: the data checks run before training (duplicates, templates, boilerplate, split, leakage) and the
data report they make."""
