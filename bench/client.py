#!/usr/bin/python3
"""A light CRI Status load generator for the benchmarks (Debian's python3-grpcio, grpc.aio).

It calls /runtime.v1.RuntimeService/Status with raw bytes (identity serializers), so no protobuf
code runs on the client: an empty body is StatusRequest{verbose: false}, b"\\x08\\x01" is
StatusRequest{verbose: true}. One channel (one HTTP/2 connection, as kubelet uses), N asyncio
tasks issuing calls back to back.

Two ways to use it:

  client.py --socket PATH --calls N --concurrency C [--verbose] [--max-seconds S]
      one run; prints one JSON line.

  client.py --socket PATH --serve
      reads commands from stdin, one per line, and answers each with one JSON line on stdout:
        run CALLS CONCURRENCY VERBOSE(0|1) MAX_SECONDS
        quit
      The benchmark driver keeps one warm client per server and samples the server's CPU time
      between commands, so client start-up and connection set-up stay out of the figures.

Result: {"calls", "errors", "seconds", "throughput", "p50_us", "p99_us", "max_us", "first_error"}.
Every run is bounded by CALLS and by MAX_SECONDS, whichever comes first.
"""

import argparse
import asyncio
import json
import sys
import time

import grpc
from grpc import aio

METHOD = "/runtime.v1.RuntimeService/Status"
BODIES = {False: b"", True: b"\x08\x01"}


def identity(data):
    return data


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[index]


async def run(call, calls, concurrency, verbose, max_seconds):
    body = BODIES[verbose]
    latencies = []
    state = {"left": calls, "errors": 0, "first_error": None}
    deadline = time.monotonic() + max_seconds
    perf = time.perf_counter_ns

    async def worker():
        while state["left"] > 0 and time.monotonic() < deadline:
            state["left"] -= 1
            started = perf()
            try:
                await call(body, timeout=10)
            except grpc.RpcError as error:  # counted, reported, never retried
                state["errors"] += 1
                if state["first_error"] is None:
                    state["first_error"] = f"{error.code()}: {error.details()}"
            latencies.append(perf() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    latencies.sort()
    done = len(latencies)
    return {
        "calls": done,
        "errors": state["errors"],
        "seconds": seconds,
        "throughput": done / seconds if seconds > 0 else 0,
        "p50_us": percentile(latencies, 0.50) / 1000 if done else None,
        "p99_us": percentile(latencies, 0.99) / 1000 if done else None,
        "max_us": latencies[-1] / 1000 if done else None,
        "first_error": state["first_error"],
    }


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, help="unix socket path of the CRI server")
    parser.add_argument("--serve", action="store_true", help="read run commands from stdin")
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args()

    async with aio.insecure_channel(f"unix:{args.socket}") as channel:
        call = channel.unary_unary(
            METHOD, request_serializer=identity, response_deserializer=identity
        )
        await asyncio.wait_for(channel.channel_ready(), timeout=15)
        if not args.serve:
            result = await run(call, args.calls, args.concurrency, args.verbose, args.max_seconds)
            print(json.dumps(result), flush=True)
            return
        loop = asyncio.get_running_loop()
        print(json.dumps({"ready": True}), flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            words = line.split()
            if not words or words[0] == "quit":
                return
            if words[0] != "run" or len(words) != 5:
                print(json.dumps({"error": f"bad command: {line.strip()}"}), flush=True)
                continue
            calls, concurrency, verbose = int(words[1]), int(words[2]), words[3] == "1"
            result = await run(call, calls, concurrency, verbose, float(words[4]))
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
