"""selfalign: a language model aligns itself with human values at almost no labelling cost."""

__version__ = "0.1.0"
