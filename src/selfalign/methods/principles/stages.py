"""The folders of a `selfalign self-align` run (its --out), in the order the stages run, and the
file that records which of them finished (with their counts)."""

STAGES = ("1-self-instruct", "2-principles", "3-engrave", "4-verbose", "5-distill")
STAGES_FILE = "stages.json"
