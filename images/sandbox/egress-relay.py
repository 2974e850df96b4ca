#!/usr/bin/python3
"""Pincer's egress relay inside a Docker sandbox (network egress granted).

    pincer-egress-relay -- CMD ARGS...

Listens on 127.0.0.1:3128 in the container's own network namespace (which has no
interface but loopback), forks a relay that carries every connection to the executor's
guarded proxy on the UNIX socket /run/pincer-egress.sock (bind-mounted read-only), then
replaces itself with CMD. HTTP_PROXY and friends, set by the executor, point at the
listener. The relay has no rules of its own: the proxy decides what goes out.
"""

import os
import socket
import sys
import threading

LISTEN = ("127.0.0.1", 3128)
PROXY_SOCKET = "/run/pincer-egress.sock"
# Each connection takes two threads of the container's pids limit.
MAX_CONNECTIONS = 16
CHUNK = 65536


def refuse(client, status, why):
    body = ("pincer sandbox: %s\n" % why).encode()
    head = "HTTP/1.1 %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % (
        status,
        len(body),
    )
    try:
        client.sendall(head.encode() + body)
    except OSError:
        pass
    client.close()


def pump(src, dst):
    try:
        while True:
            data = src.recv(CHUNK)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def carry(client, slots):
    try:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(PROXY_SOCKET)
        except OSError as e:
            refuse(client, "502 Bad Gateway", "the egress proxy is not reachable (%s)" % e.strerror)
            return
        up = threading.Thread(target=pump, args=(client, upstream), daemon=True)
        up.start()
        pump(upstream, client)
        up.join()
        upstream.close()
        client.close()
    finally:
        slots.release()


def serve(listener):
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            continue
        if not slots.acquire(blocking=False):
            refuse(client, "503 Service Unavailable", "too many connections at once")
            continue
        threading.Thread(target=carry, args=(client, slots), daemon=True).start()


def main(argv):
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: pincer-egress-relay -- CMD ARGS...\n")
        return 125
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(LISTEN)
        listener.listen(128)
    except OSError as e:
        sys.stderr.write("pincer-egress-relay: cannot listen on %s:%d: %s\n" % (LISTEN[0], LISTEN[1], e.strerror))
        return 125
    if os.fork() == 0:
        # The relay: no stdio (the command's output is the call's), nothing but the
        # listener and the connections it makes.
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        try:
            serve(listener)
        finally:
            os._exit(0)
    listener.close()
    try:
        os.execvp(argv[2], argv[2:])
    except OSError as e:
        sys.stderr.write("pincer-egress-relay: %s: %s\n" % (argv[2], e.strerror))
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv))
