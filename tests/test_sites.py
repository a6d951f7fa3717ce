"""Site names and layer selectors."""
import pytest

from mcis_claims.errors import SiteError
from mcis_claims.sites import check_layer, default_layers, layer_of, parse_site, select_layers, site_name


def test_site_names_round_trip():
    assert site_name(3) == "blocks.3.hook_resid_pre"
    assert parse_site(" blocks.12.hook_resid_pre ") == 12
    with pytest.raises(SiteError, match="not supported"):
        parse_site("blocks.1.hook_resid_post")


@pytest.mark.parametrize("hook, layer", [("blocks.3.hook_resid_pre", 3), (" blocks.2.hook_resid_post ", 3),
                                         ("blocks.0.hook_resid_post", 1)])
def test_hook_names_and_their_resid_post_alias_map_to_one_layer(hook, layer):
    assert layer_of(hook) == layer


@pytest.mark.parametrize("hook", ["blocks.1.hook_mlp_out", "blocks.x.hook_resid_pre", "hook_resid_pre", ""])
def test_other_hooks_are_not_residual_sites(hook):
    with pytest.raises(SiteError, match="not a residual-stream site; use blocks.<L>.hook_resid_pre"):
        layer_of(hook)


@pytest.mark.parametrize("spec, expected", [(None, [1, 15, 29]), ("default", [1, 15, 29]), ("29,1,1", [1, 29]),
                                            ("all", list(range(30))), ("every:10", [0, 10, 20])])
def test_layer_selectors(spec, expected):
    assert select_layers(spec, 30, "SmolLM2") == expected


def test_default_layers_for_tiny_models():
    assert default_layers(1) == [0] and default_layers(2) == [1] and default_layers(3) == [1, 2]


@pytest.mark.parametrize("spec, message", [("40", "layer 40: SmolLM2 has blocks 0-29; try --layers 1,15,29"),
                                           ("-1", "layer -1"), ("one", "not a layer number"),
                                           ("every:0", "every:<positive integer>")])
def test_bad_layers_name_the_range_and_a_fix(spec, message):
    with pytest.raises(SiteError, match=message) as info:
        select_layers(spec, 30, "SmolLM2")
    assert "\n" not in str(info.value)


def test_check_layer_rejects_bools_and_floats():
    with pytest.raises(SiteError):
        check_layer(True, 30)
    with pytest.raises(SiteError):
        check_layer(1.0, 30)


def test_default_depth_grid_has_five_layers_on_a_deep_model_and_fewer_on_a_shallow_one():
    from mcis_claims.sites import default_depth_layers

    assert default_depth_layers(30) == [1, 7, 15, 22, 29]
    assert default_depth_layers(18) == [1, 4, 9, 13, 17]
    assert default_depth_layers(3) == [1, 2] and default_depth_layers(1) == [0]
    assert select_layers(None, 30, depth=True) == [1, 7, 15, 22, 29]
    assert select_layers("1,29", 30, depth=True) == [1, 29]  # an explicit grid wins
