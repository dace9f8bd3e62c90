"""cloud.agent.v1.NodeAgent served by python3-grpcio: a node agent the controller calls as it
would a real one, for the interop tests. Not a backend: it answers what the tests ask and says on
stdout what it saw.

Serves mutual TLS, as a node agent does: its certificate and key are node.pem and node.key in the
folder named by the CLOUD_TLS_DIR environment variable, and a client must present a certificate
from that folder's ca.pem.

Prints {"port": N} once serving on 127.0.0.1, then one JSON line per thing it observed
({"event": ...}), and serves until its stdin closes, so it cannot outlive the test process.

Each stdin line {"vm_id": ID, "behaviour": "slow" | "missing"} gives VM ID that behaviour (the
controller names VMs by their ids, which a test cannot choose); the server answers
{"event": "behaviour", "vm_id": ID} once it applies.

Behaviour, by the id in the request:
  GetConsoleOutput  vm_id "missing-*": NOT_FOUND. vm_id "slow-*": waits (at most 60 s) until the
                    call ends, then reports whether it was still active. Otherwise answers
                    "time_remaining=S" (the deadline the call carried, in seconds; -1: none).
  ReadImage         image_id "count-N": N chunks "chunk-0".."chunk-N-1", trailer x-chunks=N.
                    Any other id: NOT_FOUND with a message naming it.
  WatchEvents       three events, vm-1..vm-3, in order, then the stream ends.
"""
import json
import os
import sys
import threading
import time
from concurrent import futures

import grpc

from cloud.agent.v1 import agent_pb2
from cloud.agent.v1 import agent_pb2_grpc

SLOW_LIMIT_SECONDS = 60
_print_lock = threading.Lock()
# vm_id -> "slow" or "missing", as the test said on stdin.
_behaviours = {}


def emit(event, **fields):
    with _print_lock:
        print(json.dumps(dict(event=event, **fields)), flush=True)


def remaining(context):
    left = context.time_remaining()
    return -1.0 if left is None else left


class NodeAgent(agent_pb2_grpc.NodeAgentServicer):
    def GetNodeInfo(self, request, context):
        emit("GetNodeInfo", time_remaining=remaining(context))
        info = agent_pb2.NodeInfo(
            node_name="py-agent",
            hypervisor="python-grpcio",
            accelerator=agent_pb2.ACCELERATOR_FAKE,
            hypervisor_version=grpc.__version__,
            availability_zone="interop",
            agent_version="python-" + grpc.__version__,
        )
        for resource_class, total in (("VCPU", 4), ("MEMORY_MB", 4096), ("DISK_GB", 40)):
            info.inventories.add(resource_class=resource_class, total=total, allocation_ratio=1.0,
                                 min_unit=1, max_unit=total, step_size=1)
        return info

    def ListVms(self, request, context):
        return agent_pb2.ListVmsResponse()

    def GetConsoleOutput(self, request, context):
        left = remaining(context)
        emit("GetConsoleOutput", vm_id=request.vm_id, max_bytes=request.max_bytes, time_remaining=left)
        behaviour = _behaviours.get(request.vm_id, request.vm_id.split("-")[0])
        if behaviour == "missing":
            context.abort(grpc.StatusCode.NOT_FOUND, f"VM {request.vm_id} is not on this node.")
        if behaviour == "slow":
            ended = threading.Event()
            context.add_callback(ended.set)
            started = time.monotonic()
            ended.wait(SLOW_LIMIT_SECONDS)
            emit("GetConsoleOutputEnded", vm_id=request.vm_id, active=context.is_active(),
                 waited=time.monotonic() - started, time_remaining=remaining(context))
        data = f"python agent\ntime_remaining={left:.3f}\n".encode()
        data = data[-request.max_bytes:] if request.max_bytes else data
        return agent_pb2.ConsoleOutput(data=data, start=0, total_bytes=len(data))

    def ReadImage(self, request, context):
        if not request.image_id.startswith("count-"):
            context.abort(grpc.StatusCode.NOT_FOUND, f"Image {request.image_id} is not in this node's store.")
        count = int(request.image_id[len("count-"):])
        context.set_trailing_metadata([("x-chunks", str(count))])
        for index in range(count):
            yield agent_pb2.FileChunk(data=f"chunk-{index}".encode())

    def WatchEvents(self, request, context):
        for index in range(1, 4):
            yield agent_pb2.VmEvent(vm_id=f"vm-{index}", state=agent_pb2.VM_STATE_RUNNING, reason=f"event {index}")


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    agent_pb2_grpc.add_NodeAgentServicer_to_server(NodeAgent(), server)
    folder = os.environ["CLOUD_TLS_DIR"]

    def read(name):
        with open(os.path.join(folder, name), "rb") as f:
            return f.read()

    credentials = grpc.ssl_server_credentials([(read("node.key"), read("node.pem"))],
                                              root_certificates=read("ca.pem"), require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    print(json.dumps({"port": port}), flush=True)
    for line in sys.stdin:
        if line.strip():
            command = json.loads(line)
            _behaviours[command["vm_id"]] = command["behaviour"]
            emit("behaviour", vm_id=command["vm_id"])
    server.stop(grace=0).wait(5)


if __name__ == "__main__":
    main()
