"""A server whose engine cannot load stops by itself with a failure, instead of answering 503
forever: `shadowkv serve` exits non-zero and the orchestrator sees why in the log."""
import socket
import threading

import uvicorn

from server.app import build_app
from server.launch import DrainingServer
from shadowkv_engine.config import EngineConfig


def test_server_stops_when_the_engine_cannot_load(tmp_path, caplog):
    app = build_app(EngineConfig(model=str(tmp_path / "missing-model"), device="cpu"))
    server = DrainingServer(uvicorn.Config(app, log_level="critical"), app.state.server,
                            shutdown_timeout=1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        thread.join(timeout=60)
        server.should_exit = True  # only matters if the test is about to fail
    assert not thread.is_alive()
    assert server.failed
    assert app.state.server.status == "failed"
    assert "could not load the engine" in caplog.text
