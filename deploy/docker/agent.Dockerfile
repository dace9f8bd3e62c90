# The node agent, published with Native AOT: one native binary, no .NET runtime in the image.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
# The AOT compiler links with clang; zlib is linked into the runtime.
RUN apt-get update && apt-get install -y --no-install-recommends clang zlib1g-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN dotnet publish agent/Cloud.Agent -c Release -o /out

FROM mcr.microsoft.com/dotnet/runtime-deps:10.0
RUN apt-get update && apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The native binary and its settings; the .dbg symbols stay in the build stage.
COPY --from=build /out/Cloud.Agent /out/appsettings.json ./
ENTRYPOINT ["/app/Cloud.Agent"]
