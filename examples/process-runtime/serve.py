"""A model server for Strata's process runtime, in Python with the standard library only.

Strata starts it with the registered model version's file at $STRATA_MODEL_PATH
and a port at $PORT, waits for GET /v2/health/ready, reads the model's inputs
and outputs from GET /v2/models/<name>, and proxies inference requests to
POST /v2/models/<name>/infer (the Open Inference Protocol v2 REST API).

The model here is a linear one stored as JSON, {"weights": [...], "bias": b}:
y = x . weights + bias for each row of x. Swap load() and predict() for a
pickle, a torch checkpoint or anything else.

    strata deploy create lin --model lin@production --runtime process \
        --command "python3 /path/to/serve.py"
"""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = os.environ["STRATA_MODEL_NAME"]
VERSION = os.environ["STRATA_MODEL_VERSION"]
PORT = int(os.environ["PORT"])


def load(path):
    with open(path, encoding="utf-8") as f:
        model = json.load(f)
    return [float(w) for w in model["weights"]], float(model.get("bias", 0))


WEIGHTS, BIAS = load(os.environ["STRATA_MODEL_PATH"])

METADATA = {
    "name": NAME,
    "versions": [VERSION],
    "platform": "python",
    # -1: any size (rows are batched along the first dimension).
    "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, len(WEIGHTS)]}],
    "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}],
}


def predict(rows):
    return [sum(w * v for w, v in zip(WEIGHTS, row)) + BIAS for row in rows]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Strata reuses connections

    def send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/v2/health/ready":
            return self.send(200, {"ready": True})
        if self.path == f"/v2/models/{NAME}":
            return self.send(200, METADATA)
        self.send(404, {"error": f"no route GET {self.path}"})

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path != f"/v2/models/{NAME}/infer":
            return self.send(404, {"error": f"no route POST {self.path}"})
        x = next((t for t in body.get("inputs", []) if t.get("name") == "x"), None)
        if x is None:
            # Errors as {"error": "..."}: Strata passes a 4xx on as 400 with this message.
            return self.send(400, {"error": 'input "x" is missing'})
        n = len(WEIGHTS)
        rows = [x["data"][i : i + n] for i in range(0, len(x["data"]), n)]
        y = predict(rows)
        self.send(200, {"model_name": NAME, "model_version": VERSION, "outputs": [{"name": "y", "shape": [len(y)], "datatype": "FP64", "data": y}]})

    def log_message(self, fmt, *args):
        sys.stderr.write("serve.py: " + fmt % args + "\n")


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
# SIGTERM (Strata stopping or swapping this version out): finish and exit.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(f"serving {NAME} version {VERSION} on port {PORT}", flush=True)
try:
    server.serve_forever()
finally:
    server.server_close()
