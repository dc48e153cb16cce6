"""A worker prepares at most HUB_SETUP_SLOTS requests at once, in arrival order (providers.http.setup_slot).

Each request holds a slot from its arrival until its upstream call starts (setup_done, which the request's own
tasks may call: they copy its context) or until it ends, whichever is first; a slot is given back once.
"""

import asyncio

import pytest

from providers import http


@pytest.fixture(autouse=True)
def slots(settings):
    settings.HUB_SETUP_SLOTS = 3
    settings.HUB_SETUP_SLOT_SECONDS = 0.2
    http._setup.clear()
    yield
    http._setup.clear()


def run(coroutine):
    return asyncio.run(coroutine)


def test_at_most_the_slots_are_prepared_at_once_and_in_arrival_order():
    preparing, most, order = 0, 0, []

    async def request(number):
        nonlocal preparing, most
        async with http.setup_slot():
            preparing += 1
            most = max(most, preparing)
            order.append(number)
            await asyncio.sleep(0.005)  # reading, checking, pricing (a cache miss: a database read)
            preparing -= 1
            http.setup_done()  # the upstream call starts
            await asyncio.sleep(0.02)  # the upstream's answer: no slot is held for it

    async def burst():
        await asyncio.gather(*(request(n) for n in range(20)))

    run(burst())
    assert most == 3 and order == list(range(20))


def test_a_request_that_never_calls_upstream_gives_its_slot_back_when_it_ends():
    async def main():
        for _ in range(5):  # more than the slots: each must have been given back
            async with http.setup_slot():
                pass
        slots = http._setup[asyncio.get_running_loop()]
        return slots._value

    assert run(main()) == 3


def test_a_slot_released_by_the_requests_own_task_is_released_once():
    async def main():
        async with http.setup_slot():
            # Django runs the view in a task of its own (a copy of the request's context).
            await asyncio.create_task(asyncio.to_thread(lambda: None))
            await asyncio.create_task(_upstream_call())
            await asyncio.create_task(_upstream_call())  # a fallback's call: nothing more to give back
            during = http._setup[asyncio.get_running_loop()]._value
        return during, http._setup[asyncio.get_running_loop()]._value

    async def _upstream_call():
        http.setup_done()

    assert run(main()) == (3, 3)


def test_setup_done_outside_a_request_does_nothing():
    http.setup_done()


def test_a_request_waiting_in_its_setup_gives_its_slot_up_after_the_hold_time():
    """Three requests stuck on a slow database read do not hold up a fourth past HUB_SETUP_SLOT_SECONDS."""
    served = []

    async def main():
        loop = asyncio.get_running_loop()
        database = asyncio.Event()

        async def stuck():
            async with http.setup_slot():
                await database.wait()

        async def quick():
            started = loop.time()
            async with http.setup_slot():
                served.append(loop.time() - started)

        waiting = [asyncio.create_task(stuck()) for _ in range(3)]
        await asyncio.sleep(0)
        await asyncio.wait_for(quick(), 2)
        database.set()
        await asyncio.gather(*waiting)
        return http._setup[loop]._value

    assert run(main()) == 3
    assert 0.15 < served[0] < 1.0
