"""Free loopback ports for the end-to-end tests (pipeline.sh takes its ports from variables)."""
import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
