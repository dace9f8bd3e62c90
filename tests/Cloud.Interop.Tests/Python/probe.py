"""python3-grpcio as a client of the controller and the agents: one probe per run, its findings
as one JSON line on stdout.

Usage:
  probe.py reflect ADDRESS SYMBOL...        services listed by reflection (v1 and v1alpha), and
                                            the file descriptor that defines each SYMBOL
  probe.py health ADDRESS SERVICE...        grpc.health.v1 Check of each SERVICE ("" allowed)
  probe.py flavors ADDRESS TOKEN            cloud.compute.v1.Compute/ListFlavors, TOKEN "-": none
  probe.py node-info ADDRESS                cloud.agent.v1.NodeAgent/GetNodeInfo
  probe.py console ADDRESS TOKEN VM TIMEOUT cloud.compute.v1.Compute/GetConsoleOutput with a
                                            timeout of TIMEOUT seconds
  probe.py console-cancel ADDRESS TOKEN VM AFTER
                                            the same with a 30 s timeout, cancelled by the
                                            client after AFTER seconds

TLS, from the environment: CLOUD_CA, a PEM file of the roots to trust (without it, plaintext);
CLOUD_CERT and CLOUD_KEY, the client's certificate and key (mutual TLS, as agents require);
CLOUD_READY_TIMEOUT, seconds to wait for the channel (default 10). A channel that does not
become ready in that time (its handshake fails) prints {"code": "NOT_READY", ...}.
"""
import json
import os
import sys
import time

import grpc
from google.protobuf import descriptor_pb2

import grpc_health_v1_pb2
import grpc_health_v1_pb2_grpc
import grpc_reflection_v1_pb2
import grpc_reflection_v1_pb2_grpc
import grpc_reflection_v1alpha_pb2
import grpc_reflection_v1alpha_pb2_grpc
from cloud.agent.v1 import agent_pb2
from cloud.agent.v1 import agent_pb2_grpc
from cloud.compute.v1 import compute_pb2
from cloud.compute.v1 import compute_pb2_grpc

TIMEOUT = 10


def error(e):
    return dict(code=e.code().name, details=e.details(),
                trailers={k: v for k, v in (e.trailing_metadata() or []) if isinstance(v, str)})


def reflect(channel, symbols):
    result = {}
    for version, pb2, pb2_grpc in (("v1", grpc_reflection_v1_pb2, grpc_reflection_v1_pb2_grpc),
                                   ("v1alpha", grpc_reflection_v1alpha_pb2, grpc_reflection_v1alpha_pb2_grpc)):
        stub = pb2_grpc.ServerReflectionStub(channel)
        requests = [pb2.ServerReflectionRequest(list_services="")]
        requests += [pb2.ServerReflectionRequest(file_containing_symbol=s) for s in symbols]
        requests.append(pb2.ServerReflectionRequest(file_containing_symbol="no.such.v1.Service"))
        try:
            responses = list(stub.ServerReflectionInfo(iter(requests), timeout=TIMEOUT))
        except grpc.RpcError as e:
            result[version] = error(e)
            continue
        listed = [s.name for s in responses[0].list_services_response.service]
        files = {}
        for symbol, response in zip(symbols, responses[1:]):
            parsed = []
            for raw in response.file_descriptor_response.file_descriptor_proto:
                descriptor = descriptor_pb2.FileDescriptorProto.FromString(raw)
                parsed.append(dict(
                    name=descriptor.name,
                    package=descriptor.package,
                    services={s.name: [m.name for m in s.method] for s in descriptor.service}))
            files[symbol] = parsed
        unknown = responses[-1]
        result[version] = dict(
            services=listed, files=files,
            unknown_symbol=dict(code=unknown.error_response.error_code, message=unknown.error_response.error_message))
    return result


def health(channel, services):
    stub = grpc_health_v1_pb2_grpc.HealthStub(channel)
    result = {}
    for service in services:
        try:
            response = stub.Check(grpc_health_v1_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
            result[service] = grpc_health_v1_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        except grpc.RpcError as e:
            result[service] = e.code().name
    return result


def bearer(token):
    return [] if token == "-" else [("authorization", "Bearer " + token)]


def flavors(channel, token):
    try:
        response = compute_pb2_grpc.ComputeStub(channel).ListFlavors(
            compute_pb2.ListFlavorsRequest(), metadata=bearer(token), timeout=TIMEOUT)
        return dict(code="OK", flavors=[f.name for f in response.flavors])
    except grpc.RpcError as e:
        return error(e)


def node_info(channel):
    try:
        response = agent_pb2_grpc.NodeAgentStub(channel).GetNodeInfo(agent_pb2.GetNodeInfoRequest(), timeout=TIMEOUT)
    except grpc.RpcError as e:
        return error(e)
    return dict(code="OK", node_name=response.node_name, hypervisor=response.hypervisor,
                inventories={i.resource_class: i.total for i in response.inventories})


def console(channel, token, vm, timeout):
    started = time.monotonic()
    try:
        response = compute_pb2_grpc.ComputeStub(channel).GetConsoleOutput(
            compute_pb2.GetConsoleOutputRequest(id=vm), metadata=bearer(token), timeout=float(timeout))
        return dict(code="OK", output=response.output, start=response.start, total_bytes=response.total_bytes,
                    elapsed=time.monotonic() - started)
    except grpc.RpcError as e:
        return dict(error(e), elapsed=time.monotonic() - started)


def console_cancel(channel, token, vm, after):
    started = time.monotonic()
    future = compute_pb2_grpc.ComputeStub(channel).GetConsoleOutput.future(
        compute_pb2.GetConsoleOutputRequest(id=vm), metadata=bearer(token), timeout=30)
    time.sleep(float(after))
    cancelled = future.cancel()
    try:
        future.result()
        code = "OK"
    except grpc.FutureCancelledError:
        code = "CANCELLED"
    except grpc.RpcError as e:
        code = e.code().name
    return dict(code=code, cancelled=cancelled, elapsed=time.monotonic() - started)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def open_channel(address):
    options = [("grpc.enable_http_proxy", 0)]
    if "CLOUD_CA" not in os.environ:
        return grpc.insecure_channel(address, options=options)
    key = os.environ.get("CLOUD_KEY")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(os.environ["CLOUD_CA"]),
        private_key=read(key) if key else None,
        certificate_chain=read(os.environ["CLOUD_CERT"]) if key else None)
    return grpc.secure_channel(address, credentials, options=options)


def main():
    command, address, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    ready_timeout = float(os.environ.get("CLOUD_READY_TIMEOUT", TIMEOUT))
    with open_channel(address) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=ready_timeout)
        except grpc.FutureTimeoutError:
            print(json.dumps(dict(code="NOT_READY", waited=ready_timeout)), flush=True)
            return
        if command == "reflect":
            result = reflect(channel, args)
        elif command == "health":
            result = health(channel, args)
        elif command == "flavors":
            result = flavors(channel, args[0])
        elif command == "node-info":
            result = node_info(channel)
        elif command == "console":
            result = console(channel, *args)
        elif command == "console-cancel":
            result = console_cancel(channel, *args)
        else:
            raise SystemExit("unknown command " + command)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
