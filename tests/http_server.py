"""A small HTTP server on 127.0.0.1 for download tests: Range requests, 404s, broken connections."""
import http.server
import re
import socket
import threading


class FileServer(object):
  """Serves `files` (name -> bytes) at http://127.0.0.1:<port>/<name>.

  cut_after[name] = n makes the next response for name send its full
  Content-Length but only n bytes of body, then drop the connection.
  Every request is recorded as (name, Range header or None).
  """

  def __init__(self, files):
    self.files = dict(files)
    self.cut_after = {}
    self.requests = []
    server = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def log_message(self, *args):
        pass

      def do_GET(self):
        name = self.path.lstrip("/")
        server.requests.append((name, self.headers.get("Range")))
        if name not in server.files:
          self.send_error(404, "Not Found")
          return
        body = server.files[name]
        start = 0
        match = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
        if match:
          start = int(match.group(1))
          if start >= len(body):
            self.send_response(416)
            self.send_header("Content-Range", "bytes */%d" % len(body))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
          self.send_response(206)
          self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(body) - 1, len(body)))
        else:
          self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = server.cut_after.pop(name, None)
        if cut is not None:
          self.wfile.write(body[start:start + cut])
          self.wfile.flush()
          self.close_connection = True
          self.connection.shutdown(socket.SHUT_RDWR)
          return
        self.wfile.write(body[start:])

    self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    self.httpd.daemon_threads = True
    self.url = "http://127.0.0.1:%d/" % self.httpd.server_address[1]
    self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

  def __enter__(self):
    self.thread.start()
    return self

  def __exit__(self, *exc):
    self.httpd.shutdown()
    self.httpd.server_close()
    self.thread.join(timeout=10)


def closed_port_url():
  """A URL on 127.0.0.1 where nothing listens."""
  sock = socket.socket()
  sock.bind(("127.0.0.1", 0))
  port = sock.getsockname()[1]
  sock.close()
  return "http://127.0.0.1:%d/" % port
