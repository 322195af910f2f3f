import sys
from pathlib import Path

# The template is not pip-installed by `make`; make its package importable for its own tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
