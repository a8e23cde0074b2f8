"""Where SAE files come from: --sae, the Hugging Face cache, the hub, or nowhere (skipped)."""

from __future__ import annotations

import pytest

from artifacts.errors import InputError
from features.sae import CANONICAL_L0, DEFAULT_SAE_REPO, hub_filename, locate_saes, parse_sae_options


class FakeHub:
    """``hf_hub_download`` stand-in: ``cached`` files come back offline, ``remote`` ones only online."""

    def __init__(self, tmp_path, *, cached=(), remote=(), reachable=True):
        self.tmp_path, self.cached, self.remote, self.reachable = tmp_path, set(cached), set(remote), reachable
        self.calls = []

    def __call__(self, *, repo_id, filename, local_files_only):
        self.calls.append((filename, local_files_only))
        if filename in self.cached or (not local_files_only and self.reachable and filename in self.remote):
            path = self.tmp_path / filename.replace("/", "_")
            path.write_bytes(b"x")
            return str(path)
        if local_files_only:
            raise FileNotFoundError("not in the cache")
        raise ConnectionError("Name or service not known")


def test_canonical_table_and_file_names():
    assert hub_filename(16) == "layer_16/width_16k/average_l0_78/params.npz"
    assert hub_filename(19) == "layer_19/width_16k/average_l0_73/params.npz"
    assert hub_filename(25) == "layer_25/width_16k/average_l0_116/params.npz"
    assert set(CANONICAL_L0) == set(range(10, 26))
    assert DEFAULT_SAE_REPO == "google/gemma-scope-2b-pt-res"


def test_parse_sae_options(tmp_path):
    f = tmp_path / "p.npz"
    f.write_bytes(b"x")
    assert parse_sae_options([f"16={f}"]) == {16: f}
    for bad in ("16", "x=1", f"-1={f}", "16="):
        with pytest.raises(InputError, match="expected LAYER=PATH"):
            parse_sae_options([bad])
    with pytest.raises(InputError, match="file not found"):
        parse_sae_options([f"16={tmp_path / 'nope.npz'}"])
    assert parse_sae_options([f"16={tmp_path / 'nope.npz'}"], check_files=False) == {16: tmp_path / "nope.npz"}
    with pytest.raises(InputError, match="layer 16 given twice"):
        parse_sae_options([f"16={f}", f"16={f}"])


def test_local_first_then_cache_then_hub(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    local = tmp_path / "mine.npz"
    local.write_bytes(b"x")
    hub = FakeHub(tmp_path, cached={hub_filename(17)}, remote={hub_filename(19)})
    found, missing = locate_saes([16, 17, 19], local={16: local}, download=hub)
    assert [(f.layer, f.sae_id) for f in found] == [
        (16, f"local:{local}"),
        (17, f"{DEFAULT_SAE_REPO}/{hub_filename(17)}"),
        (19, f"{DEFAULT_SAE_REPO}/{hub_filename(19)}"),
    ]
    assert missing == []
    assert (hub_filename(17), False) not in hub.calls  # a cached file never waits for the network


def test_unreachable_hub_is_tried_once_and_layers_are_skipped_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub = FakeHub(tmp_path, cached={hub_filename(20)}, reachable=False)
    found, missing = locate_saes([16, 19, 20, 26], local={}, download=hub)
    assert [f.layer for f in found] == [20]
    assert [m.layer for m in missing] == [16, 19, 26]
    assert "ConnectionError: Name or service not known" in missing[0].reason
    assert "pass --sae 16=PATH" in missing[0].reason
    assert "no canonical GemmaScope SAE listed for layer 26" in missing[2].reason
    assert sum(1 for _, offline in hub.calls if not offline) == 1


def test_hf_hub_offline_never_goes_online(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = FakeHub(tmp_path, remote={hub_filename(16)})
    found, missing = locate_saes([16], local={}, download=hub)
    assert found == [] and "HF_HUB_OFFLINE" in missing[0].reason
    assert all(offline for _, offline in hub.calls)


def test_local_sae_for_a_layer_without_listed_features_is_an_error(tmp_path):
    f = tmp_path / "p.npz"
    f.write_bytes(b"x")
    with pytest.raises(InputError, match=r"--sae for layer\(s\) \[3\]: the feature list names no feature there"):
        locate_saes([16], local={3: f}, download=FakeHub(tmp_path))


def test_the_real_hub_client_offline_gives_a_skip_not_a_crash(monkeypatch):
    # huggingface_hub's own hf_hub_download, cache only (HF_HUB_OFFLINE): no network is touched.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    found, missing = locate_saes([16], local={}, repo="pva-baseline-tests/no-such-repo")
    assert found == [] and len(missing) == 1
    assert "pva-baseline-tests/no-such-repo/layer_16/width_16k/average_l0_78/params.npz" in missing[0].reason
