from cumulo.engine.limits import QpsLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_at_most_max_qps_in_any_one_second_window() -> None:
    clock = Clock()
    limiter = QpsLimiter(clock)
    granted = 0
    for i in range(1500):
        clock.now = 100.0 + i * 0.0005  # 1,500 requests within 0.75 s
        if limiter.try_acquire("fn", 1000) == 0.0:
            granted += 1
    assert granted == 1000


def test_tokens_come_back_one_second_after_use() -> None:
    clock = Clock()
    limiter = QpsLimiter(clock)
    for _ in range(3):
        assert limiter.try_acquire("fn", 3) == 0.0
    wait = limiter.try_acquire("fn", 3)
    assert 0.99 <= wait <= 1.0
    clock.now += 0.5
    assert limiter.try_acquire("fn", 3) > 0
    clock.now += 0.5
    assert limiter.try_acquire("fn", 3) == 0.0


def test_functions_have_separate_buckets() -> None:
    limiter = QpsLimiter(Clock())
    assert limiter.try_acquire("a", 1) == 0.0
    assert limiter.try_acquire("a", 1) > 0
    assert limiter.try_acquire("b", 1) == 0.0
