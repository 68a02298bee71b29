"""Output manifests: every artifact is covered, so any change after signing changes the hash."""

import base64

import pytest
from hypothesis import given, strategies as st

from opgkit.manifest import Image, ManifestError, manifest_from_response

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def response(**overrides):
    return {
        "text": "The risk score is 0.12.",
        "images": [{"media_type": "image/png", "data": PNG}],
        "tool_calls": [{"name": "lookup", "arguments": {"symbol": "OPG", "depth": 2}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7},
    } | overrides


def test_hash__same_response__is_deterministic():
    assert manifest_from_response(response()).output_hash() == manifest_from_response(response()).output_hash()


def test_hash__image_as_data_uri_or_bytes__is_the_same():
    uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert manifest_from_response(response(images=[uri])).output_hash() == manifest_from_response(response()).output_hash()


def test_hash__tool_arguments_as_json_string__is_the_same():
    as_string = response(tool_calls=[{"name": "lookup", "arguments": '{"depth": 2, "symbol": "OPG"}'}])
    assert manifest_from_response(as_string).output_hash() == manifest_from_response(response()).output_hash()


def test_hash__one_image_byte_changed_after_signing__differs():
    """Regression: a design that signs only the text would not notice a swapped image."""
    tampered = bytearray(PNG)
    tampered[-1] ^= 0x01
    signed = manifest_from_response(response()).output_hash()
    assert manifest_from_response(response(images=[{"media_type": "image/png", "data": bytes(tampered)}])).output_hash() != signed


@given(
    text=st.text(max_size=40),
    image=st.binary(min_size=1, max_size=64),
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
def test_hash__any_single_change__differs(text, image, position, flip):
    base = manifest_from_response(response(text=text, images=[image]))
    index = position % len(image)
    changed_image = image[:index] + bytes([image[index] ^ flip]) + image[index + 1:]
    assert manifest_from_response(response(text=text, images=[changed_image])).output_hash() != base.output_hash()
    assert manifest_from_response(response(text=text + ".", images=[image])).output_hash() != base.output_hash()
    assert manifest_from_response(response(text=text, images=[image, image])).output_hash() != base.output_hash()


def test_manifest__lists_every_artifact():
    manifest = manifest_from_response(response()).as_dict()
    assert manifest["images"][0]["size"] == len(PNG) and manifest["images"][0]["mediaType"] == "image/png"
    assert manifest["toolCalls"] == [{"name": "lookup", "arguments": {"symbol": "OPG", "depth": 2}}]
    assert manifest["usage"] == {"prompt_tokens": 12, "completion_tokens": 7}


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"text": None}, "'text' string"),
        ({"images": ["http://example.com/a.png"]}, "data URI must look like"),
        ({"images": [3]}, "image 0 must be bytes"),
        ({"tool_calls": [{"arguments": {}}]}, "tool call 0 must be a mapping with a 'name'"),
        ({"tool_calls": [{"name": "f", "arguments": "{not json"}]}, "not JSON"),
        ({"usage": {"prompt_tokens": -1}}, "non-negative integers"),
        ({"tool_calls": [{"name": "f", "arguments": {"x": float("nan")}}]}, "cannot represent exactly"),
    ],
)
def test_manifest__bad_response__names_the_problem(bad, message):
    with pytest.raises(ManifestError, match=message):
        manifest_from_response(response(**bad)).output_hash()


def test_image__bad_base64__names_the_problem():
    with pytest.raises(ManifestError):
        Image.from_data_uri("data:image/png;base64,@@@")
