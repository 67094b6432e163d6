#!/usr/bin/env python3
"""CPU of a perf profile of the agent by its own code: each sample goes to the outermost SpIstio
function on its stack that is not a mere pass-through (the handler, the tee streams, the YARP
transformer's awaits), so a function's share holds everything it called, framework code included;
samples with no SpIstio frame at all are "(framework only)": Kestrel, YARP, SocketsHttpHandler, the
kernel, the GC triggered outside our calls.

Why not `perf report --children`: Native AOT folds identical generic instantiations, so a frame's
name can be any one of the folded ones (a grpc-ab.sh profile showed 19 % under
`Task<MockPullResult>.TrySetResult`, an instantiation the proxy never runs). Names starting with
SpIstio_ are ours and not folded with framework code.

  perf script -i prof-A.data > prof-A.txt
  bench/proxy/perf-attr.py prof-A.txt [TOP]              # shares by our outermost function
  bench/proxy/perf-attr.py prof-A.txt [TOP] FUNCTION     # what FUNCTION's samples ran under it

Multiply a share by the cell's CPU-µs a call (grpc-ab.sh, cpu.sh) for µs a call.
"""
import collections
import re
import sys

PASS_THROUGH = (
    "CaptureProxyHandler__ForwardCapturedAsync", "CaptureProxyHandler__InvokeAsync",
    "StreamLimit__InvokeAsync", "ConnectionLimit", "RequestTeeStream__ReadAsync",
    "ResponseTeeStream__WriteAsync", "TransformRequestAsync", "TransformResponseAsync",
    "TransformResponseTrailersAsync",
)


# A JIT build's frames (AGENT_JIT=1, named through the runtime's perf map) read
# "... [SpIstio.Agent] SpIstio.Agent.Proxy.X+<M>d__15::MoveNext()[OptimizedTier1]": named here as the
# AOT build names them (SpIstio_..._X__M), so the same pass-through list and FUNCTION names apply.
JIT_FRAME = re.compile(r"\[SpIstio\.[A-Za-z.]+\] SpIstio\.([^:(\[ ]+)::([^(\[ ]+)")


def aot_name(symbol):
    m = JIT_FRAME.search(symbol)
    if not m:
        return symbol
    name = "SpIstio_" + m.group(1).replace(".", "_") + "__" + m.group(2)
    return re.sub(r"\+<([A-Za-z_]+)>d__[0-9]+__MoveNext$", r"__\1", name)


def samples(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for block in f.read().split("\n\n"):
            lines = [l for l in block.split("\n")[1:] if l.strip()]
            if lines:
                # "addr symbol+0xoff (dso)" -> symbol; leaf first.
                yield [aot_name(re.sub(r"\+0x[0-9a-f]+ \(.*\)$", "", l.strip().split(None, 1)[-1])) for l in lines]


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    under = sys.argv[3] if len(sys.argv) > 3 else None
    counts = collections.Counter()
    total = 0
    for frames in samples(path):
        total += 1
        if under is not None:
            at = [i for i, f in enumerate(frames) if under in f]
            if at:
                callee = frames[at[-1] - 1] if at[-1] > 0 else "(self)"
                counts[callee] += 1
            continue
        ours = [f for f in frames if f.startswith("SpIstio_")]
        doing = [f for f in ours if not any(p in f for p in PASS_THROUGH)]
        counts[doing[-1] if doing else ("pass-through: " + ours[0] if ours else "(framework only)")] += 1
    print(f"{total} samples" + (f"; directly under {under}:" if under else ""))
    for name, n in counts.most_common(top):
        print(f"{100 * n / total:5.1f}%  {name[:160]}")


if __name__ == "__main__":
    main()
