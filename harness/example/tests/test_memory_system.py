from lukhas.core.memory_system import MemoryStore


def test_put_and_get():
    store = MemoryStore(max_items=10)
    store.put("a", "alpha", tags=["greek"])
    assert store.get("a") == "alpha"
    assert store.get("missing", "fallback") == "fallback"
    assert "a" in store
    assert len(store) == 1


def test_find_by_tag():
    store = MemoryStore()
    store.put("a", "alpha", tags=["greek"])
    store.put("b", "beta", tags=["greek", "second"])
    assert [item.key for item in store.find_by_tag("greek")] == ["a", "b"]
