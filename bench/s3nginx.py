# SPDX-License-Identifier: Apache-2.0
"""A writable S3 stand-in on Debian's nginx-light, for benchmarks (not a fake cloud: no signatures, no state).

What it stores goes to `store` (bench_up.py puts it on /dev/shm: a tmpfs, so that the server's writes are memory
copies, not disk writeback that would throttle a single stream; the clients still read their source from disk's
page cache).

nginx-light has the WebDAV module (`nginx -V`: --with-http_dav_module) and no njs, so the S3 calls are told
apart by method and query in a `map` and answered with what nginx has:

  PutObject                PUT /BUCKET/KEY                 WebDAV PUT into ROOT/BUCKET/KEY (body in a temp file
                                                           on the same filesystem, then renamed)
  UploadPart               PUT /BUCKET/KEY?partNumber=N&…  WebDAV PUT into ROOT/.parts/BUCKET/KEY.N, so the parts
                                                           can be counted and checked; fixed ETag header
  CreateMultipartUpload    POST /BUCKET/KEY?uploads        fixed InitiateMultipartUploadResult XML
  CompleteMultipartUpload  POST /BUCKET/KEY?uploadId=…     fixed CompleteMultipartUploadResult XML (the parts
                                                           stay separate: Stand.parts() reads them back)
  AbortMultipartUpload     DELETE …?uploadId=…             204
  ListObjectsV2            GET /BUCKET?list-type=2&prefix=P  pages written beforehand by Stand.add_listing()
  GetObject / HeadObject   GET/HEAD /BUCKET/KEY            static files (Range, If-Match, sendfile)

PUTs answer with the request's x-amz-checksum-crc32, as S3 does (S3 computes it; this stand-in only echoes it: the
bench checks every upload's bytes itself). A store that echoes none is sent Content-MD5 and its ETags are checked
as MD5s (agent/aws/s3.c), which the fixed ETag here would fail.

One server listens on HTTP and, with a certificate, on HTTPS (TLS 1.2/1.3, nginx's default ciphers) for the
same locations, so a client's TLS cost is measured against the same server work.  Every request is logged
(method, URI, body length, status) in PREFIX/access.log for request and byte counts.
"""
import grp
import hashlib
import os
import pwd
import signal
import socket
import subprocess
import time
import xml.sax.saxutils

NGINX = "/usr/sbin/nginx"
PART_ETAG = '"0123456789abcdef0123456789abcdef"'

CONF = r"""
daemon off;
%(user)s
worker_processes auto;
pid %(prefix)s/nginx.pid;
error_log %(prefix)s/error.log warn;
events { worker_connections 1024; }
http {
    log_format s3 '$request_method $request_uri $content_length $status';
    access_log %(prefix)s/access.log s3 buffer=256k flush=1s;
    client_body_temp_path %(root)s/.tmp 1 2;
    proxy_temp_path %(prefix)s/tmp/proxy;
    fastcgi_temp_path %(prefix)s/tmp/fastcgi;
    uwsgi_temp_path %(prefix)s/tmp/uwsgi;
    scgi_temp_path %(prefix)s/tmp/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    default_type application/octet-stream;
    map "$request_method:$args" $s3op {
        default                               "";
        "~^POST:(.*&)?uploads(=[^&]*)?(&|$)"  create;
        "~^POST:(.*&)?uploadId="              complete;
        "~^DELETE:(.*&)?uploadId="            abort;
        "~^PUT:(.*&)?partNumber="             part;
        "~^GET:(.*&)?list-type=2(&|$)"        list;
    }
    map $args $s3page {
        default                                      1;
        "~(^|&)continuation-token=(?<s3tok>[^&]+)"   $s3tok;
    }
    map $arg_prefix $s3list {
        default "";
%(lists)s
    }
    server {
        listen 127.0.0.1:%(port)d;
%(tls)s
        root %(root)s;
        location / {
            if ($s3op = create) {
                return 200 '<?xml version="1.0" encoding="UTF-8"?>\n<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>bench</Bucket><Key>bench</Key><UploadId>bench-upload</UploadId></InitiateMultipartUploadResult>';
            }
            if ($s3op = complete) {
                return 200 '<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Location>http://bench/bench</Location><Bucket>bench</Bucket><Key>bench</Key><ETag>"3858f62230ac3c915f300c664312c11f-1"</ETag></CompleteMultipartUploadResult>';
            }
            if ($s3op = abort) {
                return 204;
            }
            if ($s3op = part) {
                rewrite ^/(.*)$ /.parts/$1.$arg_partNumber last;
            }
            if ($s3op = list) {
                rewrite ^ /.lists/$s3list.$s3page.xml last;
            }
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw;
            add_header x-amz-checksum-crc32 $http_x_amz_checksum_crc32 always;
        }
        location /.parts/ {
            internal;
            dav_methods PUT;
            create_full_put_path on;
            add_header ETag '%(etag)s' always;
            add_header x-amz-checksum-crc32 $http_x_amz_checksum_crc32 always;
        }
        location /.lists/ {
            internal;
            default_type application/xml;
            try_files $uri /.lists/.empty.xml;
        }
    }
}
"""

