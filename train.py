"""Self-knowledge distillation of an xVLM2Vec student: `accelerate launch train.py --config recipes/<name>.yaml`.

See docs/training.md; any recipe field can be overridden on the command line (`--output_dir`, `--max_steps`, ...).
"""

import sys

from xvlm2vec.training.script import run
from xvlm2vec_common.cli_errors import report_usage_errors

if __name__ == "__main__":
    sys.exit(report_usage_errors(run))
