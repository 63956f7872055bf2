"""The cutover evidence under attack: two upstreams that differ in 50 long JSON fields on every
answer, and clients sending requests to distinct paths with a long query through the proxy.

Usage: evidence_attack.py PROXY_PORT LEGACY_PORT NEW_PORT REQUESTS CLIENTS QUERY_BYTES
Starts the upstreams, sends the requests (each client its own connection), prints how many
answered 200.
"""
import http.client
import http.server
import sys
import threading

proxy, legacy, new, requests, clients, query_bytes = (int(a) for a in sys.argv[1:7])


def upstream(port, tag):
    body = ("{" + ",".join(f'"field_{k}":"{tag}{"v" * 2000}"' for k in range(50)) + "}").encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    # The default backlog of 5 refuses connections under the proxy's bursts (shadow and noise
    # repeats included); a real service's is far larger.
    http.server.ThreadingHTTPServer.request_queue_size = 256
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()


upstream(legacy, "l")
upstream(new, "n")
query = "q=" + "x" * query_bytes
statuses = {}
lock = threading.Lock()


def client(n):
    conn = http.client.HTTPConnection("127.0.0.1", proxy, timeout=30)
    for i in range(n, requests, clients):
        conn.request("GET", f"/c{n}/r{i}/s{n}x{i}?{query}")
        resp = conn.getresponse()
        resp.read()
        with lock:
            statuses[resp.status] = statuses.get(resp.status, 0) + 1
        if resp.will_close:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", proxy, timeout=30)


threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(" ".join(f"{code}:{n}" for code, n in sorted(statuses.items())))
