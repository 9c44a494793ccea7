"""Label Studio ML backend translation: labelling configs, predictions, brush RLE, image URLs."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from app.labeltools.errors import ImageSourceError, LabelConfigError, LabelToolError
from app.labeltools.ls_auth import jwt_claims
from app.labeltools.ls_config import (
    BRUSH,
    RECTANGLE,
    TEXTAREA,
    image_reference,
    parse_label_config,
    request_for_task,
)
from app.labeltools.ls_images import (
    ImageSource,
    LabelStudioAccess,
    fetch_image_bytes,
    resolve_image_reference,
)
from app.labeltools.ls_predictions import ControlOutput, build_prediction, model_version
from app.labeltools.ls_protocol import (
    empty_prediction,
    health_response,
    plan_predict,
    predict_response,
)
from app.labeltools.ls_rle import encode_ls_rle, mask_to_ls_rle
from app.tasks.mask_rle import ObjectMask
from app.tasks.parsing import DetectedObject, parse_objects
from app.tasks.prompts import CaptionStyle, TaskKind, build_prompt

VECTORS = json.loads((Path(__file__).parent / "fixtures" / "ls_rle_vectors.json").read_text())

TWO_LABEL_SETS = """
<View>
  <Image name="image" value="$image" zoom="true"/>
  <RectangleLabels name="animals" toName="image">
    <Label value="Cat" background="red"/>
    <Label value="Dog" background="blue"/>
  </RectangleLabels>
  <BrushLabels name="vehicles" toName="image">
    <Label value="Car"/>
  </BrushLabels>
  <TextArea name="caption_de" toName="image"/>
</View>
"""


def _vector_mask(case: dict) -> np.ndarray:
    height, width = case["shape"]
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(case["packed_bits"]), np.uint8))
    return bits[: height * width].reshape(height, width).astype(bool)


def _vector_values(case: dict) -> np.ndarray:
    return np.concatenate([np.full(count, value, np.uint8) for value, count in case["runs"]])


# --- brush RLE -------------------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda case: case["name"])
def test_rle_bytes_equal_label_studio_sdk_vectors(case: dict) -> None:
    """Bytes recorded from label-studio-sdk's converter (tests/fixtures/make_ls_rle_vectors.py)."""
    if case["kind"] == "mask":
        assert mask_to_ls_rle(_vector_mask(case)) == case["rle"]
    else:
        assert encode_ls_rle(_vector_values(case)) == case["rle"]


