import pytest
import trio.testing


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    # Virtual time that jumps ahead whenever every task is blocked: backoffs and
    # grace periods cost no wall time, and a hang hits fail_after() at once.
    return trio.testing.MockClock(autojump_threshold=0)
