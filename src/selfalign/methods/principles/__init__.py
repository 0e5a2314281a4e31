"""SELF-ALIGN (Sun et al., 2023, "Principle-Driven Self-Alignment of Language Models from
Scratch with Minimal Human Supervision"): a base model aligns itself from a few hundred lines of
human input, in four stages, each a file here:

    selfinstruct.py   1. topic-guided red-teaming self-instruct, beside plain self-instruct
    principled.py     2. principle-driven self-alignment: internal thoughts, then the answer
                      3. principle engraving: `selfalign train --method sft` (configs/engrave*.yaml)
    verbose.py        4. verbose cloning: the engraved model answers again, thoroughly; its
                         answers train the base model again (configs/distill*.yaml)

`filters.py` holds what each stage keeps and why it drops the rest, `rouge.py` the fast exact
ROUGE-L novelty filter, `files.py` the data files a user replaces with a flag.
"""

from .calls import PROMPTS_DIR, use_raw
from .config import PrinciplesConfig, SelfInstructConfig, VerboseConfig
from .files import load_exemplars, load_principles, load_red_team_types, load_seed_tasks
from .selfinstruct import SelfInstruct

__all__ = [
    "PROMPTS_DIR",
    "PrinciplesConfig",
    "SelfInstruct",
    "SelfInstructConfig",
    "VerboseConfig",
    "load_exemplars",
    "load_principles",
    "load_red_team_types",
    "load_seed_tasks",
    "use_raw",
]
