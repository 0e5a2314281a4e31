import openai
import pytest



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
