#!/usr/bin/python3
"""weights_cases.py — hand-made checkpoints, good and hostile, through `wsi-vmamba weights`.

Builds every case file at test time (OpenSlide test/cases style: file, expected exit status,
stderr regex), runs `wsi-vmamba weights inspect` on it and checks the outcome. The .pth files
mimic torch.save's layout (zip: <prefix>/data.pkl, <prefix>/data/<key>, <prefix>/version; pickle
protocol 2 with GLOBAL torch._utils._rebuild_tensor_v2 and persistent ids) without needing torch:
fake `torch` modules are registered so the standard pickler writes the same opcodes.

  weights_cases.py                 run the cases (needs WV_BIN, WV_TEST_TMP)
  weights_cases.py --corpus DIR    write the files as fuzz seeds into DIR/fuzz_{pth,safetensors}
"""
import collections
import io
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import types
import zipfile

import numpy as np

# ---- fake torch, enough for the pickler to emit torch's GLOBALs ------------------------------
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils
torch._utils = torch_utils


def _rebuild_tensor_v2(*a):
    raise RuntimeError("never called")


def _rebuild_parameter(*a):
    raise RuntimeError("never called")


_rebuild_tensor_v2.__module__ = "torch._utils"
_rebuild_parameter.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
torch_utils._rebuild_parameter = _rebuild_parameter

STORAGE_CLASSES = {}
for cname, dt in [("FloatStorage", "<f4"), ("HalfStorage", "<f2"), ("DoubleStorage", "<f8"),
                  ("LongStorage", "<i8"), ("IntStorage", "<i4"), ("ByteStorage", "u1"),
                  ("BoolStorage", "?"), ("BFloat16Storage", None)]:
    cls = type(cname, (), {"__module__": "torch"})
    setattr(torch, cname, cls)
    STORAGE_CLASSES[cname] = cls


class Storage:
    def __init__(self, key, cls_name, raw, numel):
        self.key, self.cls, self.raw, self.numel = key, STORAGE_CLASSES[cls_name], raw, numel


class Tensor:
    def __init__(self, storage, offset, size, stride, parameter=False):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())
        self.parameter = parameter

    def __reduce_ex__(self, proto):
        if self.parameter:
            inner = Tensor(*self.args[:4])
            return (_rebuild_parameter, (inner, True, collections.OrderedDict()))
        return (_rebuild_tensor_v2, self.args)


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None


def pth_bytes(obj, storages, prefix="archive", protocol=2, drop=(), pkl=None, byteorder=None):
    """A torch.save-style zip. `storages` are the Storage objects referenced by `obj`."""
    if pkl is None:
        buf = io.BytesIO()
        TorchPickler(buf, protocol=protocol).dump(obj)
        pkl = buf.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        if "data.pkl" not in drop:
            z.writestr(f"{prefix}/data.pkl", pkl)
        if byteorder:
            z.writestr(f"{prefix}/byteorder", byteorder)
        for s in storages:
            if s.key not in drop:
                z.writestr(f"{prefix}/data/{s.key}", s.raw)
        z.writestr(f"{prefix}/version", b"3\n")
    return out.getvalue()


