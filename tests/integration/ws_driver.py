"""A WebSocket client process for test_ws.py, on Debian's python3-websockets (run it with
/usr/bin/python3). It holds any number of connections and obeys one JSON command per stdin
line, answering one JSON line on stdout:

  {"op": "open", "id": ID, "url": URL, "max_queue": N, "read_limit": BYTES}
        -> {"ok": true} | {"ok": false, "status": HTTP status}   (max_queue 1 + a small
        read_limit and no recv: a client that stops reading its socket)
  {"op": "send", "id": ID, "text": TEXT[, "binary": true]}        -> {"ok": true}
  {"op": "recv", "id": ID, "timeout": S}   -> {"ok": true, "msg": PARSED} | {"ok": false, "timeout"|"closed": ...}
  {"op": "collect", "id": ID, "timeout": S, "until_type": T, "until_data": {k: v}}
        -> every message up to and including the first of type T whose data holds until_data:
           {"ok": true, "msgs": [...]} or {"ok": false, "timeout": true, "msgs": [...]}
  {"op": "close", "id": ID, "code": C}     -> {"ok": true, "code": the server's close code}
  {"op": "wait_closed", "id": ID, "timeout": S} -> {"ok": true, "code": C, "reason": R} | {"ok": false}
  {"op": "ping", "id": ID, "timeout": S}   -> {"ok": true} once the pong came back
  {"op": "quit"}
"""
import asyncio
import json
import sys

import websockets

conns = {}


def parse(text):
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return {"raw": text if isinstance(text, str) else repr(text)}


def matches(msg, typ, data):
    if msg.get("type") != typ:
        return False
    d = msg.get("data") or {}
    return all(d.get(k) == v for k, v in (data or {}).items())


async def handle(cmd):
    op = cmd["op"]
    ws = conns.get(cmd.get("id"))
    if op == "open":
        try:
            ws = await asyncio.wait_for(
                websockets.connect(cmd["url"], max_queue=cmd.get("max_queue", 4096),
                                   read_limit=cmd.get("read_limit", 2 ** 16), ping_interval=None,
                                   close_timeout=cmd.get("close_timeout", 10), max_size=2 ** 24),
                cmd.get("timeout", 30))
        except websockets.exceptions.InvalidStatusCode as e:
            return {"ok": False, "status": e.status_code}
        conns[cmd["id"]] = ws
        return {"ok": True}
    if op == "send":
        data = cmd["text"].encode() if cmd.get("binary") else cmd["text"]
        await ws.send(data)
        return {"ok": True}
    if op == "recv":
        try:
            return {"ok": True, "msg": parse(await asyncio.wait_for(ws.recv(), cmd.get("timeout", 10)))}
        except asyncio.TimeoutError:
            return {"ok": False, "timeout": True}
        except websockets.exceptions.ConnectionClosed as e:
            return {"ok": False, "closed": True, "code": e.code}
    if op == "collect":
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cmd.get("timeout", 30)
        msgs = []
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return {"ok": False, "timeout": True, "msgs": msgs}
            try:
                m = parse(await asyncio.wait_for(ws.recv(), left))
            except asyncio.TimeoutError:
                return {"ok": False, "timeout": True, "msgs": msgs}
            except websockets.exceptions.ConnectionClosed as e:
                return {"ok": False, "closed": True, "code": e.code, "msgs": msgs}
            msgs.append(m)
            if matches(m, cmd["until_type"], cmd.get("until_data")):
                return {"ok": True, "msgs": msgs}
    if op == "close":
        await ws.close(code=cmd.get("code", 1000))
        conns.pop(cmd["id"], None)
        return {"ok": True, "code": ws.close_code, "reason": ws.close_reason}
    if op == "wait_closed":
        try:
            await asyncio.wait_for(ws.wait_closed(), cmd.get("timeout", 30))
        except asyncio.TimeoutError:
            return {"ok": False, "timeout": True}
        return {"ok": True, "code": ws.close_code, "reason": ws.close_reason}
    if op == "ping":
        pong = await ws.ping()
        await asyncio.wait_for(pong, cmd.get("timeout", 10))
        return {"ok": True}
    return {"ok": False, "error": "unknown op %r" % op}


async def main():
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        try:
            reply = await handle(cmd)
        except Exception as e:  # noqa: BLE001 -- reported to the test, which fails on it
            reply = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    for ws in list(conns.values()):
        try:
            await asyncio.wait_for(ws.close(), 5)
        except Exception:  # noqa: BLE001 -- best effort at exit
            pass


if __name__ == "__main__":
    asyncio.run(main())
