# syntax=docker/dockerfile:1
# The `sp` image: `sp` (dotnet /app/sp.dll) for `sp backend`, `sp keys` and `sp tenants`, and the
# Native AOT agent /app/sp-agent for `sp-agent agent extproc|proxy`, which the manifests' agent
# containers run (command: ["/app/sp-agent"]): it idles at about half the RSS of the JIT-compiled
# `sp agent` (docs/production.md, "Memory per agent").
#
#   docker build -t ghcr.io/sp-istio/sp:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/sp-istio/sp:0.1.0 .
#
# The `build` stage runs on the build machine's platform and cross-publishes the managed `sp` for
# the target architecture, so multi-arch builds do not run the SDK under emulation.
FROM --platform=$BUILDPLATFORM mcr.microsoft.com/dotnet/sdk:10.0 AS build
ARG TARGETARCH
WORKDIR /src

# Restore first, from the project files and shared build settings only, so source edits
# reuse the restore layer. global.json is left out on purpose: inside the image the SDK tag
# above decides the SDK, and global.json pins a feature band for developer machines.
COPY Directory.Build.props Directory.Packages.props .editorconfig ./
COPY eng/ eng/
COPY src/Directory.Build.props src/
COPY src/Core/Core.csproj src/Core/
COPY src/Agent/Agent.csproj src/Agent/
COPY src/Backend/Backend.csproj src/Backend/
COPY src/Cli/Cli.csproj src/Cli/
# `sp demo` hosts the travel example in-process, so the CLI references it.
COPY examples/Directory.Build.props examples/
COPY examples/travel/Travel.csproj examples/travel/
RUN dotnet restore src/Cli/Cli.csproj -a $TARGETARCH

COPY src/ src/
COPY examples/travel/ examples/travel/
# Framework-dependent: the runtime comes from the base image, which gets security patches
# without a rebuild of the application layer.
RUN dotnet publish src/Cli/Cli.csproj -c Release -a $TARGETARCH --no-restore --self-contained false -o /app

# The Native AOT agent. Native AOT compiles and links for the machine it runs on; cross-compiling
# needs the target's linker and sysroot, so this stage runs on the TARGET platform instead (no
# --platform=$BUILDPLATFORM): an arm64 image builds its agent under emulation (slow, but the same
# toolchain as a native build). The noble SDK matches the runtime image's glibc. clang and
# zlib1g-dev are Microsoft's documented Native AOT prerequisites on Linux (clang compiles and links;
# .NET 10 links its own zlib-ng, so the binary needs only libc and libm, plus the OpenSSL it loads).
# libzstd1 is here for the backend, not the agent: see the copy below.
FROM mcr.microsoft.com/dotnet/sdk:10.0-noble AS agent
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang zlib1g-dev libzstd1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Directory.Build.props Directory.Packages.props .editorconfig ./
COPY eng/ eng/
COPY src/Directory.Build.props src/
COPY src/Core/Core.csproj src/Core/
COPY src/Agent/Agent.csproj src/Agent/
COPY src/AgentHost/AgentHost.csproj src/AgentHost/
RUN dotnet restore src/AgentHost/AgentHost.csproj -r linux-$(case "$(uname -m)" in aarch64) echo arm64;; *) echo x64;; esac)
COPY src/ src/
# The agent's command files are src/Cli/Commands/*.cs (shared with `sp agent`, compiled into sp-agent).
# On x64 the publish holds two builds, sp-agent (x86-64-v2) and sp-agent-x86-64-v3 (AVX2), and
# sp-agent runs the v3 one in its place where the CPU has it (src/AgentHost/CpuBuild.cs).
RUN dotnet publish src/AgentHost/AgentHost.csproj -c Release -r linux-$(case "$(uname -m)" in aarch64) echo arm64;; *) echo x64;; esac) --no-restore -o /agent \
    && rm -f /agent/*.dbg /agent/*.pdb /agent/*.xml
# zstd's C library for the backend's store, which compresses every stored value with it (the managed
# port it falls back to costs ~10 % more CPU a span; docs/production.md). Taken from this stage because
# it runs on the target platform, so the copy is the image's architecture; the chiseled runtime has
# no libzstd of its own. `sp` loads /app/libzstd.so.1 before looking for a system one.
RUN cp -L "/usr/lib/$(uname -m)-linux-gnu/libzstd.so.1" /agent/libzstd.so.1

# Runtime: Ubuntu 24.04 "chiseled" ASP.NET image. Chosen over -alpine because
#  - it is glibc, like the SDK that built the app: the SQLite native library (SQLitePCLRaw)
#    and gRPC run on the same libc they were tested with;
#  - it has no shell and no package manager, so a compromised process has no tools, and
#    the image passes "no shell in production images" policies;
#  - it already runs as the non-root `app` user (APP_UID 1654) and is ~110 MB.
# It has no ICU: the app formats with InvariantCulture and runs in globalization-invariant
# mode (set by the image).
FROM mcr.microsoft.com/dotnet/aspnet:10.0-noble-chiseled AS runtime
WORKDIR /app
COPY --from=build --chown=root:root /app ./
COPY --from=agent --chown=root:root /agent/sp-agent* ./
COPY --from=agent --chown=root:root /agent/libzstd.so.1 ./

# Kubernetes mounts these: /tmp (emptyDir; .NET's diagnostics IPC socket lives there) and
# /data (SQLite store, only when the backend runs on the embedded store). Nothing else is
# written, so the root filesystem can be mounted read-only.
VOLUME ["/tmp", "/data"]
# The base image sets ASPNETCORE_HTTP_PORTS=8080; every `sp` server takes its address from
# --listen/--admin, so the default binding is cleared rather than left listening.
#
# Memory: the runtime settings (workstation non-concurrent GC, a 4 MiB gen0 budget, GCConserveMemory,
# TieredPGO off, no thread-pool spinning) are set once in eng/RuntimeSettings.props: in sp.runtimeconfig.json
# for `sp`, compiled into sp-agent; the image, the manifests and the benches run with the same ones; a
# DOTNET_* variable in a Deployment overrides them. The backend Deployment runs
# `dotnet exec --runtimeconfig /app/sp-backend.runtimeconfig.json /app/sp.dll backend …`: the same
# settings but for a 64 MiB gen0 budget (written beside sp.runtimeconfig.json by the publish).
# `sp agent` also caps its managed heap at 2 x export.max_inflight_bytes + 16 MiB (agent commands only,
# not the backend; see docs/production.md, "Memory per agent").
# SP_STORE is the store `sp backend`, `sp keys` and `sp tenants` use when --store is not given, so
# `kubectl exec … sp keys create …` reaches the backend's /data store (a Secret's SP_STORE wins).
ENV ASPNETCORE_HTTP_PORTS= \
    TMPDIR=/tmp \
    SP_STORE=sqlite:/data/sp.db
# Agent ext_proc (gRPC), agent admin (/metrics, /healthz, /readyz), backend (OTLP, API, UI).
EXPOSE 18080 18081 8090

USER $APP_UID
ENTRYPOINT ["dotnet", "/app/sp.dll"]
CMD ["--help"]