def tensor_of(key, arr, cls="FloatStorage", dt="<f4"):
    a = np.ascontiguousarray(arr, dtype=dt)
    st = Storage(key, cls, a.tobytes(), a.size)
    return Tensor(st, 0, a.shape, [s // a.itemsize for s in a.strides]), st


def safetensors_bytes(entries, metadata=None, header=None, data=b"", pad=True):
    """entries: name -> (dtype, shape, [begin, end]); data: the buffer."""
    if header is None:
        h = {}
        if metadata is not None:
            h["__metadata__"] = metadata
        for k, (dt, shape, offs) in entries.items():
            h[k] = {"dtype": dt, "shape": shape, "data_offsets": offs}
        header = json.dumps(h).encode()
    if pad:
        header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + data


def small_safetensors():
    a = np.arange(6, dtype="<f4").reshape(2, 3) / 4
    b = np.array([1.5, -2.25], dtype="<f2")
    data = a.tobytes() + b.tobytes()
    return safetensors_bytes({"a": ("F32", [2, 3], [0, 24]), "b": ("F16", [2], [24, 28])},
                             metadata={"k": "v"}, data=data)


# ---- the cases -------------------------------------------------------------------------------
def build_cases():
    """Returns [(file name, bytes, expected exit status, stderr regex or stdout regex)]."""
    cases = []
    add = lambda name, data, rc, rx: cases.append((name, data, rc, rx))

    # valid .pth: shared storage with offset views, a transposed (non-contiguous) view, a
    # Parameter, a half tensor, protocol 2 like torch.save({'model': ..., 'epoch': 1})
    base = np.arange(12, dtype="<f4") * 0.5
    shared = Storage("0", "FloatStorage", base.tobytes(), 12)
    h = np.array([0.5, -1, 65504], dtype="<f2")
    th, sh = tensor_of("1", h, "HalfStorage", "<f2")
    model = collections.OrderedDict()
    model["first"] = Tensor(shared, 0, [2, 3], [3, 1])
    model["second"] = Tensor(shared, 6, [3, 2], [2, 1])   # storage offset 6
    model["transposed"] = Tensor(shared, 0, [3, 2], [1, 3], parameter=True)  # first.T
    model["half"] = th
    ok = pth_bytes({"model": model, "epoch": 1}, [shared, sh])
    add("ok_views.pth", ok, 0, r"first\s+\(2, 3\)\s+F32")
    add("ok_proto4.pth", pth_bytes({"state_dict": model}, [shared, sh], protocol=4), 0,
        r"transposed\s+\(3, 2\)\s+F32")
    add("ok_bare_dict.pth", pth_bytes(model, [shared, sh], prefix="some_name"), 0,
        r"half\s+\(3\)\s+F16")

    # hostile pickles: globals that must be refused, by name
    def raw_pkl(body):
        return b"\x80\x02" + body

    evil = {
        "global_os_system.pth": raw_pkl(b"cos\nsystem\n(X\x02\x00\x00\x00idtR."),
        "global_builtins_eval.pth": raw_pkl(b"cbuiltins\neval\n(X\x04\x00\x00\x001+1\x00tR."),
        "global_posix_system.pth": raw_pkl(b"cposix\nsystem\nX\x02\x00\x00\x00id\x85R."),
        "global_subprocess.pth": raw_pkl(b"csubprocess\ncheck_output\n]X\x02\x00\x00\x00id"
                                         b"a\x85R."),
        "stack_global_posix_system.pth": b"\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00"
        b"\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94.",
        "stack_global_eval.pth": b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x031+1\x85R.",
    }
    for name, pk in evil.items():
        glob = {"global_os_system.pth": "os.system", "global_builtins_eval.pth": "builtins.eval",
                "global_posix_system.pth": "posix.system",
                "global_subprocess.pth": "subprocess.check_output",
                "stack_global_posix_system.pth": "posix.system",
                "stack_global_eval.pth": "builtins.eval"}[name]
        add(name, pth_bytes(None, [], pkl=pk), 1, r"refusing global " + re.escape(glob))
    # a legitimate-looking checkpoint whose 'epoch' calls os.system: refused even there
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    add("evil_in_extra_key.pth", pth_bytes({"model": model, "epoch": Evil()}, [shared, sh]), 1,
        r"refusing global posix\.system")

    # broken zips / layouts
    add("missing_data_pkl.pth", pth_bytes({"model": model}, [shared, sh], drop=("data.pkl",)), 1,
        r"no <name>/data\.pkl")
    add("missing_storage.pth", pth_bytes({"model": model}, [shared, sh], drop=("1",)), 1,
        r"tensor half: storage entry archive/data/1 missing")
    add("truncated_half.pth", ok[: len(ok) // 2], 1, r"pth: not a readable zip|truncated")
    add("truncated_tail.pth", ok[:-30], 1, r"pth: not a readable zip|truncated")
    bad_view = collections.OrderedDict(x=Tensor(shared, 10, [2, 3], [3, 1]))
    add("view_out_of_range.pth", pth_bytes({"model": bad_view}, [shared]), 1,
        r"tensor x: view .* outside its storage of 12 elements")
    short = Storage("0", "FloatStorage", base.tobytes()[:20], 12)
    add("storage_short.pth", pth_bytes({"model": {"x": Tensor(short, 0, [12], [1])}}, [short]), 1,
        r"tensor x: .*data/0 is 20 bytes, expected 48")
    t_nan, s_nan = tensor_of("0", np.array([1, np.nan, 3]))
    add("nan.pth", pth_bytes({"model": {"w.nan": t_nan}}, [s_nan]), 1,
        r"tensor w\.nan: NaN value at index 1")
    add("no_tensors.pth", pth_bytes({"epoch": 3, "optimizer": {}}, []), 1,
        r"no 'model' or 'state_dict' entry.*'epoch'")
    add("big_endian.pth", pth_bytes({"model": model}, [shared, sh], byteorder=b"big"), 1,
        r"big-endian")
    add("truncated_pickle.pth", pth_bytes(None, [], pkl=b"\x80\x02}q\x00(X\x05\x00\x00\x00mo"), 1,
        r"pickle: truncated")
    add("bad_opcode.pth", pth_bytes(None, [], pkl=b"\x80\x02}Iq\x00."), 1,
        r"unsupported opcode 0x49")
    add("deep_marks.pth", pth_bytes(None, [], pkl=b"\x80\x02" + b"(" * 100000 + b"."), 1,
        r"STOP with")
    add("memo_huge.pth", pth_bytes(None, [], pkl=b"\x80\x02}r\xff\xff\xff\x7f."), 1,
        r"memo index .* too large")
    add("legacy.pth", pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001), 1,
        r"unsupported legacy PyTorch format.*torch>=1\.6")

    # safetensors
    add("ok_small.safetensors", small_safetensors(), 0, r"b\s+\(2\)\s+F16")
    add("corrupt_json.safetensors", safetensors_bytes({}, header=b'{"a": {"dtype": "F32",'), 1,
        r"header is not valid JSON")
    d24 = bytes(24)
    add("offsets_out_of_range.safetensors",
        safetensors_bytes({"a": ("F32", [8], [0, 32])}, data=d24), 1,
        r"tensor a: data_offsets \[0, 32\] outside the data buffer \(24 bytes\)")
    add("offsets_overlap.safetensors",
        safetensors_bytes({"a": ("F32", [4], [0, 16]), "b": ("F32", [4], [8, 24])}, data=d24), 1,
        r"tensor b: data_offsets overlap those of tensor a")
    add("wrong_dtype_size.safetensors",
        safetensors_bytes({"a": ("F64", [4], [0, 16])}, data=d24), 1,
        r"tensor a: data_offsets span 16 bytes, expected 32 \(4 x F64\)")
    add("unknown_dtype.safetensors", safetensors_bytes({"a": ("F8_E4M3", [4], [0, 4])}, data=d24),
        1, r"tensor a: unsupported dtype F8_E4M3")
    add("shape_overflow.safetensors",
        safetensors_bytes({"a": ("F32", [2**32, 2**32, 2**20], [0, 4])}, data=d24), 1,
        r"tensor a: shape overflows")
    add("inf.safetensors", safetensors_bytes({"w.inf": ("F32", [2], [0, 8])},
                                             data=np.array([1, -np.inf], "<f4").tobytes()), 1,
        r"tensor w\.inf: infinite .* at index 1")
    add("duplicate.safetensors",
        safetensors_bytes({}, header=b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                                     b'"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
                          data=bytes(8)), 1, r"tensor a: duplicate name")
    add("header_too_long.safetensors", struct.pack("<Q", 1 << 40) + b"{}", 1,
        r"header length 1099511627776 exceeds the file")
    add("metadata_not_string.safetensors",
        safetensors_bytes({}, metadata={"n": 3}, data=b""), 1, r"__metadata__ value \"n\"")
    add("empty_file.safetensors", b"", 1, r"too short")
    return cases


def write_corpus(root):
    for name, data, _, _ in build_cases():
        sub = "fuzz_safetensors" if name.endswith(".safetensors") else "fuzz_pth"
        os.makedirs(os.path.join(root, sub), exist_ok=True)
        with open(os.path.join(root, sub, name), "wb") as f:
            f.write(data)


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        assert v["dtype"] == "F32"
        out[k] = np.frombuffer(raw[8 + n + b:8 + n + e], "<f4").reshape(v["shape"])
    return out, h.get("__metadata__")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--corpus":
        write_corpus(sys.argv[2])
        return 0
    wv_bin = os.environ["WV_BIN"]
    tmp = os.path.join(os.environ.get("WV_TEST_TMP", "/tmp"), "weights_cases")
    os.makedirs(tmp, exist_ok=True)
    fails = 0
    for name, data, rc_want, rx in build_cases():
        path = os.path.join(tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        p = subprocess.run([wv_bin, "weights", "inspect", path], capture_output=True, text=True,
                           timeout=60)
        text = p.stdout if rc_want == 0 else p.stderr
        ok = p.returncode == rc_want and re.search(rx, text) is not None
        if rc_want:  # errors: one line, prefixed with the file
            ok = ok and p.stderr.startswith(f"wsi-vmamba: {path}: ") and p.stderr.count("\n") == 1
        print(f"{name:36s} rc={p.returncode} {'OK' if ok else 'FAIL'}")
        if not ok:
            fails += 1
            print(f"  want rc={rc_want} /{rx}/\n  stdout: {p.stdout[:400]!r}\n  stderr: {p.stderr!r}")

    # values through import: views/strides/offsets/half resolved exactly
    src = os.path.join(tmp, "ok_views.pth")
    dst = os.path.join(tmp, "ok_views.safetensors")
    p = subprocess.run([wv_bin, "weights", "import", src, "-o", dst], capture_output=True,
                       text=True)
    base = np.arange(12, dtype="<f4") * 0.5
    want = {"first": base[:6].reshape(2, 3), "second": base[6:].reshape(3, 2),
            "transposed": base[:6].reshape(2, 3).T,
            "half": np.array([0.5, -1, 65504], dtype="<f2").astype("<f4")}
    try:
        got, meta = read_safetensors(dst)
        ok = p.returncode == 0 and set(got) == set(want) and all(
            np.array_equal(got[k], want[k]) for k in want) and meta["source_file"] == "ok_views.pth"
        ok = ok and "warning: no VMamba configuration" in p.stderr
    except Exception as e:  # noqa: BLE001 — report any failure as a test failure
        print("  import check:", e)
        ok = False
    print(f"{'import ok_views.pth values':36s} {'OK' if ok else 'FAIL'}")
    fails += not ok
    print(f"weights_cases: {fails} failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
