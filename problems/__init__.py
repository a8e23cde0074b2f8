"""MBPP problems: loading, complexity, the validation split and prompt text."""
