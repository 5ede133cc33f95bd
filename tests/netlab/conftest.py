import pytest

from .netlab import cleanup_stale


@pytest.fixture(scope="session", autouse=True)
def _remove_stale_labs() -> None:
    """Namespaces left by a crashed earlier run would otherwise pile up across runs."""
    cleanup_stale()
