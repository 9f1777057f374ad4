"""MicroEmo: time-sensitive multimodal emotion recognition, as a transformers plugin.

The repository's top-level folders are installed as sub-packages of this namespace:
``microemo.modeling_microemo`` (Hub-shipped model code), ``microemo.processing``,
``microemo.training`` and ``microemo.evaluation``.
"""

__version__ = "0.1.0"
