"""TEMPORARY: ``demo_model`` with the moved module, until tests/conftest.py imports ``demo.model``."""

from tests.demo.conftest import demo_model  # noqa: F401
