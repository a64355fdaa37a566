"""The size-bounded LRU behind the hidden-state cache's memory tier and the audio memo."""

from s3prl_emoaware.utils.lru import SizedLRU


def test_sized_lru_evicts_least_recent_and_refuses_what_cannot_fit():
    lru = SizedLRU(10)
    lru.put("a", 1, 4)
    lru.put("b", 2, 4)
    assert lru.get("a") == 1  # a is now the most recent
    lru.put("c", 3, 4)  # 12 > 10: b, the least recent, leaves
    assert (lru.get("b"), lru.get("a"), lru.get("c"), lru.used_bytes) == (None, 1, 3, 8)
    lru.put("a", 4, 11)  # larger than the bound: not held, and the old a is dropped
    assert (lru.get("a"), lru.used_bytes) == (None, 4)
    lru.put("c", 5, 2)  # replacing counts the new size only
    assert (lru.get("c"), lru.used_bytes) == (5, 2)
    off = SizedLRU(0)
    off.put("a", 1, 1)
    assert off.get("a") is None and off.used_bytes == 0


def test_sized_lru_resize_evicts_least_recent_until_the_rest_fit():
    lru = SizedLRU(12)
    for key in "abc":
        lru.put(key, key, 4)
    lru.get("a")  # order now b, c, a
    lru.resize(8)
    assert (lru.get("b"), lru.get("c"), lru.get("a"), lru.used_bytes) == (None, "c", "a", 8)
    lru.resize(20)
    lru.put("d", "d", 12)
    assert lru.used_bytes == 20 and lru.get("c") == "c"


def test_stamped_lru_serves_a_value_only_while_its_file_is_unchanged(tmp_path):
    import os

    from s3prl_emoaware.utils.lru import StampedLRU, file_stamp

    path = tmp_path / "a.wav"
    path.write_bytes(b"1234")
    memo = StampedLRU(100)
    stamp = file_stamp(path)
    memo.hold("a", stamp, "decoded", 4)
    assert memo.fresh("a", file_stamp(path)) == "decoded"
    path.write_bytes(b"123456")  # rewritten: another size
    assert memo.fresh("a", file_stamp(path)) is None
    memo.hold("a", file_stamp(path), "decoded again", 6)
    os.utime(path, ns=(0, 0))  # same size, another modification time
    assert memo.fresh("a", file_stamp(path)) is None
    path.unlink()
    assert file_stamp(path) is None and memo.fresh("a", None) is None
    memo.hold("a", None, "unstamped", 1)  # no stamp: nothing held, the old value dropped
    assert memo.used_bytes == 0
