"""An unknown device string is a configuration error naming it, not a torch traceback."""

import pytest

from asr_analogy.errors import ConfigError
from asr_analogy.merge.stream import resolve_device


@pytest.mark.parametrize("device", ["gpu9", "tpu", "cuda:x"])
def test_unknown_device_is_named(device):
    with pytest.raises(ConfigError, match=f"unknown device '{device}'; use cpu, cuda, cuda:N or auto"):
        resolve_device(device)


def test_known_devices_resolve():
    assert str(resolve_device("cpu")) == "cpu"
