"""The `evaluate` module folder for EMER Accuracy_s / Recall_s (load the folder with `evaluate.load`)."""
