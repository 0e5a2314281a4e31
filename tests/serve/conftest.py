import openai
import pytest

from selfalign.serve import BackgroundServer


@pytest.fixture
def serve():
    """serve(app) -> a running BackgroundServer on a free 127.0.0.1 port, stopped after the test."""
    servers = []

    def start(app):
        server = BackgroundServer(app).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def client_for():
    """client_for(server) -> the official openai client pointed at it (no retries)."""
    clients = []

    def make(server):
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="EMPTY", max_retries=0, timeout=30)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
