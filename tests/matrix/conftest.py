import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # society.py, the scripted society
# tiny_model_dir: the session fixture of tests/conftest.py
