#!/usr/bin/env python3
"""Rebuild a `terraform providers schema -json`-shaped document for hashicorp/google
from the generated JS bindings inside the cdktn-provider-google wheel.

The wheel has no raw Terraform schema; it ships a jsii tarball
(cdktn_provider_google/_jsii/provider-google@<ver>.jsii.tgz) whose package/lib/<name>/index.js
files are generated from the provider schema and keep, for every attribute:
  // <tf_name> - computed: X, optional: Y, required: Z
followed by a typed getter (getStringAttribute / getNumberAttribute / getListAttribute ...,
new XOutputReference(this,"n") for MaxItems=1 blocks, new XList(this,"n",wrapsSet) for lists/sets),
and `tfResourceType = "google_..."` on each resource / data source class. Parsed from the
TypeScript kept in each .js inline source map (works for cdktn 8.x and cdktf 6.x wheels).

usage: extract_schema.py <jsii package dir> <out.json[.gz]>
"""

import base64
import gzip
import json
import os
import re
import sys

PKG, OUT = sys.argv[1], sys.argv[2]
LIB = os.path.join(PKG, "lib")

CLASS_RE = re.compile(r"^export class (\w+) extends ([\w.]+) \{\n(.*?)^\}", re.M | re.S)
ENTRY_RE = re.compile(r"^ +// (\w+) - computed: (true|false), optional: (true|false), required: (true|false)\n", re.M)
HCL_RE = re.compile(
    r"(\w+): \{\n\s+value: .*?\n\s+isBlock: (true|false),\n\s+type: \"(\w+)\",\n\s+storageClassType: \"(\w+)\",", re.S
)

SCT = {
    "string": "string",
    "number": "number",
    "boolean": "bool",
    "stringList": ["list", "string"],
    "numberList": ["list", "number"],
    "booleanList": ["list", "bool"],
    "stringMap": ["map", "string"],
    "numberMap": ["map", "number"],
    "booleanMap": ["map", "bool"],
}


def getter_type(body, hcl):
    """-> ('prim', ctytype) | ('nested', struct_class, mode, single)"""
    m = re.search(r"new cdkt[nf]\.(String|Number|Boolean)Map(List)?\(this, \"\w+\"(?:, (true|false))?\)", body)
    if m:
        el = {"String": "string", "Number": "number", "Boolean": "bool"}[m.group(1)]
        t = ["map", el]
        if m.group(2):
            t = ["set" if m.group(3) == "true" else "list", t]
        return ("prim", t)
    m = re.search(r"new (?:\w+\.)?(\w+)OutputReference\(this, \"\w+\"\)", body)
    if m:
        return ("nested", m.group(1) + "OutputReference", "list", True)
    m = re.search(r"new (?:\w+\.)?(\w+)List\(this, \"\w+\", (true|false)\)", body)
    if m:
        return ("nested", m.group(1) + "OutputReference", "set" if m.group(2) == "true" else "list", False)
    wrap = "set" if "Fn.tolist(" in body else "list"
    for fn, t in (
        ("getNumberListAttribute", ["number"]),
        ("getBooleanListAttribute", ["bool"]),
        ("getListAttribute", ["string"]),
        ("getStringMapAttribute", ["map", "string"]),
        ("getNumberMapAttribute", ["map", "number"]),
        ("getBooleanMapAttribute", ["map", "bool"]),
        ("getStringAttribute", "string"),
        ("getNumberAttribute", "number"),
        ("getBooleanAttribute", "bool"),
    ):
        if fn in body:
            if fn.endswith("ListAttribute"):
                return ("prim", [wrap, t[0]])
            return ("prim", t)
    if hcl and hcl[2] in SCT:
        return ("prim", SCT[hcl[2]])
    return ("prim", "dynamic")


