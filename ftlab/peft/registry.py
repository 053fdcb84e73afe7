"""Every fine-tuning method by its name, the name of its config choice (`peft=<name>`).

A method's class enters here when it is defined (`class LoraInjector(..., name="lora")`, see
base.py), so the name sits on the class, not only in a file name: a second class taking a name that
is already used is refused, and the config checks refuse a `conf/peft/<choice>.yaml` whose
`_target_` class is registered under another name. Without that, a file copied for a new method and
left pointing at the old class would silently train the old method under the new name.

Nothing here imports torch or a method module: the checks ask it about a class they import anyway.
"""

from __future__ import annotations

from hydra.utils import get_class

from ftlab.errors import UserError

METHODS: dict[str, type] = {}


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register(name: str, cls: type) -> None:
    """Enter `cls` as the method `name`; the same class again (a module imported twice) is a no-op."""
    known = METHODS.get(name)
    if known is not None and qualified(known) != qualified(cls):
        raise UserError(f"two fine-tuning methods are named {name!r}: {qualified(known)} and {qualified(cls)}",
                        f"give {cls.__qualname__} another name=..., the stem of its conf/peft/<name>.yaml")
    METHODS[name] = cls


def check_choice(choice: str, target: str) -> None:
    """`peft=<choice>` must build the class registered as <choice>."""
    cls = get_class(target)
    name = getattr(cls, "name", "")
    if name == choice:
        return
    if not name:
        raise UserError(f"peft={choice}: its config's _target_ {target} is not a registered method",
                        f"declare the class as a method: class ...(Injector, name={choice!r})")
    raise UserError(f"peft={choice}: its config's _target_ {target} is the method registered as {name!r}",
                    f"a new method is a class of its own, declared with name={choice!r}; other settings of "
                    f"{name} are peft={name} peft.<setting>=... (or a preset)")
