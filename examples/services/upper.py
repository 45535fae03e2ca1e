#!/usr/bin/python3
"""upper.py — an external Bayeux service in Python (python3-redis), answering remote calls on a
/service/ channel listed in the workers' `externalServices`.

The workers append each call to the Redis stream <prefix>svc:<channel> (consumer group "bayeux").
This process reads it with XREADGROUP, answers with FCALL bx_ext_answer (the reply reaches only
the caller), then XACKs. Requests a dead consumer left pending are taken over with XAUTOCLAIM once
idle longer than --claim-idle-ms. An answer after the caller's deadline is refused by the broker
("late") and logged here; the caller already got 406::timeout.

  /usr/bin/python3 examples/services/upper.py --redis 127.0.0.1:6379 --prefix bayeux: --channel /service/upper

Call data {"text": "..."} → result {"text": "...upper-cased...", "user": <caller's user id>, "by": <consumer>}.
--delay-ms and --die-after-read exist for the tests (a slow service, a consumer that crashes).
"""
import argparse
import json
import logging
import os
import sys
import time

import redis

GROUP = "bayeux"


def answer(r, prefix, fields, consumer, delay_ms):
    """Compute and send the answer of one request; returns the broker's verdict."""
    try:
        data = json.loads(fields.get("data", "null"))
    except ValueError:
        data = None
    if delay_ms:
        time.sleep(delay_ms / 1000.0)
    if isinstance(data, dict) and isinstance(data.get("text"), str):
        result = {"text": data["text"].upper(), "user": fields.get("user", ""), "by": consumer}
        args = (json.dumps(result), "")
    else:
        args = ("null", "400::text_expected")
    return r.execute_command("FCALL", "bx_ext_answer", 0, prefix, fields["req"], *args)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redis", default="127.0.0.1:6379", help="host:port")
    ap.add_argument("--prefix", default="bayeux:")
    ap.add_argument("--channel", default="/service/upper")
    ap.add_argument("--consumer", default="upper-%d" % os.getpid())
    ap.add_argument("--claim-idle-ms", type=int, default=5000)
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--die-after-read", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s " + a.consumer + " %(levelname)s %(message)s")
    host, port = a.redis.rsplit(":", 1)
    r = redis.Redis(host=host, port=int(port), decode_responses=True)
    stream = a.prefix + "svc:" + a.channel
    try:
        r.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise
    logging.info("serving %s from stream %s", a.channel, stream)
    while True:
        # Requests left pending by a consumer that died first, then new ones.
        _, entries, *_ = r.xautoclaim(stream, GROUP, a.consumer, a.claim_idle_ms, "0-0", count=10)
        claimed = bool(entries)
        if not entries:
            got = r.xreadgroup(GROUP, a.consumer, {stream: ">"}, count=10, block=1000)
            entries = got[0][1] if got else []
        for eid, fields in entries:
            if not fields or "req" not in fields:
                r.xack(stream, GROUP, eid)
                continue
            if a.die_after_read:
                logging.info("request %s read; dying without an answer (--die-after-read)", fields["req"])
                sys.stdout.flush()
                os._exit(3)
            verdict = answer(r, a.prefix, fields, a.consumer, a.delay_ms)
            if verdict == "late":
                logging.warning("request %s answered after its deadline: dropped by the broker", fields["req"])
            else:
                logging.info("request %s%s answered: %s", fields["req"], " (claimed)" if claimed else "", verdict)
            r.xack(stream, GROUP, eid)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
