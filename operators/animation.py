"""Placeholder: filled in by its owner."""

classes = ()


def register() -> None:
    pass


def unregister() -> None:
    pass
