#!/usr/bin/env python3
"""A go-plugin gRPC plugin in Python serving the kvbench KV service as "kv".

Run by a host (go-kv-host, or the Swift host under test), not by hand.

With AutoMTLS (the host sets PLUGIN_CLIENT_CERT) it serves TLS as
pyvider-rpcplugin does: with a self-signed P-384 leaf that is not a CA and
may not sign certificates, announced in the handshake (it asks for no client
certificate; see main()). KV_PLUGIN_ANNOUNCE_OTHER=1 makes it announce another
certificate than the one it serves, as an impostor would.

Needs PYTHONPATH to hold the code that Tests/Interop/build.sh generates;
the python-kv-plugin wrapper it writes sets that up.
"""
import base64
import datetime
import json
import os
import signal
import sys
import threading
from concurrent import futures

import grpc

from health.v1 import health_pb2, health_pb2_grpc
from kvbench import kv_pb2, kv_pb2_grpc
from plugin import grpc_controller_pb2, grpc_controller_pb2_grpc, grpc_stdio_pb2_grpc

NOT_A_PLUGIN = (
    "This binary is a plugin. These are not meant to be executed directly.\n"
    "Please execute the program that consumes these plugins, which will\n"
    "load any plugins automatically\n"
)

# Set once GRPCController/Shutdown has been called; main() then stops the server.
stopping = threading.Event()


def wait_until_done(context):
    """Block a streaming handler until its RPC ends or the plugin is stopping."""
    while context.is_active() and not stopping.wait(0.25):
        pass


class KV(kv_pb2_grpc.KVServicer):
    def __init__(self):
        self._lock = threading.Lock()
        self._values = {}

    def Get(self, request, context):
        with self._lock:
            return kv_pb2.GetResponse(value=self._values.get(request.key, b""))

    def Put(self, request, context):
        with self._lock:
            self._values[request.key] = request.value
        return kv_pb2.Empty()

    def Upload(self, request_iterator, context):
        count = kv_pb2.Count()
        for chunk in request_iterator:
            count.bytes += len(chunk.data)
            count.chunks += 1
        return count


class Health(health_pb2_grpc.HealthServicer):
    SERVING = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    def Check(self, request, context):
        if request.service not in ("", "plugin"):
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return self.SERVING

    def Watch(self, request, context):
        yield self.SERVING
        wait_until_done(context)


class Controller(grpc_controller_pb2_grpc.GRPCControllerServicer):
    def Shutdown(self, request, context):
        stopping.set()
        return grpc_controller_pb2.Empty()


class Stdio(grpc_stdio_pb2_grpc.GRPCStdioServicer):
    # This plugin does not forward its stdout/stderr: the stream stays open
    # and empty until the host cancels it or the plugin stops.
    def StreamStdio(self, request, context):
        wait_until_done(context)
        return iter(())


def make_leaf_certificate():
    """A self-signed P-384 leaf for localhost: no CA bit, no certSign usage."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=True, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA384())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return (
        certificate.public_bytes(serialization.Encoding.PEM),
        key_pem,
        certificate.public_bytes(serialization.Encoding.DER),
    )


def log(message, **fields):
    """Write one hclog-style JSON line to stderr, which go-plugin hosts re-log."""
    now = datetime.datetime.now(datetime.timezone.utc)
    entry = {
        "@level": "info",
        "@message": message,
        "@module": "python-kv-plugin",
        "@timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z",
        **fields,
    }
    print(json.dumps(entry), file=sys.stderr, flush=True)


def main():
    if os.environ.get("BASIC_PLUGIN") != "hello":
        sys.stderr.write(NOT_A_PLUGIN)
        return 1
    # Like go-plugin's Serve: Ctrl-C reaches the whole process group, and the
    # host, not the terminal, decides when a plugin ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    log("kv plugin starting", pid=os.getpid())

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    kv_pb2_grpc.add_KVServicer_to_server(KV(), server)
    health_pb2_grpc.add_HealthServicer_to_server(Health(), server)
    grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(Controller(), server)
    grpc_stdio_pb2_grpc.add_GRPCStdioServicer_to_server(Stdio(), server)
    client_certificate = os.environ.get("PLUGIN_CLIENT_CERT", "")
    announced = ""
    if client_certificate:
        certificate_pem, key_pem, der = make_leaf_certificate()
        if os.environ.get("KV_PLUGIN_ANNOUNCE_OTHER") == "1":
            _, _, der = make_leaf_certificate()
        # No client certificate is asked for: grpcio's BoringSSL does not verify
        # ecdsa_secp521r1_sha512, the only TLS 1.3 signature a host's P-521
        # AutoMTLS key makes, so asking would fail every handshake with
        # NO_COMMON_SIGNATURE_ALGORITHMS. What is tested here is the host's side:
        # that it accepts exactly the leaf announced, and nothing else.
        credentials = grpc.ssl_server_credentials([(key_pem, certificate_pem)])
        port = server.add_secure_port("127.0.0.1:0", credentials)
        # go-plugin's encoding: standard base64 without padding.
        announced = base64.b64encode(der).decode().rstrip("=")
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    sys.stdout.write(f"1|1|tcp|127.0.0.1:{port}|grpc|{announced}\n")
    sys.stdout.flush()

    stopping.wait()
    # The grace period lets the Shutdown reply itself reach the host.
    server.stop(grace=0.2).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
