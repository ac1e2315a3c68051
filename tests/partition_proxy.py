"""A TCP proxy on 127.0.0.1 that a test can freeze to partition one "host" from the database.

    python tests/partition_proxy.py TARGET_HOST TARGET_PORT

Listens on a free port, prints it on one line, then copies bytes both ways for every
connection. The test freezes the partition with SIGSTOP (connections stay open, nothing
passes, exactly what a host sees when the network between it and the database goes silent)
and lifts it with SIGCONT. Stdlib only, one thread, so a stopped process stops everything."""

from __future__ import annotations

import selectors
import socket
import sys


def main(target_host: str, target_port: int) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    print(listener.getsockname()[1], flush=True)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    while True:
        for key, _ in sel.select():
            if key.data is None:
                client, _ = listener.accept()
                server = socket.create_connection((target_host, target_port))
                sel.register(client, selectors.EVENT_READ, server)
                sel.register(server, selectors.EVENT_READ, client)
                continue
            source, sink = key.fileobj, key.data
            assert isinstance(source, socket.socket)
            if source.fileno() == -1:
                continue  # closed with its peer earlier in this batch of events
            try:
                chunk = source.recv(65536)
                if chunk:
                    sink.sendall(chunk)
                    continue
            except OSError:
                pass
            for each in (source, sink):
                sel.unregister(each)
                each.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
