# The stages of dvc.yaml, rendered with the validated params (src/advrecover/dag.py).
from advrecover.dag import load_stages

STAGES = load_stages("dvc.yaml", config)
