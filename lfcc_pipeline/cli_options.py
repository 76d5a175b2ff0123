"""The command line's options, generated from the config dataclasses' field metadata (core/options.py),
and the RunConfig a command's flags, config file and preset resolve to.

Precedence, lowest first: the dataclass defaults, --config FILE, --preset (for options neither the
file nor a flag sets), the flags given on the command line.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from lfcc_pipeline.core.config import DistillConfig, RunConfig
from lfcc_pipeline.core.config_file import load_config_file
from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.core.options import as_text, dest_of, flag_of, get_at, opt_of, prefix_of, replace_at, walk

EXPLICIT = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def method_options() -> dict[str, type]:
    """Method name -> its options dataclass, for every method that has options."""
    from lfcc_pipeline.methods import METHODS  # here, not at the top: predict imports this module without torch

    return {name: m.Options for name, m in METHODS.items() if m.Options is not None}


def method_options_names() -> list[str]:
    from lfcc_pipeline.methods import METHODS

    return list(METHODS)


def full_defaults() -> RunConfig:
    """RunConfig() with every method's default options filled in (what a run writes to config.yaml)."""
    return RunConfig(distill=DistillConfig().with_options(*(cls() for cls in method_options().values())))


def _leaf_type(owner: type, name: str) -> Any:
    hint = typing.get_type_hints(owner)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1 else hint


def _owners(obj: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], type]:
    """path of every leaf field -> the dataclass that declares it (for its type hints)."""
    return {p: type(get_at(obj, p[len(path) : -1])) for p, _f, _v in walk(obj, path)}


class Leaf(typing.NamedTuple):
    path: tuple[str, ...]
    field: dataclasses.Field
    default: Any
    flag: str
    dest: str
    kind: Any  # the field's type without None


# the options DESIGN.md section 4 lists first, in its order; the rest follow in the config's order
FIRST = ("teacher", "student", "method", "targets", "data", "out", "epochs", "teacher_epochs", "img_size",
         "batch_size", "device", "seed")  # fmt: skip


def leaves() -> list[Leaf]:
    """Every config field that has a flag: FIRST, then the config's order."""
    cfg = full_defaults()
    owners = _owners(cfg)
    out = []
    for path, f, default in walk(cfg):
        if opt_of(f) is None:
            continue
        prefix = prefix_of(path)
        out.append(Leaf(path, f, default, flag_of(f, prefix), dest_of(f, prefix), _leaf_type(owners[path], f.name)))
    rank = {dest: i for i, dest in enumerate(FIRST)}
    return sorted(out, key=lambda leaf: rank.get(leaf.dest, len(rank)))


def _click_option(leaf: Leaf) -> click.Option:
    o = opt_of(leaf.field)
    help_text = o.help.replace("{methods}", ", ".join(method_options_names()))
    kw: dict[str, Any] = {"help": help_text or None, "metavar": o.metavar}
    show = o.show_default and leaf.default is not None and not o.is_flag
    if o.negatable:
        return click.Option(
            [f"{leaf.flag}/--no-{leaf.flag[2:]}", leaf.dest], default=leaf.default, show_default=show, **kw
        )
    if o.is_flag:
        return click.Option([leaf.flag, leaf.dest], is_flag=True, default=leaf.default, **kw)
    if o.flag_value is not None:
        return click.Option([leaf.flag, leaf.dest], is_flag=False, flag_value=o.flag_value, default=leaf.default, **kw)
    if o.multiple:
        return click.Option([leaf.flag, leaf.dest], multiple=True, default=(), **kw)
    if o.parse is not None:
        default = None if leaf.default is None else as_text(leaf.default)
        return click.Option([leaf.flag, leaf.dest], default=default, show_default=show, **kw)
    click_type = {int: click.INT, float: click.FLOAT, Path: click.Path(path_type=Path)}.get(leaf.kind, click.STRING)
    return click.Option([leaf.flag, leaf.dest], type=click_type, default=leaf.default, show_default=show, **kw)


def config_params() -> list[click.Option]:
    """One click option per config field that has a flag: FIRST, then the config's order."""
    return [_click_option(leaf) for leaf in leaves()]


def _value(leaf: Leaf, raw: Any) -> Any:
    o = opt_of(leaf.field)
    if o.multiple:
        return tuple(raw) if raw else leaf.default
    if o.parse is not None and isinstance(raw, str):
        if raw == "":
            return None
        try:
            return o.parse(raw)
        except ConfigError as e:
            raise ConfigError(f"{leaf.flag}: {e.message}", e.hint) from None
    return raw


def config_from_options(
    opts: dict[str, Any], explicit: set[str] | None = None, config_file: Path | None = None, preset: str | None = None
) -> RunConfig:
    """The RunConfig of a command's parsed options. `explicit`: the option names given on the command
    line (None: every value in `opts` counts, as when a caller builds `opts` itself)."""
    table = leaves()
    cfg, from_file = full_defaults(), set()
    if config_file is not None:
        cfg, paths = load_config_file(config_file, cfg, method_options())
        from_file = {leaf.dest for leaf in table if leaf.path in paths}
    given = {leaf.dest for leaf in table if leaf.dest in opts} if explicit is None else set(explicit)
    if preset:
        from lfcc_pipeline.presets import apply_preset

        cfg = apply_preset(cfg, preset, frozenset(given | from_file))
    for leaf in table:
        if leaf.dest in given and leaf.dest in opts:
            cfg = replace_at(cfg, leaf.path, _value(leaf, opts[leaf.dest]))
    return cfg


class OptionsCommand(click.Command):
    """A command that takes an option per config field (generated from the dataclasses' metadata,
    core/options.py, and the methods' own options) before its own. They are made when first asked for,
    so that `predict` and `--help` of other commands never import the methods (and torch)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._own: list[click.Parameter] = []
        self._all: list[click.Parameter] | None = None
        super().__init__(*args, **kwargs)

    @property
    def params(self) -> list[click.Parameter]:  # type: ignore[override]
        if self._all is None:  # one list object from then on: click appends to it and pops from it
            self._all = [*config_params(), *self._own]
        return self._all

    @params.setter
    def params(self, value: list[click.Parameter]) -> None:
        self._own, self._all = list(value), None


def config_from_context(opts: dict[str, Any]) -> RunConfig:
    """The RunConfig of the running click command: its --config file, --preset and explicit flags."""
    ctx = click.get_current_context()
    explicit = {k for k in opts if ctx.get_parameter_source(k) in EXPLICIT}
    return config_from_options(opts, explicit, opts.get("config"), opts.get("preset"))


def shared_options(fn):
    """The options of `run` and the stage commands that steer the command itself (DESIGN.md section 4;
    the config's options come with OptionsCommand)."""
    opts = [
        click.option("--config", type=click.Path(path_type=Path), default=None, metavar="FILE",
                     help="Read options from a YAML file (a run's config.yaml reproduces it); flags given win."),
        click.option("--preset", default=None, help="The papers' recipes: cifar100 | imagenet (explicit options win)."),
        click.option("--no-rebuild", is_flag=True,
                     help="Fail instead of rerunning a stage whose artifact changed since it was written."),
        click.option("--force", is_flag=True, help="Rerun every stage, ignoring finished ones and checkpoints."),
        click.option("--debug", is_flag=True, help="Show Python tracebacks."),
    ]  # fmt: skip
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def table_of(md: Path) -> str:
    return "\n".join(line for line in md.read_text().splitlines() if line.startswith("|"))