EMPTY_LIST = ('<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/'
              '2006-03-01/"><Name>bench</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>'
              '<IsTruncated>false</IsTruncated></ListBucketResult>')


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_cert(d):
    """A self-signed certificate for localhost (clients use the name, as they do on S3)."""
    key, crt = os.path.join(d, "tls.key"), os.path.join(d, "tls.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    return key, crt


class Stand:
    """nginx as a writable S3 stand-in, in the foreground, under prefix (a fresh directory)."""

    def __init__(self, prefix, tls=False, store=None):
        self.prefix = prefix
        self.root = store or os.path.join(prefix, "www")
        self.tls = tls
        self.lists = {}  # prefix -> page name
        self.proc = None
        self.port = self.tls_port = None
        for d in (self.root, os.path.join(self.root, ".tmp"), os.path.join(self.root, ".parts"),
                  os.path.join(self.root, ".lists"), os.path.join(prefix, "tmp")):
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(self.root, ".lists", ".empty.xml"), "w") as f:
            f.write(EMPTY_LIST)
        self.cert = make_cert(prefix) if tls else None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def tls_endpoint(self):
        return "https://localhost:%d" % self.tls_port

    def add_listing(self, bucket, prefix, objects, page=1000):
        """ListObjectsV2 pages for prefix: objects is [(key, size)] or [(key, size, etag)] (the ETag nginx gives
        the file, for clients that send it back in If-Match: etag_of), 1000 keys a page, tokens p2, p3, …"""
        name = "l%d" % len(self.lists)
        self.lists[prefix] = name
        esc = xml.sax.saxutils.escape
        pages = [objects[i:i + page] for i in range(0, len(objects), page)] or [[]]
        for i, objs in enumerate(pages):
            more = i + 1 < len(pages)
            body = ['<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/'
                    'doc/2006-03-01/"><Name>%s</Name><Prefix>%s</Prefix><KeyCount>%d</KeyCount><MaxKeys>1000'
                    '</MaxKeys><IsTruncated>%s</IsTruncated>' % (esc(bucket), esc(prefix), len(objs),
                                                                 "true" if more else "false")]
            if i:
                body.append("<ContinuationToken>p%d</ContinuationToken>" % (i + 1))
            if more:
                body.append("<NextContinuationToken>p%d</NextContinuationToken>" % (i + 2))
            for o in objs:
                k, size = o[0], o[1]
                etag = o[2] if len(o) > 2 else '"d41d8cd98f00b204e9800998ecf8427e"'
                body.append('<Contents><Key>%s</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>'
                            '<ETag>%s</ETag><Size>%d</Size>'
                            '<StorageClass>STANDARD</StorageClass></Contents>' % (esc(k), esc(etag), size))
            body.append("</ListBucketResult>")
            with open(os.path.join(self.root, ".lists", "%s.%s.xml" % (name, "1" if i == 0 else "p%d" % (i + 1))),
                      "w") as f:
                f.write("".join(body))

    def etag_of(self, bucket, key):
        """The ETag nginx sends for a stored file: its mtime and size in hex."""
        st = os.stat(self.object_path(bucket, key))
        return '"%x-%x"' % (int(st.st_mtime), st.st_size)

    def _conf(self):
        user = ""
        if os.geteuid() == 0:  # otherwise the workers would drop to nobody
            pw = pwd.getpwuid(os.getuid())
            user = "user %s %s;" % (pw.pw_name, grp.getgrgid(pw.pw_gid).gr_name)
        lists = "\n".join('        "%s" %s;\n        "%s" %s;' % (p, n, p.replace("/", "%2F"), n)
                          for p, n in self.lists.items())
        tls = ""
        if self.cert:
            tls = ("        listen 127.0.0.1:%d ssl;\n        ssl_certificate %s;\n"
                   "        ssl_certificate_key %s;\n        ssl_protocols TLSv1.2 TLSv1.3;\n"
                   "        ssl_session_cache shared:SSL:1m;\n" % (self.tls_port, self.cert[1],
                                                                   self.cert[0]))
        return CONF % {"user": user, "prefix": self.prefix, "root": self.root, "port": self.port, "tls": tls,
                       "lists": lists, "etag": PART_ETAG}

    def start(self):
        conf = os.path.join(self.prefix, "nginx.conf")
        err = os.path.join(self.prefix, "error.log")
        for _ in range(5):
            self.port, self.tls_port = free_port(), free_port()
            with open(conf, "w") as f:
                f.write(self._conf())
            self.proc = subprocess.Popen([NGINX, "-p", self.prefix, "-c", conf, "-e", err],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
            if self._wait():
                return self
            self.stop()
        raise RuntimeError("nginx did not start: " + (open(err).read()[-1000:] if os.path.exists(err) else ""))

    def _wait(self):
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self):
        p = self.proc
        if p and p.poll() is None:
            p.send_signal(signal.SIGQUIT)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.proc = None

    # -- what arrived -----------------------------------------------------------------------------

    def object_path(self, bucket, key):
        return os.path.join(self.root, bucket, key)

    def parts(self, bucket, key):
        """The stored parts of key, in part order: [(number, path)]."""
        d = os.path.dirname(os.path.join(self.root, ".parts", bucket, key))
        base = os.path.basename(key) + "."
        out = []
        if os.path.isdir(d):
            for n in os.listdir(d):
                if n.startswith(base) and n[len(base):].isdigit():
                    out.append((int(n[len(base):]), os.path.join(d, n)))
        return sorted(out)

    def uploaded(self, bucket, key):
        """(size, number of parts, sha256) of what arrived for key: the PutObject body, or its parts joined."""
        parts = self.parts(bucket, key)
        paths = [p for _, p in parts] if parts else [self.object_path(bucket, key)]
        if parts and [n for n, _ in parts] != list(range(1, len(parts) + 1)):
            return None
        h, size = hashlib.sha256(), 0
        for p in paths:
            if not os.path.exists(p):
                return None
            with open(p, "rb") as f:
                for b in iter(lambda: f.read(1 << 20), b""):
                    h.update(b)
                    size += len(b)
        return size, len(parts), h.hexdigest()

    def forget(self, bucket, key):
        for _, p in self.parts(bucket, key):
            os.unlink(p)
        p = self.object_path(bucket, key)
        if os.path.exists(p):
            os.unlink(p)

    def log_mark(self):
        """Flushes nginx's access log and returns its length: log_since(mark) reads what came after."""
        self.proc.send_signal(signal.SIGUSR1)  # reopen the log: flushes the buffer
        time.sleep(0.3)
        p = os.path.join(self.prefix, "access.log")
        return os.path.getsize(p) if os.path.exists(p) else 0

    def log_since(self, mark):
        """[(method, uri, body length, status)] logged after mark."""
        end = self.log_mark()
        out = []
        with open(os.path.join(self.prefix, "access.log"), "rb") as f:
            f.seek(mark)
            for line in f.read(end - mark).decode(errors="replace").splitlines():
                m, uri, cl, st = (line.split(" ") + ["", "", "", ""])[:4]
                out.append((m, uri, int(cl) if cl.isdigit() else 0, int(st) if st.isdigit() else 0))
        return out
