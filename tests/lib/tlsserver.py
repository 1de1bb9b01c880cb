#!/usr/bin/python3
"""tlsserver: a line echo server on loopback for the transport tests.

    tlsserver.py MODE [--cert PEM --key PEM] [--host 127.0.0.1|::1]
                 [--lifetime SECONDS] [--rcvbuf BYTES]

Binds HOST on port 0, prints the port on a line of its own and serves each
connection on a thread until killed (or --lifetime passes, so that a
forgotten server never lingers). A small --rcvbuf makes a client's big
write wait for the socket. MODE:

  tls       TLS at once, then echo every line back
  starttls  plain text: "* OK ready", echo lines; the line "STARTTLS" gets
            "OK begin TLS" and the TLS handshake, then echo as in tls
  silent    accept and never say anything (a server stuck before TLS)

Commands understood while echoing (the reply is sent first):
  QUIT   "BYE", a TLS close_notify (when TLS is up), then close
  RESET  "BYE", then close with SO_LINGER 0 (a TCP reset)
  PAUSE  no reply; stop reading until the server gets SIGUSR1 (the
         client's writes back up meanwhile; one SIGUSR1 ends every PAUSE,
         also one that comes after it)

Python 3 standard library only; loopback only.
"""

import argparse
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time

# Set by SIGUSR1: PAUSE is over.
resume = threading.Event()
lifetime = 120


def reset_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    sock.close()


def quit_close(sock):
    if isinstance(sock, ssl.SSLSocket):
        # Sends our close_notify; the peer need not answer.
        sock.settimeout(0.5)
        try:
            sock.unwrap()
        except (OSError, ssl.SSLError):
            pass
    sock.close()


def serve(conn, mode, ctx):
    try:
        if mode == "silent":
            while conn.recv(4096):
                pass
            return
        if mode == "tls":
            conn = ctx.wrap_socket(conn, server_side=True)
        else:
            conn.sendall(b"* OK ready\r\n")
        buf = b""
        while True:
            data = conn.recv(65536)
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                cmd = line.rstrip(b"\r")
                if cmd == b"QUIT":
                    conn.sendall(b"BYE\r\n")
                    quit_close(conn)
                    return
                if cmd == b"RESET":
                    conn.sendall(b"BYE\r\n")
                    reset_close(conn)
                    return
                if cmd == b"PAUSE":
                    resume.wait(lifetime)
                    continue
                if cmd == b"STARTTLS" and mode == "starttls" and \
                        not isinstance(conn, ssl.SSLSocket):
                    conn.sendall(b"OK begin TLS\r\n")
                    conn = ctx.wrap_socket(conn, server_side=True)
                    buf = b""
                    continue
                conn.sendall(line + b"\n")
    except (OSError, ssl.SSLError) as e:
        print("tlsserver: %s" % e, file=sys.stderr, flush=True)
    finally:
        try:
            conn.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["tls", "starttls", "silent"])
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--host", default="127.0.0.1",
                    choices=["127.0.0.1", "::1"])
    ap.add_argument("--lifetime", type=float, default=120)
    ap.add_argument("--rcvbuf", type=int, default=0)
    args = ap.parse_args()
    global lifetime
    lifetime = args.lifetime
    signal.signal(signal.SIGUSR1, lambda *_: resume.set())

    ctx = None
    if args.mode != "silent":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if args.rcvbuf:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
    ls.bind((args.host, 0))
    ls.listen(16)
    print(ls.getsockname()[1], flush=True)

    deadline = time.monotonic() + args.lifetime
    ls.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            conn, _ = ls.accept()
        except socket.timeout:
            continue
        conn.settimeout(None)
        threading.Thread(target=serve, args=(conn, args.mode, ctx),
                         daemon=True).start()
    os._exit(0)


if __name__ == "__main__":
    main()
