"""The upload path of ``xvlm2vec publish`` against a local stand-in for the Hub API (no network).

The stand-in answers the few endpoints ``HfApi.create_repo`` / ``create_branch`` / ``upload_folder``
call, records every request, and asks for every file inline ("regular" upload mode), so the test
can rebuild the uploaded files from the commit and compare them with the dry-run folder.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from huggingface_hub import constants

from xvlm2vec.cli import main
from xvlm2vec.testing.tiny_model import save_tiny_model

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVER_LIFETIME_S = 120  # the stand-in stops by itself after this, even if a test hangs


class HubStandIn:
    """A tiny HTTP server on 127.0.0.1 playing the Hub API; ``requests`` holds (method, path, body)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.authorizations: list[str | None] = []  # Authorization header of each POST
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, payload: dict, status: int = 200) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stand_in.requests.append(("POST", self.path, body))
                stand_in.authorizations.append(self.headers.get("Authorization"))
                path = self.path.split("?")[0]
                if path == "/api/repos/create":
                    request = json.loads(body)
                    if request["name"] == "forbidden":
                        self._reply({"error": "You don't have the rights to create a model under this namespace"}, 403)
                        return
                    self._reply({"url": f"{stand_in.endpoint}/{request['organization']}/{request['name']}"})
                elif path == "/api/validate-yaml":
                    front = json.loads(body)["content"].split("---\n")[1]
                    ok = isinstance(yaml.safe_load(front), dict)
                    self._reply(
                        {"errors": [] if ok else [{"message": "bad YAML"}], "warnings": []}, 200 if ok else 400
                    )
                elif "/preupload/" in path:
                    files = json.loads(body)["files"]
                    self._reply(
                        {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
                    )
                elif "/branch/" in path:
                    self._reply({})
                elif "/commit/" in path:
                    repo = path.split("/commit/")[0].split("/", 3)[3]
                    self._reply({"commitUrl": f"{stand_in.endpoint}/{repo}/commit/{'a' * 40}", "commitOid": "a" * 40})
                else:
                    self._reply({"error": f"stand-in has no {path}"}, 404)

            def do_GET(self) -> None:  # noqa: N802
                stand_in.requests.append(("GET", self.path, b""))
                self._reply({"error": f"stand-in has no GET {self.path}"}, 404)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = 0.2
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        deadline = time.monotonic() + SERVER_LIFETIME_S
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.server.handle_request()
        self.server.server_close()

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout=5)

    def posts(self, fragment: str) -> list[bytes]:
        """Bodies of the POST requests whose path contains ``fragment``."""
        return [body for method, path, body in self.requests if method == "POST" and fragment in path]

    def committed_files(self, fragment: str) -> dict[str, bytes]:
        """Files of the one commit whose path contains ``fragment``, decoded from its ndjson payload."""
        (body,) = self.posts(fragment)
        lines = [json.loads(line) for line in body.decode().splitlines()]
        assert lines[0]["key"] == "header"
        return {
            line["value"]["path"]: base64.b64decode(line["value"]["content"])
            for line in lines[1:]
            if line["key"] == "file"
        }


