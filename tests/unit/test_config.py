import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lfcc_pipeline.core.config import BenchConfig, ModelsConfig, RunConfig, TrainConfig
from lfcc_pipeline.core.errors import ConfigError


def test_defaults_validate():
    RunConfig().validate()


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(train=TrainConfig(epochs=-1)), "--epochs"),
        (dict(train=TrainConfig(batch_size=0)), "--batch-size"),
        (dict(models=ModelsConfig(img_size=8)), "--img-size"),
        (dict(bench=BenchConfig(targets=("trt-fp64",))), "--target"),
        (dict(bench=BenchConfig(targets=())), "--target"),
        (dict(device="tpu"), "--device"),
    ],
)
def test_bad_values_raise_config_errors(change, match):
    with pytest.raises(ConfigError, match=match):
        dataclasses.replace(RunConfig(), **change).validate()


@given(epochs=st.integers(-5, 5), bs=st.integers(-5, 300), size=st.one_of(st.none(), st.integers(-10, 600)))
def test_validate_accepts_or_raises_config_error(epochs, bs, size):
    cfg = RunConfig(train=TrainConfig(epochs=epochs, batch_size=bs), models=ModelsConfig(img_size=size))
    try:
        cfg.validate()
    except ConfigError as e:
        assert e.line()
    else:
        assert epochs >= 0 and bs > 0 and (size is None or size >= 16)


def test_default_run_dir_names_the_pair_and_method():
    assert str(RunConfig().run_dir()) == "runs/deit_s-resnet18-lfcc"


# -- the CLI's list parsers: round trips, and any other text is a ConfigError (never another error)


@given(st.lists(st.integers(-99, 99), min_size=1, max_size=6))
def test_int_list_round_trips(values):
    from lfcc_pipeline.core.options import int_list

    assert int_list(",".join(map(str, values))) == tuple(values)
    assert int_list(" , ".join(map(str, values))) == tuple(values)


@given(st.lists(st.tuples(st.integers(-20, 20), st.integers(-20, 20)), min_size=1, max_size=5))
def test_tap_pairs_round_trip(pairs):
    from lfcc_pipeline.core.options import as_text, tap_pair, tap_pairs

    text = ",".join(f"{t}:{s}" for t, s in pairs)
    assert tap_pairs(text) == tuple(pairs)
    assert tap_pairs(as_text(tuple(pairs))) == tuple(pairs)  # what --help shows parses back
    if len(pairs) == 1:
        assert tap_pair(text) == pairs[0]


@given(st.text(max_size=20))
def test_list_parsers_accept_or_refuse_cleanly(text):
    from lfcc_pipeline.core.errors import ConfigError
    from lfcc_pipeline.core.options import int_list, tap_pair, tap_pairs

    for parse in (int_list, tap_pairs, tap_pair):
        try:
            parsed = parse(text)
        except ConfigError:
            continue
        assert parsed is None or isinstance(parsed, tuple)
