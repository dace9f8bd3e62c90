"""python3-grpcio calling the C# server: one JSON line per case on stdout.

Usage: echo_client.py PORT
"""
import json
import sys

import grpc

import echo_pb2
import echo_pb2_grpc
import health_pb2
import health_pb2_grpc


def emit(case, **fields):
    print(json.dumps(dict(case=case, **fields)), flush=True)


def run(case, fn):
    try:
        emit(case, code="OK", **(fn() or {}))
    except grpc.RpcError as error:
        emit(case, code=error.code().name, details=error.details(),
             trailers={k: (v.hex() if isinstance(v, bytes) else v) for k, v in (error.trailing_metadata() or [])})


def main():
    port = int(sys.argv[1])
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_http_proxy", 0)])
    grpc.channel_ready_future(channel).result(timeout=10)
    echo = echo_pb2_grpc.EchoStub(channel)
    health = health_pb2_grpc.HealthStub(channel)

    def unary():
        response, call = echo.Unary.with_call(
            echo_pb2.EchoRequest(message="hello \u00fc", payload=b"\x00\x01"),
            metadata=[("x-token", "abc"), ("x-data-bin", b"\x00\xff\x10")],
            timeout=10)
        meta = lambda pairs: {k: (v.hex() if isinstance(v, bytes) else v) for k, v in pairs}
        return dict(message=response.message, payload=response.payload.hex(),
                    headers=meta(call.initial_metadata()), trailers=meta(call.trailing_metadata()))

    def stream():
        return dict(indexes=[r.index for r in echo.Stream(echo_pb2.EchoRequest(message="s", count=5), timeout=10)])

    def deadline():
        echo.Wait(echo_pb2.EchoRequest(message="py-deadline"), timeout=0.5)

    def cancel():
        call = echo.Stream(echo_pb2.EchoRequest(message="py-cancel", count=0, delay_ms=20), timeout=10)
        received = [next(call).index, next(call).index]
        call.cancel()
        try:
            for _ in call:
                pass
        except grpc.RpcError as error:
            return dict(received=received, after_cancel=error.code().name)
        return dict(received=received, after_cancel="none")

    def oversized():
        echo.Unary(echo_pb2.EchoRequest(payload=b"x" * (5 * 1024 * 1024)), timeout=10)

    def unknown_method():
        call = channel.unary_unary("/echo.v1.Echo/Nope",
                                   request_serializer=echo_pb2.EchoRequest.SerializeToString,
                                   response_deserializer=echo_pb2.EchoResponse.FromString)
        call(echo_pb2.EchoRequest(), timeout=10)

    def unknown_service():
        call = channel.unary_unary("/nowhere.v1.Ghost/Call",
                                   request_serializer=echo_pb2.EchoRequest.SerializeToString,
                                   response_deserializer=echo_pb2.EchoResponse.FromString)
        call(echo_pb2.EchoRequest(), timeout=10)

    def fail():
        echo.Fail(echo_pb2.EchoRequest(fail_code=5, fail_message="no such VM: \u00fc 100%"), timeout=10)

    def fail_unknown():
        echo.Fail(echo_pb2.EchoRequest(fail_code=-1), timeout=10)

    def health_check():
        return dict(status=health_pb2.HealthCheckResponse.ServingStatus.Name(
            health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status))

    def health_check_unknown():
        health.Check(health_pb2.HealthCheckRequest(service="nobody.v1.Nothing"), timeout=10)

    def health_watch():
        call = health.Watch(health_pb2.HealthCheckRequest(service="echo.v1.Echo"), timeout=10)
        first = health_pb2.HealthCheckResponse.ServingStatus.Name(next(call).status)
        call.cancel()
        return dict(status=first)

    for case, fn in [("unary", unary), ("stream", stream), ("deadline", deadline), ("cancel", cancel),
                     ("oversized", oversized), ("unknown_method", unknown_method),
                     ("unknown_service", unknown_service), ("fail", fail), ("fail_unknown", fail_unknown),
                     ("health_check", health_check), ("health_check_unknown", health_check_unknown),
                     ("health_watch", health_watch)]:
        run(case, fn)
    emit("done")
    channel.close()


if __name__ == "__main__":
    main()
