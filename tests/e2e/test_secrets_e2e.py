"""A newcomer's secrets, with real processes: `sluice secret set` from stdin, a flow whose
http step sends the secret to a local server and whose code step sends it with `requests`
over its opt-in network (where bwrap can run), and the token nowhere else — not in
`runs show`, the run view, `flow show`, the stored steps or the server's log — then
`sluice secrets rotate` to a new key, after which the old key can be dropped."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg

from ops.ports import free_port
from tests.e2e.processes import sluice_env
from tests.e2e.test_serve import SLUICE, serving, stop, wait_for
from worker.sandbox import bwrap

TOKEN = "tok_e2e_5f4e3d2c1b0a-secret"
OLD_KEY = "hN0FZbLmC3Fq2v0l0cYv9m3yq8B4d7Gd2m2rX4x3r0M="
NEW_KEY = "Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg="
ADMIN = "admin-key-for-the-secrets-e2e"
NETWORK = bwrap.problem() is None
"""A code step's network needs the bwrap sandbox."""
CODE_STEP: dict[str, Any] = {
    "id": "code",
    "type": "code",
    "network": True,
    "secrets": ["API_TOKEN"],
    "requirements": ["requests==2.32.3"],
    "code": (
        "import requests\n"
        "def run(input, ctx):\n"
        "    token = ctx['secrets']['API_TOKEN']\n"
        "    r = requests.post(input['url'], json={'t': token},\n"
        "                      headers={'Authorization': 'Bearer ' + token}, timeout=10)\n"
        "    return {'status': r.status_code, 'body': r.json()}\n"
    ),
}


@contextmanager
def echo_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server that records each request and echoes its body."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            seen.append({"path": self.path, "auth": self.headers.get("authorization")})
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"echo": body.decode()}).encode())

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [*SLUICE, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout + done.stderr


def test_a_secret_is_sent_masked_everywhere_and_survives_a_key_rotation(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    base = {
        "SLUICE_DATABASE_URL": database_url,
        "SLUICE_PORT": str(port),
        "SLUICE_ADMIN_API_KEY": ADMIN,
        "SLUICE_HTTP_ALLOW_PRIVATE": "true",
        "SLUICE_URL": f"http://127.0.0.1:{port}",
    }
    env = sluice_env(**base, SLUICE_SECRETS_KEY=OLD_KEY)
    with echo_server() as (target, seen):
        flow = tmp_path / "calls.json"
        flow.write_text(
            json.dumps(
                {
                    "name": "calls",
                    "steps": [
                        {
                            "id": "call",
                            "type": "http",
                            "method": "POST",
                            "url": target + "/api?token={{ secrets.API_TOKEN }}",
                            "headers": {"Authorization": "Bearer {{ secrets.API_TOKEN }}"},
                            "body": {"token": "{{ secrets.API_TOKEN }}"},
                        },
                        *([CODE_STEP | {"input": {"url": target + "/code"}}] if NETWORK else []),
                    ],
                }
            )
        )
        with serving(env) as process:
            wait_for(f"http://127.0.0.1:{port}/ready", 200, process)
            created = json.loads(cli(env, "project", "create", "newcomer", "--json"))
            env["SLUICE_API_KEY"] = created["api_key"]
            said = cli(env, "secret", "set", "API_TOKEN", stdin=TOKEN + "\n")
            cli(env, "var", "set", "REGION", "eu-west-1")
            assert cli(env, "var", "get", "REGION").strip() == "eu-west-1"
            assert "eu-west-1" in cli(env, "var", "list")
            cli(env, "var", "delete", "REGION")
            assert "no vars" in cli(env, "var", "list")
            cli(env, "flow", "deploy", str(flow))
            reply = cli(env, "trigger", "calls", "--sync", "--json")
            run_id = json.loads(cli(env, "runs", "list", "--json"))["runs"][0]["id"]
            shown = cli(env, "runs", "show", run_id) + cli(env, "runs", "show", run_id, "--json")
            flow_shown = cli(env, "flow", "show", "calls")
            listed = cli(env, "secret", "list")
            _code, log = stop(process)
        assert seen[0]["auth"] == f"Bearer {TOKEN}"
        assert seen[0]["path"] == f"/api?token={TOKEN}"
        if NETWORK:
            assert seen[1] == {"path": "/code", "auth": f"Bearer {TOKEN}"}, seen
            assert '"status": 200' in shown or "status: 200" in shown
        for text in (said, reply, shown, flow_shown, listed):
            assert TOKEN not in text
        assert "***" in shown
        assert "calls" in listed  # the secret's user
        assert "HTTP Request:" not in log, "httpx's request lines (full URLs) are off"
        assert TOKEN not in log
        with psycopg.connect(database_url) as conn:
            stored = str(conn.execute("SELECT * FROM step_runs").fetchall())
            stored += str(conn.execute("SELECT * FROM secrets").fetchall())
        assert TOKEN not in stored

        rotated = cli(
            sluice_env(**base, SLUICE_SECRETS_KEY=f"{NEW_KEY},{OLD_KEY}"), "secrets", "rotate"
        )
        assert "re-encrypted 1 secret(s)" in rotated
        assert "older keys can be dropped" in rotated
        env = sluice_env(**base, SLUICE_SECRETS_KEY=NEW_KEY, SLUICE_API_KEY=created["api_key"])
        with serving(env) as process:
            wait_for(f"http://127.0.0.1:{port}/ready", 200, process)
            cli(env, "trigger", "calls", "--sync")
            stop(process)
        assert seen[-1]["auth"] == f"Bearer {TOKEN}", "decrypted under the new key alone"
    assert len(seen) == (4 if NETWORK else 2)
