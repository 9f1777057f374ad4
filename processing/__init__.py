"""MicroEmo's processing: raw media -> model inputs (see README.md).

Importing ``processing_microemo`` registers the processor and its video processor with transformers' Auto classes
for MicroEmo's config, as importing ``microemo.modeling_microemo`` registers the model: with the project installed,
``AutoProcessor`` / ``AutoVideoProcessor.from_pretrained(folder)`` use these classes like a library model's,
without ``trust_remote_code``. This package imports nothing itself, so that ``microemo visualize --help`` stays
light.
"""
