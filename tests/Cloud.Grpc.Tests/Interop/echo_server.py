"""echo.v1.Echo served by python3-grpcio, for the C# client's interop tests.

Prints {"port": N} once serving on 127.0.0.1, then serves until its stdin closes, so it
cannot outlive the test process that started it.
"""
import json
import sys
import threading
import time
from concurrent import futures

import grpc

import echo_pb2
import echo_pb2_grpc


def status_code(value):
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN


def echo_metadata(context):
    """Request metadata "x-..." comes back as header "echo-x-..." and trailer "trailer-x-..."."""
    echoed = [(k, v) for k, v in context.invocation_metadata() if k.startswith("x-")]
    context.send_initial_metadata([("echo-" + k, v) for k, v in echoed])
    context.set_trailing_metadata([("trailer-" + k, v) for k, v in echoed])


class Echo(echo_pb2_grpc.EchoServicer):
    def Unary(self, request, context):
        echo_metadata(context)
        payload = b"\x00" * request.response_size if request.response_size else request.payload
        return echo_pb2.EchoResponse(message=request.message, payload=payload)

    def Stream(self, request, context):
        echo_metadata(context)
        index = 0
        while request.count == 0 or index < request.count:
            if request.delay_ms:
                time.sleep(request.delay_ms / 1000.0)
            if not context.is_active():
                return
            yield echo_pb2.EchoResponse(message=request.message, index=index)
            index += 1

    def Wait(self, request, context):
        done = threading.Event()
        context.add_callback(done.set)
        done.wait(30)
        return echo_pb2.EchoResponse(message=request.message)

    def Fail(self, request, context):
        context.set_trailing_metadata([("fail-detail", "detail"), ("fail-bin", b"\x01\x02\x03")])
        context.abort(status_code(request.fail_code), request.fail_message)


def main():
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        options=[
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        ],
    )
    echo_pb2_grpc.add_EchoServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(json.dumps({"port": port}), flush=True)
    sys.stdin.read()
    server.stop(grace=0).wait(5)


if __name__ == "__main__":
    main()
