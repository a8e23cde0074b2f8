"""Demo-only helpers: the SmolLM2 demo model, Hugging Face reference checks. Used by the pipeline's demo preset, tests and bench, never by a stage."""
