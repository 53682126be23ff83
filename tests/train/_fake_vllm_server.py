"""A stand-in for `trl vllm-serve` in tests: a real HTTP server process (with one worker child, as vLLM has) whose
/health answers 200 after DELAY seconds (mode ok), always 503 (mode unhealthy), or which exits with code 3 (crash).
Usage: python _fake_vllm_server.py PORT MODE DELAY PIDFILE"""

import http.server
import subprocess
import sys
import time

port, mode, delay, pidfile = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(pidfile, "w") as fh:
    fh.write(f"{worker.pid}\n")
print("INFO starting fake vLLM server", flush=True)
if mode == "crash":
    print("torch.OutOfMemoryError: CUDA out of memory (fake)", flush=True)
    worker.kill()
    sys.exit(3)
t0 = time.monotonic()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = mode == "ok" and time.monotonic() - t0 >= delay and self.path == "/health"
        self.send_response(200 if ok else 503)
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
