"""The vLLM-CPU environment generate sets: only what the user left unset."""

from __future__ import annotations

import pytest

from gen.device_policy import CPU_ENV, CPU_KVCACHE_ENV, CPU_MULTIPROCESSING_ENV, CPU_RESERVED_ENV, apply_cpu_env_defaults


def test_cpu_defaults_fill_only_what_the_user_left_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CPU_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(CPU_RESERVED_ENV, "1")
    in_force = apply_cpu_env_defaults()
    assert set(in_force) == set(CPU_ENV)
    assert in_force[CPU_RESERVED_ENV] == "1"  # the user's value wins
    assert in_force[CPU_MULTIPROCESSING_ENV] == "0"  # the engine in this process
    assert 1 <= int(in_force[CPU_KVCACHE_ENV]) <= 8


def test_a_users_multiprocessing_choice_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CPU_MULTIPROCESSING_ENV, "1")
    assert apply_cpu_env_defaults()[CPU_MULTIPROCESSING_ENV] == "1"
