"""A raw HTTP/2 client for modeld's gRPC port (the h2 package), to do what no gRPC client
can: hold a call half-sent, send bytes that are no message. Used by test_grpc_half_sent.py and
bench/stalled_calls.py."""

import selectors
import socket
import time

import h2.config
import h2.connection
import h2.events

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


class RawGrpcConnection:
    """One HTTP/2 connection to modeld's gRPC port, driven by hand."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.h2.initiate_connection()
        self.pending = {}  # stream id -> bytes still to send
        self.answers = {}  # stream id -> {header: value} of its trailers (or trailers-only reply)
        self.answered_at = {}  # stream id -> time.monotonic() when its status arrived
        self.resets = {}  # stream id -> the error code of the server's RST_STREAM
        self.tolerate_resets = False
        self.settings_seen = False
        self.closed = False
        self.flush()

    def flush(self):
        data = self.h2.data_to_send()
        while data:
            try:
                sent = self.sock.send(data)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            data = data[sent:]

    def max_streams(self):
        return self.h2.remote_settings.max_concurrent_streams

    def ignore_stream_cap(self):
        """Lets this client open streams past the server's SETTINGS_MAX_CONCURRENT_STREAMS, as
        a misbehaving client would (h2 itself refuses to)."""
        self.h2.remote_settings.max_concurrent_streams = 1 << 20
        self.h2.remote_settings.acknowledge()

    def open_call(self, extra_headers=()):
        """Sends the headers of a new ModelInfer call; returns its stream id."""
        stream = self.h2.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", MODEL_INFER),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            *extra_headers,
        ]
        self.h2.send_headers(stream, headers)
        return stream

    def send_message(self, stream, message):
        """Sends `message` whole as the call's one gRPC message and ends the call's side."""
        self.h2.send_data(stream, b"\0" + len(message).to_bytes(4, "big") + message,
                          end_stream=True)
        self.flush()

    def start_call(self, claimed, sent, extra_headers=(), tolerate_resets=False):
        """Opens a ModelInfer call whose message claims `claimed` bytes and sends `sent` of
        them (without ending the stream); returns its stream id. With `tolerate_resets`, the
        bytes of calls the server has reset are dropped instead of failing the send."""
        self.tolerate_resets = self.tolerate_resets or tolerate_resets
        stream = self.open_call(extra_headers)
        self.pending[stream] = b"\0" + claimed.to_bytes(4, "big") + bytes(sent)
        self.send_pending()
        return stream

    def send_pending(self):
        """Sends as much of each stream's bytes as flow control allows."""
        for stream, data in list(self.pending.items()):
            if stream in self.answers or (self.tolerate_resets and stream in self.resets):
                del self.pending[stream]
                continue
            window = min(self.h2.local_flow_control_window(stream), self.h2.max_outbound_frame_size)
            while data and window > 0:
                chunk, data = data[:window], data[window:]
                self.h2.send_data(stream, chunk)
                window = min(
                    self.h2.local_flow_control_window(stream), self.h2.max_outbound_frame_size
                )
            if data:
                self.pending[stream] = data
            else:
                del self.pending[stream]
        self.flush()

    def receive(self):
        try:
            data = self.sock.recv(1 << 16)
        except BlockingIOError:
            return
        if not data:
            self.closed = True
            return
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.RemoteSettingsChanged):
                self.settings_seen = True
            elif isinstance(event, h2.events.StreamReset):
                self.resets[event.stream_id] = int(event.error_code)
            elif isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                fields = dict(event.headers)
                if "grpc-status" in fields:
                    self.answers[event.stream_id] = fields
                    self.answered_at[event.stream_id] = time.monotonic()
        self.send_pending()

    def close(self):
        self.sock.close()


def pump(connections, until, timeout):
    """Reads from every connection until until() holds; fails after `timeout` seconds."""
    selector = selectors.DefaultSelector()
    for connection in connections:
        selector.register(connection.sock, selectors.EVENT_READ, connection)
    deadline = time.monotonic() + timeout
    try:
        while not until():
            assert time.monotonic() < deadline, "timed out waiting for modeld's answers"
            for key, _ in selector.select(timeout=0.1):
                key.data.receive()
    finally:
        selector.close()


def connect(port):
    connection = RawGrpcConnection(port)
    pump([connection], lambda: connection.settings_seen, 10)
    return connection
