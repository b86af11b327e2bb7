#!/usr/bin/env python3
"""Offline stand-in for hashicorp/google: serves the real provider *schema* (rebuilt from the
cdktn-provider-google wheel, see extract_schema.py) over plugin protocol 6 using the gRPC
plumbing of PyPI `tf` (tf.runner.run_provider + tf.gen protobufs). Validate calls accept
everything the schema allows (Terraform core itself checks argument names, required args,
types, block counts); plan/apply/read are trivial echo implementations. For
`terraform init/validate/test` with mock_provider only. Never talks to Google."""

import gzip
import json
import os
import sys

import msgpack
import tf.provider
import tf.runner
from tf.gen import tfplugin_pb2 as pb
from tf.gen import tfplugin_pb2_grpc as rpc

ADDR = "registry.terraform.io/hashicorp/google"
SCHEMA_FILE = os.environ.get(
    "GOOGLE_STANDIN_SCHEMA", os.path.join(os.path.dirname(os.path.realpath(__file__)), "google-schema.json.gz")
)
_doc = None


def doc():
    global _doc
    if _doc is None:
        with gzip.open(SCHEMA_FILE, "rt") as f:
            _doc = json.load(f)["provider_schemas"][ADDR]
    return _doc


NEST = {
    "single": pb.Schema.NestedBlock.SINGLE,
    "list": pb.Schema.NestedBlock.LIST,
    "set": pb.Schema.NestedBlock.SET,
    "map": pb.Schema.NestedBlock.MAP,
    "group": pb.Schema.NestedBlock.GROUP,
}


def to_block(b):
    return pb.Schema.Block(
        attributes=[
            pb.Schema.Attribute(
                name=n,
                type=json.dumps(a["type"]).encode(),
                required=a.get("required", False),
                optional=a.get("optional", False),
                computed=a.get("computed", False),
                sensitive=a.get("sensitive", False),
                description_kind=pb.PLAIN,
            )
            for n, a in sorted(b.get("attributes", {}).items())
        ],
        block_types=[
            pb.Schema.NestedBlock(
                type_name=n,
                block=to_block(nb["block"]),
                nesting=NEST[nb["nesting_mode"]],
                min_items=nb.get("min_items", 0),
                max_items=nb.get("max_items", 0),
            )
            for n, nb in sorted(b.get("block_types", {}).items())
        ],
        description_kind=pb.PLAIN,
    )


def to_schema(s):
    return pb.Schema(version=s.get("version", 0), block=to_block(s["block"]))


# --- msgpack DynamicValue helpers (unknown = ext type 0) ---
class Unknown:
    pass


UNKNOWN = Unknown()


def dec(dv):
    if not dv.msgpack:
        return json.loads(dv.json) if dv.json else None
    return msgpack.unpackb(
        dv.msgpack,
        raw=False,
        strict_map_key=False,
        ext_hook=lambda code, data: UNKNOWN if code == 0 else msgpack.ExtType(code, data),
    )


def enc(v):
    return pb.DynamicValue(
        msgpack=msgpack.packb(
            v, use_bin_type=True, default=lambda o: msgpack.ExtType(0, b"\x00") if o is UNKNOWN else o
        )
    )


def placeholder(t, name):
    if t == "string":
        return f"stub-{name}"
    if t == "number":
        return 0
    if t == "bool":
        return False
    if isinstance(t, list) and t[0] in ("list", "set"):
        return []
    if isinstance(t, list) and t[0] == "map":
        return {}
    return None


def fill_computed(block, val, fill):
    """top-level computed attrs that are null -> unknown (plan) or placeholder (apply/read)"""
    if not isinstance(val, dict):
        return val
    for n, a in block.get("attributes", {}).items():
        if a.get("computed") and (val.get(n) is None or (fill and val.get(n) is UNKNOWN)):
            val[n] = placeholder(a["type"], n) if fill else UNKNOWN
    return val


class Servicer(rpc.ProviderServicer):
    def __init__(self, *_):
        pass

    def GetMetadata(self, request, context):
        d = doc()
        return pb.GetMetadata.Response(
            server_capabilities=pb.ServerCapabilities(plan_destroy=True, get_provider_schema_optional=False),
            resources=[pb.GetMetadata.ResourceMetadata(type_name=n) for n in d["resource_schemas"]],
            data_sources=[pb.GetMetadata.DataSourceMetadata(type_name=n) for n in d["data_source_schemas"]],
        )

    def GetProviderSchema(self, request, context):
        d = doc()
        return pb.GetProviderSchema.Response(
            provider=to_schema(d["provider"]),
            provider_meta=pb.Schema(block=pb.Schema.Block()),
            resource_schemas={n: to_schema(s) for n, s in d["resource_schemas"].items()},
            data_source_schemas={n: to_schema(s) for n, s in d["data_source_schemas"].items()},
        )

    def ValidateProviderConfig(self, request, context):
        return pb.ValidateProviderConfig.Response()

    def ValidateResourceConfig(self, request, context):
        return pb.ValidateResourceConfig.Response()

    def ValidateDataResourceConfig(self, request, context):
        return pb.ValidateDataResourceConfig.Response()

    def ConfigureProvider(self, request, context):
        return pb.ConfigureProvider.Response()

    def UpgradeResourceState(self, request, context):
        return pb.UpgradeResourceState.Response(upgraded_state=pb.DynamicValue(json=request.raw_state.json or b"null"))

    def ReadResource(self, request, context):
        return pb.ReadResource.Response(new_state=request.current_state, private=request.private)

    def PlanResourceChange(self, request, context):
        new = dec(request.proposed_new_state)
        if new is None:  # destroy
            return pb.PlanResourceChange.Response(planned_state=request.proposed_new_state)
        blk = doc()["resource_schemas"][request.type_name]["block"]
        return pb.PlanResourceChange.Response(planned_state=enc(fill_computed(blk, new, fill=False)))

    def ApplyResourceChange(self, request, context):
        new = dec(request.planned_state)
        if new is None:
            return pb.ApplyResourceChange.Response(new_state=request.planned_state)
        blk = doc()["resource_schemas"][request.type_name]["block"]
        return pb.ApplyResourceChange.Response(new_state=enc(fill_computed(blk, new, fill=True)))

    def ImportResourceState(self, request, context):
        return pb.ImportResourceState.Response(
            diagnostics=[
                pb.Diagnostic(
                    severity=pb.Diagnostic.ERROR, summary="import is not supported by the offline google stand-in"
                )
            ]
        )

    def ReadDataSource(self, request, context):
        blk = doc()["data_source_schemas"][request.type_name]["block"]
        return pb.ReadDataSource.Response(state=enc(fill_computed(blk, dec(request.config), fill=True)))

    def GetFunctions(self, request, context):
        return pb.GetFunctions.Response()

    def StopProvider(self, request, context):
        return pb.StopProvider.Response()


class _App:
    def full_name(self):
        return ADDR


if __name__ == "__main__":
    tf.provider.ProviderServicer = Servicer  # run_provider looks it up at call time
    tf.runner.run_provider(_App(), sys.argv)
