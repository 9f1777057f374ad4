"""The `evaluate` module folder for the judge-free emotion-wheel metric (load the folder with `evaluate.load`)."""
