#!/usr/bin/python3
"""One request to a qemu-pr-helper compatible daemon; prints the outcome as one JSON line.

Stop-gap client until the project's own TypeScript client can pass descriptors.
Usage: prh-probe.py SOCK DEVICE CDB_HEX [PARAM_HEX] [--rdonly] [--label NAME]
Protocol (pr-helper-protocol.md 1): read 4 bytes, write 4 zero bytes, send the 16-byte
CDB with the device fd (SCM_RIGHTS), then the PR OUT parameters; the reply is BE int32
result, BE int32 size, 96 sense bytes, then `size` payload bytes.
A UNIT ATTENTION (power on / reset) is retried once on a new connection.
"""
import json
import os
import socket
import struct
import sys


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def request(path, fd, cdb, param):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(path)
        server_features = recv_exact(sock, 4)
        sock.sendall(b"\0\0\0\0")
        socket.send_fds(sock, [cdb], [fd])
        if param:
            sock.sendall(param)
        try:
            header = recv_exact(sock, 104)
        except EOFError:
            return {"closed": True, "features": server_features.hex()}
        result, size = struct.unpack(">ii", header[:8])
        data = recv_exact(sock, size) if size > 0 else b""
        return {"closed": False, "features": server_features.hex(), "result": result,
                "size": size, "sense": header[8:26].hex(), "sense_rest_zero": not any(header[26:]),
                "data": data.hex()}


def sense_key(sense_hex):
    sense = bytes.fromhex(sense_hex)
    if len(sense) >= 3 and sense[0] & 0x7F in (0x70, 0x71):
        return sense[2] & 0x0F
    if len(sense) >= 2 and sense[0] & 0x7F in (0x72, 0x73):
        return sense[1] & 0x0F
    return None


def main():
    args, label, flags = [], None, os.O_RDWR
    argv = sys.argv[1:]
    while argv:
        arg = argv.pop(0)
        if arg == "--rdonly":
            flags = os.O_RDONLY
        elif arg == "--label":
            label = argv.pop(0)
        else:
            args.append(arg)
    if len(args) not in (3, 4):
        sys.exit(__doc__)
    path, device, cdb = args[0], args[1], bytes.fromhex(args[2]).ljust(16, b"\0")
    param = bytes.fromhex(args[3]) if len(args) == 4 else b""
    fd = os.open(device, flags)
    out = {"label": label, "device": device, "rdonly": flags == os.O_RDONLY, "cdb": cdb.hex()}
    try:
        reply = request(path, fd, cdb, param)
        retried = 0
        if not reply["closed"] and reply["result"] == 2 and sense_key(reply["sense"]) == 6:
            retried = 1
            reply = request(path, fd, cdb, param)
        out.update(reply, ua_retried=retried)
    except Exception as exc:  # reported, the host-side check decides
        out["error"] = "%s: %s" % (type(exc).__name__, exc)
    finally:
        os.close(fd)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
