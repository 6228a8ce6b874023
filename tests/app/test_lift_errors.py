"""An error that escapes one of the app's tasks comes out of ``App.lift`` / ``App.lifted()`` as itself.

trio wraps an error in an exception group at every nursery it leaves; an app task's error leaves three
(the app's own tasks, the root, ``lifted``'s). With one cause there is nothing to group, so the caller
gets the error itself, with the nurseries it escaped named in a note; several errors stay a group.
"""

from __future__ import annotations

import pytest
import trio

from trisails import App


def failing_app(*errors: BaseException) -> App:
    """An app whose tasks raise ``errors`` together, once the app is lifted (its URL is set)."""
    app = App()
    app.state["lifted"] = trio.Event()

    async def fail(error: BaseException) -> None:
        await app.state["lifted"].wait()
        raise error

    @app.on_lift
    def start(app: App) -> None:
        for error in errors:
            app.start_soon(fail, error, name="fail")

    return app


async def test_an_app_tasks_error_comes_out_of_lifted_as_itself_with_its_path() -> None:
    app = failing_app(ValueError("boom"))
    with pytest.raises(ValueError, match="boom") as caught:
        async with app.lifted():
            app.state["lifted"].set()
            await trio.sleep_forever()
    (note,) = caught.value.__notes__
    assert note.startswith("trisails: raised in failing_app.<locals>.fail, in a task of App._own_tasks, in App.lift, in App.lifted")
    assert caught.value.__context__ is None  # not the block's cancellation, not a group


async def test_lift_in_a_nursery_of_ones_own_raises_it_one_group_deep() -> None:
    app = failing_app(ValueError("boom"))
    with pytest.raises(ExceptionGroup) as caught:
        async with trio.open_nursery() as nursery:
            await nursery.start(app.lift)
            app.state["lifted"].set()
    # the caller's own nursery groups it, as any nursery does; lift added no group of its own
    (error,) = caught.value.exceptions
    assert isinstance(error, ValueError)
    assert "in a task of App._own_tasks, in App.lift" in error.__notes__[0]


async def test_an_error_in_the_block_comes_out_as_itself_without_a_note() -> None:
    app = App()
    with pytest.raises(KeyError) as caught:
        async with app.lifted():
            raise KeyError("in the block")
    assert not hasattr(caught.value, "__notes__")


async def test_several_errors_stay_an_exception_group() -> None:
    app = failing_app(ValueError("one"), KeyError("two"))
    with pytest.raises(BaseExceptionGroup) as caught:
        async with app.lifted():
            app.state["lifted"].set()
            await trio.sleep_forever()
    leaves = []
    stack: list[BaseException] = [caught.value]
    while stack:
        error = stack.pop()
        if isinstance(error, BaseExceptionGroup):
            stack.extend(error.exceptions)
        else:
            leaves.append(type(error))
    assert sorted(leaf.__name__ for leaf in leaves) == ["KeyError", "ValueError"]


async def test_the_app_can_be_lifted_again_after_a_task_failed() -> None:
    app = failing_app(ValueError("boom"))
    for _ in range(2):
        app.state["lifted"] = trio.Event()
        with pytest.raises(ValueError):
            async with app.lifted():
                app.state["lifted"].set()
                await trio.sleep_forever()
