/*
 * device_select.h — the `--device auto|cpu|cuda[:N]` and `--dtype f32|bf16|f16` options shared by
 * every command that runs the encoder (forward, analyze, batch, features). Parsing only plus the
 * "auto" resolution (GPU when one is present); the backends themselves are in backend.h and
 * cuda/backend_cuda.h. Without a CUDA build, "cuda" is a clear WV_EUNSUPPORTED.
 */
#ifndef WV_DEVICE_SELECT_H
#define WV_DEVICE_SELECT_H

#include <stddef.h>

#include "backend.h"
#include "error.h"

/* Storage dtype of GEMM operands and weights on the GPU (accumulation and the scan state are
 * always fp32). The CPU backend computes in fp32 whatever is asked. */
enum wv_dtype { WV_DTYPE_F32, WV_DTYPE_BF16, WV_DTYPE_F16 };

/* "f32", "bf16", "f16". */
const char *wv_dtype_name(enum wv_dtype dt);

/* Parse "f32" (also "fp32", "float32"), "bf16", "f16" ("fp16"). WV_EINVAL with a message
 * naming the accepted values otherwise. */
enum wv_status wv_dtype_parse(const char *s, enum wv_dtype *out);

struct device_choice {
    enum wv_device device; /* resolved: CPU or CUDA (never "auto") */
    int index;             /* CUDA ordinal (0 for CPU) */
    int was_auto;          /* the spec was "auto" */
    char desc[320];        /* "cuda:0 (NVIDIA H100 80GB HBM3, sm_90, 79.2 GiB, 132 SMs)" or "cpu" */
};

/* Resolve a --device spec: "auto" (CUDA device 0 when this build has CUDA and a device is
 * present, else the CPU; desc says why the CPU was chosen), "cpu", "cuda" (= cuda:0), "cuda:N".
 * Errors: WV_EINVAL for a malformed spec, WV_EUNSUPPORTED when CUDA is asked for and this build
 * has no CUDA backend, no device is present, or N is out of range (the message says which). */
enum wv_status device_select(const char *spec, struct device_choice *out);

#endif
