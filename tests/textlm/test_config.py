"""The example's config: the recipe's YAML loads; mistakes are errors naming the key and the file."""

from pathlib import Path

import pytest

from asr_analogy.errors import ConfigError
from asr_analogy.textlm.config import load_example_config

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "text_arithmetic" / "config.yaml"


def test_the_recipe_config_loads_and_overrides_apply():
    config = load_example_config(RECIPE, {"finetune": {"steps": 3}})
    assert config.finetune.steps == 3
    assert (config.forget, config.keep) == ("prose", "code")
    assert config.lambdas.forget == sorted(config.lambdas.forget)


@pytest.mark.parametrize("text, message", [
    ("domains: {a: {root: x, patterns: ['*']}, b: {root: y, patterns: ['*']}}\nforget: a\nstepz: 3\n",
     "unknown key 'stepz'"),
    ("domains: {a: {root: x, patterns: ['*']}}\nforget: a\n", "exactly two are needed"),
    ("domains: {a: {root: x, patterns: ['*']}, b: {root: y, patterns: ['*']}}\nforget: c\n",
     "'c' is not one of the domains"),
    ("domains: {a: {root: x, patterns: ['*']}, b: {root: y, patterns: ['*']}}\nforget: a\nlambda: {both: [0]}\n",
     "key 'lambda.both'"),
    ("domains: {a: {root: x, patterns: ['*']}, b: {root: y, patterns: ['*']}}\n", "missing key 'forget'"),
])
def test_config_errors_name_the_key_and_the_file(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_example_config(path)
    assert str(path) in str(err.value)