def test_rle_equals_the_installed_sdk_on_random_masks_and_decodes_back() -> None:
    brush = pytest.importorskip("label_studio_sdk.converter.brush")
    rng = np.random.default_rng(2026)
    for trial in range(150):
        height, width = (int(v) for v in rng.integers(1, 70, 2))
        mask = rng.random((height, width)) < rng.random()
        if trial % 10 == 0:  # smooth blobs, like real masks, with long runs
            mask = np.zeros((height, width), bool)
            mask[height // 4 : 3 * height // 4 + 1, width // 5 :] = True
        ours = mask_to_ls_rle(mask)
        assert ours == brush.mask2rle(mask.astype(np.uint8) * 255), (height, width, trial)
        decoded = brush.decode_rle(ours).reshape(height, width, 4)
        assert np.array_equal(decoded[:, :, 0] == 255, mask)
        assert np.array_equal(decoded[:, :, 3], decoded[:, :, 0])
    values = rng.integers(0, 256, 2000).astype(np.uint8)
    values[500:1500] = 9  # one long run among lone values
    assert encode_ls_rle(values) == brush.encode_rle(values)


def test_rle_refuses_what_label_studio_cannot_hold() -> None:
    with pytest.raises(ValueError):
        mask_to_ls_rle(np.zeros((0, 4), bool))
    with pytest.raises(ValueError):
        mask_to_ls_rle(np.zeros((2, 2, 2), bool))
    with pytest.raises(ValueError):
        encode_ls_rle(np.array([1, 256]))


# --- labelling config ------------------------------------------------------------------


def test_config_with_two_label_sets_and_a_caption() -> None:
    plan = parse_label_config(TWO_LABEL_SETS)
    by_name = {control.from_name: control for control in plan.controls}
    assert list(by_name) == ["animals", "vehicles", "caption_de"]

    animals = by_name["animals"]
    assert (animals.result_type, animals.to_name, animals.image.value_key) == (
        RECTANGLE, "image", "image")
    assert animals.labels == ("Cat", "Dog")
    assert build_prompt(animals.request) == "detect Cat ; Dog"

    vehicles = by_name["vehicles"]
    assert vehicles.result_type == BRUSH
    assert build_prompt(vehicles.request) == "segment Car"

    caption = by_name["caption_de"]
    assert caption.result_type == TEXTAREA
    assert build_prompt(caption.request) == "caption de"
    assert plan.ignored == ()


@pytest.mark.parametrize(
    ("name", "prompt"),
    [
        ("caption", "caption en"),
        ("short_caption", "cap en"),  # "short" before "caption": the short style
        ("description", "describe en"),
        ("transcription", "ocr"),
        ("ocr_text", "ocr"),
        ("image_caption_fr", "caption fr"),
    ],
)
def test_textarea_name_picks_the_task(name: str, prompt: str) -> None:
    plan = parse_label_config(
        f'<View><Image name="img" value="$photo"/><TextArea name="{name}" toName="img"/></View>'
    )
    (control,) = plan.controls
    assert build_prompt(request_for_task(control, {"photo": "/data/upload/1/a.jpg"})) == prompt
    assert control.request.caption_style in tuple(CaptionStyle)


def test_answer_textarea_takes_the_question_from_the_task() -> None:
    plan = parse_label_config(
        '<View><Image name="img" value="$image"/><Text name="q" value="$question"/>'
        '<TextArea name="answer" toName="img"/></View>'
    )
    (control,) = plan.controls
    assert control.request.kind is TaskKind.ASK
    request = request_for_task(control, {"image": "x", "question": " What colour is it? "})
    assert build_prompt(request) == "answer en What colour is it?"
    with pytest.raises(LabelConfigError, match='"question" field'):
        request_for_task(control, {"image": "x"})


def test_controls_palidesk_does_not_fill_are_named_in_ignored() -> None:
    plan = parse_label_config(
        '<View><Image name="img" value="$image"/>'
        '<TextArea name="comments" toName="img"/>'
        '<TextArea name="transcription" toName="img" perRegion="true"/>'
        '<Choices name="mood" toName="img"><Choice value="happy"/></Choices>'
        '<RectangleLabels name="boxes" toName="img"><Label value="a;b"/>'
        '<Label value="person"/></RectangleLabels></View>'
    )
    assert [c.from_name for c in plan.controls] == ["boxes"]
    assert plan.controls[0].labels == ("person",)
    text = " ".join(plan.ignored)
    assert '"comments"' in text and "per region" in text and "Choices" in text
    assert '"a;b"' in text


def test_image_reference_reads_the_field_the_image_tag_names() -> None:
    (control, *_) = parse_label_config(TWO_LABEL_SETS).controls
    assert image_reference(control, {"image": " /data/upload/2/x.png "}) == "/data/upload/2/x.png"
    with pytest.raises(LabelConfigError, match='"image" field'):
        image_reference(control, {"picture": "/data/upload/2/x.png"})


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<View><Image name="image" value="$image"/>
<RectangleLabels name="l" toName="image"><Label value="&lol9;"/></RectangleLabels></View>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE v [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<View><Image name="image" value="$image"/>
<RectangleLabels name="l" toName="image"><Label value="&secret;"/></RectangleLabels></View>"""


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["bomb", "external"])
def test_entities_are_refused_before_any_expansion(xml: str) -> None:
    started = time.perf_counter()
    with pytest.raises(LabelConfigError, match="DTD or entities"):
        parse_label_config(xml)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("xml", "words"),
    [
        ("", "empty"),
        ("<View><Image name='i' value='$i'>", "not valid XML"),
        ("<View><TextArea name='caption' toName='i'/></View>", "no <Image"),
        ("<View><Image name='i' value='$i'/><Choices name='c' toName='i'/></View>",
         "nothing PaliDesk can fill"),
        ("<View>" + "x" * 1_000_001 + "</View>", "characters long"),
    ],
)
def test_unusable_configs_get_a_sentence(xml: str, words: str) -> None:
    with pytest.raises(LabelConfigError, match=words):
        parse_label_config(xml)


# --- predictions -----------------------------------------------------------------------


def _controls() -> dict:
    return {c.from_name: c for c in parse_label_config(TWO_LABEL_SETS).controls}


def test_rectangles_are_percent_of_a_non_square_image() -> None:
    width, height = 640, 360
    # y_min, x_min, y_max, x_max codes; "cat" is re-cased to the config's "Cat".
    text = "<loc0100><loc0512><loc0900><loc1023> cat ; <loc0000><loc0000><loc1023><loc1023> dog"
    objects = parse_objects(text + " ; <loc0001><loc0002><loc0003><loc0004> bird", (width, height))
    prediction = build_prediction([ControlOutput(_controls()["animals"], objects)],
                                  (width, height), "pg:Q8_0")
    cat, dog = prediction["result"]  # the bird is not a config label: left out
    assert cat["value"]["rectanglelabels"] == ["Cat"]
    assert dog["value"]["rectanglelabels"] == ["Dog"]
    value = cat["value"]
    assert value["x"] == pytest.approx(512 / 1023 * 100)
    assert value["y"] == pytest.approx(100 / 1023 * 100)
    assert value["width"] == pytest.approx((1023 - 512) / 1023 * 100)
    assert value["height"] == pytest.approx(800 / 1023 * 100)
    # Back to pixels as Label Studio draws it: the object's pixel box.
    assert value["x"] / 100 * width == pytest.approx(objects[0].box[0])
    assert (value["y"] + value["height"]) / 100 * height == pytest.approx(objects[0].box[3])
    assert value["rotation"] == 0
    assert (cat["original_width"], cat["original_height"]) == (640, 360)
    assert (cat["from_name"], cat["to_name"], cat["type"]) == ("animals", "image", RECTANGLE)
    assert dog["value"]["width"] == dog["value"]["height"] == pytest.approx(100)
    assert prediction["model_version"] == "pg:Q8_0" and "score" not in prediction
    assert len({r["id"] for r in prediction["result"]}) == 2


def test_brush_result_is_label_studio_rle_of_the_objects_mask() -> None:
    case = next(c for c in VECTORS["cases"] if c["name"] == "ellipse_64x48")
    mask = _vector_mask(case)
    height, width = mask.shape
    car = DetectedObject("car", (8, 5, 52, 35), (100, 100, 700, 800), (1,) * 16,
                         ObjectMask.from_array(mask))
    no_mask = DetectedObject("Car", (0, 0, 10, 10), (0, 0, 200, 200), None, None)
    prediction = build_prediction(
        [ControlOutput(_controls()["vehicles"], [car, no_mask])], (width, height),
        model_version("paligemma2-3b-mix-448", "Q4_K_M"), score=0.5)
    (result,) = prediction["result"]  # the object without a mask has no brush to give
    assert result["type"] == BRUSH and result["value"]["brushlabels"] == ["Car"]
    assert result["value"]["format"] == "rle"
    assert result["value"]["rle"] == case["rle"]  # the sdk's bytes for this mask
    assert prediction["model_version"] == "paligemma2-3b-mix-448:Q4_K_M"
    assert prediction["score"] == 0.5
    with pytest.raises(ValueError, match="image is"):
        build_prediction([ControlOutput(_controls()["vehicles"], [car])], (48, 64), "v")


def test_textarea_result_holds_the_text() -> None:
    prediction = build_prediction(
        [ControlOutput(_controls()["caption_de"], text=" eine Katze auf dem Sofa "),
         ControlOutput(_controls()["animals"], [])], (10, 20), "v")
    (result,) = prediction["result"]
    assert result["value"] == {"text": ["eine Katze auf dem Sofa"]}
    assert (result["from_name"], result["type"]) == ("caption_de", TEXTAREA)


# --- image URLs ------------------------------------------------------------------------

ACCESS = LabelStudioAccess(url="http://localhost:8080", api_key="k3y")


def test_upload_url_is_fetched_from_label_studio_with_its_key() -> None:
    for reference in ("/data/upload/3/abc.jpg", "http://LOCALHOST:8080/data/upload/3/abc.jpg"):
        source = resolve_image_reference(reference, ACCESS)
        assert source.url == "http://localhost:8080/data/upload/3/abc.jpg"
        assert (source.label_studio_url, source.api_key) == ("http://localhost:8080", "k3y")


@pytest.mark.parametrize(
    "reference",
    [
        "http://evil.example.com/data/upload/3/abc.jpg",
        "http://localhost:9999/data/upload/3/abc.jpg",
        "https://localhost:8080/data/upload/3/abc.jpg",
        "http://localhost:8080@evil.example.com/data/upload/1.jpg",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_a_url_on_another_host_is_refused(reference: str) -> None:
    with pytest.raises(ImageSourceError, match="only from the Label Studio at"):
        resolve_image_reference(reference, ACCESS)


@pytest.mark.parametrize(
    ("reference", "words"),
    [
        ("s3://bucket/cat.jpg", '"s3:"'),
        ("file:///etc/passwd", '"file:"'),
        ("//evil.example.com/x.jpg", "not a Label Studio image URL"),
        ("cat.jpg", "not a Label Studio image URL"),
        ("", "empty"),
    ],
)
def test_other_references_are_refused(reference: str, words: str) -> None:
    with pytest.raises(ImageSourceError, match=words):
        resolve_image_reference(reference, ACCESS)


def test_without_a_label_studio_address_nothing_is_fetched() -> None:
    with pytest.raises(ImageSourceError, match="LABEL_STUDIO_URL"):
        resolve_image_reference("/data/upload/3/abc.jpg", LabelStudioAccess())
    with pytest.raises(ImageSourceError, match="LABEL_STUDIO_URL"):
        resolve_image_reference("http://localhost:8080/data/upload/3/a.jpg", LabelStudioAccess())


def test_access_from_environment(tmp_path: Path) -> None:
    access = LabelStudioAccess.from_env({
        "LABEL_STUDIO_URL": "http://ls:8080/", "LABEL_STUDIO_API_KEY": "abc",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(tmp_path)})
    assert access == LabelStudioAccess("http://ls:8080/", "abc", tmp_path)
    assert LabelStudioAccess.from_env({}) == LabelStudioAccess()
    # A Label Studio served under a sub-path keeps it.
    source = resolve_image_reference("/data/upload/1/a.png",
                                     LabelStudioAccess("http://ls:8080/studio/"))
    assert source.url == "http://ls:8080/studio/data/upload/1/a.png" and source.api_key is None


@pytest.fixture
def local_files(tmp_path: Path) -> LabelStudioAccess:
    root = tmp_path / "allowed"
    (root / "photos").mkdir(parents=True)
    (root / "photos" / "cat one.png").write_bytes(b"\x89PNG cat")
    (tmp_path / "secret.txt").write_text("private")
    return LabelStudioAccess(local_files_root=root)


def test_local_file_inside_the_allowed_folder_is_read(local_files: LabelStudioAccess) -> None:
    source = resolve_image_reference("/data/local-files/?d=photos/cat%20one.png", local_files)
    assert source.path == (local_files.local_files_root / "photos" / "cat one.png").resolve()
    assert fetch_image_bytes(source) == b"\x89PNG cat"
    # Label Studio's rule: d is relative to the folder, a leading "/" too; the last d wins.
    leading_slash = resolve_image_reference("/data/local-files/?d=x&d=/photos/cat one.png",
                                            local_files)
    assert leading_slash.path == source.path


@pytest.mark.parametrize(
    ("d", "words"),
    [
        ("../secret.txt", "climbs out"),
        ("photos%2F..%2F..%2Fsecret.txt", "climbs out"),
        ("photos\\..\\..\\secret.txt", "climbs out"),
        ("photos/missing.png", "does not exist"),
        ("photos", "not a file"),
        ("", "names no file"),
    ],
)
def test_local_files_escape_is_refused(
    local_files: LabelStudioAccess, d: str, words: str
) -> None:
    with pytest.raises(ImageSourceError, match=words):
        resolve_image_reference(f"/data/local-files/?d={d}", local_files)


def test_absolute_path_and_symlink_out_of_the_folder_are_refused(
    local_files: LabelStudioAccess, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    with pytest.raises(ImageSourceError, match="does not exist in"):  # read under the folder
        resolve_image_reference(f"/data/local-files/?d={secret}", local_files)
    link = local_files.local_files_root / "photos" / "link.png"
    try:
        os.symlink(secret, link)
    except OSError:
        pytest.skip("this file system cannot make symlinks")
    with pytest.raises(ImageSourceError, match="outside"):
        resolve_image_reference("/data/local-files/?d=photos/link.png", local_files)


@pytest.mark.parametrize(
    "reference",
    [
        "http://localhost:99999/data/upload/3/abc.jpg",  # port out of range
        "http://localhost:abc/data/upload/3/abc.jpg",  # port not a number
        "http://[::1/data/upload/3/abc.jpg",  # unclosed IPv6 bracket
        "/data/local-files/?d=photos/cat%00.png",  # NUL byte in the path
    ],
)
def test_malformed_references_get_a_sentence_not_a_crash(
    local_files: LabelStudioAccess, reference: str
) -> None:
    # urlsplit and Path.resolve raise ValueError on these; /predict catches only
    # LabelToolError per task, so a ValueError failed the whole batch with a 500.
    access = LabelStudioAccess("http://localhost:8080", "k3y", local_files.local_files_root)
    with pytest.raises(ImageSourceError):
        resolve_image_reference(reference, access)


def _jwt(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


REFRESH = _jwt({"token_type": "refresh", "exp": 4_000_000_000})
ACCESS_TOKEN = _jwt({"token_type": "access", "exp": 4_000_000_000})


class _LabelStudioStandIn(BaseHTTPRequestHandler):
    """Answers like Label Studio's /data/upload: needs "Token k3y" or a Bearer access token
    from /api/token/refresh/ (which takes REFRESH only)."""

    refreshes = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/api/token/refresh/" or body.get("refresh") != REFRESH:
            self.send_error(401)
            return
        type(self).refreshes += 1
        self._send(json.dumps({"access": ACCESS_TOKEN}).encode())

    def do_GET(self) -> None:
        if self.headers.get("Authorization") not in ("Token k3y", f"Bearer {ACCESS_TOKEN}"):
            self.send_error(401)
        elif self.path == "/data/upload/1/cat.png":
            self._send(b"\x89PNG" + bytes(range(256)) * 4)
        elif self.path == "/data/upload/1/big.png":
            self._send(b"x" * 5000)
        elif self.path == "/data/upload/1/moved.png":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/")
            self.end_headers()
        elif self.path == "/data/upload/1/slow.png":
            time.sleep(1.5)
            self._send(b"late")
        else:
            self.send_error(404)

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture
def label_studio() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LabelStudioStandIn)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_from_label_studio_sends_the_key(label_studio: str) -> None:
    access = LabelStudioAccess(url=label_studio, api_key="k3y")
    source = resolve_image_reference("/data/upload/1/cat.png", access)
    assert fetch_image_bytes(source) == b"\x89PNG" + bytes(range(256)) * 4
    wrong_key = resolve_image_reference("/data/upload/1/cat.png",
                                        LabelStudioAccess(url=label_studio, api_key="nope"))
    with pytest.raises(ImageSourceError, match="LABEL_STUDIO_API_KEY"):
        fetch_image_bytes(wrong_key)
    with pytest.raises(ImageSourceError, match="404"):
        fetch_image_bytes(resolve_image_reference("/data/upload/1/gone.png", access))


def test_personal_access_tokens_are_exchanged_once_and_sent_as_bearer(label_studio: str) -> None:
    assert jwt_claims(REFRESH) == {"token_type": "refresh", "exp": 4_000_000_000}
    assert jwt_claims("k3y") is None and jwt_claims("a.b.c") is None
    _LabelStudioStandIn.refreshes = 0
    access = LabelStudioAccess(url=label_studio, api_key=REFRESH)
    for _ in range(3):
        source = resolve_image_reference("/data/upload/1/cat.png", access)
        assert fetch_image_bytes(source).startswith(b"\x89PNG")
    assert _LabelStudioStandIn.refreshes == 1  # the access token is kept until it expires
    # An access token is sent as it is.
    direct = LabelStudioAccess(url=label_studio, api_key=ACCESS_TOKEN)
    assert fetch_image_bytes(resolve_image_reference("/data/upload/1/cat.png", direct))
    assert _LabelStudioStandIn.refreshes == 1
    stranger = _jwt({"token_type": "refresh", "exp": 4_000_000_000, "user": 2})
    refused = LabelStudioAccess(url=label_studio, api_key=stranger)
    with pytest.raises(ImageSourceError, match="refused the API key"):
        fetch_image_bytes(resolve_image_reference("/data/upload/1/cat.png", refused))


def test_fetch_refuses_redirects_big_and_slow_images(label_studio: str) -> None:
    access = LabelStudioAccess(url=label_studio, api_key="k3y")
    with pytest.raises(ImageSourceError, match="redirect"):
        fetch_image_bytes(resolve_image_reference("/data/upload/1/moved.png", access))
    with pytest.raises(ImageSourceError, match="larger than 4,096 bytes"):
        fetch_image_bytes(resolve_image_reference("/data/upload/1/big.png", access),
                          max_bytes=4096)
    started = time.monotonic()
    with pytest.raises(ImageSourceError, match="could not read"):
        fetch_image_bytes(resolve_image_reference("/data/upload/1/slow.png", access),
                          timeout_s=0.3)
    assert time.monotonic() - started < 1.4


def test_fetch_of_a_local_file_respects_the_size_limit(local_files: LabelStudioAccess) -> None:
    source = resolve_image_reference("/data/local-files/?d=photos/cat%20one.png", local_files)
    with pytest.raises(ImageSourceError, match="larger than"):
        fetch_image_bytes(source, max_bytes=3)
    with pytest.raises(ImageSourceError, match="no image"):
        fetch_image_bytes(ImageSource())


# --- the /predict request as jobs ------------------------------------------------------


def test_predict_body_becomes_one_plan_per_task_and_bad_tasks_do_not_sink_the_rest() -> None:
    body = {
        "tasks": [
            {"id": 7, "data": {"image": "/data/upload/1/cat.png"}},
            {"id": 8, "data": {"image": "http://evil.example.com/x.png"}},
            {"id": 9, "data": {"picture": "/data/upload/1/dog.png"}},
        ],
        "label_config": TWO_LABEL_SETS,
        "project": "3.1700000000",
        "params": {"context": {}},
    }
    plan, tasks = plan_predict(body, ACCESS)
    assert [c.from_name for c in plan.controls] == ["animals", "vehicles", "caption_de"]
    first, second, third = tasks
    assert first.task_id == 7 and first.errors == ()
    assert [build_prompt(job.request) for job in first.jobs] == [
        "detect Cat ; Dog", "segment Car", "caption de"]
    assert {job.image.url for job in first.jobs} == {"http://localhost:8080/data/upload/1/cat.png"}
    assert second.jobs == () and "another host" in second.errors[0]
    assert len(second.errors) == 1  # one sentence, not one per control
    assert third.jobs == () and '"image" field' in third.errors[0]
    assert predict_response([empty_prediction("v")]) == {
        "results": [{"result": [], "model_version": "v"}]}
    assert health_response()["status"] == "UP"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([], "JSON object"),
        ({"label_config": TWO_LABEL_SETS}, '"tasks"'),
        ({"tasks": [{"data": {}}] * 101, "label_config": TWO_LABEL_SETS}, "up to 100"),
        ({"tasks": [{"data": {}}]}, "label_config"),
        ({"tasks": [{"data": {}}], "label_config": BILLION_LAUGHS}, "DTD"),
    ],
)
def test_unusable_predict_bodies_get_a_sentence(body: object, words: str) -> None:
    with pytest.raises(LabelToolError, match=words):
        plan_predict(body, ACCESS)  # type: ignore[arg-type]
