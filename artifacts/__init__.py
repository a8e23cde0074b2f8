"""File helpers shared by every stage: atomic writes, default layout, input errors."""
