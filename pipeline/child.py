"""``python -m pipeline.child STAGE SETTINGS_JSON``: one stage in its own interpreter (used by ``run``)."""

from __future__ import annotations

import json
import sys

from artifacts.errors import InputError
from pipeline.stages import STAGES


def main(argv: list[str]) -> int:
    stage = STAGES[argv[0]]
    try:
        config = stage.config_class().from_mapping(json.loads(argv[1]))
        print(stage.run(config).summary(), flush=True)
    except InputError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
