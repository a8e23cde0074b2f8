"""Generate through the Ray backend into a folder, resuming what is there (driven by ``test_ray_kill_resume.py``).

What ``generate --backend ray`` will do once wired, reduced to the parts a SIGKILL tests: open
the store (resume under the same settings), write the metadata before the first commit, submit
only the missing tasks to a :class:`gen.ray_engine.RayEngine`, and commit through
:func:`gen.stream.run_stream`.

    python -m tests.gen.ray_generate_script --tasks GENERATIONS.parquet --metadata META.json \\
        --config CONFIG.json --out DIR [--commit-every 1] [--batch-size 1]

``--tasks``: a generations table whose prompts (and prompt ids) are the tasks; ``--metadata``:
its metadata (the settings the rows are checked against); ``--config``: the
:class:`gen.engine.EngineConfig` as JSON. Prints ``N generated, M already done``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    import pandas as pd
    from transformers import AutoTokenizer

    from gen.engine import EngineConfig
    from gen.ray_engine import RayEngine
    from gen.store import GenerationStore
    from gen.stream import PromptTask, run_stream

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=Path, required=True)
    parser.add_argument("--metadata", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--commit-every", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1)
    args = parser.parse_args(argv)

    raw = json.loads(args.config.read_text())
    config = EngineConfig(**{**raw, "stop_token_ids": tuple(raw["stop_token_ids"])})
    settings = json.loads(args.metadata.read_text())["settings"]
    table = pd.read_parquet(args.tasks)
    tasks = [PromptTask(int(r.task_id), r.prompt, tuple(int(i) for i in r.prompt_token_ids)) for r in table.itertuples()]

    store = GenerationStore(args.out)
    store.open(settings, overwrite=False)
    store.write_metadata({"settings": settings})  # before the first commit, as generate does
    done = store.done_ids
    pending = [t for t in tasks if t.task_id not in done]
    generated = 0
    if pending:
        tokenizer = AutoTokenizer.from_pretrained(config.model)
        engine = RayEngine(config, batch_size=args.batch_size)
        try:
            generated = run_stream(
                tasks=pending, engine=engine, store=store,
                decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
                commit_every=args.commit_every, progress=False,
            ).n_tasks
        finally:
            engine.close()
    print(f"{generated} generated, {len(tasks) - len(pending)} already done", flush=True)


if __name__ == "__main__":  # vLLM and Ray start processes that re-import the main module
    main()
