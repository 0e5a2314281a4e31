"""Probes that read (and steer) a model's activations: `selfalign probe`. The refusal direction
(Arditi et al. 2024) is the shipped one; add one with `register_probe`, or an entry point in
`selfalign.probes`. The plug-in contract is in `base`.
"""

from .base import Probe, ProbeContext, ProbeOptions, build_probe, known_probes, register_probe
from .run import SCHEMA, ProbeConfig, run_probe

__all__ = ["Probe", "ProbeConfig", "ProbeContext", "ProbeOptions", "SCHEMA", "build_probe", "known_probes", "register_probe", "run_probe"]
