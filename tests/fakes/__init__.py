"""Local stand-ins for Google Cloud endpoints that the real Google clients and provider hooks talk to.

- ``gcs``: Cloud Storage (gcp-storage-emulator, JSON API over HTTP).
- ``vertex`` (+ ``vertex_models``): Vertex AI JobService, ModelService and Operations (gRPC over TLS).
- ``tls``: the self-signed certificate the gRPC endpoints serve, trusted through gRPC's roots file.
- ``fixtures``: the pytest fixtures (``gcs_endpoint``, ``vertex_endpoint``), a plugin of tests/conftest.py.
"""