@pytest.fixture
def hub(monkeypatch) -> Iterator[HubStandIn]:
    """A running stand-in, with huggingface_hub pointed at it (and its offline switch off for this test)."""
    stand_in = HubStandIn()
    monkeypatch.setattr(constants, "ENDPOINT", stand_in.endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_standin_token")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    yield stand_in
    stand_in.stop()


def staged_bytes(folder: Path) -> dict[str, bytes]:
    """Every file of a dry-run folder, by POSIX path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_model_upload_creates_the_repo_and_commits_the_dry_run_folder(hub, tmp_path, capsys):
    model_dir = save_tiny_model("qwen2_vl", tmp_path / "student")
    (model_dir / "training_args.bin").write_bytes(b"\x80\x04pickled")
    dry = tmp_path / "dry"
    assert (
        main(["publish", "model", str(model_dir), "--repo-id", "someone/tiny", "--dry-run", "--dry-run-dir", str(dry)])
        == 0
    )
    assert hub.requests == []  # a dry run makes no request
    assert (
        main(["publish", "model", str(model_dir), "--repo-id", "someone/tiny", "--private", "--revision", "v1"]) == 0
    )
    assert f"published model to {hub.endpoint}/someone/tiny" in capsys.readouterr().out

    (create,) = hub.posts("/api/repos/create")
    request = json.loads(create)
    assert request["name"] == "tiny" and request["organization"] == "someone"
    assert request.get("visibility") == "private" or request.get("private") is True
    assert request.get("type", "model") == "model"
    assert len(hub.posts("/api/models/someone/tiny/branch/v1")) == 1
    assert len(hub.posts("/api/validate-yaml")) == 1
    files = hub.committed_files("/api/models/someone/tiny/commit/v1")
    assert files == staged_bytes(dry)  # exactly the dry-run folder, byte for byte
    assert "training_args.bin" not in files
    assert set(hub.authorizations) == {"Bearer hf_standin_token"}
    # Besides the repo's own endpoints, huggingface_hub looks up its user-agent registry (404 here: tolerated).
    known = ("/api/repos/create", "/api/validate-yaml", "/api/models/someone/tiny/", "/api/agent-harnesses")
    assert [path for _, path, _ in hub.requests if not path.startswith(known)] == []


def test_metric_upload_goes_to_a_gradio_space(hub, tmp_path, capsys):
    dry = tmp_path / "someone" / "mmmeb"
    metric_dir = REPO_ROOT / "metrics" / "mmmeb"
    assert (
        main(
            [
                "publish",
                "metric",
                str(metric_dir),
                "--repo-id",
                "someone/mmmeb",
                "--dry-run",
                "--dry-run-dir",
                str(dry),
            ]
        )
        == 0
    )
    assert main(["publish", "metric", str(metric_dir), "--repo-id", "someone/mmmeb"]) == 0
    capsys.readouterr()
    request = json.loads(hub.posts("/api/repos/create")[0])
    assert request["type"] == "space" and request["sdk"] == "gradio"
    assert hub.committed_files("/api/spaces/someone/mmmeb/commit/main") == staged_bytes(dry)
    assert hub.posts("/branch/") == []  # no --revision: straight to main


def test_refused_folder_makes_no_request(hub, tmp_path, capsys):
    model_dir = save_tiny_model("qwen2_vl", tmp_path / "student")
    (model_dir / "pytorch_model.bin").write_bytes(b"\x80\x04")
    assert main(["publish", "model", str(model_dir), "--repo-id", "someone/tiny"]) == 2
    assert "pytorch_model.bin: pickle-based" in capsys.readouterr().err
    assert hub.requests == []


def test_hub_error_is_reported_and_nothing_is_committed(hub, tmp_path, capsys):
    model_dir = save_tiny_model("qwen2_vl", tmp_path / "student")
    assert main(["publish", "model", str(model_dir), "--repo-id", "someone/forbidden"]) == 1
    err = capsys.readouterr().err
    assert "the Hub refused the upload to someone/forbidden" in err and "403" in err
    assert hub.posts("/commit/") == []


@pytest.mark.parametrize("flags", [[], ["--public"]], ids=["default", "public"])
def test_repositories_are_private_unless_public_is_asked(hub, tmp_path, capsys, flags):
    model_dir = save_tiny_model("qwen2_vl", tmp_path / "student")
    assert main(["publish", "model", str(model_dir), "--repo-id", "someone/tiny", *flags]) == 0
    capsys.readouterr()
    (create,) = hub.posts("/api/repos/create")
    request = json.loads(create)
    private = request.get("visibility") == "private" or request.get("private") is True
    assert private == (flags != ["--public"])
