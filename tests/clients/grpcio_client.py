"""A proxyless gRPC client (grpcio) driven line by line by the integration tests.

It dials an xds:/// target with the bootstrap given in GRPC_XDS_BOOTSTRAP_CONFIG and calls
/switchyard.test.Who/Name, whose backends answer with their name. Commands on stdin, one JSON
answer per line on stdout:

  calls N [HEADER=VALUE|HEADER=*] [DELAY_MS]  -> {"tally": {name: count}, "errors": {code: count}}
                                                 (HEADER=* sends a different value on each call)
  csds                                        -> {"Listener": "ACKED", ...} from the client's own CSDS
  routes                                      -> {"routes": [RouteConfiguration as proto3 JSON, ...]}
                                                 the route configurations the client holds (its CSDS)
  connect                                     -> {} once the channel starts connecting (fetches xDS)
  session N                                   -> {"first": name, "set_cookie": ..., "tally": ..., "errors": ...}
                                                 one call, then N calls sending back the cookie it set
  quit
"""

import json
import os
import sys

import grpc
from grpc._cython import cygrpc
from envoy.admin.v3 import config_dump_shared_pb2
from envoy.service.status.v3 import csds_pb2

METHOD = "/switchyard.test.Who/Name"


def encode_request(delay_ms):
    """WhoRequest{delay_ms = 1}: a varint field, written by hand to need no generated code."""
    if not delay_ms:
        return b""
    out, value = bytearray([0x08]), delay_ms
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def decode_reply(data):
    """WhoReply{name = 1}: a length-prefixed string."""
    if not data:
        return ""
    length, shift, index = 0, 0, 1
    while True:
        byte = data[index]
        length |= (byte & 0x7F) << shift
        index += 1
        if not byte & 0x80:
            break
        shift += 7
    return data[index:index + length].decode()


def client_status():
    response = csds_pb2.ClientStatusResponse.FromString(cygrpc.dump_xds_configs())
    status = {}
    for config in response.config:
        for generic in config.generic_xds_configs:
            kind = generic.type_url.rsplit(".", 1)[-1]
            name = config_dump_shared_pb2.ClientResourceStatus.Name(generic.client_status)
            status.setdefault(kind, set()).add(name)
    return {kind: sorted(names) for kind, names in status.items()}


def held_routes():
    """The RouteConfigurations in the client's own CSDS, as proto3 JSON: what it accepted."""
    from envoy.config.route.v3 import route_pb2
    from google.protobuf import json_format
    response = csds_pb2.ClientStatusResponse.FromString(cygrpc.dump_xds_configs())
    routes = []
    for config in response.config:
        for generic in config.generic_xds_configs:
            if generic.type_url.endswith(".RouteConfiguration") and generic.HasField("xds_config"):
                route = route_pb2.RouteConfiguration()
                generic.xds_config.Unpack(route)
                routes.append(json_format.MessageToDict(route))
    return {"routes": routes}


def session(call, count):
    """One call without a cookie, then `count` calls carrying the cookie the first one got."""
    reply, first_call = call.with_call(b"", timeout=20, wait_for_ready=True)
    set_cookies = [value for key, value in first_call.initial_metadata() if key == "set-cookie"]
    cookie = set_cookies[0].split(";")[0] if set_cookies else ""
    tally, errors = {}, {}
    for _ in range(count):
        try:
            name = decode_reply(call(b"", metadata=(("cookie", cookie),), timeout=20, wait_for_ready=True))
            tally[name] = tally.get(name, 0) + 1
        except grpc.RpcError as error:
            errors[error.code().name] = errors.get(error.code().name, 0) + 1
    return {
        "first": decode_reply(reply),
        "set_cookie": set_cookies[0] if set_cookies else None,
        "tally": tally,
        "errors": errors,
    }


def main():
    target = sys.argv[1]
    channel = grpc.insecure_channel(target)
    call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        if words[0] == "connect":
            channel.subscribe(lambda state: None, try_to_connect=True)
            print("{}", flush=True)
            continue
        if words[0] == "session":
            print(json.dumps(session(call, int(words[1]))), flush=True)
            continue
        if words[0] == "csds":
            print(json.dumps(client_status()), flush=True)
            continue
        if words[0] == "routes":
            print(json.dumps(held_routes()), flush=True)
            continue
        # `calls` waits for a ready backend (up to the deadline); `failfast` does not, so a
        # channel with no healthy backend fails at once with UNAVAILABLE.
        wait_for_ready = words[0] != "failfast"
        count = int(words[1])
        header = words[2] if len(words) > 2 and "=" in words[2] else None
        delay = int(words[-1]) if len(words) > 2 and "=" not in words[-1] else 0
        tally, errors = {}, {}
        for index in range(count):
            metadata = ()
            if header:
                key, value = header.split("=", 1)
                metadata = ((key, f"value-{index}" if value == "*" else value),)
            try:
                name = decode_reply(call(encode_request(delay), metadata=metadata, timeout=20, wait_for_ready=wait_for_ready))
                tally[name] = tally.get(name, 0) + 1
            except grpc.RpcError as error:
                code = error.code().name
                errors[code] = errors.get(code, 0) + 1
                if os.environ.get("SWITCHYARD_CLIENT_DEBUG"):
                    print(f"call failed: {code}: {error.details()} {error.debug_error_string()}", file=sys.stderr, flush=True)
        print(json.dumps({"tally": tally, "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