def parse_file(dirpath):
    # big resources keep their structs in index-structs/structs*.js: read every .js file
    parts = []
    for root, _, files in os.walk(dirpath):
        for fn in sorted(files):
            if fn.endswith(".js"):
                # every .js keeps its original TypeScript in an inline source map; the TS
                # still has the "// name - computed: .." comment on every field (cdktf 6.x's
                # JS emit drops them for primitive fields)
                with open(os.path.join(root, fn), encoding="utf-8") as handle:
                    js = handle.read()
                if "sourceMappingURL=data:application/json;base64," not in js:
                    continue
                sm = json.loads(base64.b64decode(js.rsplit("base64,", 1)[1].strip()))
                parts.extend(sm.get("sourcesContent") or [])
    src = "\n".join(parts)
    classes = {}
    for cm in CLASS_RE.finditer(src):
        name, base, body = cm.group(1), cm.group(2).split(".")[-1], cm.group(3)
        entries = []
        pos = list(ENTRY_RE.finditer(body))
        # hcl dict of this class: resources use synthesizeHclAttributes; structs use the
        # module-level function <lowerFirst(Struct)>ToHclTerraform
        hbody = body
        if name.endswith("OutputReference"):
            fn = name[: -len("OutputReference")]
            fn = fn[0].lower() + fn[1:] + "ToHclTerraform"
            fm = re.search(r"^export function " + fn + r"\(struct\?: [^\n]*\{\n(.*?)^\}", src, re.M | re.S)
            hbody = fm.group(1) if fm else ""
        hmap = {h[0]: (h[1] == "true", h[2], h[3]) for h in HCL_RE.findall(hbody)}
        for i, em in enumerate(pos):
            end = pos[i + 1].start() if i + 1 < len(pos) else len(body)
            ebody = body[em.end() : end]
            entries.append(
                dict(
                    name=em.group(1),
                    computed=em.group(2) == "true",
                    optional=em.group(3) == "true",
                    required=em.group(4) == "true",
                    t=getter_type(ebody, hmap.get(em.group(1))),
                )
            )
        if base == "TerraformProvider":
            # provider blocks (batching, external_credentials) have no OutputReference class:
            # build a pseudo struct from the <struct>ToHclTerraform function (all optional)
            for e in entries:
                h = hmap.get(e["name"])
                if h and h[0]:
                    st = re.sub(r"List$", "", h[2])
                    fm = re.search(
                        r"^export function " + st[0].lower() + st[1:] + r"ToHclTerraform\(struct\?: [^\n]*\{\n(.*?)^\}",
                        src,
                        re.M | re.S,
                    )
                    pseudo = "__hcl__" + st
                    classes[pseudo] = dict(
                        base="",
                        tftype=None,
                        entries=[
                            dict(
                                name=n,
                                computed=False,
                                optional=True,
                                required=False,
                                t=("prim", SCT.get(sct, "dynamic")),
                            )
                            for n, _, _, sct in HCL_RE.findall(fm.group(1))
                        ],
                    )
                    e["t"] = ("nested", pseudo, "list", True)
        tfm = (
            re.search(r"static readonly tfResourceType = \"(\w+)\";", body)  # cdktn (new TS emit)
            or re.search(r"^" + name + r"\.tfResourceType = \"(\w+)\";", src, re.M)
        )  # cdktf 6.x
        classes[name] = dict(base=base, entries=entries, tftype=tfm.group(1) if tfm else None)
    return classes


# cdktf reuses one class for same-named nested structs, which can look recursive
# (cloud_security_compliance_cloud_control): cut such cycles.
def obj_type(classes, cls, stack=()):
    attrs = {}
    for e in classes[cls]["entries"]:
        if e["t"][0] == "nested" and e["t"][1] in stack + (cls,):
            continue
        attrs[e["name"]] = entry_cty(classes, e, stack + (cls,))
    return ["object", attrs]


def entry_cty(classes, e, stack=()):
    t = e["t"]
    if t[0] == "prim":
        return t[1]
    _, scls, mode, single = t
    return [mode, obj_type(classes, scls, stack)]


def block(classes, cls, stack=()):
    b = {"attributes": {}, "block_types": {}, "description_kind": "plain"}
    stack = stack + (cls,)
    for e in classes[cls]["entries"]:
        t = e["t"]
        if t[0] == "nested" and t[1] in stack:
            continue
        flags = {k: True for k in ("required", "optional", "computed") if e[k]}
        if t[0] == "nested" and (e["optional"] or e["required"]):
            _, scls, mode, single = t
            nb = {"nesting_mode": mode, "block": block(classes, scls, stack)}
            if e["name"] == "timeouts":
                nb["nesting_mode"] = "single"
            else:
                if single:
                    nb["max_items"] = 1
                if e["required"]:
                    nb["min_items"] = 1
            b["block_types"][e["name"]] = nb
        else:
            if not flags:
                flags = {"computed": True}
            b["attributes"][e["name"]] = dict(type=entry_cty(classes, e, stack), description_kind="plain", **flags)
    if not b["block_types"]:
        del b["block_types"]
    if not b["attributes"]:
        del b["attributes"]
    return b


res, ds, prov = {}, {}, None
for d in sorted(os.listdir(LIB)):
    p = os.path.join(LIB, d)
    if not os.path.exists(os.path.join(p, "index.js")):
        continue
    classes = parse_file(p)
    for name, c in classes.items():
        if c["base"] == "TerraformResource" and c["tftype"]:
            res[c["tftype"]] = {"version": 0, "block": block(classes, name)}
        elif c["base"] == "TerraformDataSource" and c["tftype"]:
            ds[c["tftype"]] = {"version": 0, "block": block(classes, name)}
        elif c["base"] == "TerraformProvider":
            prov = {"version": 0, "block": block(classes, name)}
            # the provider class has no `alias` in the real schema
            prov["block"].get("attributes", {}).pop("alias", None)

doc = {
    "format_version": "1.0",
    "provider_schemas": {
        "registry.terraform.io/hashicorp/google": {"provider": prov, "resource_schemas": res, "data_source_schemas": ds}
    },
}
op = gzip.open if OUT.endswith(".gz") else open
with op(OUT, "wt") as f:
    json.dump(doc, f, sort_keys=True)
print(f"resources={len(res)} data_sources={len(ds)} provider_attrs={len(prov['block'].get('attributes', {}))} -> {OUT}")
