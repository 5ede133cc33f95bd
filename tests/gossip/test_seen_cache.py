import pytest

from f0mesh.gossip.seen_cache import SeenCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_second_add_is_a_duplicate():
    cache = SeenCache(10, 60.0, FakeClock())
    assert cache.add("a") is True
    assert cache.add("a") is False
    assert "a" in cache and "b" not in cache


def test_entries_expire_after_the_ttl():
    clock = FakeClock()
    cache = SeenCache(10, 60.0, clock)
    cache.add("a")
    clock.now += 30
    cache.add("b")
    clock.now += 31
    assert "a" not in cache and "b" in cache
    assert len(cache) == 1
    assert cache.add("a") is True  # forgotten, so accepted again


def test_size_bound_evicts_the_oldest():
    cache = SeenCache(3, 60.0, FakeClock())
    for key in "abcd":
        cache.add(key)
    assert len(cache) == 3
    assert "a" not in cache and all(k in cache for k in "bcd")


def test_backdated_entries_expire_on_their_own_time():
    clock = FakeClock()
    cache = SeenCache(10, 60.0, clock)
    cache.add("old", at=clock.now - 50)
    cache.add("future", at=clock.now + 500)  # never later than now
    clock.now += 11
    assert "old" not in cache and "future" in cache


def test_discard_forgets_one_id():
    cache = SeenCache(10, 60.0, FakeClock())
    cache.add("a")
    cache.discard("a")
    cache.discard("never-there")
    assert cache.add("a") is True


def test_bounds_must_be_positive():
    with pytest.raises(ValueError):
        SeenCache(0, 1.0)
    with pytest.raises(ValueError):
        SeenCache(1, 0.0)
